"""
End to end: waiting for migrations with a real Airflow (`airflow dags test`, which runs deferred tasks'
triggers inline, serialize round trip and execute_complete included) against the emulator. Nothing is mocked.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.testing import EMULATOR_AK, EMULATOR_SK, OMSEmulator
from tests.helpers import create_sample_task, migrated_airflow
from tests.testing.helpers import wait_until

pytestmark = pytest.mark.e2e

DAGS = Path(__file__).resolve().parent / "dags"
CONN_ID = "huaweicloud_oms_default"
TASK = "start_migration"


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    return migrated_airflow(tmp_path_factory.mktemp("airflow-home"), DAGS)


@pytest.fixture
def emulator(request, tmp_path, airflow, monkeypatch):
    """An emulator for one test (options from the `emulator_options` marker), the DAGs' connection on it."""
    marker = request.node.get_closest_marker("emulator_options")
    options = {"task_start_delay": 1.0, **(marker.kwargs if marker else {})}
    with OMSEmulator(tmp_path / "buckets", **options) as emu:
        airflow.connections[CONN_ID] = emu.airflow_connection()
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", emu.airflow_connection_uri_env())
        yield emu


def paused_task(emulator, **kwargs) -> str:
    hook = OMSHook(CONN_ID)
    task_id = create_sample_task(emulator, hook, **kwargs)
    hook.stop_task(task_id)
    emulator.wait_for_status(task_id, {TaskStatus.PAUSED}, timeout=20)
    return task_id


def no_secret_in(output: str) -> None:
    for secret in (EMULATOR_AK, EMULATOR_SK):
        assert secret not in output


@pytest.mark.parametrize("dag_id", ["oms_test_wait_sync", "oms_test_wait_deferrable"])
@pytest.mark.emulator_options(object_delay=0.4)
def test_wait_until_the_migration_succeeds(emulator, airflow, dag_id):
    task_id = paused_task(emulator, files=8)
    emulator.reset_requests()

    result = airflow.dags_test(dag_id, {"migration_task_id": task_id})

    assert result.succeeded, result.output[-3000:]
    xcom = airflow.xcom_value(dag_id, TASK)
    assert xcom["migration_task_id"] == task_id
    assert (xcom["status"], xcom["status_name"]) == (TaskStatus.SUCCEEDED, "succeeded")
    assert (xcom["total_num"], xcom["successful_num"], xcom["failed_num"], xcom["restarts"]) == (8, 8, 0, 0)
    assert emulator.get_task(task_id)["status"] == TaskStatus.SUCCEEDED
    assert f"OMS task {task_id} succeeded: 100.0% | objects 8/8" in result.output
    polls = sum(r.method == "GET" for r in emulator.requests)
    assert polls >= 3, "the wait should take several polls"
    if dag_id.endswith("deferrable"):
        assert "running trigger in line" in result.output
        # the start from the worker's requests session, every poll over the triggerer's shared httpx pool
        assert emulator.connections_opened == 2
    else:
        assert emulator.connections_opened == 1  # the start and every poll over one kept-alive connection
    no_secret_in(result.output)


@pytest.mark.parametrize("dag_id", ["oms_test_retry_sync", "oms_test_retry_deferrable"])
def test_failed_objects_are_retried_alone_until_success(emulator, airflow, dag_id):
    emulator.add_fail_rule("data/bad-*", times=1)
    names = ["good-1.txt", "good-2.txt", "bad-1.txt", "bad-2.txt"]
    task_id = paused_task(emulator, names=names)

    result = airflow.dags_test(dag_id, {"migration_task_id": task_id})

    assert result.succeeded, result.output[-3000:]
    xcom = airflow.xcom_value(dag_id, TASK)
    assert (xcom["status"], xcom["restarts"]) == (TaskStatus.SUCCEEDED, 1)
    # The destination folder shows the last run (the failed-only restart) wrote only the failed objects.
    last_run_start = emulator.get_task(task_id)["start_time"] / 1000
    landing = emulator.bucket_path("dst") / "in" / "data"
    # The file system's clock ticks coarser than time.time(): a file written in the run's first milliseconds can
    # show a ctime a little before the run's start. The earlier run ended over a second before (task_start_delay).
    changed = {p.name for p in landing.iterdir() if p.stat().st_ctime >= last_run_start - 0.5}
    assert sorted(p.name for p in landing.iterdir()) == sorted(names)
    assert changed == {"bad-1.txt", "bad-2.txt"}
    assert "restarting it for the failed objects only (retry 1 of 2)" in result.output


@pytest.mark.emulator_options(object_delay=0.5)
@pytest.mark.parametrize("dag_id", ["oms_test_timeout_sync", "oms_test_timeout_deferrable"])
def test_timeout_pauses_the_oms_task_and_fails(emulator, airflow, dag_id):
    task_id = paused_task(emulator, files=30)

    result = airflow.dags_test(dag_id, {"migration_task_id": task_id})

    assert result.state == "failed"
    assert f"OMS migration task {task_id} did not finish within the timeout of 3; it was paused" in result.output
    assert emulator.wait_for_status(task_id, {TaskStatus.PAUSED}, timeout=20)["successful_num"] < 30


