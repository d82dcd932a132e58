"""The task-lifecycle operators against the emulator over real HTTP."""

from __future__ import annotations

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.exceptions import OMSApiError, OMSValidationError
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.operators.lifecycle import (
    CreateMigrationTaskOperator,
    DeleteMigrationTaskOperator,
    StopMigrationTaskOperator,
    run_marker,
)
from airflow_provider_oms.testing import OMSEmulator
from airflow_provider_oms.validation import check_bandwidth_policy
from tests.helpers import task_context, write_objects

DEFINITION = {
    "task_type": "prefix",
    "src_node": {"region": "local", "bucket": "src", "object_key": ["data/"], "cloud_type": "HuaweiCloud"},
    "dst_node": {"region": "local", "bucket": "dst", "save_prefix": "in/"},
    "description": "nightly export",
}


def context(try_number: int = 1, run_id: str = "manual__1", map_index: int = -1) -> dict:
    ctx = task_context()
    ti = ctx["ti"]
    ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number = "dag", run_id, "create", map_index, try_number
    return ctx


@pytest.fixture
def emulator(tmp_path, monkeypatch, oms_conn, set_connection):
    with OMSEmulator(tmp_path / "data", task_start_delay=5) as emu:
        monkeypatch.setenv(f"AIRFLOW_CONN_{oms_conn.upper()}", emu.airflow_connection_uri_env())
        write_objects(emu.bucket_path("src"), ["data/a.txt", "data/b.txt"])
        set_connection("src", login="SOURCE-AK-0001", password="SOURCE-SK-0001")
        yield emu


def test_create_puts_the_connections_credentials_in_the_nodes_and_returns_the_id(emulator):
    result = CreateMigrationTaskOperator(task_id="create", task_definition=DEFINITION, source_conn_id="src").execute(
        context()
    )
    assert result["reused"] is False
    task = emulator.get_task(result["migration_task_id"])
    assert task["name"] == result["task_name"]
    assert task["description"].startswith("nightly export airflow-")
    assert "ak" not in task["src_node"] and "sk" not in task["dst_node"]  # stored, never shown
    assert emulator.applied_creates == 1


def test_a_retry_reuses_the_task_its_earlier_try_created(emulator):
    first = CreateMigrationTaskOperator(task_id="create", task_definition=DEFINITION, source_conn_id="src")
    created = first.execute(context(try_number=1))
    again = CreateMigrationTaskOperator(task_id="create", task_definition=DEFINITION, source_conn_id="src")
    reused = again.execute(context(try_number=2))
    assert reused == {**created, "reused": True}
    assert emulator.applied_creates == 1
    other_run = CreateMigrationTaskOperator(task_id="create", task_definition=DEFINITION, source_conn_id="src")
    assert other_run.execute(context(try_number=2, run_id="manual__2"))["reused"] is False
    assert emulator.applied_creates == 2


def test_run_markers_differ_by_run_and_map_index():
    markers = {run_marker(context(run_id=r, map_index=m)) for r in ("a", "b") for m in (-1, 0, 1)}
    assert len(markers) == 6


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (
            {**DEFINITION, "src_node": {**DEFINITION["src_node"], "sk": "INLINE-SK"}},
            r"src_node must not hold credentials \(sk\)",
        ),
        ({**DEFINITION, "dst_node": None}, "the task definition needs a 'dst_node' mapping"),
    ],
)
def test_create_refuses_credentials_in_the_definition(emulator, definition, message):
    with pytest.raises(OMSValidationError, match=message) as err:
        CreateMigrationTaskOperator(task_id="create", task_definition=definition).execute(context())
    assert "INLINE-SK" not in str(err.value)
    assert emulator.requests == []


def test_stop_pauses_and_stopping_a_paused_task_is_fine(emulator):
    task_id = CreateMigrationTaskOperator(task_id="create", task_definition=DEFINITION, source_conn_id="src").execute(
        context()
    )["migration_task_id"]
    StopMigrationTaskOperator(task_id="stop", migration_task_id=task_id).execute(context())
    assert emulator.get_task(task_id)["status"] == TaskStatus.PAUSED
    StopMigrationTaskOperator(task_id="stop", migration_task_id=task_id).execute(context())
    assert emulator.get_task(task_id)["status"] == TaskStatus.PAUSED


