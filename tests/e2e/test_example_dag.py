"""
End to end: the example DAG run by a real Airflow (`airflow dags test`, SQLite, temporary AIRFLOW_HOME),
through StartMigrationTaskOperator and OMSHook, over HTTP, against the local OMS emulator, which really copies
files between bucket folders. Nothing is mocked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.testing import EMULATOR_AK, EMULATOR_SK, OMSEmulator
from tests.helpers import create_sample_task, files_under, migrated_airflow, paused_sample_task

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "example_oms_start_migration"
CONN_ID = "huaweicloud_oms_default"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    # Tasks wait 1 s before copying, so that a stop right after creation pauses them before any copy.
    with OMSEmulator(tmp_path_factory.mktemp("buckets"), task_start_delay=1.0) as emu:
        yield emu


@pytest.fixture(scope="module")
def airflow(emulator, tmp_path_factory):
    return migrated_airflow(
        tmp_path_factory.mktemp("airflow-home"), ROOT / "dags", {CONN_ID: emulator.airflow_connection()}
    )


@pytest.fixture
def hook(emulator, monkeypatch):
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", emulator.airflow_connection_uri_env())
    return OMSHook(CONN_ID)


def test_dag_resumes_a_paused_task_and_the_files_arrive(emulator, airflow, hook):
    task_id = paused_sample_task(emulator, hook, prefix="full/", save_prefix="full-landing/", files=5)
    assert not (emulator.bucket_path("dst") / "full-landing").exists()

    result = airflow.dags_test(DAG_ID, {"migration_task_id": task_id})

    assert result.succeeded, result.output[-3000:]
    xcom = airflow.xcom_value(DAG_ID, "start_migration")
    assert xcom["migration_task_id"] == task_id
    assert (xcom["status"], xcom["successful_num"], xcom["restarts"]) == (TaskStatus.SUCCEEDED, 5, 0)
    done = emulator.get_task(task_id)  # the DAG waited for the migration to finish
    assert done["status"] == TaskStatus.SUCCEEDED
    assert done["successful_num"] == 5
    source = files_under(emulator.bucket_path("src") / "full")
    assert files_under(emulator.bucket_path("dst") / "full-landing" / "full") == source
    for secret in (EMULATOR_AK, EMULATOR_SK):
        assert secret not in result.output


def test_failed_objects_then_a_failed_only_restart(emulator, airflow, hook):
    emulator.add_fail_rule("retry/bad-*", times=1)
    names = ["good-1.txt", "good-2.txt", "good-3.txt", "bad-1.txt", "bad-2.txt"]
    task_id = create_sample_task(emulator, hook, prefix="retry/", save_prefix="retry-landing/", names=names)
    failed = emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED, TaskStatus.FAILED}, timeout=30)
    assert failed["status"] == TaskStatus.FAILED
    assert failed["failed_num"] == 2
    assert failed["failed_object_record"]["result"] is True
    landing = emulator.bucket_path("dst") / "retry-landing" / "retry"
    assert sorted(files_under(landing)) == ["good-1.txt", "good-2.txt", "good-3.txt"]
    # A failed-only restart must not touch objects that already succeeded: remove one to see it stays away.
    (landing / "good-1.txt").unlink()

    result = airflow.dags_test(DAG_ID, {"migration_task_id": task_id, "migrate_failed_object": True})

    assert result.succeeded, result.output[-3000:]
    assert f"Starting OMS migration task {task_id} (failed objects only)" in result.output
    done = emulator.get_task(task_id)
    assert done["status"] == TaskStatus.SUCCEEDED
    assert sorted(files_under(landing)) == ["bad-1.txt", "bad-2.txt", "good-2.txt", "good-3.txt"]
    source = files_under(emulator.bucket_path("src") / "retry")
    assert files_under(landing)["bad-1.txt"] == source["bad-1.txt"]


def test_nonsense_flag_fails_the_task_and_sends_nothing(emulator, airflow, hook):
    task_id = paused_sample_task(emulator, hook, prefix="nonsense/", save_prefix="nonsense-landing/")
    emulator.reset_requests()

    result = airflow.dags_test(DAG_ID, {"migration_task_id": task_id, "migrate_failed_object": "maybe"})

    assert not result.succeeded
    assert result.state == "failed"
    assert "migrate_failed_object must be a boolean or the string 'true' or 'false' (any case), got 'maybe'" in (
        result.output
    )
    assert emulator.requests == []
    assert emulator.get_task(task_id)["status"] == TaskStatus.PAUSED


def test_the_example_dag_passes_when_oms_shows_its_start_late(airflow, tmp_path, monkeypatch):
    """OMS may answer with the status from before a start for a moment: the emulator's start lag does that."""
    with OMSEmulator(tmp_path / "lagging", task_start_delay=1.0, start_lag_reads=2, start_lag_seconds=3) as lagging:
        monkeypatch.setitem(airflow.connections, CONN_ID, lagging.airflow_connection())
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", lagging.airflow_connection_uri_env())
        task_id = paused_sample_task(lagging, OMSHook(CONN_ID), prefix="late/", save_prefix="late-landing/", files=3)

        result = airflow.dags_test(DAG_ID, {"migration_task_id": task_id})

        assert result.succeeded, result.output[-3000:]
        assert f"OMS does not show the start of task {task_id} yet; waiting" in result.output
        xcom = airflow.xcom_value(DAG_ID, "start_migration")
        assert (xcom["status"], xcom["successful_num"], xcom["restarts"]) == (TaskStatus.SUCCEEDED, 3, 0)
        assert lagging.applied_starts == 1
        source = files_under(lagging.bucket_path("src") / "late")
        assert files_under(lagging.bucket_path("dst") / "late-landing" / "late") == source


