"""
Retries of the hook (and the trigger) against faults injected into the emulator, over real HTTP.

Waits are kept tiny through the connection's extras; each test counts the requests the emulator saw and the
starts and creates it applied, so a lost or a repeated call shows.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog.testing

from airflow_provider_oms.constants import ERROR_TASK_ALREADY_STARTED, ERROR_TASK_NOT_IN_PROGRESS, TaskStatus
from airflow_provider_oms.exceptions import OMSApiError
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.testing import EMULATOR_AK, EMULATOR_SK, OMSEmulator
from airflow_provider_oms.testing.server import NO_ANSWER, RequestRecord
from airflow_provider_oms.triggers.oms import MigrationTaskTrigger
from tests.helpers import create_sample_task

CONN_ID = "oms_retries"
TIMEOUT = 1.0  # the client's timeout, seconds
MAX_ATTEMPTS = 4
FAST_RETRIES = {
    "retry_max_attempts": MAX_ATTEMPTS,
    "retry_base_wait": 0.01,
    "retry_max_wait": 0.05,
    "timeout": TIMEOUT,
}
START = r"/start$"
STOP = r"/stop$"
COUNTED_AS_DONE = "answer was lost, and the task is now"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[OMSEmulator]:
    """An emulator whose started tasks stay waiting (status 1) for an hour, so every start stays observable."""
    with OMSEmulator(tmp_path / "oms-data", task_start_delay=3600) as started:
        yield started


def point_at(emulator: OMSEmulator, set_connection: Any, conn_id: str = CONN_ID, **fields: Any) -> OMSHook:
    """Point ``conn_id`` at the emulator with fast retries; ``fields`` override login/password or add extras."""
    conn = emulator.airflow_connection()
    extra = {**conn["extra"], **FAST_RETRIES, **fields.pop("extra", {})}
    set_connection(
        conn_id,
        conn_type=conn["conn_type"],
        login=fields.pop("login", conn["login"]),
        password=fields.pop("password", conn["password"]),
        extra=extra,
    )
    return OMSHook(conn_id)


@pytest.fixture
def connect(emulator: OMSEmulator, set_connection: Any):
    """Point connection CONN_ID at the emulator with fast retries (and any other extras); return a hook."""
    return lambda **extra: point_at(emulator, set_connection, extra=extra)


@pytest.fixture
def hook(connect: Any) -> Iterator[OMSHook]:
    oms_hook = connect()
    yield oms_hook
    oms_hook.close()


@pytest.fixture
def paused_task(emulator: OMSEmulator, hook: OMSHook) -> str:
    """A created task, paused at once (it was waiting); the emulator's records start after it."""
    task_id = create_sample_task(emulator, hook)
    emulator.pause_task(task_id)
    emulator.reset_requests()
    return task_id


@pytest.fixture
def start_body(hook: OMSHook) -> dict[str, Any]:
    return hook.build_start_task_body()


def calls(emulator: OMSEmulator, suffix: str, method: str = "POST") -> list[RequestRecord]:
    return [r for r in emulator.requests if r.method == method and r.path.endswith(suffix)]


def events(logs: list[dict[str, Any]], text: str) -> list[str]:
    return [str(entry["event"]) for entry in logs if text in str(entry["event"])]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def without_wait(line: str) -> str:
    """A retry log line with its random wait replaced by W."""
    return re.sub(r"retrying in \d+\.\d s$", "retrying in W s", line)


def assert_no_credentials(logs: list[dict[str, Any]], *more: object) -> None:
    text = repr(logs) + "".join(str(item) for item in more)
    for secret in (EMULATOR_AK, EMULATOR_SK):
        assert secret not in text


# -- what is retried, and how ----------------------------------------------------------------------


def test_throttling_is_retried_after_retry_after(emulator: OMSEmulator, hook: OMSHook) -> None:
    emulator.inject_fault("throttle", path=r"/tasks$", retry_after=0.6)
    began = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        assert hook.list_tasks()["count"] == 0
    assert time.monotonic() - began >= 0.6
    assert [(r.status, r.error_code) for r in emulator.requests] == [(429, "APIGW.0308"), (200, None)]
    assert events(logs, "retrying") == [
        f"OMS list tasks: attempt 1 of {MAX_ATTEMPTS} failed (HTTP 429 APIGW.0308); retrying in 0.6 s"
    ]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_gateway_errors_are_retried_then_succeed(
    emulator: OMSEmulator, hook: OMSHook, paused_task: str, status: int
) -> None:
    emulator.inject_fault("error", path=rf"/tasks/{paused_task}$", status=status, count=2)
    assert hook.get_task(paused_task)["status"] == TaskStatus.PAUSED
    assert [r.status for r in emulator.requests] == [status, status, 200]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_start_refused_by_the_gateway_is_retried_and_applied_once(
    emulator: OMSEmulator, hook: OMSHook, paused_task: str, start_body: dict[str, Any], status: int
) -> None:
    emulator.inject_fault("error", path=START, status=status)
    hook.start_task(paused_task, start_body)
    assert [r.status for r in calls(emulator, "/start")] == [status, 200]
    assert emulator.applied_starts == 1


