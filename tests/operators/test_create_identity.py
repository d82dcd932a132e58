"""
How CreateMigrationTaskOperator knows its own work: a retry finds its earlier try's task among any number of
tasks, a clear (also of a running task instance) creates anew. Against the emulator over real HTTP.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from airflow_provider_oms.operators.lifecycle import CreateMigrationTaskOperator
from airflow_provider_oms.operators.markers import dag_marker, run_marker

DEFINITION = {
    "task_type": "prefix",
    "src_node": {"region": "local", "bucket": "src", "cloud_type": "AWS", "object_key": ["data/"]},
    "dst_node": {"region": "local", "bucket": "dst", "save_prefix": "in/"},
}
KEYS = {"ak": "EMULATED-AK", "sk": "EMULATED-SK"}
BODY = {**DEFINITION, "src_node": {**DEFINITION["src_node"], **KEYS}, "dst_node": {**DEFINITION["dst_node"], **KEYS}}
RETRIES = 2


def context(*, try_number: int, max_tries: int = RETRIES, clear_number: int = 0, started: datetime | None = None):
    """
    What a try of task ``create`` in DAG ``nightly`` sees: its task instance (try number, max_tries) and the DAG
    run (start, clear_number), as the task runner gives them.
    """
    ti = SimpleNamespace(
        dag_id="nightly", run_id="scheduled__2026-12-01", task_id="create", map_index=-1, try_number=try_number
    )
    ti.max_tries = max_tries
    dag_run = SimpleNamespace(start_date=started or datetime.now(timezone.utc), clear_number=clear_number)
    return {"ti": ti, "dag_run": dag_run}


def create(ctx: dict) -> dict:
    return CreateMigrationTaskOperator(
        task_id="create", task_definition=DEFINITION, source_conn_id="src", retries=RETRIES
    ).execute(ctx)


@pytest.fixture
def emulator(emulator_with_source):
    return emulator_with_source(["data/a.txt"], task_start_delay=600)  # tasks stay waiting: nothing to copy


def list_requests(emulator) -> int:
    return sum(1 for r in emulator.requests if r.method == "GET" and r.path.endswith("/tasks"))


def test_the_marker_names_the_dag_in_a_part_of_its_own():
    marker = run_marker(context(try_number=1))
    assert marker.startswith(f"airflow-{dag_marker('nightly')}-")
    assert len(marker) == len("airflow-") + 12 + 1 + 16
    assert dag_marker("nightly") != dag_marker("nightly2")


def test_a_retry_finds_its_earlier_tries_task_behind_more_than_a_thousand_newer_ones(emulator):
    started = datetime.now(timezone.utc)
    first = create(context(try_number=1, started=started))
    # Other DAGs' tasks created since, all of this night: the earlier try's task is the 1,201st in the list.
    emulator.add_finished_tasks({**BODY, "description": "other airflow-0123456789ab-0123456789abcdef"}, 1200)

    retried = create(context(try_number=2, started=started))

    assert retried == {**first, "reused": True}
    assert emulator.applied_creates == 1, "the retry created a duplicate"
    assert list_requests(emulator) == 13


def test_a_retry_stops_reading_at_tasks_that_started_before_the_dag_run(emulator):
    old = emulator.add_finished_tasks({**BODY, "description": "last month"}, 1000)
    for task_id in old:
        emulator.backdate_task(task_id, 30 * 24 * 3600)
    emulator.add_finished_tasks({**BODY, "description": "tonight, another DAG"}, 50)
    emulator.reset_requests()

    # The earlier try died before its create reached OMS: nothing of it in the list, so the retry creates.
    retried = create(context(try_number=2, started=datetime.now(timezone.utc) - timedelta(minutes=5)))

    assert retried["reused"] is False
    # Page 1: 50 of tonight and 50 of last month; page 2: all of last month, where the reading stops.
    assert list_requests(emulator) == 2


def test_a_retry_finds_a_task_with_the_marker_of_earlier_versions(emulator):
    key = "nightly/scheduled__2026-12-01/create/-1"  # the marker before the DAG part: 16 hex digits of this
    legacy = "airflow-" + hashlib.sha256(key.encode()).hexdigest()[:16]
    [task_id] = emulator.add_finished_tasks({**BODY, "description": f"nightly export {legacy}"})

    retried = create(context(try_number=2))

    assert retried["migration_task_id"] == str(task_id)
    assert retried["reused"] is True


def test_clearing_a_running_create_creates_anew_while_a_retry_after_a_failure_reuses(emulator):
    first = create(context(try_number=1))
    # Try 1 is cleared while running: Airflow marks it restarting and, when the try ends failed (a lost worker,
    # a heartbeat timeout), retries it without raising max_tries; the clear raised the run's clear_number.
    cleared = create(context(try_number=2, clear_number=1))
    assert cleared["reused"] is False, "the cleared task resumed the old OMS task"
    assert cleared["migration_task_id"] != first["migration_task_id"]
    # Try 2 dies after its create; its retry, try 3 of the same clear, finds try 2's task.
    retried = create(context(try_number=3, clear_number=1))
    assert retried == {**cleared, "reused": True}
    assert emulator.applied_creates == 2


def test_clearing_a_finished_create_creates_anew_also_when_the_run_is_not_reset(emulator):
    first = create(context(try_number=1))
    # A clear without resetting the DAG run (clear_number unchanged) still raises max_tries to try + retries.
    cleared = create(context(try_number=2, max_tries=1 + RETRIES))
    assert cleared["reused"] is False
    assert cleared["migration_task_id"] != first["migration_task_id"]
