"""
An OMS outage while a migration is awaited: the waits (worker, trigger, poking sensor) go on through an outage
shorter than the connection's ``outage_tolerance`` and fail, saying since when OMS was unreachable, past it.
The emulator answers 503 to every call for a number of seconds (``inject_fault(..., seconds=...)``).
"""

from __future__ import annotations

import json
import time

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.exceptions import OMSApiError, OMSError
from airflow_provider_oms.operators.oms import StartMigrationTaskOperator
from airflow_provider_oms.sensors.oms import MigrationTaskSensor
from tests.helpers import DEFERRABLE_MODES, create_sample_task, paused_sample_task, start_operator
from tests.operators.deferral import retry_context, run_operator

UNREACHABLE = (
    r"OMS was unreachable since 20\d\d-\d\d-\d\dT[^ ]+ \(\d+s\), longer than the connection's outage_tolerance"
)


@pytest.fixture
def outage_emulator(make_emulator, monkeypatch, oms_conn):
    """An emulator whose tasks take ~3 s, a connection that gives one call up fast, and a task on it."""

    def make(tolerance: float, *, paused: bool = True):
        emulator, hook = make_emulator(task_start_delay=0.5, object_delay=0.3)
        conn = json.loads(emulator.airflow_connection_uri_env())
        conn["extra"].update(retry_max_attempts=2, retry_base_wait=0.1, retry_max_wait=0.2, outage_tolerance=tolerance)
        monkeypatch.setenv(f"AIRFLOW_CONN_{oms_conn.upper()}", json.dumps(conn))
        new_task = paused_sample_task if paused else create_sample_task
        task_id = new_task(emulator, hook, files=10)
        emulator.reset_requests()
        return emulator, task_id

    return make


def down_after_the_start(operator: StartMigrationTaskOperator, emulator, seconds: float) -> None:
    """Make OMS answer 503 to everything for ``seconds`` from the moment the operator's start reached it."""
    start = operator.hook.start_task

    def start_then_go_down(task_id, body):
        start(task_id, body)
        emulator.inject_fault("error", status=503, seconds=seconds)

    operator.hook.start_task = start_then_go_down  # type: ignore[method-assign]


@DEFERRABLE_MODES
def test_a_wait_goes_on_through_an_outage_shorter_than_the_tolerance(outage_emulator, deferrable):
    emulator, task_id = outage_emulator(tolerance=30)
    operator = start_operator(task_id, deferrable=deferrable)
    down_after_the_start(operator, emulator, seconds=4)

    started = time.monotonic()
    result = run_operator(operator, retry_context(try_number=1))

    assert (result["status"], result["successful_num"]) == (TaskStatus.SUCCEEDED, 10)
    assert time.monotonic() - started >= 4
    assert sum(r.status == 503 for r in emulator.requests) >= 4, "the wait should have met the outage several times"
    assert emulator.applied_starts == 1


@DEFERRABLE_MODES
def test_a_wait_fails_past_the_tolerance_saying_since_when(outage_emulator, deferrable):
    emulator, task_id = outage_emulator(tolerance=3)
    operator = start_operator(task_id, deferrable=deferrable)
    down_after_the_start(operator, emulator, seconds=120)

    started = time.monotonic()
    with pytest.raises(OMSError, match=UNREACHABLE + r" of 3 s; last error: .*503") as err:
        run_operator(operator, retry_context(try_number=1))

    assert 3 <= time.monotonic() - started < 30
    assert "APIGW.0202" in str(err.value)
    emulator.clear_faults()
    assert not any(r.path.endswith("/stop") for r in emulator.requests), "an outage must not pause the migration"


def test_a_poking_sensor_goes_on_through_a_short_outage_and_fails_past_the_tolerance(outage_emulator):
    emulator, task_id = outage_emulator(tolerance=3, paused=False)
    sensor = MigrationTaskSensor(task_id="watch", migration_task_id=task_id, poke_interval=0.5, timeout=60)
    assert sensor.poke(context={}).is_done is False  # OMS reached: from now on an outage is waited out

    emulator.inject_fault("error", status=503, seconds=1.5)
    assert sensor.poke(context={}).is_done is False  # the read failed: not yet, the wait goes on
    time.sleep(1.6)
    sensor.poke(context={})  # OMS answers again

    emulator.inject_fault("error", status=503, seconds=120)
    started = time.monotonic()
    with pytest.raises(OMSApiError, match=UNREACHABLE + r" of 3 s"):
        while time.monotonic() - started < 30:
            assert sensor.poke(context={}).is_done is False
            time.sleep(0.5)
    emulator.clear_faults()


def test_a_poking_sensor_that_never_reached_oms_fails_at_once(outage_emulator):
    emulator, task_id = outage_emulator(tolerance=60, paused=False)
    emulator.inject_fault("error", status=503, seconds=30)
    sensor = MigrationTaskSensor(task_id="watch", migration_task_id=task_id, poke_interval=0.5, timeout=60)
    with pytest.raises(OMSApiError, match="503"):
        sensor.poke(context={})  # most likely a wrong endpoint: no reason to wait 60 s
    emulator.clear_faults()