def test_an_html_page_is_retried_then_a_clear_error(emulator: OMSEmulator, hook: OMSHook, paused_task: str) -> None:
    emulator.inject_fault("html", count=MAX_ATTEMPTS + 1)
    with pytest.raises(OMSApiError) as err:
        hook.get_task(paused_task)
    assert err.value.http_status == 502
    assert f"OMS show task {paused_task} failed: HTTP 502" in str(err.value)
    assert "non-JSON response body: '<html> <head><title>502 Bad Gateway</title>" in str(err.value)
    assert len(emulator.requests) == MAX_ATTEMPTS
    assert emulator.pending_faults == 1


def test_a_redirect_is_neither_followed_nor_retried(emulator: OMSEmulator, hook: OMSHook, paused_task: str) -> None:
    emulator.inject_fault("redirect")
    with pytest.raises(OMSApiError, match="HTTP 302 \\(redirects are not followed"):
        hook.get_task(paused_task)
    assert len(emulator.requests) == 1


def test_a_truncated_answer_is_a_clear_error_and_not_retried(
    emulator: OMSEmulator, hook: OMSHook, paused_task: str
) -> None:
    emulator.inject_fault("truncated_json")
    with pytest.raises(OMSApiError, match="returned HTTP 200 with a body that is not JSON"):
        hook.get_task(paused_task)
    assert len(emulator.requests) == 1


@pytest.mark.parametrize(
    ("call", "status", "error_code"),
    [
        (lambda hook, task_id, body: hook.get_task("424242"), 404, "OMS.1009"),
        (lambda hook, task_id, body: hook.stop_task(task_id), 400, ERROR_TASK_NOT_IN_PROGRESS),
        (lambda hook, task_id, body: hook.start_task("424242", body), 404, "OMS.1009"),
    ],
)
def test_a_4xx_is_never_retried(
    emulator: OMSEmulator, hook: OMSHook, paused_task: str, start_body: dict[str, Any], call, status, error_code
) -> None:
    with structlog.testing.capture_logs() as logs, pytest.raises(OMSApiError) as err:
        call(hook, paused_task, start_body)
    assert (err.value.http_status, err.value.error_code) == (status, error_code)
    assert len(emulator.requests) == 1
    assert events(logs, "retrying") == []


def test_wrong_credentials_are_never_retried(emulator: OMSEmulator, connect: Any, set_connection: Any) -> None:
    wrong = point_at(emulator, set_connection, "oms_wrong_sk", password="WRONG-SK-0000000000000000000000000000001")
    with pytest.raises(OMSApiError) as err:
        wrong.list_tasks()
    assert err.value.http_status == 401
    assert len(emulator.requests) == 1


# -- lost answers of start and stop ----------------------------------------------------------------


def test_start_reset_before_applying_is_retried_and_applied_once(
    emulator: OMSEmulator, hook: OMSHook, paused_task: str, start_body: dict[str, Any]
) -> None:
    emulator.inject_fault("reset_before", path=START)
    with structlog.testing.capture_logs() as logs:
        hook.start_task(paused_task, start_body)
    assert [(r.status, r.fault) for r in calls(emulator, "/start")] == [(NO_ANSWER, "reset_before"), (200, None)]
    assert emulator.applied_starts == 1
    assert emulator.get_task(paused_task)["status"] == TaskStatus.WAITING
    assert events(logs, COUNTED_AS_DONE) == []
    assert len(events(logs, "retrying")) == 1
    assert_no_credentials(logs)