@pytest.mark.emulator_options(object_delay=0.5)
@pytest.mark.parametrize(
    "dag_id",
    [
        "oms_test_exec_timeout_sync",
        "oms_test_exec_timeout_deferrable",
        "oms_test_exec_timeout_sync_keep",
        "oms_test_exec_timeout_deferrable_keep",
    ],
)
def test_execution_timeout_pauses_the_migration_it_cuts_short_unless_told_not_to(emulator, airflow, dag_id):
    task_id = paused_task(emulator, files=30)  # ~15 s of migration; execution_timeout is 4 s
    emulator.reset_requests()

    started = time.monotonic()
    result = airflow.dags_test(dag_id, {"migration_task_id": task_id})

    assert result.state == "failed", result.output[-3000:]
    stops = [r for r in emulator.requests if r.method == "POST" and r.path.endswith(f"/tasks/{task_id}/stop")]
    if dag_id.endswith("_keep"):
        assert stops == []
        assert emulator.get_task(task_id)["status"] in {TaskStatus.RUNNING, TaskStatus.SUCCEEDED}
    else:
        assert len(stops) == 1
        assert emulator.wait_for_status(task_id, {TaskStatus.PAUSED}, timeout=20)["successful_num"] < 30
    assert time.monotonic() - started < 60
    if dag_id.startswith("oms_test_exec_timeout_deferrable"):
        assert "did not finish within Airflow's execution_timeout of 0:00:04" in result.output


@pytest.mark.emulator_options(object_delay=0.3)
def test_killed_airflow_task_pauses_the_oms_task(emulator, airflow):
    task_id = paused_task(emulator, files=60)
    emulator.reset_requests()
    process = airflow.start_dags_test("oms_test_wait_sync", {"migration_task_id": task_id})
    try:
        # Once the operator polls a running task, kill the Airflow task as a worker would: SIGTERM.
        wait_until(
            lambda: (
                sum(r.method == "GET" for r in emulator.requests) >= 2
                and emulator.get_task(task_id)["status"] == TaskStatus.RUNNING
            ),
            timeout=60,
        )
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert emulator.wait_for_status(task_id, {TaskStatus.PAUSED}, timeout=20)["successful_num"] < 60
    assert f"Airflow task killed while waiting; pausing OMS migration task {task_id}" in output
    assert any(r.method == "POST" and r.path.endswith(f"/tasks/{task_id}/stop") for r in emulator.requests)


@pytest.mark.emulator_options(object_delay=0.2)
@pytest.mark.parametrize("dag_id", ["oms_test_sensor_poke", "oms_test_sensor_reschedule", "oms_test_sensor_deferrable"])
def test_sensor_waits_for_success(emulator, airflow, dag_id):
    hook = OMSHook(CONN_ID)
    task_id = create_sample_task(emulator, hook, files=8)  # starts by itself and takes a few seconds

    started = time.monotonic()
    result = airflow.dags_test(dag_id, {"migration_task_id": task_id})

    assert result.succeeded, result.output[-3000:]
    assert emulator.get_task(task_id)["status"] == TaskStatus.SUCCEEDED
    xcom = airflow.xcom_value(dag_id, "wait_for_migration")
    assert (xcom["status"], xcom["successful_num"]) == (TaskStatus.SUCCEEDED, 8)
    assert time.monotonic() - started > 1


@pytest.mark.parametrize("dag_id", ["oms_test_sensor_poke", "oms_test_sensor_deferrable"])
def test_sensor_fails_on_a_failed_task_with_the_reason(emulator, airflow, dag_id):
    emulator.add_fail_rule("data/bad-*")
    hook = OMSHook(CONN_ID)
    task_id = create_sample_task(emulator, hook, names=["ok.txt", "bad-1.txt"])

    result = airflow.dags_test(dag_id, {"migration_task_id": task_id})

    assert result.state == "failed"
    failed = emulator.wait_for_status(task_id, {TaskStatus.FAILED}, timeout=20)
    assert f"OMS migration task {task_id} failed: {failed['error_reason']['error_code']}" in result.output
    assert failed["failed_object_record"]["list_file_key"] in result.output


def test_a_nightly_start_of_a_finished_task_fails_at_once_naming_the_recipe(emulator, airflow):
    """The second night of a DAG that starts one existing task: OMS refuses; no Airflow retry, one start sent."""
    hook = OMSHook(CONN_ID)
    task_id = create_sample_task(emulator, hook, files=2)
    emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED}, timeout=20)
    emulator.backdate_task(task_id, 24 * 3600)  # the first night's migration, a day ago
    emulator.reset_requests()

    result = airflow.dags_test("oms_test_nightly_start", {"migration_task_id": task_id})

    assert not result.succeeded, result.output[-3000:]
    starts = [r for r in emulator.requests if r.method == "POST" and r.path.endswith("/start")]
    assert len(starts) == 1, f"one start request in all, no Airflow retry; got {len(starts)}"
    assert "already succeeded" in result.output
    assert "CreateMigrationTaskOperator with migrate_since" in result.output
    assert "A pipeline that runs on a schedule" in result.output
    no_secret_in(result.output)
