"""
MigrationTaskSensor(start_from_trigger=True): what the scheduler and the triggerer read from the serialized DAG on
Airflow 3.3, the fallback on 3.1 and 3.2, and the trigger ending the task itself against the emulator over HTTP.

No triggerer runs here: the trigger runs in an event loop, and its kwargs are rendered with Airflow's own
``BaseTrigger.render_template_fields`` from the serialized task, as the 3.3 triggerer does.
"""

from __future__ import annotations

import datetime
import json
import warnings
from types import SimpleNamespace

import pytest
import structlog.testing
from airflow.sdk import DAG
from airflow.sdk.module_loading import import_string
from airflow.triggers.base import TaskFailedEvent, TaskSkippedEvent, TaskSuccessEvent

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.sensors.oms import MigrationTaskSensor
from airflow_provider_oms.version_compat import AIRFLOW_V_3_3_PLUS
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


# -- the sensor: what the scheduler reads -------------------------------------------------------

only_3_3 = pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="Airflow 3.3+ starts tasks in the triggerer")
before_3_3 = pytest.mark.skipif(AIRFLOW_V_3_3_PLUS, reason="Airflow 3.1 and 3.2 ignore start_from_trigger")


def serialized_task(**kwargs):
    """The sensor as the scheduler and the triggerer see it: through the serialized DAG."""
    try:  # Airflow 3.3
        from airflow.serialization.serialized_objects import DagSerialization as SerializedDAG
    except ImportError:  # Airflow 3.1
        from airflow.serialization.serialized_objects import SerializedDAG  # type: ignore[no-redef]

    kwargs.setdefault("migration_task_id", "{{ params.migration_task_id }}")
    with DAG("sft", schedule=None, start_date=datetime.datetime(2025, 1, 1)) as dag:
        MigrationTaskSensor(task_id="wait", deferrable=True, start_from_trigger=True, **kwargs)
    return SerializedDAG.from_dict(SerializedDAG.to_dict(dag)).get_task("wait")


def plain_kwargs(trigger_kwargs: dict) -> dict:
    """The trigger kwargs as the triggerer passes them (the serialized DAG wraps the dict)."""
    from airflow.serialization.decoders import smart_decode_trigger_kwargs

    decoded = smart_decode_trigger_kwargs(trigger_kwargs)
    assert isinstance(decoded, dict)
    return decoded


@only_3_3
def test_on_3_3_the_serialized_sensor_starts_in_the_triggerer():
    task = serialized_task(oms_conn_id="{{ params.conn }}", poke_interval=7, timeout=600, soft_fail=True)

    assert task.start_from_trigger is True
    args = task.start_trigger_args
    assert args.trigger_cls == "airflow_provider_oms.triggers.oms.MigrationTaskTrigger"
    assert args.next_method == "execute_complete"
    assert args.timeout == datetime.timedelta(seconds=600)  # a duration: no deadline fixed when parsed
    kwargs = plain_kwargs(args.trigger_kwargs)
    assert kwargs == {
        "migration_task_id": "{{ params.migration_task_id }}",
        "oms_conn_id": "{{ params.conn }}",
        "poll_interval": 7.0,
        "target_statuses": [5],
        "failure_statuses": [4],
        "cancel_on_kill": False,
        "end_from_trigger": True,
        "soft_fail": True,
    }
    trigger = import_string(args.trigger_cls)(**kwargs)
    assert trigger.deadline is None and trigger.end_from_trigger is True


def test_start_from_trigger_is_opt_in():
    sensor = MigrationTaskSensor(task_id="w", migration_task_id="1", deferrable=True)
    assert sensor.start_from_trigger is False
    assert sensor.start_trigger_args is None


def test_start_from_trigger_needs_deferrable():
    with pytest.raises(ValueError, match="set deferrable=True"):
        MigrationTaskSensor(task_id="w", migration_task_id="1", deferrable=False, start_from_trigger=True)


@before_3_3
def test_before_3_3_a_templated_id_falls_back_to_the_worker_with_a_warning():
    with pytest.warns(UserWarning, match="templated migration_task_id requires Airflow >= 3.3"):
        task = serialized_task()

    assert not task.start_from_trigger
    assert task.start_trigger_args is None


@before_3_3
def test_before_3_3_a_plain_id_defers_from_the_worker_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        sensor = MigrationTaskSensor(task_id="w", migration_task_id="1", deferrable=True, start_from_trigger=True)

    assert sensor.start_from_trigger is False
    assert sensor.start_trigger_args is None


@only_3_3
def test_on_3_3_the_triggerer_renders_the_id_and_the_trigger_ends_the_task(fast, oms_conn):
    emulator, hook = fast
    task_id = create_sample_task(emulator, hook, files=2)
    emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED}, timeout=WAIT)
    task = serialized_task(oms_conn_id="{{ params.conn }}", poke_interval=0.1)
    trigger = import_string(task.start_trigger_args.trigger_cls)(**plain_kwargs(task.start_trigger_args.trigger_kwargs))

    # What the 3.3 triggerer does for a start_from_trigger task: attach the task instance, render, run.
    trigger.task_instance = SimpleNamespace(task_id="wait", task=task)
    trigger.render_template_fields(context={"params": {"migration_task_id": task_id, "conn": oms_conn}})

    assert (trigger.migration_task_id, trigger.oms_conn_id) == (task_id, oms_conn)
    event = the_end(run_trigger(trigger), TaskSuccessEvent)
    assert event.xcoms["return_value"]["migration_task_id"] == task_id
    assert event.xcoms["return_value"]["status"] == TaskStatus.SUCCEEDED
