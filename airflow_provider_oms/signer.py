"""
SDK-HMAC-SHA256 request signing, as Huawei Cloud's API gateway checks it.

Pure functions over bytes and strings: no Airflow, no I/O. The sync hook, the async trigger and the local
emulator (which verifies signatures) all use this one implementation.

The algorithm follows the official SDK's ``huaweicloudsdkcore.signer.Signer`` exactly:

* CanonicalURI: the path is percent-decoded, split on ``/``, each segment encoded with only unreserved
  characters left as they are, and a trailing ``/`` is appended.
* CanonicalQuery: ``key=value`` pairs sorted by key then value, both encoded the same way (space -> ``%20``).
* CanonicalHeaders: ``name:value`` for every signed header (lower-cased name, trimmed value), then a newline.
* The payload hash is the hex SHA-256 of the exact body bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
HEADER_DATE = "X-Sdk-Date"
_HEADER_DATE_LOWER = HEADER_DATE.lower()
HEADER_AUTHORIZATION = "Authorization"
HEADER_SECURITY_TOKEN = "X-Security-Token"  # noqa: S105 (a header name)
HEADER_PROJECT_ID = "X-Project-Id"
EMPTY_BODY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

QueryValue = str | int | bool
QueryPairs = Iterable[tuple[str, QueryValue]]

_AUTH_RE = re.compile(
    r"^SDK-HMAC-SHA256\s+Access=(?P<ak>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<sig>[0-9a-fA-F]+)$"
)


def _encode(value: str) -> str:
    # quote() never encodes unreserved characters (letters, digits, "_.-~"); "~" is named to be explicit.
    return quote(value, safe="~")


def _query_value(value: QueryValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def format_sdk_date(moment: datetime | None = None) -> str:
    """Return ``moment`` (default: now) in the ``X-Sdk-Date`` format, in UTC."""
    if moment is None:
        return time.strftime(DATE_FORMAT, time.gmtime(time.time()))
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime(DATE_FORMAT)


def parse_sdk_date(value: str) -> datetime:
    """Parse an ``X-Sdk-Date`` value into an aware UTC datetime; raises ``ValueError`` if malformed."""
    return datetime.strptime(value, DATE_FORMAT).replace(tzinfo=timezone.utc)


def canonical_uri(path: str) -> str:
    """Return the canonical URI of a request path (as sent on the wire, without the query)."""
    uri = "/".join(_encode(segment) for segment in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(params: QueryPairs) -> str:
    """
    Return the canonical query string.

    The same string must be sent as the request's query, so that what is signed is what is sent.
    """
    # Sort the raw pairs, then encode, as the SDK does: encoding first would sort "%" before "-" and letters.
    pairs = sorted((str(key), _query_value(value)) for key, value in params)
    return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in pairs)


def signed_header_names(headers: Mapping[str, str]) -> list[str]:
    """Return the sorted, lower-cased names of the headers that are signed (the SDK skips names with ``_``)."""
    return sorted(name.lower() for name in headers if "_" not in name)


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: list[str],
    body: bytes,
) -> str:
    """
    Return the canonical request that the string to sign hashes.

    :param method: HTTP method.
    :param path: the request path as sent (percent-encoded, no query).
    :param query: the canonical query string (see :func:`canonical_query`).
    :param headers: the request headers; names are matched case-insensitively.
    :param signed_headers: lower-cased names of the headers to sign, sorted.
    :param body: the exact body bytes sent (``b""`` for none).
    """
    lowered = {name.lower(): str(value).strip() for name, value in headers.items()}
    return _canonical_request(method, path, query, lowered, signed_headers, body)


def _canonical_request(
    method: str, path: str, query: str, lowered: Mapping[str, str], signed_headers: list[str], body: bytes
) -> str:
    """:func:`canonical_request` for headers already lower-cased and trimmed."""
    missing = [name for name in signed_headers if name not in lowered]
    if missing:
        raise ValueError(f"signed headers missing from the request: {', '.join(missing)}")
    canonical_headers = "".join(f"{name}:{lowered[name]}\n" for name in signed_headers)
    payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_BODY_SHA256
    return "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            query,
            canonical_headers,
            ";".join(signed_headers),
            payload_hash,
        ]
    )


def string_to_sign(canonical: str, sdk_date: str) -> str:
    """Return the string to sign for a canonical request and its ``X-Sdk-Date``."""
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{sdk_date}\n{digest}"


def signature(secret_key: str, to_sign: str) -> str:
    """Return the hex HMAC-SHA256 (RFC 2104) of ``to_sign`` keyed with the secret key, as the official SDK does."""
    return hmac.new(secret_key.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization_header(access_key: str, signed_headers: list[str], sig: str) -> str:
    """Return the value of the ``Authorization`` header."""
    return f"{ALGORITHM} Access={access_key}, SignedHeaders={';'.join(signed_headers)}, Signature={sig}"


def sign(
    *,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    access_key: str,
    secret_key: str,
) -> dict[str, str]:
    """
    Sign a request and return its headers with ``Authorization`` added.

    ``headers`` must already hold every header to sign, including ``Host`` and ``X-Sdk-Date``; each of them
    is signed. Nothing is logged, and the returned dict is a new one.
    """
    lowered = {name.lower(): str(value).strip() for name, value in headers.items()}
    sdk_date = lowered.get(_HEADER_DATE_LOWER)
    if sdk_date is None:
        raise ValueError(f"the {HEADER_DATE} header must be set before signing")
    names = sorted(name for name in lowered if "_" not in name)  # signed_header_names(), from the lowered names
    to_sign = string_to_sign(_canonical_request(method, path, query, lowered, names, body), sdk_date)
    signed = dict(headers)
    signed[HEADER_AUTHORIZATION] = authorization_header(access_key, names, signature(secret_key, to_sign))
    return signed


@dataclass(frozen=True)
class ParsedAuthorization:
    """The parts of an ``SDK-HMAC-SHA256`` ``Authorization`` header."""

    access_key: str
    signed_headers: list[str]
    signature: str


def parse_authorization(value: str) -> ParsedAuthorization | None:
    """Parse an ``Authorization`` header value; ``None`` if it is not an SDK-HMAC-SHA256 one."""
    match = _AUTH_RE.match(value.strip())
    if not match:
        return None
    return ParsedAuthorization(
        access_key=match["ak"],
        signed_headers=match["signed"].split(";"),
        signature=match["sig"].lower(),
    )
