"""The emulator authenticates every /v2/ request like Huawei Cloud's API gateway (SDK-HMAC-SHA256)."""

from __future__ import annotations

import dataclasses
import http.client
import logging
import re
import socket
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from airflow_provider_oms import signer
from airflow_provider_oms.client import Credentials, PreparedCall
from airflow_provider_oms.testing import EMULATOR_AK, EMULATOR_SK, OMSEmulator, RequestRecord
from tests.testing.helpers import SRC_SK, OMSCaller, assert_error, send_raw_signed, task_body

REQUEST_ID = re.compile(r"[0-9a-f]{32}")
HEX_SIGNATURE = re.compile(r"[0-9a-f]{64}")


def origin_form(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def assert_auth_refused(response: requests.Response, reason: str) -> None:
    body = assert_error(response, 401, "APIGW.0301")
    assert body["error_msg"].startswith("Incorrect IAM authentication information: ")
    assert reason in body["error_msg"]
    # Never a hint at the signature the emulator expected.
    assert not HEX_SIGNATURE.search(response.text)


def test_signed_request_is_accepted_with_request_id_and_date(oms: OMSCaller) -> None:
    response = oms("GET", "/tasks")
    assert response.status_code == 200, response.text
    assert response.json() == {"tasks": [], "count": 0}
    assert REQUEST_ID.fullmatch(response.headers["X-Request-Id"])
    assert response.headers["Date"].endswith("GMT")


def test_wrong_secret_key_is_refused(oms_emulator: OMSEmulator) -> None:
    caller = OMSCaller(oms_emulator.url, credentials=Credentials(EMULATOR_AK, EMULATOR_SK[:-1] + "2"))
    assert_auth_refused(caller("GET", "/tasks"), "verify aksk signature fail")


def test_unknown_access_key_is_refused(oms_emulator: OMSEmulator) -> None:
    caller = OMSCaller(oms_emulator.url, credentials=Credentials("UNKNOWNAK00000000001", EMULATOR_SK))
    assert_auth_refused(caller("GET", "/tasks"), "unknown access key")


def test_extra_credentials_are_accepted(tmp_path: Path) -> None:
    with OMSEmulator(tmp_path, extra_credentials={"SECONDAK000000000001": "second-secret"}) as emulator:
        assert OMSCaller(emulator.url, credentials=Credentials("SECONDAK000000000001", "second-secret"))(
            "GET", "/tasks"
        ).ok
        assert OMSCaller(emulator.url)("GET", "/tasks").ok


@pytest.mark.parametrize(("minutes", "accepted"), [(-20, False), (20, False), (-10, True), (10, True)])
def test_sdk_date_more_than_15_minutes_off_is_refused(oms: OMSCaller, minutes: int, accepted: bool) -> None:
    sdk_date = signer.format_sdk_date(datetime.now(timezone.utc) + timedelta(minutes=minutes))
    response = oms("GET", "/tasks", sdk_date=sdk_date)
    if accepted:
        assert response.status_code == 200, response.text
    else:
        assert_auth_refused(response, "x-sdk-date expired")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda call: dataclasses.replace(call, body=call.body.replace(b"dst-bucket", b"dst-bucke2")), id="body"
        ),
        pytest.param(lambda call: dataclasses.replace(call, url=call.url.replace("/tasks", "/tasks/1")), id="path"),
        pytest.param(lambda call: dataclasses.replace(call, url=call.url + "?limit=5"), id="query-added"),
    ],
)
def test_request_changed_after_signing_is_refused(
    oms: OMSCaller, oms_emulator: OMSEmulator, tamper: Callable[[PreparedCall], PreparedCall]
) -> None:
    call = oms.prepare("POST", "/tasks", json_body=task_body())
    assert_auth_refused(oms.send(tamper(call)), "verify aksk signature fail")
    assert oms_emulator.requests[-1].status == 401
    # The same request, untouched, is accepted: the refusal came from the change.
    assert oms.send(call).status_code == 200


def test_changed_query_value_is_refused(oms: OMSCaller) -> None:
    call = oms.prepare("GET", "/tasks", query={"limit": 10, "task_name": "my task/1"})
    assert oms.send(call).status_code == 200
    tampered = dataclasses.replace(call, url=call.url.replace("limit=10", "limit=11"))
    assert_auth_refused(oms.send(tampered), "verify aksk signature fail")


def test_signed_security_token_is_accepted_and_covered(oms_emulator: OMSEmulator) -> None:
    caller = OMSCaller(
        oms_emulator.url, credentials=Credentials(EMULATOR_AK, EMULATOR_SK, security_token="TEMPORARY-TOKEN")
    )
    call = caller.prepare("GET", "/tasks")
    assert "x-security-token" in call.headers[signer.HEADER_AUTHORIZATION]
    assert caller.send(call).status_code == 200
    tampered = dataclasses.replace(call, headers={**call.headers, signer.HEADER_SECURITY_TOKEN: "OTHER-TOKEN"})
    assert_auth_refused(caller.send(tampered), "verify aksk signature fail")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({signer.HEADER_AUTHORIZATION: None}, "Authorization header is missing"),
        ({signer.HEADER_AUTHORIZATION: "Basic dXNlcjpwYXNz"}, "not an SDK-HMAC-SHA256 one"),
        ({signer.HEADER_DATE: None}, "X-Sdk-Date header is missing"),
        ({signer.HEADER_DATE: "2024-01-01T00:00:00Z"}, "X-Sdk-Date header is malformed"),
        ({signer.HEADER_PROJECT_ID: None}, "a signed header is missing"),
    ],
)
def test_missing_or_malformed_auth_headers_are_refused(oms: OMSCaller, change: dict, reason: str) -> None:
    call = oms.prepare("GET", "/tasks")
    headers: dict[str, str | None] = {**call.headers, **change}
    # A None value makes requests send no such header at all.
    response = oms.session.get(call.url, headers=headers, timeout=10)
    assert_auth_refused(response, reason)