@pytest.mark.parametrize(
    ("kind", "options"), [("reset_after", {}), ("delay", {"delay": TIMEOUT + 1})], ids=["reset_after", "delay"]
)
def test_start_whose_answer_was_lost_is_counted_done_and_never_repeated(
    emulator: OMSEmulator, hook: OMSHook, paused_task: str, start_body: dict[str, Any], kind: str, options: dict
) -> None:
    emulator.inject_fault(kind, path=START, **options)
    with structlog.testing.capture_logs() as logs:
        hook.start_task(paused_task, start_body)
    # The retry was refused as already started; the task read back was waiting: the first attempt had worked.
    assert [r.error_code for r in calls(emulator, "/start")] == [None, ERROR_TASK_ALREADY_STARTED]
    assert calls(emulator, "/start")[0].fault == kind
    assert [r.status for r in calls(emulator, f"/tasks/{paused_task}", method="GET")] == [200]
    assert emulator.applied_starts == 1
    assert emulator.get_task(paused_task)["status"] == TaskStatus.WAITING
    assert events(logs, COUNTED_AS_DONE) == [
        f"OMS start task {paused_task}: an earlier attempt's answer was lost, and the task is now waiting: "
        "counted as done"
    ]
    reason = "ConnectionError" if kind == "reset_after" else "ReadTimeout"
    assert [without_wait(line) for line in events(logs, "retrying")] == [
        f"OMS start task {paused_task}: attempt 1 of {MAX_ATTEMPTS} failed (no answer ({reason})); retrying in W s"
    ]
    assert_no_credentials(logs)


def test_stop_whose_answer_was_lost_is_counted_done(emulator: OMSEmulator, hook: OMSHook, paused_task: str) -> None:
    hook.start_task(paused_task, hook.build_start_task_body())
    emulator.reset_requests()
    emulator.inject_fault("reset_after", path=STOP)
    with structlog.testing.capture_logs() as logs:
        hook.stop_task(paused_task)
    assert [r.error_code for r in calls(emulator, "/stop")] == [None, ERROR_TASK_NOT_IN_PROGRESS]
    assert emulator.get_task(paused_task)["status"] == TaskStatus.PAUSED
    assert events(logs, COUNTED_AS_DONE) == [
        f"OMS stop task {paused_task}: an earlier attempt's answer was lost, and the task is now paused: "
        "counted as done"
    ]


def test_a_start_after_throttling_is_not_counted_as_an_earlier_success(
    emulator: OMSEmulator, hook: OMSHook, paused_task: str, start_body: dict[str, Any]
) -> None:
    # A task already running when the start is called: the start must fail, even after a retry, because the
    # throttled attempt cannot have started it.
    hook.start_task(paused_task, start_body)
    emulator.inject_fault("throttle", path=START, retry_after=0)
    with pytest.raises(OMSApiError) as err:
        hook.start_task(paused_task, start_body)
    assert err.value.error_code == ERROR_TASK_ALREADY_STARTED
    assert emulator.applied_starts == 1


# -- create is never repeated once it may have reached the service ---------------------------------


def sample_body(emulator: OMSEmulator) -> dict[str, Any]:
    emulator.bucket_path("src")
    emulator.bucket_path("dst")
    return {
        "task_type": "prefix",
        "src_node": {"region": "local", "bucket": "src", "object_key": ["data/"], "ak": "SRC-AK", "sk": "SRC-SK"},
        "dst_node": {"region": "local", "bucket": "dst", "ak": "DST-AK", "sk": "DST-SK"},
    }


@pytest.mark.parametrize(
    ("kind", "options", "applied"),
    [
        ("reset_after", {}, 1),
        ("delay", {"delay": TIMEOUT + 1}, 1),
        # The client cannot tell these from the two above: the request may have reached the service.
        ("reset_before", {}, 0),
        ("error", {"status": 502}, 0),
    ],
    ids=["reset_after", "delay", "reset_before", "502"],
)
def test_create_that_may_have_applied_is_not_repeated(
    emulator: OMSEmulator, hook: OMSHook, kind: str, options: dict, applied: int
) -> None:
    emulator.inject_fault(kind, path=r"/tasks$", **options)
    with pytest.raises(OMSApiError) as err:
        hook.create_task(sample_body(emulator))
    assert err.value.may_have_applied is True
    assert len(calls(emulator, "/tasks")) == 1
    assert emulator.applied_creates == applied


@pytest.mark.parametrize(("kind", "options"), [("error", {"status": 503}), ("throttle", {"retry_after": 0})])
def test_create_that_cannot_have_applied_is_retried(
    emulator: OMSEmulator, hook: OMSHook, kind: str, options: dict
) -> None:
    # 503 and 429 are answers of a gateway that did not pass the request on.
    emulator.inject_fault(kind, path=r"/tasks$", **options)
    assert hook.create_task(sample_body(emulator))["id"]
    assert (len(calls(emulator, "/tasks")), emulator.applied_creates) == (2, 1)


# -- bounds ----------------------------------------------------------------------------------------


def test_attempts_are_bounded(emulator: OMSEmulator, connect: Any) -> None:
    hook = connect(retry_max_attempts=3)
    emulator.inject_fault("error", count=100)
    with structlog.testing.capture_logs() as logs, pytest.raises(OMSApiError) as err:
        hook.list_tasks()
    assert err.value.http_status == 503
    assert len(emulator.requests) == 3
    assert [without_wait(line) for line in events(logs, "retrying")] == [
        f"OMS list tasks: attempt {attempt} of 3 failed (HTTP 503 APIGW.0202); retrying in W s" for attempt in (1, 2)
    ]
    assert_no_credentials(logs, err.value)


