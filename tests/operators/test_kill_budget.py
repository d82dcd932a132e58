"""
The worker's ``on_kill`` pause fits Airflow's window: the task supervisor sends SIGKILL 5 s after SIGTERM, so a
throttled or hanging stop must not run the connection's whole retry policy (up to 120 s), and what could not be
paused is said plainly, with the OMS task id.
"""

from __future__ import annotations

import time

import pytest
import structlog.testing

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.operators.migration_wait import ON_KILL_BUDGET
from tests.helpers import paused_sample_task, start_operator

WAIT = 20.0


@pytest.fixture
def waiting(make_emulator):
    """A running migration task, and an operator waiting for it in the worker (as after its start)."""
    emulator, hook = make_emulator(task_start_delay=0.2, object_delay=0.5)
    task_id = paused_sample_task(emulator, hook, files=20)
    hook.start_task(task_id, hook.build_start_task_body())
    emulator.wait_for_status(task_id, {TaskStatus.RUNNING}, timeout=WAIT)
    operator = start_operator(task_id, cancel_on_kill=True)
    operator._waiting_for = task_id  # what execute() sets while it waits
    emulator.reset_requests()
    return emulator, task_id, operator


def kill(operator) -> tuple[float, str]:
    started = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        operator.on_kill()
    return time.monotonic() - started, "\n".join(str(entry.get("event")) for entry in logs)


def stops(emulator, task_id: str) -> int:
    return sum(r.method == "POST" and r.path.endswith(f"/tasks/{task_id}/stop") for r in emulator.requests)


def test_on_kill_pauses_at_once(waiting):
    emulator, task_id, operator = waiting
    elapsed, logged = kill(operator)
    assert elapsed < ON_KILL_BUDGET
    assert emulator.wait_for_status(task_id, {TaskStatus.PAUSED}, timeout=WAIT)
    assert f"Paused OMS migration task {task_id}" in logged


def test_a_throttled_stop_gives_up_within_the_budget_and_says_the_migration_runs_on(waiting):
    emulator, task_id, operator = waiting
    emulator.inject_fault("throttle", path=r"/stop$", count=1000, retry_after=1)

    elapsed, logged = kill(operator)

    assert elapsed < ON_KILL_BUDGET
    assert stops(emulator, task_id) == 1  # one attempt: no retry policy in Airflow's 5 s window
    assert f"Could not pause OMS migration task {task_id}" in logged and "left running" in logged, logged
    assert "APIGW.0308" in logged
    assert emulator.get_task(task_id)["status"] == TaskStatus.RUNNING


def test_a_hanging_oms_gives_up_within_the_budget(waiting):
    emulator, task_id, operator = waiting
    emulator.inject_fault("delay", path=r"/stop$", delay=8)  # applied, never answered in time
    emulator.inject_fault("delay", path=rf"/tasks/{task_id}$", count=10, delay=8)  # the read back hangs too

    elapsed, logged = kill(operator)

    assert elapsed < ON_KILL_BUDGET + 0.5
    assert f"Could not pause OMS migration task {task_id}" in logged and "left running" in logged, logged
