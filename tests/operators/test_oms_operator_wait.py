"""StartMigrationTaskOperator waiting in the worker, against the emulator over real HTTP."""

from __future__ import annotations

import threading
from datetime import timedelta
from unittest import mock

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.exceptions import OMSApiError, OMSMigrationError, OMSValidationError
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.links.oms import DEFAULT_CONSOLE_URL, OMSConsoleLink, console_url
from airflow_provider_oms.operators.oms import StartMigrationTaskOperator
from airflow_provider_oms.testing import OMSEmulator
from tests.helpers import create_sample_task, task_context
from tests.testing.helpers import wait_until


@pytest.fixture
def emulator_factory(tmp_path, monkeypatch, oms_conn):
    """Start an emulator with the given options and point the default OMS connection at it."""
    started = []

    def _start(**options) -> OMSEmulator:
        # Tasks wait a moment before copying, so that paused() can pause them before they finish.
        options.setdefault("task_start_delay", 0.5)
        emulator = OMSEmulator(tmp_path / f"data{len(started)}", **options).start()
        started.append(emulator)
        monkeypatch.setenv(f"AIRFLOW_CONN_{oms_conn.upper()}", emulator.airflow_connection_uri_env())
        return emulator

    yield _start
    for emulator in started:
        emulator.stop()


def paused(emulator, **task) -> str:
    hook = OMSHook()
    task_id = create_sample_task(emulator, hook, **task)
    hook.stop_task(task_id)
    emulator.wait_for_status(task_id, {TaskStatus.PAUSED}, timeout=20)
    emulator.reset_requests()
    return task_id


def operator(task_id: str, **kwargs) -> StartMigrationTaskOperator:
    return StartMigrationTaskOperator(task_id="start", migration_task_id=task_id, poll_interval=1, **kwargs)


def test_waits_until_succeeded_over_one_kept_alive_connection(emulator_factory):
    emulator = emulator_factory(task_start_delay=1.0, object_delay=0.3)
    task_id = paused(emulator, files=5)

    result = operator(task_id).execute(context=task_context())

    assert result["status"] == TaskStatus.SUCCEEDED
    assert result["status_name"] == "succeeded"
    assert (result["total_num"], result["successful_num"], result["failed_num"]) == (5, 5, 0)
    assert result["complete_size"] == result["total_size"] > 0
    assert result["restarts"] == 0
    assert result["elapsed_seconds"] >= 1
    polls = [r for r in emulator.requests if r.method == "GET"]
    assert len(polls) >= 2, "the wait should have taken several polls"
    assert emulator.connections_opened == 1


def test_failed_objects_are_retried_then_succeed(emulator_factory):
    emulator = emulator_factory(task_start_delay=0.5)
    emulator.add_fail_rule("data/bad-*", times=1)
    task_id = paused(emulator, names=["good-1.txt", "bad-1.txt", "bad-2.txt"])

    result = operator(task_id, retry_failed_objects=2).execute(context=task_context())

    assert result["status"] == TaskStatus.SUCCEEDED
    assert result["restarts"] == 1
    starts = [r for r in emulator.requests if r.method == "POST" and r.path.endswith("/start")]
    assert len(starts) == 2


def test_a_failed_task_fails_with_the_oms_reason(emulator_factory):
    emulator = emulator_factory(task_start_delay=0.5)
    emulator.add_fail_rule("data/bad-*")
    task_id = paused(emulator, names=["good-1.txt", "bad-1.txt"])

    with pytest.raises(OMSMigrationError) as err:
        operator(task_id, retry_failed_objects=1).execute(context=task_context())

    message = str(err.value)
    task = emulator.get_task(task_id)
    assert task["status"] == TaskStatus.FAILED
    assert task["error_reason"]["error_code"] in message
    assert task["failed_object_record"]["list_file_key"] in message
    assert "1 objects failed" in message
    assert "after 1 restart(s)" in message
    assert err.value.task["status"] == TaskStatus.FAILED
    assert err.value.task["restarts"] == 1


def test_timeout_pauses_the_oms_task(emulator_factory):
    emulator = emulator_factory(object_delay=0.5)
    task_id = paused(emulator, files=20)

    with pytest.raises(OMSMigrationError, match="did not finish within the timeout of 0:00:02; it was paused"):
        operator(task_id, timeout=timedelta(seconds=2)).execute(context=task_context())

    assert emulator.wait_for_status(task_id, {TaskStatus.PAUSED}, timeout=20)["successful_num"] < 20


def test_a_task_paused_from_outside_fails_the_wait(emulator_factory):
    emulator = emulator_factory(object_delay=0.3)
    task_id = paused(emulator, files=20)
    threading.Timer(1.5, emulator.pause_task, args=(task_id,)).start()

    with pytest.raises(OMSMigrationError, match="was paused while Airflow waited for it"):
        operator(task_id).execute(context=task_context())