def test_total_time_is_bounded(emulator: OMSEmulator, connect: Any) -> None:
    hook = connect(retry_max_attempts=1000, retry_max_seconds=1.0, retry_base_wait=0.05, retry_max_wait=0.1)
    emulator.inject_fault("error", count=10_000)
    began = time.monotonic()
    with pytest.raises(OMSApiError):
        hook.list_tasks()
    elapsed = time.monotonic() - began
    # No attempt starts later than 1 s after the first, nor is one given up while its wait (at most 0.1 s,
    # plus up to 0.05 s of jitter) would still end within that second.
    assert 1.0 - 0.15 <= elapsed < 1.5
    assert 3 <= len(emulator.requests) < 100


def test_delays_past_the_timeout_are_bounded_by_the_attempts(emulator: OMSEmulator, connect: Any) -> None:
    hook = connect(retry_max_attempts=2, timeout=0.3)
    emulator.inject_fault("delay", delay=2, count=5)
    began = time.monotonic()
    with pytest.raises(OMSApiError, match=r"no answer from .* \(ReadTimeout\)") as err:
        hook.list_tasks()
    assert time.monotonic() - began < 1.5
    assert err.value.transient and err.value.http_status is None
    assert len(emulator.requests) == 2


def test_every_retry_logs_one_line_without_credentials(
    emulator: OMSEmulator, hook: OMSHook, paused_task: str, start_body: dict[str, Any]
) -> None:
    emulator.inject_fault("throttle", path=START, retry_after=0)
    emulator.inject_fault("error", path=START, status=502)
    emulator.inject_fault("reset_before", path=START)
    with structlog.testing.capture_logs() as logs:
        hook.start_task(paused_task, start_body)
    operation = f"OMS start task {paused_task}"
    assert [without_wait(line) for line in events(logs, "retrying")] == [
        f"{operation}: attempt 1 of {MAX_ATTEMPTS} failed (HTTP 429 APIGW.0308); retrying in W s",
        f"{operation}: attempt 2 of {MAX_ATTEMPTS} failed (HTTP 502 APIGW.0202); retrying in W s",
        f"{operation}: attempt 3 of {MAX_ATTEMPTS} failed (no answer (ConnectionError)); retrying in W s",
    ]
    assert [entry["log_level"] for entry in logs if "retrying" in str(entry["event"])] == ["warning"] * 3
    assert emulator.applied_starts == 1
    assert_no_credentials(logs)
    for secret in start_body.values():
        if isinstance(secret, str):
            assert secret not in repr(logs)


# -- resources -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["reset_after", "reset_before"])
def test_close_releases_every_socket_at_once(emulator: OMSEmulator, connect: Any, paused_task: str, kind: str) -> None:
    gc.collect()
    gc.disable()  # what is left open must be closed by close(), not by a collection that may come much later
    try:
        fds_before, threads_before = open_fds(), threading.active_count()
        hook = connect()
        emulator.inject_fault(kind)
        assert hook.get_task(paused_task)["status"] == TaskStatus.PAUSED  # reset, then retried on a new connection
        hook.close()
        # The emulator's thread for a connection ends once the client closes it.
        deadline = time.monotonic() + 2
        while (open_fds(), threading.active_count()) != (fds_before, threads_before) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (open_fds(), threading.active_count()) == (fds_before, threads_before)
    finally:
        gc.enable()


# -- the async trigger -----------------------------------------------------------------------------


def test_the_trigger_survives_two_503s_on_a_poll(tmp_path: Path, set_connection: Any) -> None:
    with OMSEmulator(tmp_path / "fast") as emulator:
        hook = point_at(emulator, set_connection)
        task_id = create_sample_task(emulator, hook)
        emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED}, timeout=20)
        emulator.reset_requests()
        emulator.inject_fault("error", path=rf"/tasks/{task_id}$", status=503, count=2)
        trigger = MigrationTaskTrigger(migration_task_id=task_id, oms_conn_id=CONN_ID, poll_interval=0.1)

        async def first_event() -> dict[str, Any]:
            return (await anext(trigger.run())).payload

        with structlog.testing.capture_logs() as logs:
            payload = asyncio.run(asyncio.wait_for(first_event(), 20))
    assert payload["status"] == "success"
    assert [r.status for r in emulator.requests] == [503, 503, 200]
    assert len(events(logs, "retrying")) == 2
    assert_no_credentials(logs, payload)
