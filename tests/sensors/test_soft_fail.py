"""``soft_fail`` on the sensors: the same OMS outcome gives the same task state in poke, reschedule and deferrable
mode. A failed or stuck task skips; an error reaching OMS fails in every mode."""

from __future__ import annotations

from unittest import mock

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.exceptions import AirflowSkipException, OMSError, OMSMigrationError
from airflow_provider_oms.sensors.oms import MigrationTaskGroupSensor, MigrationTaskSensor
from tests.helpers import running_sample_task
from tests.operators.deferral import TaskDeferred, rebuilt, run_trigger

WAIT = 20.0
MODES = ["poke", "reschedule", "deferrable"]


def outcome_of(sensor: MigrationTaskSensor) -> BaseException:
    """Run the sensor as Airflow would in its mode and return what it raised."""
    try:
        if not sensor.deferrable:
            # One poke is all it takes here: the task has already ended. BaseSensorOperator.execute runs it.
            ti = mock.Mock()
            ti.get_first_reschedule_date.return_value = None  # reschedule mode: the first poke
            sensor.execute(context={"ti": ti})
            raise AssertionError("the sensor should not have succeeded")
        try:
            sensor.execute(context={})
        except TaskDeferred as deferred:
            payload = run_trigger(rebuilt(deferred))
            sensor.resume_execution(deferred.method_name, {"event": payload}, context={})
        raise AssertionError("the sensor should not have succeeded")
    except (AirflowSkipException, OMSError) as err:
        return err


def sensor_for(task_id: str, mode: str, **kwargs) -> MigrationTaskSensor:
    if mode == "deferrable":
        kwargs["deferrable"] = True
    else:
        kwargs["mode"] = mode
    return MigrationTaskSensor(task_id="watch", migration_task_id=task_id, poke_interval=0.1, timeout=WAIT, **kwargs)


@pytest.fixture
def running_task(make_emulator):
    emulator, hook = make_emulator(object_delay=0.3)
    task_id = running_sample_task(emulator, hook, files=4)
    return emulator, task_id


@pytest.mark.parametrize("mode", MODES)
def test_a_failed_task_skips_the_sensor_with_soft_fail_in_every_mode(failed_task, mode):
    _, task_id = failed_task
    error = outcome_of(sensor_for(task_id, mode, soft_fail=True))
    assert isinstance(error, AirflowSkipException), error
    assert f"OMS migration task {task_id} failed" in str(error)


@pytest.mark.parametrize("mode", MODES)
def test_a_failed_task_fails_the_sensor_without_soft_fail_in_every_mode(failed_task, mode):
    _, task_id = failed_task
    error = outcome_of(sensor_for(task_id, mode))
    assert isinstance(error, OMSMigrationError), error


@pytest.mark.parametrize("mode", MODES)
def test_a_paused_task_skips_the_sensor_with_soft_fail_in_every_mode(running_task, mode):
    emulator, task_id = running_task
    emulator.pause_task(task_id)
    emulator.wait_for_status(task_id, {TaskStatus.PAUSED}, timeout=WAIT)

    error = outcome_of(sensor_for(task_id, mode, soft_fail=True))

    assert isinstance(error, AirflowSkipException), error
    assert "is paused and will not become succeeded by itself" in str(error)


@pytest.mark.parametrize("mode", MODES)
def test_an_error_reaching_oms_fails_even_with_soft_fail_in_every_mode(running_task, mode):
    emulator, task_id = running_task
    sensor = sensor_for(task_id, mode, soft_fail=True)
    if mode == "deferrable":
        # The first read (in the worker) goes through; the trigger's reads meet a lasting 404.
        with pytest.raises(TaskDeferred) as deferred:
            sensor.execute(context={})
        emulator.inject_fault("html", status=404, count=1000)
        payload = run_trigger(rebuilt(deferred.value))
        with pytest.raises(OMSError) as err:
            sensor.resume_execution(deferred.value.method_name, {"event": payload}, context={})
        error: BaseException = err.value
    else:
        emulator.inject_fault("html", status=404, count=1000)
        error = outcome_of(sensor)
    assert not isinstance(error, AirflowSkipException), error
    assert not isinstance(error, OMSMigrationError)
    assert "404" in str(error)


def test_a_failed_group_skips_the_group_sensor_with_soft_fail(fast):
    emulator, hook = fast
    emulator.add_fail_rule("a/*")
    body = {
        "task_type": "PREFIX",
        "src_node": {"region": "r", "bucket": "src", "object_key": ["a/"], "ak": "SRC-AK", "sk": "SRC-SK"},
        "dst_node": {"region": "r", "bucket": "dst", "save_prefix": "", "ak": "DST-AK", "sk": "DST-SK"},
    }
    from tests.helpers import write_objects

    write_objects(emulator.bucket_path("src"), ["a/x.txt"])
    emulator.bucket_path("dst")
    group_id = hook.create_task_group(body)["group_id"]
    emulator.wait_for_group_status(group_id, {5}, timeout=WAIT)

    with pytest.raises(AirflowSkipException, match="migration failed"):
        MigrationTaskGroupSensor(task_id="g", group_id=group_id, soft_fail=True, poke_interval=0.1).execute({})
    with pytest.raises(OMSMigrationError, match="migration failed"):
        MigrationTaskGroupSensor(task_id="g", group_id=group_id, poke_interval=0.1).execute({})
