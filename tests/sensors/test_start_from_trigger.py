"""MigrationTaskTrigger(end_from_trigger=True) ends the Airflow task itself, against the emulator over HTTP."""

from __future__ import annotations

import json

import pytest
import structlog.testing
from airflow.triggers.base import TaskFailedEvent, TaskSkippedEvent, TaskSuccessEvent

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.sensors.oms import MigrationTaskSensor
from tests.helpers import create_sample_task, paused_sample_task
from tests.triggers.test_oms_trigger import SECRETS, WAIT, run_trigger, trigger_for


def the_end(events: list, kind: type) -> object:
    assert len(events) == 1, f"expected exactly one event, got {events}"
    (event,) = events
    assert type(event) is kind, event
    dumped = json.dumps(event.model_dump())  # the triggerer stores it: it must be JSON, and hold no secret
    assert not any(secret in dumped for secret in SECRETS)
    return event


def logged(logs: list, level: str) -> str:
    """The lines logged at ``level``, with their arguments filled in."""
    lines = [
        entry["event"] % tuple(entry["positional_args"]) if entry.get("positional_args") else entry["event"]
        for entry in logs
        if entry["log_level"] == level
    ]
    return "\n".join(lines)


def test_success_ends_the_task_with_the_sensors_xcom(fast):
    emulator, hook = fast
    task_id = create_sample_task(emulator, hook, files=3)
    emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED}, timeout=WAIT)

    with structlog.testing.capture_logs() as logs:
        event = the_end(run_trigger(trigger_for(task_id, end_from_trigger=True)), TaskSuccessEvent)

    # The same value the sensor's worker path (a deferral ending in execute_complete) pushes.
    resumed = run_trigger(trigger_for(task_id))[0].payload
    expected = MigrationTaskSensor(task_id="w", migration_task_id=task_id).execute_complete({}, resumed)
    assert event.xcoms == {"return_value": expected}
    assert expected["status"] == TaskStatus.SUCCEEDED and expected["successful_num"] == 3
    assert f"OMS migration task {task_id} is succeeded: the sensor succeeds" in logged(logs, "info")


@pytest.mark.parametrize(("soft_fail", "kind"), [(False, TaskFailedEvent), (True, TaskSkippedEvent)])
def test_a_failed_task_fails_the_task_or_skips_it_with_soft_fail(failed_task, soft_fail, kind):
    _, task_id = failed_task

    with structlog.testing.capture_logs() as logs:
        the_end(run_trigger(trigger_for(task_id, end_from_trigger=True, soft_fail=soft_fail)), kind)

    # The task log is the trigger's: it says why the task failed or was skipped.
    said = logged(logs, "warning" if soft_fail else "error")
    assert f"OMS migration task {task_id} failed" in said
    assert "1 objects failed" in said
    assert ("Skipping because soft_fail is set" in said) is soft_fail


def test_a_paused_task_that_is_not_awaited_fails_the_task(make_emulator):
    emulator, hook = make_emulator(object_delay=0.5)
    task_id = paused_sample_task(emulator, hook, files=3)

    with structlog.testing.capture_logs() as logs:
        the_end(run_trigger(trigger_for(task_id, end_from_trigger=True)), TaskFailedEvent)

    assert f"OMS migration task {task_id} is paused and will not become succeeded by itself" in logged(logs, "error")


def test_an_oms_error_fails_the_task_even_with_soft_fail(fast):
    # An answer OMS gives as an error (here: no such task), as a connection or API error in poke mode.
    with structlog.testing.capture_logs() as logs:
        the_end(run_trigger(trigger_for("987654", end_from_trigger=True, soft_fail=True)), TaskFailedEvent)

    said = logged(logs, "error")
    assert "Waiting for OMS migration task 987654 failed: " in said
    assert "OMS.1009" in said


def test_a_bad_migration_task_id_fails_the_task_before_any_request(fast):
    # Started in the triggerer, the id was never checked by a worker (and Airflow 3.3 rendered it here).
    emulator, _ = fast
    emulator.reset_requests()

    with structlog.testing.capture_logs() as logs:
        the_end(run_trigger(trigger_for("../tasks", end_from_trigger=True, soft_fail=True)), TaskFailedEvent)

    assert "migration_task_id must not contain '/'" in logged(logs, "error")
    assert [r for r in emulator.requests if "/tasks" in r.path] == []


def test_without_end_from_trigger_the_event_resumes_the_worker_as_before(fast):
    emulator, hook = fast
    task_id = create_sample_task(emulator, hook, files=1)
    emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED}, timeout=WAIT)

    (event,) = run_trigger(trigger_for(task_id))

    assert type(event).__name__ == "TriggerEvent"
    assert event.payload["status"] == "success"
    _, kwargs = trigger_for(task_id).serialize()
    assert (kwargs["end_from_trigger"], kwargs["soft_fail"]) == (False, False)
