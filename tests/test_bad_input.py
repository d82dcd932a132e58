"""
Bad input, table-driven: each case is refused with an error naming the field, and the emulator (a real HTTP
server on 127.0.0.1) receives no request at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_oms.exceptions import OMSValidationError
from airflow_provider_oms.operators.oms import StartMigrationTaskOperator
from airflow_provider_oms.testing import EMULATOR_AK, EMULATOR_SK
from tests.helpers import task_context

TASK_ID = "123456789012345"
CRLF = "\r\nX-Injected: 1"


@dataclass
class Case:
    """One bad input: connection changes, extra connections and operator arguments, and the expected message."""

    message: str
    oms: dict[str, Any] = field(default_factory=dict)  # overrides of the OMS connection (login, password, extra)
    connections: dict[str, dict[str, Any]] = field(default_factory=dict)
    operator: dict[str, Any] = field(default_factory=dict)


def extra(**changes: Any) -> dict[str, Any]:
    return {"extra": changes}


def source_with(**extra: Any) -> dict[str, Any]:
    """Arguments of a Case: a source connection ``src`` with a good AK/SK pair and this extra."""
    return {
        "connections": {"src": {"login": "SRC-AK-0001", "password": "SRC-SK-0001", "extra": extra}},
        "operator": {"source_conn_id": "src"},
    }


CASES = {
    # the OMS task id, a URL path segment
    "empty task id": Case(
        "migration_task_id must be 1 to 1024 characters long, got 0", operator={"migration_task_id": ""}
    ),
    "task id too long": Case(
        "migration_task_id must be 1 to 1024 characters long, got 1025", operator={"migration_task_id": "9" * 1025}
    ),
    "task id not a string": Case("migration_task_id must be a string, got list", operator={"migration_task_id": [1]}),
    "task id a float": Case("migration_task_id must be a string, got float", operator={"migration_task_id": 1.5}),
    "task id with /": Case("migration_task_id must not contain '/'", operator={"migration_task_id": "1/start"}),
    "task id ..": Case("migration_task_id must not contain", operator={"migration_task_id": ".."}),
    "task id with ?": Case("migration_task_id must not contain", operator={"migration_task_id": "1?limit=1"}),
    "task id with #": Case("migration_task_id must not contain", operator={"migration_task_id": "1#x"}),
    "task id with %2F": Case("migration_task_id must not contain", operator={"migration_task_id": "1%2Fstart"}),
    "task id with CR/LF": Case("migration_task_id must not contain", operator={"migration_task_id": "1" + CRLF}),
    # the flag
    "flag yes": Case("migrate_failed_object must be a boolean", operator={"migrate_failed_object": "yes"}),
    "flag 1": Case("migrate_failed_object must be a boolean", operator={"migrate_failed_object": 1}),
    "flag None": Case("migrate_failed_object must be a boolean", operator={"migrate_failed_object": None}),
    "flag empty": Case("migrate_failed_object must be a boolean", operator={"migrate_failed_object": ""}),
    # waiting arguments
    "poll interval 0": Case("poll_interval must be a number of seconds", operator={"poll_interval": 0}),
    "negative timeout": Case("timeout must be a number of seconds", operator={"timeout": timedelta(seconds=-1)}),
    "retries negative": Case("retry_failed_objects must be a whole number", operator={"retry_failed_objects": -1}),
    # the OMS connection
    "no project_id": Case("extra 'project_id' of connection 'oms' is required", oms=extra(project_id=None)),
    "empty project_id": Case("extra 'project_id' of connection 'oms' is required", oms=extra(project_id="")),
    "project_id too long": Case(
        "project_id (extra of connection 'oms') must be 1 to 1024", oms=extra(project_id="p" * 1025)
    ),
    "no AK": Case("AK (login) of connection 'oms' is required", oms={"login": None}),
    "no SK": Case("SK (password) of connection 'oms' is required", oms={"password": ""}),
    "AK too long": Case("AK (login of OMS connection 'oms') must be 1 to 100", oms={"login": "A" * 101}),
    "CR/LF in AK": Case(
        "AK (login of OMS connection 'oms') must be printable ASCII", oms={"login": EMULATOR_AK + CRLF}
    ),
    "CR/LF in SK": Case(
        "SK (password of OMS connection 'oms') must be printable ASCII", oms={"password": EMULATOR_SK + "\n"}
    ),
    "CR/LF in token": Case(
        "security_token (extra of OMS connection 'oms') must be printable ASCII",
        oms=extra(security_token="T0KEN" + CRLF),
    ),
    "token too long": Case(
        "security_token (extra of OMS connection 'oms') must be 1 to 16384", oms=extra(security_token="T" * 16385)
    ),
    "unknown region, no endpoint": Case("not a known OMS region", oms=extra(endpoint=None, region="mars-west-1")),
    "no region, no endpoint": Case("needs extra 'region'", oms=extra(endpoint=None, region=None)),
    "http to a remote host": Case(
        "plain http:// to a host that is not loopback", oms=extra(endpoint="http://oms.example.com")
    ),
    "endpoint with a path": Case("without a path, query or fragment", oms=extra(endpoint="https://oms.example.com/v2")),
    "endpoint with user:password": Case(
        "must not contain a user name or password", oms=extra(endpoint="https://u:p@h")
    ),
    "verify path missing": Case("the path of a CA bundle file", oms=extra(verify="/nonexistent/ca.pem")),
    "timeout not a number": Case("extra 'timeout' of connection 'oms' must be a number", oms=extra(timeout="soon")),
    "retry attempts 0": Case("extra 'retry_max_attempts'", oms=extra(retry_max_attempts=0)),
    # source and destination connections
    "source SK too long": Case(
        "SK (password of source connection 'src') must be 1 to 100",
        connections={"src": {"login": "SRC-AK-0001", "password": "S" * 101}},
        operator={"source_conn_id": "src"},
    ),
    "source half pair": Case(
        "source connection 'src' has only its AK (login of source connection 'src')",
        connections={"src": {"login": "SRC-AK-0001"}},
        operator={"source_conn_id": "src"},
    ),
    "source token too long": Case(
        "security_token (extra 'security_token' of source connection 'src') must be 1 to 16384",
        **source_with(security_token="T" * 16385),
    ),
    "source CR/LF in token": Case(
        "security_token (extra 'security_token' of source connection 'src') must be printable ASCII",
        **source_with(security_token="T" + CRLF),
    ),
    "GCS auth file not JSON": Case(
        "extra 'json_auth_file' of connection 'gcs' must be a JSON object",
        connections={"gcs": {"extra": {"json_auth_file": "-----BEGIN PRIVATE KEY-----"}}},
        operator={"source_conn_id": "gcs"},
    ),
    "GCS auth file too long": Case(
        "json_auth_file (extra 'json_auth_file' of source connection 'gcs') must be 0 to 65535",
        connections={"gcs": {"extra": {"json_auth_file": {"private_key": "k" * 65535}}}},
        operator={"source_conn_id": "gcs"},
    ),
    "CDN key too long": Case(
        "source_cdn_authentication_key (extra 'cdn_authentication_key' of source connection 'src') must be 0 to 255",
        **source_with(cdn_authentication_key="K" * 256),
    ),
    "destination AK too long": Case(
        "AK (login of destination connection 'dst') must be 1 to 100",
        connections={"dst": {"login": "D" * 101, "password": "DST-SK-0001"}},
        operator={"destination_conn_id": "dst"},
    ),
    "destination without SK": Case(
        "dst_sk (password of connection 'dst') is required",
        connections={"dst": {"login": "DST-AK-0001"}},
        operator={"destination_conn_id": "dst"},
    ),
}


def test_there_are_at_least_thirty_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_is_refused_before_any_request(case: Case, oms_emulator, set_connection):
    conn = oms_emulator.airflow_connection()
    oms = {"login": conn["login"], "password": conn["password"], "extra": dict(conn["extra"])}
    for key, value in case.oms.items():
        if key == "extra":
            oms["extra"].update(value)
            oms["extra"] = {k: v for k, v in oms["extra"].items() if v is not None}
        else:
            oms[key] = value
    set_connection("oms", conn_type="huaweicloud_oms", **oms)
    for conn_id, other in case.connections.items():
        set_connection(conn_id, **other)
    arguments = {"migration_task_id": TASK_ID, "oms_conn_id": "oms", **case.operator}
    op = StartMigrationTaskOperator(task_id="start", **arguments)

    with pytest.raises(OMSValidationError) as err:
        op.execute(context=task_context())

    assert case.message in str(err.value)
    assert oms_emulator.requests == []
    secrets = [json.dumps(v) for c in case.connections.values() for v in c.values()] + [str(oms["password"])]
    for secret in secrets:
        if len(secret) > 8:
            assert secret.strip('"') not in str(err.value)