def test_project_of_another_account_is_refused(oms_emulator: OMSEmulator) -> None:
    caller = OMSCaller(oms_emulator.url, project_id="f" * 32)
    assert_auth_refused(caller("GET", "/tasks"), "not the project of the access key")


def test_x_project_id_header_must_match_the_path(oms_emulator: OMSEmulator) -> None:
    response = send_raw_signed(
        oms_emulator, "GET", f"/v2/{oms_emulator.project_id}/tasks", headers={signer.HEADER_PROJECT_ID: "f" * 32}
    )
    assert_auth_refused(response, "X-Project-Id header does not match")


@pytest.mark.parametrize(
    ("method", "template"),
    [("GET", "/nothing"), ("PUT", "/tasks"), ("POST", "/tasks/{task_id}/resume"), ("GET", "/tasks/{task_id}/start")],
)
def test_unknown_api_is_404_apigw_0101(oms: OMSCaller, method: str, template: str) -> None:
    body = assert_error(oms(method, template, task_id=1), 404, "APIGW.0101")
    assert body["error_msg"] == "The API does not exist or has not been published in the environment"


def test_paths_outside_v2_are_404_without_signature(oms_emulator: OMSEmulator) -> None:
    response = requests.get(oms_emulator.url + "/v3/auth/tokens", timeout=10)
    assert_error(response, 404, "APIGW.0101")


def test_every_response_has_its_own_request_id(oms: OMSCaller, oms_emulator: OMSEmulator) -> None:
    responses = [
        oms("GET", "/tasks"),
        oms.show(123),
        OMSCaller(oms_emulator.url, credentials=Credentials(EMULATOR_AK, "wrong"))("GET", "/tasks"),
        requests.get(oms_emulator.url + "/", timeout=10),
    ]
    assert [response.status_code for response in responses] == [200, 404, 401, 404]
    request_ids = [response.headers["X-Request-Id"] for response in responses]
    assert all(REQUEST_ID.fullmatch(request_id) for request_id in request_ids)
    assert len(set(request_ids)) == len(request_ids)


def test_unparsable_request_gets_a_json_error(oms_emulator: OMSEmulator) -> None:
    with socket.create_connection(("127.0.0.1", oms_emulator.port), timeout=5) as sock:
        sock.sendall(b"BREW /v2/pot HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = sock.makefile("rb").read()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 501")
    assert b"X-Request-Id: " in head
    assert b'"error_code": "APIGW.0201"' in body


def test_keep_alive_connection_serves_several_requests(oms: OMSCaller, oms_emulator: OMSEmulator) -> None:
    # One raw HTTP/1.1 connection: each answer must carry an exact Content-Length (also the empty ones),
    # or the next answer on the connection could not be read.
    connection = http.client.HTTPConnection("127.0.0.1", oms_emulator.port, timeout=5)
    calls = [
        oms.prepare("POST", "/tasks", json_body=task_body(src="missing-bucket")),
        oms.prepare("GET", "/tasks"),
        oms.prepare("GET", "/tasks/{task_id}", task_id="404"),
    ]
    statuses = []
    for call in calls:
        connection.request(call.method, origin_form(call.url), body=call.body, headers=call.headers)
        sock = connection.sock
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)
        assert connection.sock is sock is not None  # still the same, still open
    task_id = oms.create(task_body(src="missing-bucket"))
    oms_emulator.wait_for_status(task_id, {4})
    delete = oms.prepare("DELETE", "/tasks/{task_id}", task_id=task_id)
    connection.request(delete.method, origin_form(delete.url), body=delete.body, headers=delete.headers)
    response = connection.getresponse()
    assert (response.status, response.getheader("Content-Length"), response.read()) == (200, "0", b"")
    connection.request(calls[1].method, origin_form(calls[1].url), body=calls[1].body, headers=calls[1].headers)
    assert connection.getresponse().status == 200
    connection.close()
    assert statuses == [200, 200, 404]


def test_request_log_keeps_no_header_or_body(
    oms: OMSCaller, oms_emulator: OMSEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="airflow_provider_oms.emulator")
    oms_emulator.reset_requests()
    task_id = oms.create(task_body(src="missing-bucket"))
    oms_emulator.wait_for_status(task_id, {4})
    oms.start(task_id, src_ak="x" * 101)
    path = f"/v2/{oms_emulator.project_id}/tasks"
    assert oms_emulator.requests == [
        RequestRecord("POST", path, 200, None),
        RequestRecord("POST", f"{path}/{task_id}/start", 400, "OMS.0064"),
    ]
    assert f"POST {path} 200" in caplog.text
    for secret in (SRC_SK, EMULATOR_SK, "Signature=", "x" * 101):
        assert secret not in caplog.text
    oms_emulator.reset_requests()
    assert oms_emulator.requests == []