def test_on_kill_while_waiting_pauses_the_oms_task(emulator_factory):
    emulator = emulator_factory(object_delay=0.3)
    task_id = paused(emulator, files=20)
    op = operator(task_id)
    outcome = {}

    def run():
        try:
            op.execute(context=task_context())
        except OMSMigrationError as err:
            outcome["error"] = err

    worker = threading.Thread(target=run)
    worker.start()
    emulator.wait_for_status(task_id, {TaskStatus.RUNNING}, timeout=20)
    wait_until(lambda: any(r.method == "GET" for r in emulator.requests), timeout=20)  # the operator is polling
    op.on_kill()
    worker.join(timeout=30)

    assert not worker.is_alive()
    assert emulator.wait_for_status(task_id, {TaskStatus.PAUSED}, timeout=20)["status"] == TaskStatus.PAUSED
    assert "was paused while Airflow waited" in str(outcome["error"])


def test_on_kill_does_nothing_when_not_waiting_or_told_not_to(emulator_factory):
    emulator = emulator_factory(object_delay=0.3)
    task_id = paused(emulator, files=20)
    operator(task_id).on_kill()
    op = operator(task_id, cancel_on_kill=False)
    op._waiting_for = task_id
    op.on_kill()
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"poll_interval": 0.5}, "poll_interval must be a number of seconds (or a timedelta) of at least 1"),
        ({"poll_interval": "30"}, "poll_interval must be a number of seconds"),
        ({"timeout": 0}, "timeout must be a number of seconds (or a timedelta) of at least 1"),
        ({"timeout": timedelta(seconds=-5)}, "timeout must be"),
        ({"retry_failed_objects": -1}, "retry_failed_objects must be a whole number of 0 or more"),
        ({"retry_failed_objects": 1.5}, "retry_failed_objects must be a whole number"),
    ],
)
def test_bad_wait_arguments_fail_before_any_request(emulator_factory, arguments, message):
    emulator = emulator_factory()
    task_id = paused(emulator)
    op = StartMigrationTaskOperator(task_id="start", migration_task_id=task_id, **{"poll_interval": 1, **arguments})
    with pytest.raises(OMSValidationError) as err:
        op.execute(context=task_context())
    assert message in str(err.value)
    assert emulator.requests == []


def test_console_link_is_pushed_before_the_start(emulator_factory, monkeypatch, oms_conn):
    emulator = emulator_factory()
    task_id = paused(emulator)
    conn = emulator.airflow_connection()
    conn["extra"]["console_url"] = "https://console.example/oms/{region}/{project_id}/tasks/{migration_task_id}"
    conn["extra"]["region"] = "cn-north-4"
    import json

    monkeypatch.setenv(f"AIRFLOW_CONN_{oms_conn.upper()}", json.dumps(conn))
    ti = mock.Mock()
    ti.xcom_push.side_effect = lambda **_: pushed_before.append(len(emulator.requests))
    pushed_before: list[int] = []

    operator(task_id, wait_for_completion=False).execute(context={"ti": ti})

    ti.xcom_push.assert_called_once_with(
        key=OMSConsoleLink().xcom_key,
        value=f"https://console.example/oms/cn-north-4/{emulator.project_id}/tasks/{task_id}",
    )
    assert pushed_before == [0]


def test_console_url_defaults_to_the_region_console():
    assert console_url(None, region="cn-north-4", project_id="p", migration_task_id="1") == DEFAULT_CONSOLE_URL.format(
        region="cn-north-4"
    )
    assert console_url(None, region=None, project_id="p", migration_task_id="1") is None
    assert console_url("https://x/{nope}", region="r", project_id="p", migration_task_id="1") is None


def test_a_retry_waits_for_a_task_an_earlier_try_started(emulator_factory):
    emulator = emulator_factory(task_start_delay=0.5, object_delay=0.2)
    task_id = paused(emulator, files=5)
    OMSHook().start_task(task_id, OMSHook().build_start_task_body())  # the earlier try's start; then it died
    context = task_context()
    context["ti"].try_number = 2

    result = operator(task_id).execute(context=context)

    assert result["status"] == TaskStatus.SUCCEEDED
    assert result["successful_num"] == 5


def test_a_first_try_does_not_take_over_a_running_task(emulator_factory):
    emulator = emulator_factory(task_start_delay=5)
    task_id = paused(emulator)
    OMSHook().start_task(task_id, OMSHook().build_start_task_body())
    context = task_context()
    context["ti"].try_number = 1

    with pytest.raises(OMSApiError) as err:
        operator(task_id).execute(context=context)
    assert err.value.error_code == "OMS.0065"
