"""
The kill and timeout table of docs/operators.md, cell by cell, for what can run here without a scheduler:
the operator's own timeout and ``execution_timeout`` while deferred (the trigger's deadline), a kill in the
worker (``on_kill``), a kill while deferred (the trigger's ``on_kill``, as Airflow 3.3's triggerer calls it),
and the sensors, which never change what they watch. ``execution_timeout`` in the worker and SIGTERM run end to
end in tests/e2e/test_waiting_dags.py; a lost worker or triggerer in tests/operators/test_airflow_retries.py
(the retry's side) and tests/distributed/.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest
import structlog.testing

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.exceptions import AirflowTaskTimeout, OMSMigrationError
from airflow_provider_oms.sensors.oms import MigrationTaskSensor
from airflow_provider_oms.triggers.oms import MigrationTaskTrigger
from tests.helpers import DEFERRABLE_MODES, paused_sample_task, running_sample_task, start_operator
from tests.operators.deferral import TaskDeferred, rebuilt, retry_context, run_operator, run_trigger
from tests.testing.helpers import wait_until

WAIT = 20.0


def stops(emulator, task_id: str) -> int:
    return sum(r.method == "POST" and r.path.endswith(f"/tasks/{task_id}/stop") for r in emulator.requests)


def assert_not_paused(emulator, task_id: str, *statuses: int) -> None:
    """No stop was sent for the task, and it is in one of ``statuses``: the migration was left alone."""
    assert stops(emulator, task_id) == 0
    assert emulator.get_task(task_id)["status"] in statuses


@pytest.fixture
def slow(make_emulator):
    """An emulator whose tasks take ~10 s, and a paused task on it."""
    emulator, hook = make_emulator(task_start_delay=0.5, object_delay=0.5)
    task_id = paused_sample_task(emulator, hook, files=20)
    emulator.reset_requests()
    return emulator, hook, task_id


def deferred_trigger(operator) -> MigrationTaskTrigger:
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context=retry_context(try_number=1))
    return rebuilt(deferred.value)


# -- the operator's timeout and execution_timeout, deferred ------------------------------------------------------


@pytest.mark.parametrize("cancel_on_kill", [True, False])
def test_execution_timeout_is_the_deferred_waits_deadline(slow, cancel_on_kill):
    emulator, _, task_id = slow
    operator = start_operator(
        task_id, deferrable=True, execution_timeout=timedelta(seconds=3), timeout=3600, cancel_on_kill=cancel_on_kill
    )
    before = time.time()
    trigger = deferred_trigger(operator)
    assert before + 3 <= trigger.deadline <= time.time() + 3

    payload = run_trigger(trigger)
    assert payload["status"] == "timeout"
    with pytest.raises(AirflowTaskTimeout, match=r"did not finish within Airflow's execution_timeout of 0:00:03"):
        operator.execute_complete(context={}, event=payload)

    if cancel_on_kill:
        assert emulator.wait_for_status(task_id, {TaskStatus.PAUSED}, timeout=WAIT)["successful_num"] < 20
    else:
        assert_not_paused(emulator, task_id, TaskStatus.RUNNING, TaskStatus.SUCCEEDED)


@DEFERRABLE_MODES
def test_operator_timeout_without_cancel_on_kill_leaves_the_migration_running(slow, deferrable):
    emulator, _, task_id = slow
    operator = start_operator(task_id, timeout=2, deferrable=deferrable, cancel_on_kill=False)

    with pytest.raises(OMSMigrationError, match=r"within the timeout of 2; it is left running in OMS"):
        run_operator(operator)

    assert_not_paused(emulator, task_id, TaskStatus.RUNNING, TaskStatus.SUCCEEDED)


# -- a kill in the worker (SIGTERM, execution_timeout): on_kill ---------------------------------------------------


def wait_in_a_thread(operator) -> tuple[threading.Thread, list]:
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(operator.execute(context=retry_context(try_number=1)))
        except BaseException as err:  # what the wait ended with
            outcome.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("cancel_on_kill", [True, False])
def test_on_kill_while_waiting_in_the_worker(slow, cancel_on_kill):
    emulator, _, task_id = slow
    operator = start_operator(task_id, cancel_on_kill=cancel_on_kill)
    thread, _ = wait_in_a_thread(operator)
    wait_until(lambda: emulator.get_task(task_id)["status"] == TaskStatus.RUNNING, timeout=WAIT)

    operator.on_kill()  # what the task runner does on SIGTERM

    if cancel_on_kill:
        assert emulator.wait_for_status(task_id, {TaskStatus.PAUSED}, timeout=WAIT)["successful_num"] < 20
        assert stops(emulator, task_id) == 1
    else:
        time.sleep(1)
        assert_not_paused(emulator, task_id, TaskStatus.RUNNING)
    thread.join(timeout=60)


def test_on_kill_after_the_wait_ended_pauses_nothing(make_emulator):
    emulator, hook = make_emulator(task_start_delay=0.5)
    task_id = paused_sample_task(emulator, hook, files=2)
    operator = start_operator(task_id)
    assert operator.execute(context=retry_context(try_number=1))["status"] == TaskStatus.SUCCEEDED

    operator.on_kill()  # e.g. a SIGTERM that arrives after the wait ended

    assert stops(emulator, task_id) == 1  # the stop above, none from on_kill


# -- a kill while deferred: the trigger's on_kill (Airflow 3.3+) --------------------------------------------------


@pytest.mark.parametrize("cancel_on_kill", [True, False])
def test_the_deferred_operators_trigger_pauses_on_kill_only_with_cancel_on_kill(slow, cancel_on_kill):
    emulator, _, task_id = slow
    operator = start_operator(task_id, deferrable=True, cancel_on_kill=cancel_on_kill)
    trigger = deferred_trigger(operator)
    assert trigger.serialize()[1]["cancel_on_kill"] is cancel_on_kill

    asyncio.run(trigger.on_kill())

    if cancel_on_kill:
        assert emulator.wait_for_status(task_id, {TaskStatus.PAUSED}, timeout=WAIT)["status"] == TaskStatus.PAUSED
    else:
        assert_not_paused(emulator, task_id, TaskStatus.WAITING, TaskStatus.RUNNING)


def throttled_trigger(slow, monkeypatch, *, budget: int, throttled: int, retry_after: float) -> MigrationTaskTrigger:
    """
    The slow task started again, the triggerer's on_kill budget (``[triggerer] on_kill_timeout``) ``budget``
    seconds, the next ``throttled`` stops answered 429; the trigger of a wait on that task.
    """
    emulator, hook, task_id = slow
    hook.start_task(task_id, hook.build_start_task_body())
    monkeypatch.setenv("AIRFLOW__TRIGGERER__ON_KILL_TIMEOUT", str(budget))
    emulator.inject_fault("throttle", path=r"/stop$", count=throttled, retry_after=retry_after)
    return MigrationTaskTrigger(migration_task_id=task_id, oms_conn_id="huaweicloud_oms_default")


def test_the_trigger_on_kill_gives_up_within_the_triggerers_budget(slow, monkeypatch):
    emulator, _, task_id = slow
    trigger = throttled_trigger(slow, monkeypatch, budget=3, throttled=1000, retry_after=1)

    started = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        # As the triggerer does: on_kill is cancelled after [triggerer] on_kill_timeout.
        asyncio.run(asyncio.wait_for(trigger.on_kill(), 3))

    assert time.monotonic() - started < 3
    assert any("Could not pause OMS migration task" in entry["event"] for entry in logs), logs
    assert stops(emulator, task_id) >= 2, "it should have retried the throttled stop within the budget"


def test_the_trigger_on_kill_retries_a_throttled_stop_within_the_budget(slow, monkeypatch):
    emulator, _, task_id = slow
    trigger = throttled_trigger(slow, monkeypatch, budget=10, throttled=2, retry_after=0.5)

    asyncio.run(asyncio.wait_for(trigger.on_kill(), 10))

    assert emulator.wait_for_status(task_id, {TaskStatus.PAUSED, TaskStatus.PAUSING}, timeout=WAIT)


# -- sensors only watch ------------------------------------------------------------------------------------------


@pytest.fixture
def running(make_emulator):
    emulator, hook = make_emulator(object_delay=0.5)
    task_id = running_sample_task(emulator, hook, files=20)
    emulator.reset_requests()
    return emulator, task_id


def test_a_deferred_sensor_killed_by_a_person_never_pauses(running):
    emulator, task_id = running
    sensor = MigrationTaskSensor(task_id="watch", migration_task_id=task_id, deferrable=True, poke_interval=1)
    trigger = deferred_trigger(sensor)
    assert trigger.serialize()[1]["cancel_on_kill"] is False

    asyncio.run(trigger.on_kill())

    assert_not_paused(emulator, task_id, TaskStatus.RUNNING)


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_a_poking_sensor_killed_never_pauses(running, mode):
    emulator, task_id = running
    sensor = MigrationTaskSensor(task_id="watch", migration_task_id=task_id, mode=mode, poke_interval=1)
    assert sensor.poke(context={}).is_done is False

    sensor.on_kill()

    assert_not_paused(emulator, task_id, TaskStatus.RUNNING)


def test_a_deferred_sensors_deadline_is_its_timeout_or_execution_timeout(running):
    _, task_id = running
    sensor = MigrationTaskSensor(
        task_id="watch",
        migration_task_id=task_id,
        deferrable=True,
        poke_interval=1,
        timeout=600,
        execution_timeout=timedelta(seconds=30),
    )
    before = time.time()
    trigger = deferred_trigger(sensor)
    assert before + 30 <= trigger.deadline <= time.time() + 30
