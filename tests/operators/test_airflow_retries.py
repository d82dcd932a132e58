"""
A retry of the Airflow task (try > 1) after an earlier try started the OMS task and died (a lost worker, a
kill): what the retry does for each state the earlier start left the task in. Decided from the task read back.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.exceptions import OMSApiError
from tests.helpers import DEFERRABLE_MODES, paused_sample_task, running_sample_task, start_operator
from tests.operators.deferral import retry_context, run_operator

WAIT = 20.0


def started_by_an_earlier_try(emulator, hook, **task) -> str:
    """A paused task, then the start an earlier try made before it died."""
    task_id = paused_sample_task(emulator, hook, **task)
    hook.start_task(task_id, hook.build_start_task_body())
    assert emulator.applied_starts == 1
    return task_id


@DEFERRABLE_MODES
def test_running_the_retry_waits_for_it(make_emulator, deferrable):
    emulator, hook = make_emulator(task_start_delay=0.5, object_delay=0.2)
    task_id = started_by_an_earlier_try(emulator, hook, files=5)

    result = run_operator(start_operator(task_id, deferrable=deferrable), retry_context(try_number=2))

    assert (result["status"], result["successful_num"]) == (TaskStatus.SUCCEEDED, 5)
    assert emulator.applied_starts == 1, "the retry must not start it again"


@DEFERRABLE_MODES
def test_succeeded_since_the_dag_run_began_the_retry_succeeds_at_once(make_emulator, deferrable):
    emulator, hook = make_emulator(task_start_delay=0.5)
    task_id = started_by_an_earlier_try(emulator, hook, files=3)
    emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED}, timeout=WAIT)

    result = run_operator(start_operator(task_id, deferrable=deferrable), retry_context(try_number=2))

    assert (result["status"], result["successful_num"], result["restarts"]) == (TaskStatus.SUCCEEDED, 3, 0)
    assert emulator.applied_starts == 1


def test_succeeded_before_the_dag_run_began_is_not_taken_for_this_runs_work(make_emulator):
    emulator, hook = make_emulator(task_start_delay=0.5)
    task_id = started_by_an_earlier_try(emulator, hook, files=3)
    emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED}, timeout=WAIT)
    later = datetime.now(timezone.utc) + timedelta(hours=1)  # this DAG run began long after that migration

    with pytest.raises(OMSApiError, match="completed"):
        start_operator(task_id).execute(context=retry_context(try_number=2, dag_run_started=later))
    assert emulator.applied_starts == 1


@DEFERRABLE_MODES
def test_paused_by_the_earlier_tries_kill_the_retry_resumes_it(make_emulator, deferrable):
    emulator, hook = make_emulator(task_start_delay=0.5, object_delay=0.1)
    task_id = started_by_an_earlier_try(emulator, hook, files=4)
    hook.stop_task(task_id)  # the earlier try's on_kill
    emulator.wait_for_status(task_id, {TaskStatus.PAUSED}, timeout=WAIT)

    result = run_operator(start_operator(task_id, deferrable=deferrable), retry_context(try_number=2))

    assert (result["status"], result["successful_num"]) == (TaskStatus.SUCCEEDED, 4)
    assert emulator.applied_starts == 2


def test_still_pausing_from_the_earlier_tries_kill_the_retry_resumes_it_once_paused(make_emulator):
    emulator, hook = make_emulator(object_delay=0.3, pausing_delay=2.5)
    task_id = running_sample_task(emulator, hook, files=6)
    hook.stop_task(task_id)  # the earlier try's on_kill; the task stays pausing for 2.5 s
    assert emulator.get_task(task_id)["status"] == TaskStatus.PAUSING

    result = start_operator(task_id).execute(context=retry_context(try_number=2))

    assert (result["status"], result["successful_num"] + result["skipped_num"]) == (TaskStatus.SUCCEEDED, 6)
    assert emulator.applied_starts == 1


@DEFERRABLE_MODES
def test_failed_after_the_earlier_tries_start_the_retry_starts_it_again(make_emulator, deferrable):
    emulator, hook = make_emulator(task_start_delay=0.5)
    emulator.add_fail_rule("data/bad-*", times=1)
    task_id = started_by_an_earlier_try(emulator, hook, names=["ok.txt", "bad-1.txt"])
    emulator.wait_for_status(task_id, {TaskStatus.FAILED}, timeout=WAIT)

    result = run_operator(start_operator(task_id, deferrable=deferrable), retry_context(try_number=2))

    assert result["status"] == TaskStatus.SUCCEEDED
    assert emulator.applied_starts == 2


def test_the_first_try_does_not_take_a_running_task_for_its_own(make_emulator):
    emulator, hook = make_emulator(task_start_delay=0.5, object_delay=0.2)
    task_id = started_by_an_earlier_try(emulator, hook, files=5)

    with pytest.raises(OMSApiError, match=r"OMS\.0065"):
        start_operator(task_id).execute(context=retry_context(try_number=1))
