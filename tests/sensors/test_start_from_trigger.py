"""
``MigrationTaskSensor(deferrable=True, start_from_trigger=True)`` (issue 22, requirement 3): on Airflow 3.3 the
scheduler hands it to the triggerer and the trigger ends the task; on 3.1 and 3.2 it falls back to the worker's
deferral. The trigger runs for real against the emulator; ``tests/deployment/test_real_airflow.py`` runs the
sensor in a real 3.3 deployment, and ``make test-matrix`` runs this file on 3.1.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from airflow.triggers.base import TaskFailedEvent, TaskSkippedEvent, TaskSuccessEvent

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.sensors.oms import MigrationTaskSensor
from airflow_provider_oms.triggers.oms import MigrationTaskTrigger
from airflow_provider_oms.version_compat import AIRFLOW_V_3_3_PLUS
from airflow_provider_oms.waiting import result, summarize
from tests.helpers import create_sample_task

TEMPLATED = "{{ params.migration_task_id }}"


def sensor(**kwargs: Any) -> MigrationTaskSensor:
    kwargs.setdefault("deferrable", True)
    kwargs.setdefault("start_from_trigger", True)
    return MigrationTaskSensor(task_id="wait", migration_task_id=TEMPLATED, poke_interval=7, timeout=600, **kwargs)


def end_event(trigger_kwargs: dict[str, Any]) -> Any:
    """The one event of the trigger the sensor would start in the triggerer, run against the emulator."""
    trigger = MigrationTaskTrigger(**trigger_kwargs)

    async def first() -> Any:
        async for event in trigger.run():
            return event
        raise AssertionError("no event")

    return asyncio.run(asyncio.wait_for(first(), 30))


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="Airflow 3.3+: the next test covers 3.1 and 3.2")
def test_on_airflow_33_it_starts_in_the_triggerer_with_its_template_fields_as_trigger_kwargs() -> None:
    watcher = sensor(execution_timeout=timedelta(minutes=5), target_statuses=[5, 3])

    assert watcher.start_from_trigger is True
    args = watcher.start_trigger_args
    assert args.trigger_cls == "airflow_provider_oms.triggers.oms.MigrationTaskTrigger"
    assert args.next_method == "execute_complete"
    # The triggerer renders the sensor's template fields that are trigger kwargs: both of them.
    assert set(watcher.template_fields) <= set(args.trigger_kwargs)
    assert args.trigger_kwargs["migration_task_id"] == TEMPLATED
    assert args.trigger_kwargs["end_from_trigger"] is True
    assert args.trigger_kwargs["cancel_on_kill"] is False
    assert args.trigger_kwargs["poll_interval"] == 7.0
    assert args.trigger_kwargs["target_statuses"] == [5, 3]
    assert "deadline" not in args.trigger_kwargs  # fixed at parse time it would be long past: the timeout is
    assert args.timeout == timedelta(minutes=5)  # the shorter of timeout (10 min) and execution_timeout
    MigrationTaskTrigger(**args.trigger_kwargs)  # what the triggerer builds from them


@pytest.mark.skipif(AIRFLOW_V_3_3_PLUS, reason="Airflow 3.1 and 3.2 only")
def test_before_airflow_33_it_starts_on_a_worker_and_defers_as_before() -> None:
    assert sensor().start_from_trigger is False


def test_it_is_off_unless_asked_and_needs_deferrable() -> None:
    assert sensor(start_from_trigger=False).start_from_trigger is False
    assert sensor(deferrable=False).start_from_trigger is False


def trigger_kwargs_for(task_id: str, conn_id: str, **overrides: Any) -> dict[str, Any]:
    """The sensor's trigger kwargs, the migration task id rendered as the triggerer renders it."""
    kwargs = {
        "migration_task_id": task_id,
        "oms_conn_id": conn_id,
        "poll_interval": 0.5,
        "cancel_on_kill": False,
        "end_from_trigger": True,
        "soft_fail": False,
    }
    return kwargs | overrides


def test_the_trigger_ends_the_task_with_the_sensors_result(fast: Any, oms_conn: str) -> None:
    emulator, hook = fast
    task_id = create_sample_task(emulator, hook, files=3)

    event = end_event(trigger_kwargs_for(task_id, oms_conn))

    assert isinstance(event, TaskSuccessEvent), event
    done = hook.get_task(task_id)
    assert event.xcoms == {"return_value": result(task_id, summarize(done), restarts=0, elapsed_seconds=0.0)}
    assert event.xcoms["return_value"]["status"] == TaskStatus.SUCCEEDED


def test_a_failed_migration_fails_the_task_or_skips_it_with_soft_fail(failed_task: Any, oms_conn: str) -> None:
    _, task_id = failed_task

    failed = end_event(trigger_kwargs_for(task_id, oms_conn))
    skipped = end_event(trigger_kwargs_for(task_id, oms_conn, soft_fail=True))

    assert isinstance(failed, TaskFailedEvent), failed
    assert isinstance(skipped, TaskSkippedEvent), skipped


@pytest.mark.parametrize("soft_fail", [False, True])
def test_an_unknown_task_or_a_bad_id_fails_even_with_soft_fail(oms_conn: str, soft_fail: bool) -> None:
    unknown = end_event(trigger_kwargs_for("987654", oms_conn, soft_fail=soft_fail))
    bad = end_event(trigger_kwargs_for("../tasks", oms_conn, soft_fail=soft_fail))

    assert isinstance(unknown, TaskFailedEvent), unknown
    assert isinstance(bad, TaskFailedEvent), bad
