"""
The same OMS outage in the three sensor modes: poke, reschedule and deferrable each wait an outage shorter than the
connection's ``outage_tolerance`` out and succeed, and fail past it, saying since when OMS was unreachable.

The outage (every call answered 503) begins once the sensor has read the task twice, so it has reached OMS. The
reschedule mode is driven as Airflow's task runner drives it: each poke is a new sensor object (a new process
keeps nothing), its context carries ``task_reschedule_count`` and a task instance that gives the first
reschedule's date, and an ``AirflowRescheduleException`` is slept out until its date. (A real ``airflow dags
test`` costs ~30 s a run: tests/e2e/test_waiting_dags.py runs the reschedule DAG there.)
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from unittest import mock

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.exceptions import AirflowSensorTimeout, OMSError
from airflow_provider_oms.sensors.oms import MigrationTaskSensor
from tests.helpers import running_sample_task
from tests.operators.deferral import run_operator

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import AirflowRescheduleException
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowRescheduleException

MODES = ["poke", "reschedule", "deferrable"]
OUTAGE = 2.0
UNREACHABLE = r"OMS was unreachable since 20\d\d-\d\d-\d\dT[^ ]+ \(\d+s\), longer than the connection's"


@pytest.fixture
def watched(make_emulator, monkeypatch, oms_conn):
    """A running migration of ~4 s, and a connection that gives one read up fast: watched(tolerance)."""

    def make(tolerance: float):
        emulator, hook = make_emulator(object_delay=0.4)
        conn = json.loads(emulator.airflow_connection_uri_env())
        conn["extra"].update(retry_max_attempts=2, retry_base_wait=0.1, retry_max_wait=0.2, outage_tolerance=tolerance)
        monkeypatch.setenv(f"AIRFLOW_CONN_{oms_conn.upper()}", json.dumps(conn))
        task_id = running_sample_task(emulator, hook, files=10)
        emulator.reset_requests()
        return emulator, task_id

    return make


def outage_after_two_reads(emulator, task_id: str, seconds: float) -> threading.Thread:
    """From the sensor's second read of the task on, OMS answers 503 to everything for ``seconds``."""

    def watch() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if sum(r.method == "GET" and r.path.endswith(f"/tasks/{task_id}") for r in emulator.requests) >= 2:
                emulator.inject_fault("error", status=503, seconds=seconds)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def run_rescheduled(make_sensor) -> object:
    """Run a reschedule-mode sensor to its end as Airflow does: a new sensor object for each poke."""
    first: datetime | None = None
    count = 0
    while True:
        ti = mock.Mock()
        ti.get_first_reschedule_date.return_value = first
        began = datetime.now(timezone.utc)
        try:
            return make_sensor().execute(context={"ti": ti, "task_reschedule_count": count})
        except AirflowRescheduleException as reschedule:
            first, count = first or began, count + 1
            time.sleep(max(0.0, (reschedule.reschedule_date - datetime.now(timezone.utc)).total_seconds()))


def run_sensor(task_id: str, mode: str):
    def make() -> MigrationTaskSensor:
        options = {"deferrable": True} if mode == "deferrable" else {"mode": mode}
        return MigrationTaskSensor(task_id="watch", migration_task_id=task_id, poke_interval=0.3, timeout=30, **options)

    if mode == "reschedule":
        return run_rescheduled(make)
    return run_operator(make(), context={"ti": mock.Mock()}, timeout=30)


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_waits_a_short_outage_out(watched, mode):
    emulator, task_id = watched(tolerance=10)
    outage = outage_after_two_reads(emulator, task_id, OUTAGE)

    started = time.monotonic()
    result = run_sensor(task_id, mode)

    outage.join()
    assert (result["status"], result["successful_num"]) == (TaskStatus.SUCCEEDED, 10)
    failed_reads = sum(r.status == 503 for r in emulator.requests)
    assert failed_reads >= 2, f"{mode}: the outage should have failed at least one read for good"
    assert time.monotonic() - started >= OUTAGE


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_fails_an_outage_longer_than_the_tolerance(watched, mode):
    emulator, task_id = watched(tolerance=1)
    outage = outage_after_two_reads(emulator, task_id, 30)

    started = time.monotonic()
    with pytest.raises(OMSError, match=UNREACHABLE + " outage_tolerance of 1 s"):
        run_sensor(task_id, mode)

    outage.join()
    emulator.clear_faults()
    assert time.monotonic() - started < 15


def test_a_rescheduled_sensor_whose_first_poke_cannot_reach_oms_fails_at_once(watched):
    emulator, task_id = watched(tolerance=60)
    emulator.inject_fault("error", status=503, seconds=30)
    started = time.monotonic()
    with pytest.raises(OMSError, match="HTTP 503"):
        run_sensor(task_id, "reschedule")  # most likely a wrong endpoint: no reason to wait 60 s
    emulator.clear_faults()
    assert time.monotonic() - started < 5


def test_the_sensor_timeout_still_bounds_a_rescheduled_wait_through_an_outage(watched):
    emulator, task_id = watched(tolerance=60)
    outage_after_two_reads(emulator, task_id, 30).join(timeout=0)

    def make() -> MigrationTaskSensor:
        return MigrationTaskSensor(
            task_id="watch", migration_task_id=task_id, poke_interval=0.3, timeout=2, mode="reschedule"
        )

    started = time.monotonic()
    with pytest.raises(AirflowSensorTimeout):
        run_rescheduled(make)
    emulator.clear_faults()
    assert time.monotonic() - started < 6
