"""CreateMigrationTaskOperator with wait_for_completion: the start operator's waiting, against the emulator."""

from __future__ import annotations

import os

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.exceptions import OMSMigrationError, OMSValidationError
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.operators.lifecycle import CreateMigrationTaskOperator
from tests.operators.deferral import retry_context, run_operator

DEFINITION = {
    "task_type": "prefix",
    "src_node": {"region": "local", "bucket": "src", "cloud_type": "AWS", "object_key": ["data/"]},
    "dst_node": {"region": "local", "bucket": "dst", "save_prefix": "in/"},
}


@pytest.fixture
def emulator(emulator_with_source):
    return emulator_with_source([f"data/{n}.txt" for n in range(12)], task_start_delay=0.2, object_delay=0.3)


def operator(oms_conn, **kwargs) -> CreateMigrationTaskOperator:
    return CreateMigrationTaskOperator(
        task_id="create", task_definition=DEFINITION, source_conn_id="src", oms_conn_id=oms_conn, **kwargs
    )


def test_without_waiting_nothing_changes(emulator, oms_conn):
    result = operator(oms_conn).execute(retry_context(try_number=1))
    assert set(result) == {"migration_task_id", "task_name", "reused"}
    assert emulator.get_task(result["migration_task_id"])["status"] in {TaskStatus.WAITING, TaskStatus.RUNNING}


@pytest.mark.parametrize("deferrable", [False, True])
def test_waits_for_the_created_task(emulator, oms_conn, deferrable):
    result = run_operator(
        operator(oms_conn, wait_for_completion=True, deferrable=deferrable, poll_interval=1),
        retry_context(try_number=1),
    )
    assert (result["status"], result["successful_num"], result["restarts"]) == (TaskStatus.SUCCEEDED, 12, 0)
    assert emulator.applied_starts == 0  # OMS started it by itself: no start was sent


@pytest.mark.parametrize("deferrable", [False, True])
def test_timeout_pauses_the_created_task_and_fails(emulator, oms_conn, deferrable):
    waiting = operator(oms_conn, wait_for_completion=True, deferrable=deferrable, poll_interval=1, timeout=1)
    with pytest.raises(OMSMigrationError, match="did not finish within the timeout of 1; it was paused"):
        run_operator(waiting, retry_context(try_number=1))
    (task,) = OMSHook(oms_conn).list_tasks()["tasks"]
    assert emulator.wait_for_status(task["id"], {TaskStatus.PAUSED}, timeout=20)["successful_num"] < 12


def test_a_retry_resumes_the_task_its_killed_try_paused(emulator, oms_conn):
    first = operator(oms_conn, wait_for_completion=True, poll_interval=1, timeout=1, retries=1)
    with pytest.raises(OMSMigrationError):
        first.execute(retry_context(try_number=1, max_tries=1))
    second = operator(oms_conn, wait_for_completion=True, poll_interval=1, retries=1)
    result = second.execute(retry_context(try_number=2, max_tries=1))
    assert result["status"] == TaskStatus.SUCCEEDED
    assert emulator.applied_creates == 1 and emulator.applied_starts == 1


@pytest.mark.parametrize(("since", "migrated"), [("1600000001", 0), ("1599999999", 12), (1599999999, 12), ("", 12)])
def test_migrate_since_as_a_template_renders_it_is_sent_as_a_number(emulator, oms_conn, since, migrated):
    for path in (emulator.bucket_path("src") / "data").iterdir():
        os.utime(path, (1_600_000_000, 1_600_000_000))
    definition = {**DEFINITION, "migrate_since": since}
    result = CreateMigrationTaskOperator(
        task_id="create2",
        task_definition=definition,
        source_conn_id="src",
        oms_conn_id=oms_conn,
        wait_for_completion=True,
        poll_interval=1,
    ).execute(retry_context(try_number=1))
    assert (result["status"], result["total_num"]) == (TaskStatus.SUCCEEDED, migrated)


@pytest.mark.parametrize("since", ["yesterday", -5, 1.5, True])
def test_a_bad_migrate_since_is_refused_before_the_create(emulator, oms_conn, since):
    with pytest.raises(OMSValidationError, match="migrate_since"):
        CreateMigrationTaskOperator(
            task_id="create", task_definition={**DEFINITION, "migrate_since": since}, oms_conn_id=oms_conn
        ).execute(retry_context(try_number=1))
    assert emulator.applied_creates == 0
