"""DeleteFinishedMigrationTasksOperator against the emulator over real HTTP: what it deletes, what it never does."""

from __future__ import annotations

import math
from datetime import timedelta
from types import SimpleNamespace

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.exceptions import OMSValidationError
from airflow_provider_oms.operators.housekeeping import DeleteFinishedMigrationTasksOperator
from airflow_provider_oms.operators.lifecycle import CreateMigrationTaskOperator, run_marker
from airflow_provider_oms.testing.tasks import OMSEmulatorError

DAYS = 24 * 3600
#: A task definition, as the create operator takes it (without credentials).
DEFINITION = {
    "task_type": "prefix",
    "src_node": {"region": "local", "bucket": "src", "cloud_type": "AWS", "object_key": ["data/"]},
    "dst_node": {"region": "local", "bucket": "dst", "save_prefix": "in/"},
}
#: The same as a CreateTaskReq body, for tasks added to the emulator directly.
KEYS = {"ak": "EMULATED-AK", "sk": "EMULATED-SK"}
BODY = {**DEFINITION, "src_node": {**DEFINITION["src_node"], **KEYS}, "dst_node": {**DEFINITION["dst_node"], **KEYS}}


def context(dag_id: str = "nightly", run_id: str = "scheduled__1") -> dict:
    """The context of one task instance: a stand-in task instance without max_tries (never cleared)."""
    ti = SimpleNamespace(dag_id=dag_id, run_id=run_id, task_id="create", map_index=-1, try_number=1)
    return {"ti": ti}


def seed(emulator, *, dag_id: str | None, count: int = 1, status=TaskStatus.SUCCEEDED, age_days: float = 8) -> list:
    """Add ``count`` tasks of ``dag_id`` (None: no marker) that ended ``age_days`` ago; return their ids."""
    description = "nightly export"
    if dag_id is not None:
        description += " " + run_marker(context(dag_id, run_id=f"run-{dag_id}-{status}-{age_days}"))
    ids = emulator.add_finished_tasks({**BODY, "description": description}, count, status=status)
    for task_id in ids:
        emulator.backdate_task(task_id, age_days * DAYS)
    return [str(task_id) for task_id in ids]


def housekeeping(oms_conn: str, older_than=timedelta(days=7)) -> DeleteFinishedMigrationTasksOperator:
    return DeleteFinishedMigrationTasksOperator(task_id="delete_old_tasks", older_than=older_than, oms_conn_id=oms_conn)


def exists(emulator, task_id: str) -> bool:
    try:
        emulator.get_task(task_id)
    except OMSEmulatorError:
        return False
    return True


def test_deletes_this_dags_old_finished_tasks_and_nothing_else(emulator_with_source, oms_conn):
    emulator = emulator_with_source(["data/a.txt"], task_start_delay=600)  # created tasks stay waiting
    old_succeeded = seed(emulator, dag_id="nightly", count=130)  # more than a page of the list
    old_failed = seed(emulator, dag_id="nightly", status=TaskStatus.FAILED)
    recent = seed(emulator, dag_id="nightly", age_days=6)
    paused = seed(emulator, dag_id="nightly", status=TaskStatus.PAUSED)
    others = seed(emulator, dag_id="other_dag", count=120) + seed(emulator, dag_id="nightly_v2")
    unmarked = seed(emulator, dag_id=None)
    # Created by the operator of the DAG, over HTTP: waiting in OMS, so in progress.
    waiting = CreateMigrationTaskOperator(task_id="create", task_definition=DEFINITION, source_conn_id="src").execute(
        context(run_id="tonight")
    )["migration_task_id"]

    result = housekeeping(oms_conn).execute(context(run_id="housekeeping"))

    assert sorted(result["deleted"]) == sorted(old_succeeded + old_failed)
    assert result["kept_in_progress"] == [waiting]
    assert result["kept_paused"] == paused
    assert result["kept_recent"] == recent
    assert result["kept_undated"] == []
    assert result["older_than_seconds"] == 7 * DAYS
    assert not any(exists(emulator, task_id) for task_id in old_succeeded + old_failed)
    assert all(exists(emulator, task_id) for task_id in recent + paused + others + unmarked + [waiting])


def test_a_task_the_create_operator_made_is_deleted_once_old(emulator_with_source, oms_conn):
    emulator = emulator_with_source(["data/a.txt"])
    created = CreateMigrationTaskOperator(task_id="create", task_definition=DEFINITION, source_conn_id="src").execute(
        context(run_id="last-week")
    )["migration_task_id"]
    emulator.wait_for_status(created, {TaskStatus.SUCCEEDED})

    kept = housekeeping(oms_conn, older_than=60).execute(context())
    emulator.backdate_task(created, 120)
    deleted = housekeeping(oms_conn, older_than=60).execute(context())
    other_dag = seed(emulator, dag_id="other_dag", age_days=30)
    untouched = housekeeping(oms_conn, older_than=60).execute(context())

    assert (kept["kept_recent"], kept["deleted"]) == ([created], [])
    assert deleted["deleted"] == [created]
    assert untouched["deleted"] == [] and exists(emulator, other_dag[0])


def test_a_task_gone_by_its_delete_counts_as_deleted(emulator_with_source, oms_conn):
    emulator = emulator_with_source(["data/a.txt"])
    old = seed(emulator, dag_id="nightly")
    # The delete is applied but its answer lost; the hook's retry then finds the task gone (OMS.1009).
    emulator.inject_fault("reset_after", path=rf"/tasks/{old[0]}$")

    result = housekeeping(oms_conn).execute(context())

    assert result["deleted"] == old
    assert [r.status for r in emulator.requests if r.method == "DELETE"] == [0, 404]


@pytest.mark.parametrize(
    ("older_than", "message"),
    [
        (0, "older_than must be at least 1 second, got 0.0 s"),
        (0.5, "older_than must be at least 1 second, got 0.5 s"),
        (timedelta(milliseconds=999), "older_than must be at least 1 second, got 0.999 s"),
        (-7, "older_than must be at least 1 second"),
        (math.nan, "older_than must be a finite number of seconds, got nan"),
        (math.inf, "older_than must be a finite number of seconds, got inf"),
        ("7d", "older_than must be a timedelta or a number of seconds, got str"),
        (True, "older_than must be a timedelta or a number of seconds, got bool"),
        (None, "older_than must be a timedelta or a number of seconds, got NoneType"),
    ],
)
def test_a_bad_older_than_is_refused_before_anything_is_sent(fast, oms_conn, older_than, message):
    emulator, _ = fast
    emulator.reset_requests()
    with pytest.raises(OMSValidationError, match=message.replace(".", r"\.")):
        housekeeping(oms_conn, older_than=older_than).execute(context())
    assert emulator.requests == []
