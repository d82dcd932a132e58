"""
Right after a start OMS may still answer with the status from before it. The emulator's start lag reproduces
that (``start_lag_reads`` / ``start_lag_seconds``); the operator must wait it out, in the worker and deferred.
"""

from __future__ import annotations

import time

import pytest

from airflow_provider_oms import waiting
from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.exceptions import OMSMigrationError
from tests.helpers import DEFERRABLE_MODES, create_sample_task, paused_sample_task, start_operator
from tests.operators.deferral import run_operator


def failed(emulator, hook, **task) -> str:
    task_id = create_sample_task(emulator, hook, **task)
    emulator.wait_for_status(task_id, {TaskStatus.FAILED}, timeout=20)
    return task_id


def shown_statuses(emulator, task_id: str) -> int:
    return sum(r.method == "GET" and r.path.endswith(f"/tasks/{task_id}") for r in emulator.requests)


@DEFERRABLE_MODES
def test_stale_paused_reads_after_the_start_are_waited_out(make_emulator, deferrable):
    emulator, hook = make_emulator(task_start_delay=0.5, start_lag_reads=3)
    task_id = paused_sample_task(emulator, hook, files=3)

    result = run_operator(start_operator(task_id, deferrable=deferrable))

    assert result["status"] == TaskStatus.SUCCEEDED
    assert (result["successful_num"], result["restarts"]) == (3, 0)
    assert emulator.applied_starts == 1
    assert shown_statuses(emulator, task_id) >= 5  # the read before the start, 3 stale ones, the real one


@DEFERRABLE_MODES
def test_a_stale_failure_neither_fails_the_wait_nor_restarts_the_task(make_emulator, deferrable):
    emulator, hook = make_emulator(start_lag_reads=2)
    emulator.add_fail_rule("data/bad-*", times=1)  # the first run fails; a second one would succeed
    task_id = failed(emulator, hook, names=["ok.txt", "bad-1.txt"])

    result = run_operator(start_operator(task_id, deferrable=deferrable, retry_failed_objects=1))

    assert result["status"] == TaskStatus.SUCCEEDED
    assert result["restarts"] == 0, "the stale failure must not be taken for this run's"
    assert emulator.applied_starts == 1


@DEFERRABLE_MODES
def test_a_start_that_never_shows_fails_after_the_grace_window(make_emulator, monkeypatch, deferrable):
    monkeypatch.setattr(waiting, "START_GRACE_SECONDS", 2.0)
    emulator, hook = make_emulator(task_start_delay=0.5, start_lag_seconds=60)
    task_id = paused_sample_task(emulator, hook, files=2)

    started = time.monotonic()
    with pytest.raises(OMSMigrationError, match=r"still shows the task as before the start \(paused, unchanged\)"):
        run_operator(start_operator(task_id, deferrable=deferrable))

    assert 2.0 <= time.monotonic() - started < 15
    assert emulator.applied_starts == 1


@DEFERRABLE_MODES
def test_a_real_failure_right_after_the_start_is_reported_at_once(make_emulator, deferrable):
    emulator, hook = make_emulator()
    emulator.add_fail_rule("data/bad-*")  # every run fails
    task_id = failed(emulator, hook, names=["ok.txt", "bad-1.txt"])

    started = time.monotonic()
    with pytest.raises(OMSMigrationError, match=f"OMS migration task {task_id} failed"):
        run_operator(start_operator(task_id, deferrable=deferrable))

    # The new run's failure differs from the old one (its start time): no grace window to sit out.
    assert time.monotonic() - started < waiting.START_GRACE_SECONDS / 2
    assert emulator.applied_starts == 1
