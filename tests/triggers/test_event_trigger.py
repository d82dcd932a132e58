"""
``MigrationTaskEventTrigger`` (for ``AssetWatcher``) fires once per new outcome of the tasks it watches, never on
a state that stays. Run for real against the emulator over HTTP. Airflow's state store is a service of the
triggerer (a deployment test covers the real one, across a triggerer restart); here a dict with the same
``aget``/``aset`` methods stands in for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
import structlog

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.exceptions import OMSValidationError
from airflow_provider_oms.triggers.events import STATE_KEY, MigrationTaskEventTrigger
from tests.helpers import create_sample_task

POLL = 1.0  # the shortest the trigger accepts


class StateStore:
    """What ``asset_state_store`` offers a watcher with one asset (Airflow 3.3): JSON values by key."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.writes = 0

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = value
        self.writes += 1


class Watching:
    """Run a watcher in the background of the event loop and keep what it fires (it never ends by itself)."""

    def __init__(self, trigger: MigrationTaskEventTrigger) -> None:
        self.fired: list[dict[str, Any]] = []
        self._task = asyncio.get_running_loop().create_task(self._collect(trigger))

    async def _collect(self, trigger: MigrationTaskEventTrigger) -> None:
        async for event in trigger.run():
            self.fired.append(dict(event.payload))

    async def stop(self) -> list[dict[str, Any]]:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return self.fired


async def events_within(trigger: MigrationTaskEventTrigger, seconds: float) -> list[dict[str, Any]]:
    """What a watcher fires within ``seconds``."""
    watching = Watching(trigger)
    await asyncio.sleep(seconds)
    return await watching.stop()


def finished_task(emulator: Any, hook: Any, prefix: str) -> str:
    """A task that ran to its end (OMS names it ``oms-task-<id>``)."""
    task_id = create_sample_task(emulator, hook, files=1, prefix=prefix)
    emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED, TaskStatus.FAILED}, timeout=20)
    return task_id


def test_fires_once_per_new_outcome_and_never_again_for_the_same_one(make_emulator: Any, oms_conn: str) -> None:
    emulator, hook = make_emulator(task_start_delay=0, object_delay=0.05)
    first = finished_task(emulator, hook, "a/")
    trigger = MigrationTaskEventTrigger(oms_conn_id=oms_conn, task_name="oms-task-", poll_interval=POLL)

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
        watching = Watching(trigger)
        await asyncio.sleep(3.5 * POLL)  # several polls: the outcome stays, and fires once
        before = list(watching.fired)
        emulator.add_fail_rule("c/*")
        second = await asyncio.to_thread(finished_task, emulator, hook, "c/")
        await asyncio.sleep(3.5 * POLL)
        return before, (await watching.stop())[len(before) :], second

    before, after, second = asyncio.run(scenario())

    assert [(e["migration_task_id"], e["status"], e["task_name"]) for e in before] == [
        (first, TaskStatus.SUCCEEDED, f"oms-task-{first}")
    ]
    assert [(e["migration_task_id"], e["status_name"]) for e in after] == [(second, "failed")]
    assert after[0]["task"]["failed_num"] == 1


def test_the_state_store_keeps_what_fired_across_a_restart(make_emulator: Any, oms_conn: str) -> None:
    emulator, hook = make_emulator(task_start_delay=0, object_delay=0.05)
    task_id = finished_task(emulator, hook, "a/")
    store = StateStore()

    def watcher(state: StateStore | None) -> MigrationTaskEventTrigger:
        trigger = MigrationTaskEventTrigger(oms_conn_id=oms_conn, migration_task_ids=[task_id], poll_interval=POLL)
        if state is not None:
            trigger.asset_state_store = state  # as Airflow 3.3's triggerer sets it
        return trigger

    first_run = asyncio.run(events_within(watcher(store), 2.5 * POLL))
    restarted = asyncio.run(events_within(watcher(store), 2.5 * POLL))
    without_store = asyncio.run(events_within(watcher(None), 2.5 * POLL))  # Airflow 3.1 and 3.2

    assert [e["migration_task_id"] for e in first_run] == [task_id]
    assert restarted == []
    assert store.writes == 1
    assert list(store.values[STATE_KEY]) == [task_id]
    assert [e["migration_task_id"] for e in without_store] == [task_id]  # fires the last outcome again


def test_an_outage_is_logged_and_the_watcher_goes_on(make_emulator: Any, set_connection: Any) -> None:
    emulator, hook = make_emulator(task_start_delay=0, object_delay=0.05)
    task_id = finished_task(emulator, hook, "a/")
    conn = emulator.airflow_connection()
    extra = {**conn["extra"], "retry_max_attempts": 1}  # each round's list fails at once
    conn_id = set_connection(
        "oms_no_retries", conn_type=conn["conn_type"], login=conn["login"], password=conn["password"], extra=extra
    )
    emulator.inject_fault("error", path=r"/tasks$", count=1000, status=503)
    trigger = MigrationTaskEventTrigger(oms_conn_id=conn_id, task_name="oms-task", poll_interval=POLL)

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        watching = Watching(trigger)
        await asyncio.sleep(2.5 * POLL)
        during = list(watching.fired)
        emulator.clear_faults()
        await asyncio.sleep(2.5 * POLL)
        return during, await watching.stop()

    with structlog.testing.capture_logs() as logs:
        during, after = asyncio.run(scenario())

    assert during == []
    assert [e["migration_task_id"] for e in after] == [task_id]
    warnings = [line["event"] for line in logs if line["event"].startswith("Could not read")]
    assert len(warnings) >= 2, logs  # one a round
    assert warnings[0].startswith("Could not read OMS tasks with name containing 'oms-task'; trying again in 1 s")
    assert "HTTP 503" in warnings[0], logs


def test_its_kwargs_are_the_same_however_the_ids_are_given() -> None:
    one = MigrationTaskEventTrigger(migration_task_ids=[12, "3", "12"], poll_interval=30)
    other = MigrationTaskEventTrigger(migration_task_ids=["3", "12"], poll_interval=30.0)

    assert one.serialize() == other.serialize()
    assert one.serialize()[1]["migration_task_ids"] == ["12", "3"]
    assert MigrationTaskEventTrigger.hash(*one.serialize()) == MigrationTaskEventTrigger.hash(*other.serialize())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs migration_task_ids, task_name or group_id"),
        ({"migration_task_ids": ["1"], "task_name": "x"}, "either migration_task_ids or a task_name/group_id"),
        ({"task_name": "x", "outcome_statuses": [2]}, "outcome_statuses must be among [3, 4, 5]"),
        ({"task_name": "x", "poll_interval": 0.1}, "poll_interval must be at least 1.0 s"),
        ({"migration_task_ids": ["a/b"]}, "migration_task_ids must not contain '/'"),
    ],
)
def test_bad_arguments_are_refused_when_the_dag_is_parsed(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(OMSValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        MigrationTaskEventTrigger(**kwargs)
