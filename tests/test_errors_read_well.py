"""
An OMS refusal reads as one line (code, message, request id, advice) with the caller's frames only: neither the
attempts' frames nor tenacity's are in its traceback, nothing is chained to it, and the detail is at debug level.
Real HTTP against the emulator (sync) and the retry policy's async path as the trigger uses it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback

import pytest

from airflow_provider_oms.exceptions import OMSApiError
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.retries import RetryPolicy
from airflow_provider_oms.testing import OMSEmulator

#: Where the attempts and the retry machinery run: not what a user needs to read.
INTERNAL = ("/tenacity/", "/client.py:", ":_send", ":_request", ":attempt", ":_first_failure", ":refused")


def frames(error: BaseException) -> list[str]:
    return [f"{frame.filename}:{frame.name}" for frame in traceback.extract_tb(error.__traceback__)]


def assert_reads_well(error: BaseException) -> None:
    shown = "".join(traceback.format_exception(error))
    assert error.__cause__ is None and error.__suppress_context__, "something is chained to the refusal"
    assert "During handling" not in shown and "direct cause" not in shown, shown
    internal = [f for f in frames(error) if any(part in f for part in INTERNAL)]
    assert not internal, f"internal frames in what the user sees: {internal}"


@pytest.fixture
def hook(tmp_path, monkeypatch):
    with OMSEmulator(tmp_path / "oms-data") as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_OMS_ERRORS", emulator.airflow_connection_uri_env())
        yield OMSHook("oms_errors")


def test_a_plain_refusal_is_one_line_with_the_callers_frames_only(hook):
    with pytest.raises(OMSApiError) as err:
        hook.get_task("424242")

    message = str(err.value)
    assert "\n" not in message
    assert (
        "HTTP 404 OMS.1009" in message and "request id " in message and "Hint: check the migration task id" in message
    )
    assert_reads_well(err.value)


def test_a_refusal_after_retries_carries_no_tenacity_frames(tmp_path, monkeypatch):
    with OMSEmulator(tmp_path / "oms-data") as emulator:
        conn = emulator.airflow_connection()
        extra = json.loads(conn["extra"]) if isinstance(conn["extra"], str) else dict(conn["extra"])
        extra.update(retry_max_attempts=3, retry_base_wait=0.01, retry_max_wait=0.01)
        monkeypatch.setenv("AIRFLOW_CONN_OMS_ERRORS", json.dumps({**conn, "extra": extra}))
        emulator.inject_fault("error", status=503, count=3)
        with pytest.raises(OMSApiError) as err:
            OMSHook("oms_errors").list_tasks()

    assert "HTTP 503" in str(err.value)
    assert len(emulator.requests) == 3
    assert_reads_well(err.value)


def test_the_async_path_shows_the_same_and_logs_the_detail_at_debug(caplog):
    async def refused() -> None:
        raise OMSApiError("OMS show task 1 failed: HTTP 503 APIGW.0308", http_status=503, transient=True)

    policy = RetryPolicy(max_attempts=3, base_wait=0.01, max_wait=0.01)

    with caplog.at_level(logging.DEBUG, logger="oms-errors"), pytest.raises(OMSApiError) as err:
        asyncio.run(
            policy.acall(refused, operation="show task 1", repeat_is_safe=True, log=logging.getLogger("oms-errors"))
        )

    assert_reads_well(err.value)
    (detail,) = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert "tenacity" in detail.getMessage() and "HTTP 503" in detail.getMessage()
    assert not detail.exc_info  # frames only: no chained error's text