def test_stop_of_a_finished_task_is_an_error(tmp_path, monkeypatch, oms_conn):
    with OMSEmulator(tmp_path / "d") as emu:
        monkeypatch.setenv(f"AIRFLOW_CONN_{oms_conn.upper()}", emu.airflow_connection_uri_env())
        write_objects(emu.bucket_path("src"), ["data/a.txt"])
        hook = OMSHook()
        task_id = str(
            hook.create_task(
                {
                    **DEFINITION,
                    "src_node": {**DEFINITION["src_node"], "ak": "A" * 10, "sk": "S" * 10},
                    "dst_node": {**DEFINITION["dst_node"], "ak": "A" * 10, "sk": "S" * 10},
                }
            )["id"]
        )
        emu.wait_for_status(task_id, {TaskStatus.SUCCEEDED})
        with pytest.raises(OMSApiError, match=r"OMS\.0066"):
            StopMigrationTaskOperator(task_id="stop", migration_task_id=task_id).execute(context())


def test_delete_removes_the_task_and_a_second_delete_is_fine(emulator):
    task_id = CreateMigrationTaskOperator(task_id="create", task_definition=DEFINITION, source_conn_id="src").execute(
        context()
    )["migration_task_id"]
    StopMigrationTaskOperator(task_id="stop", migration_task_id=task_id).execute(context())
    DeleteMigrationTaskOperator(task_id="delete", migration_task_id=task_id).execute(context())
    with pytest.raises(OMSApiError, match=r"OMS\.1009"):
        OMSHook().get_task(task_id)
    DeleteMigrationTaskOperator(task_id="delete", migration_task_id=task_id).execute(context())


@pytest.mark.parametrize(
    ("policies", "message"),
    [
        ([{"start": "00:00", "end": "06:00", "max_bandwidth": 1048576}] * 6, "at most 5"),
        ([{"start": "24:00", "end": "06:00", "max_bandwidth": 1048576}], "start must be a time of day as hh:mm"),
        ([{"start": "00:00", "end": "6:00", "max_bandwidth": 1048576}], "end must be a time of day"),
        (
            [{"start": "00:00", "end": "06:00", "max_bandwidth": 1000}],
            "max_bandwidth must be a whole number of bytes/s from 1048576",
        ),
        ([{"start": "00:00", "end": "06:00", "max_bandwidth": 209715201}], "to 209715200"),
        ("00:00-06:00", "must be a list of windows"),
    ],
)
def test_bandwidth_policy_is_checked(policies, message):
    with pytest.raises(OMSValidationError, match=message):
        check_bandwidth_policy(policies)


def test_bandwidth_policy_accepts_the_limits():
    windows = [
        {"start": "00:00", "end": "06:00", "max_bandwidth": 1048576},
        {"start": "18:00", "end": "23:59", "max_bandwidth": 209715200},
    ]
    assert check_bandwidth_policy(windows) == windows


@pytest.mark.parametrize(
    "windows",
    [
        [("00:00", "06:00"), ("05:59", "07:00")],
        [("22:00", "02:00"), ("01:00", "03:00")],  # across midnight
    ],
)
def test_overlapping_bandwidth_windows_are_refused(windows):
    policies = [{"start": start, "end": end, "max_bandwidth": 1048576} for start, end in windows]
    with pytest.raises(OMSValidationError, match="window 2 overlaps window 1"):
        check_bandwidth_policy(policies)


def cleared_context(*, try_number: int, max_tries: int) -> dict:
    ctx = context(try_number=try_number)
    ctx["ti"].max_tries = max_tries
    return ctx


def test_a_cleared_create_creates_anew_while_its_retries_reuse(emulator):
    def create(ctx: dict) -> dict:
        return CreateMigrationTaskOperator(
            task_id="create", task_definition=DEFINITION, source_conn_id="src", retries=1
        ).execute(ctx)

    first = create(cleared_context(try_number=1, max_tries=1))  # max_tries starts at retries
    # A person clears the succeeded task: Airflow sets max_tries = try_number + retries = 2; the next try is 2.
    cleared = create(cleared_context(try_number=2, max_tries=2))
    assert cleared["reused"] is False
    assert cleared["migration_task_id"] != first["migration_task_id"], "a cleared create must not reuse old work"
    assert emulator.applied_creates == 2
    # Try 2 dies after creating; its retry, try 3, finds try 2's task.
    retried = create(cleared_context(try_number=3, max_tries=2))
    assert retried == {**cleared, "reused": True}
    assert emulator.applied_creates == 2