def assert_reads_as_one_line(output: str, exception: str, *parts: str) -> None:
    """
    The task's failure in ``airflow dags test``'s output: one traceback, nothing chained to it, no frame of the
    retry machinery or the transport, and one line naming ``exception`` that holds every one of ``parts``.
    """
    assert output.count("Traceback (most recent call last):") == 1, output
    for chained in ("During handling of the above exception", "The above exception was the direct cause"):
        assert chained not in output, output
    frames = re.findall(r'^  File "([^"]+)", line \d+, in (\w+)$', output, re.MULTILINE)
    internal = [f"{path}:{name}" for path, name in frames if "/tenacity/" in path or path.endswith("/client.py")]
    assert not internal, f"the retry machinery's or the transport's frames are shown: {internal}"
    lines = [line for line in output.splitlines() if line.startswith(f"{exception}: ")]
    assert len(lines) == 1, output
    for part in parts:
        assert part in lines[0], (part, lines[0])


def test_an_unknown_task_fails_once_with_one_readable_line(emulator, airflow):
    """What a newcomer sees in ``airflow dags test`` for a task id that OMS does not know."""
    result = airflow.dags_test(DAG_ID, {"migration_task_id": "123456789012345"})

    assert result.state == "failed", result.output
    assert_reads_as_one_line(
        result.output,
        "airflow_provider_oms.exceptions.OMSRefusedError",
        "OMS migration task 123456789012345 does not exist in this project: check migration_task_id",
        "HTTP 404 OMS.1009",
        "(request id ",
        "Hint: ",
    )


def test_throttling_past_the_retries_reads_as_one_line_without_the_retry_machinery(emulator, airflow, hook):
    task_id = paused_sample_task(emulator, hook, files=1, prefix="throttled/")
    # Every attempt of the operator's first read is throttled (5 by default), each retried at once (Retry-After 0).
    emulator.inject_fault("throttle", path=rf"/tasks/{task_id}$", count=5, retry_after=0)
    result = airflow.dags_test(DAG_ID, {"migration_task_id": task_id})

    assert result.state == "failed", result.output
    assert "attempt 4 of 5 failed (HTTP 429 APIGW.0308)" in result.output
    assert_reads_as_one_line(
        result.output,
        "airflow_provider_oms.exceptions.OMSApiError",
        f"OMS show task {task_id} failed: HTTP 429 APIGW.0308",
        "(request id ",
        "Hint: the API is throttling requests",
    )
