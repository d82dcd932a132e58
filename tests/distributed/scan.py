"""
Every place of the distributed deployment where a credential could lie, scanned for this test's credentials.

PostgreSQL: a plain ``pg_dump``, table by table, as stored and with every Fernet token in it decrypted with the
deployment's key (Airflow encrypts connection passwords and extras and variables; not the kwargs of a trigger
that a task deferred to: Airflow 3.3's task runner sends them as plain JSON, which the API server stores as is).
Redis: every key and value of every database (Celery's queues and its ``unacked`` hash hold the messages of tasks
in flight). Each secret is looked for raw and in every base64 alignment (Celery message bodies are base64).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken

from tests.distributed.cluster import DistributedDeployment
from tests.distributed.conftest import AK, SECURITY_TOKEN, SK, SRC_AK, SRC_SK, SRC_TOKEN

SECRETS = {
    "OMS AK": AK,
    "OMS SK": SK,
    "OMS security token": SECURITY_TOKEN,
    "source AK": SRC_AK,
    "source SK": SRC_SK,
    "source session token": SRC_TOKEN,
}
SOURCE_SECRETS = ["source AK", "source SK", "source session token"]
#: Where a credential belongs: the source connection, kept Fernet-encrypted in the connection table.
EXPECTED = {"connection (decrypted)": SOURCE_SECRETS}
_FERNET_TOKEN = re.compile(rb"gAAAAA[A-Za-z0-9_\-]+=*")
_COPY_BLOCK = re.compile(rb"^COPY public\.(\w+) .*? FROM stdin;\n(.*?)^\\\.$", re.MULTILINE | re.DOTALL)


def encodings(text: str) -> list[bytes]:
    """The text as it may lie at rest: raw, and every base64 alignment of it."""
    raw = text.encode()
    found = [raw]
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw)
        # Only the characters that come from the text's bytes alone, whatever surrounds it.
        found.append(encoded[4 * -(-offset // 3) : 4 * ((offset + len(raw)) // 3)])
    return found


def holds(blob: bytes, text: str) -> bool:
    """Whether ``text`` lies in ``blob``, raw or base64-encoded."""
    return any(form in blob for form in encodings(text))


def leaks(blob: bytes) -> list[str]:
    """The names of this test's credentials found in ``blob``."""
    return [name for name, secret in SECRETS.items() if holds(blob, secret)]


def dump_tables(dump: bytes) -> dict[str, bytes]:
    """The rows of each table of a plain-SQL ``pg_dump`` (its ``COPY ... FROM stdin`` block), by table name."""
    return {match.group(1).decode(): match.group(2) for match in _COPY_BLOCK.finditer(dump)}


def decrypt_all(blob: bytes, fernet: Fernet) -> tuple[bytes, int]:
    """Every Fernet token in ``blob`` that the key opens, decrypted and joined; and how many there were."""
    plain = []
    for token in _FERNET_TOKEN.findall(blob):
        try:
            plain.append(fernet.decrypt(token))
        except InvalidToken:
            continue
    return b"\n".join(plain), len(plain)


@dataclass
class Scan:
    """What one scan saw: credentials by place, and what it read (to show it read something)."""

    #: Place (``table``, ``table (decrypted)``, ``Redis key ...``) -> names of the credentials found there.
    found: dict[str, list[str]] = field(default_factory=dict)
    #: Table -> its rows as dumped (its COPY block).
    tables: dict[str, bytes] = field(default_factory=dict)
    #: Table -> Fernet tokens decrypted in it.
    decrypted: dict[str, int] = field(default_factory=dict)
    #: Redis key -> its value(s), joined.
    redis: dict[bytes, bytes] = field(default_factory=dict)

    @property
    def leaks(self) -> dict[str, list[str]]:
        """What was found where no credential belongs."""
        unexpected = {
            place: [name for name in names if name not in EXPECTED.get(place, [])]
            for place, names in self.found.items()
        }
        return {place: names for place, names in unexpected.items() if names}

    def redis_keys_holding(self, text: str) -> list[bytes]:
        """The Redis keys whose value holds ``text`` (raw or base64), e.g. a DAG id in a Celery message."""
        return [key for key, value in self.redis.items() if holds(value, text)]


def scan(deployment: DistributedDeployment) -> Scan:
    """Dump PostgreSQL and Redis now and look for every credential of the test, encrypted data decrypted."""
    result = Scan()
    fernet = Fernet(deployment.env["AIRFLOW__CORE__FERNET_KEY"].encode())
    dump = deployment.pg_dump()
    result.tables = dump_tables(dump)
    if not result.tables.get("task_instance"):
        raise AssertionError(f"pg_dump held no task instance ({len(dump)} bytes): the scan would prove nothing")
    for table, data in result.tables.items():
        plain, count = decrypt_all(data, fernet)
        result.decrypted[table] = count
        for place, blob in ((table, data), (f"{table} (decrypted)", plain)):
            if found := leaks(blob):
                result.found[place] = found
    # Outside the COPY blocks too (schema, sequences): the whole dump, as stored.
    if found := leaks(dump):
        result.found.setdefault("pg_dump", found)
    for key, value in deployment.redis_contents():
        result.redis[key] = value
        if found := leaks(key + b"\n" + value):
            result.found[f"Redis key {key!r}"] = found
    return result
