"""Fault injection in the emulator, observed with plain signed requests over real HTTP."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
import requests

from airflow_provider_oms.constants import ERROR_AUTH, ERROR_TASK_ALREADY_STARTED, ERROR_THROTTLED, TaskStatus
from airflow_provider_oms.testing import EMULATOR_AK, EMULATOR_SK, OMSEmulator
from airflow_provider_oms.testing.server import NO_ANSWER
from tests.testing.helpers import START_BODY, OMSCaller, assert_error, task_body, write_objects

START_PATH = r"/start$"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[OMSEmulator]:
    """An emulator whose started tasks stay waiting (status 1) for an hour: every start stays observable."""
    with OMSEmulator(tmp_path / "oms-data", task_start_delay=3600) as started:
        write_objects(started.bucket_path("src-bucket"), {"a.txt": "a"})
        yield started


@pytest.fixture
def caller(emulator: OMSEmulator) -> Iterator[OMSCaller]:
    signed = OMSCaller(emulator.url)
    yield signed
    signed.close()


@pytest.fixture
def paused_task(emulator: OMSEmulator, caller: OMSCaller) -> int:
    """A created task, paused at once (it was waiting), ready to be started."""
    task_id = caller.create(task_body())
    emulator.pause_task(task_id)
    return task_id


def send(caller: OMSCaller, method: str, template: str, *, timeout: float = 10, **kwargs) -> requests.Response:
    """Send a signed request without following redirects, with its own timeout."""
    call = caller.prepare(method, template, **kwargs)
    return caller.session.request(
        call.method, call.url, headers=call.headers, data=call.body, timeout=timeout, allow_redirects=False
    )


def start(caller: OMSCaller, task_id: int, *, timeout: float = 10) -> requests.Response:
    return send(caller, "POST", "/tasks/{task_id}/start", task_id=task_id, json_body=START_BODY, timeout=timeout)


# -- each kind -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("retry_after", "header"), [(None, "1"), (3, "3"), (0, "0"), (0.25, "0.25")])
def test_throttle(emulator: OMSEmulator, caller: OMSCaller, retry_after: float | None, header: str) -> None:
    emulator.inject_fault("throttle", retry_after=retry_after)
    throttled = caller("GET", "/tasks")
    assert_error(throttled, 429, ERROR_THROTTLED)
    assert throttled.headers["Retry-After"] == header
    assert caller("GET", "/tasks").status_code == 200
    assert [(r.status, r.error_code, r.fault) for r in emulator.requests] == [
        (429, ERROR_THROTTLED, "throttle"),
        (200, None, None),
    ]


@pytest.mark.parametrize(
    ("status", "expected_status", "error_code"),
    [(None, 503, "APIGW.0202"), (500, 500, "APIGW.9999"), (502, 502, "APIGW.0202"), (504, 504, "APIGW.0203")],
)
def test_gateway_error_is_json_and_applies_nothing(
    emulator: OMSEmulator,
    caller: OMSCaller,
    paused_task: int,
    status: int | None,
    expected_status: int,
    error_code: str,
) -> None:
    emulator.inject_fault("error", status=status)
    response = start(caller, paused_task)
    assert response.headers["Content-Type"].startswith("application/json")
    assert assert_error(response, expected_status, error_code)["error_msg"]
    assert emulator.applied_starts == 0
    assert emulator.get_task(paused_task)["status"] == TaskStatus.PAUSED


@pytest.mark.parametrize(("status", "expected"), [(None, 502), (504, 504), (403, 403)])
def test_html_error_page(emulator: OMSEmulator, caller: OMSCaller, status: int | None, expected: int) -> None:
    emulator.inject_fault("html", status=status)
    response = caller("GET", "/tasks")
    assert response.status_code == expected
    assert response.headers["Content-Type"] == "text/html"
    assert response.text.startswith("<html>")
    assert f"<title>{expected} " in response.text
    with pytest.raises(ValueError):
        response.json()
    assert emulator.requests[-1].fault == "html"


def test_truncated_json_applies_the_change_then_cuts_the_answer(emulator: OMSEmulator, caller: OMSCaller) -> None:
    emulator.inject_fault("truncated_json", path=r"/tasks$")
    response = caller("POST", "/tasks", json_body=task_body())
    assert response.status_code == 200
    assert emulator.applied_creates == 1
    task_id = caller("GET", "/tasks").json()["tasks"][0]["id"]
    full = json.dumps({"id": task_id, "name": f"oms-task-{task_id}", "task_name": f"oms-task-{task_id}"}).encode()
    assert response.content == full[: len(full) // 2]
    assert int(response.headers["Content-Length"]) == len(full) // 2
    with pytest.raises(ValueError):
        json.loads(response.content)


def test_truncated_json_of_an_empty_answer(emulator: OMSEmulator, caller: OMSCaller, paused_task: int) -> None:
    emulator.inject_fault("truncated_json", path=START_PATH)
    response = start(caller, paused_task)
    assert (response.status_code, response.content) == (200, b"{")
    assert emulator.applied_starts == 1


def test_redirect_is_not_applied(emulator: OMSEmulator, caller: OMSCaller, paused_task: int) -> None:
    emulator.inject_fault("redirect")
    response = start(caller, paused_task)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/moved/v2/{emulator.project_id}/tasks/{paused_task}/start"
    assert emulator.applied_starts == 0
    assert emulator.requests[-1].fault == "redirect"


@pytest.mark.parametrize(("kind", "applied"), [("reset_before", 0), ("reset_after", 1)])
def test_reset_before_or_after_applying(
    emulator: OMSEmulator, caller: OMSCaller, paused_task: int, kind: str, applied: int
) -> None:
    emulator.inject_fault(kind, path=START_PATH)
    with pytest.raises(requests.ConnectionError) as err:
        start(caller, paused_task)
    # A real TCP reset, not an orderly close.
    assert "ConnectionResetError" in repr(err.value)
    assert emulator.applied_starts == applied
    expected_status = TaskStatus.WAITING if applied else TaskStatus.PAUSED
    assert emulator.get_task(paused_task)["status"] == expected_status
    assert (emulator.requests[-1].status, emulator.requests[-1].fault) == (NO_ANSWER, kind)
    # The client's next attempt: accepted after a reset before, refused as already started after one after.
    retried = start(caller, paused_task)
    if applied:
        assert_error(retried, 400, ERROR_TASK_ALREADY_STARTED)
    else:
        assert retried.status_code == 200
    assert emulator.applied_starts == 1


def test_delay_past_the_client_timeout_applies_then_answers_late(
    emulator: OMSEmulator, caller: OMSCaller, paused_task: int
) -> None:
    emulator.inject_fault("delay", path=START_PATH, delay=2.0)
    began = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        start(caller, paused_task, timeout=0.3)
    assert time.monotonic() - began < 2.0
    assert emulator.applied_starts == 1
    assert emulator.get_task(paused_task)["status"] == TaskStatus.WAITING
    assert (emulator.requests[-1].status, emulator.requests[-1].fault) == (200, "delay")


def test_delay_answers_late(emulator: OMSEmulator, caller: OMSCaller) -> None:
    emulator.inject_fault("delay", delay=0.5)
    began = time.monotonic()
    response = caller("GET", "/tasks")
    assert time.monotonic() - began >= 0.5
    assert (response.status_code, response.json()["count"]) == (200, 0)


def test_stopping_the_emulator_cuts_a_delay_short(tmp_path: Path) -> None:
    emulator = OMSEmulator(tmp_path).start()
    try:
        emulator.inject_fault("delay", delay=60)
        with pytest.raises(requests.ReadTimeout):
            send(OMSCaller(emulator.url), "GET", "/tasks", timeout=0.2)
    finally:
        began = time.monotonic()
        emulator.stop()
    assert time.monotonic() - began < 5


# -- matching, order, count ------------------------------------------------------------------------


def test_path_and_count(emulator: OMSEmulator, caller: OMSCaller, paused_task: int) -> None:
    emulator.inject_fault("error", path=START_PATH, count=2)
    assert emulator.pending_faults == 2
    assert caller.show(paused_task).status_code == 200  # not a start: the fault waits
    assert [start(caller, paused_task).status_code for _ in range(3)] == [503, 503, 200]
    assert emulator.pending_faults == 0
    assert emulator.applied_starts == 1
    assert [r.fault for r in emulator.requests if r.path.endswith("/start")] == ["error", "error", None]


def test_faults_are_taken_in_order_by_the_first_that_matches(emulator: OMSEmulator, caller: OMSCaller) -> None:
    emulator.inject_fault("throttle", path=r"/tasks/\d+$")
    emulator.inject_fault("error", status=500)
    emulator.inject_fault("html", path=r"/tasks$")
    # The list path does not match the first fault: it takes the second, then the third.
    assert [caller("GET", "/tasks").status_code for _ in range(3)] == [500, 502, 200]
    assert caller.show(1).status_code == 429
    assert emulator.pending_faults == 0


def test_path_is_searched_without_the_query(emulator: OMSEmulator, caller: OMSCaller) -> None:
    emulator.inject_fault("error", path=r"limit")
    emulator.inject_fault("throttle", path=r"^/v2/[0-9a-f]+/tasks$")
    response = caller("GET", "/tasks", query={"limit": 5})
    assert response.status_code == 429
    assert emulator.pending_faults == 1


def test_clear_faults(emulator: OMSEmulator, caller: OMSCaller) -> None:
    emulator.inject_fault("error", count=5)
    emulator.inject_fault("reset_before", path=START_PATH)
    assert emulator.pending_faults == 6
    emulator.clear_faults()
    assert emulator.pending_faults == 0
    assert caller("GET", "/tasks").status_code == 200
    assert [r.fault for r in emulator.requests] == [None]


def test_faults_may_be_injected_before_the_start(tmp_path: Path) -> None:
    emulator = OMSEmulator(tmp_path)
    emulator.inject_fault("error", status=502)
    with emulator:
        assert OMSCaller(emulator.url)("GET", "/tasks").status_code == 502


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("teapot", {}, "unknown fault kind 'teapot'"),
        ("error", {"count": 0}, "count must be"),
        ("error", {"count": True}, "count must be"),
        ("throttle", {"status": 500}, "status is only for"),
        ("error", {"status": 418}, "an 'error' fault's status is one of"),
        ("html", {"status": 200}, "an 'html' fault's status is an error status"),
        ("error", {"retry_after": 1}, "retry_after is only for"),
        ("throttle", {"retry_after": -1}, "must not be negative"),
        ("delay", {}, "delay is required"),
        ("reset_after", {"delay": 1}, "delay is required for the 'delay' fault, only for it"),
    ],
)
def test_inject_refuses_bad_options(emulator: OMSEmulator, kind: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        emulator.inject_fault(kind, **options)
    assert emulator.pending_faults == 0


def test_a_path_that_is_not_a_regex_is_refused(emulator: OMSEmulator) -> None:
    with pytest.raises(re.error):
        emulator.inject_fault("error", path="(unclosed")


# -- counts ----------------------------------------------------------------------------------------


def test_applied_counts_only_what_took_effect(emulator: OMSEmulator, caller: OMSCaller, paused_task: int) -> None:
    assert emulator.applied_creates == 1
    assert emulator.applied_starts == 0
    assert start(caller, paused_task).status_code == 200
    assert_error(start(caller, paused_task), 400, ERROR_TASK_ALREADY_STARTED)  # refused: not counted
    assert caller("POST", "/tasks", json_body={"bad": "body"}).status_code == 400
    assert (emulator.applied_starts, emulator.applied_creates) == (1, 1)


# -- logs ------------------------------------------------------------------------------------------


def test_faults_are_logged_without_headers_or_bodies(
    emulator: OMSEmulator, caller: OMSCaller, paused_task: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="airflow_provider_oms.emulator")
    for kind in ("throttle", "html", "truncated_json", "redirect", "reset_before", "reset_after"):
        emulator.inject_fault(kind, path=START_PATH)
        with contextlib.suppress(requests.ConnectionError):
            start(caller, paused_task)
    assert f"injecting fault reset_after into POST /v2/{emulator.project_id}/tasks/{paused_task}/start" in caplog.text
    for secret in (EMULATOR_AK, EMULATOR_SK, *START_BODY.values()):
        assert secret not in caplog.text


# -- clock offset ----------------------------------------------------------------------------------


def server_date(response: requests.Response) -> datetime:
    return parsedate_to_datetime(response.headers["Date"])


@pytest.mark.parametrize("offset", [-7200.0, 3600.0])
def test_clock_offset_past_the_skew_limit_refuses_requests(tmp_path: Path, offset: float) -> None:
    with OMSEmulator(tmp_path, clock_offset=offset) as emulator:
        response = OMSCaller(emulator.url)("GET", "/tasks")
    assert "x-sdk-date expired" in assert_error(response, 401, ERROR_AUTH)["error_msg"]
    expected = datetime.now(timezone.utc) + timedelta(seconds=offset)
    assert abs((server_date(response) - expected).total_seconds()) < 60


def test_clock_offset_within_the_skew_limit_is_accepted(tmp_path: Path) -> None:
    with OMSEmulator(tmp_path, clock_offset=600) as emulator:
        response = OMSCaller(emulator.url)("GET", "/tasks")
    assert response.status_code == 200
    expected = datetime.now(timezone.utc) + timedelta(seconds=600)
    assert abs((server_date(response) - expected).total_seconds()) < 60
