"""MigrationTaskSensor against the local OMS emulator: poke, poke-mode execute, and deferral."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import pytest
from airflow.sdk import PokeReturnValue

try:
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 3.1
    from airflow.exceptions import TaskDeferred  # type: ignore[no-redef,attr-defined]
from airflow.sdk.module_loading import import_string

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.exceptions import OMSError, OMSMigrationError
from airflow_provider_oms.sensors.oms import MigrationTaskSensor
from airflow_provider_oms.testing import EMULATOR_AK, EMULATOR_SK
from airflow_provider_oms.triggers.oms import MigrationTaskTrigger
from airflow_provider_oms.waiting import SUMMARY_FIELDS
from tests.helpers import DOCUMENTED_RESULT_KEYS, create_sample_task

WAIT = 20.0
SECRETS = (EMULATOR_AK, EMULATOR_SK)


@pytest.fixture
def succeeded_task(fast):
    emulator, hook = fast
    task_id = create_sample_task(emulator, hook, files=3)
    emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED}, timeout=WAIT)
    return emulator, task_id


def sensor_for(task_id, **kwargs) -> MigrationTaskSensor:
    return MigrationTaskSensor(task_id="wait_for_copy", migration_task_id=task_id, **kwargs)


def no_secret_in(text: str) -> bool:
    return not any(secret in text for secret in SECRETS)


# -- poke ----------------------------------------------------------------------------------------


def test_poke_is_not_done_while_the_task_waits(make_emulator):
    emulator, hook = make_emulator(task_start_delay=30)
    task_id = create_sample_task(emulator, hook)

    waiting = sensor_for(task_id).poke(context={})

    assert isinstance(waiting, PokeReturnValue)
    assert waiting.is_done is False
    assert not waiting  # falsy while not done: BaseSensorOperator pokes again
    assert waiting.xcom_value["status"] == TaskStatus.WAITING


def test_poke_is_not_done_while_running_then_done_with_the_result(make_emulator):
    emulator, hook = make_emulator(object_delay=0.1)
    task_id = create_sample_task(emulator, hook, files=15)
    sensor = sensor_for(task_id)

    emulator.wait_for_status(task_id, {TaskStatus.RUNNING}, timeout=WAIT)
    running = sensor.poke(context={})
    assert running.is_done is False
    assert running.xcom_value["status"] == TaskStatus.RUNNING

    emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED}, timeout=WAIT)
    done = sensor.poke(context={})
    assert done.is_done is True
    assert done
    value = done.xcom_value
    assert set(value) == DOCUMENTED_RESULT_KEYS  # the sensor's XCom is the operator's result
    assert value["migration_task_id"] == task_id
    assert value["status"] == TaskStatus.SUCCEEDED
    assert value["status_name"] == "succeeded"
    assert (value["total_num"], value["successful_num"], value["failed_num"]) == (15, 15, 0)
    assert json.loads(json.dumps(value)) == value


def test_poke_accepts_an_integer_task_id(succeeded_task):
    _, task_id = succeeded_task
    done = sensor_for(int(task_id)).poke(context={})
    assert done.is_done is True
    assert done.xcom_value["migration_task_id"] == task_id


def test_poke_raises_with_the_oms_reason_on_a_failed_task(failed_task):
    _, task_id = failed_task

    with pytest.raises(OMSMigrationError) as raised:
        sensor_for(task_id).poke(context={})

    message = str(raised.value)
    assert f"OMS migration task {task_id} failed" in message
    assert "TRF.0001" in message
    assert "1 objects failed" in message
    assert "failed_object_lists" in message
    assert no_secret_in(message)
    task = raised.value.task
    assert task["status"] == TaskStatus.FAILED
    assert task["error_reason"]["error_code"] == "TRF.0001"
    assert task["failed_object_record"]["list_file_key"]


def test_poke_raises_on_a_paused_task_when_waiting_for_success(paused_in_oms):
    _, task_id = paused_in_oms

    with pytest.raises(OMSMigrationError, match="is paused and will not become succeeded") as raised:
        sensor_for(task_id).poke(context={})

    assert raised.value.task["status"] == TaskStatus.PAUSED


def test_poke_raises_on_a_succeeded_task_when_waiting_for_paused(succeeded_task):
    _, task_id = succeeded_task
    with pytest.raises(OMSMigrationError, match="is succeeded and will not become paused"):
        sensor_for(task_id, target_statuses=[TaskStatus.PAUSED]).poke(context={})


def test_target_paused_succeeds_on_a_paused_task(paused_in_oms):
    _, task_id = paused_in_oms

    done = sensor_for(task_id, target_statuses=[3]).poke(context={})

    assert done.is_done is True
    assert done.xcom_value["status"] == TaskStatus.PAUSED


def test_custom_failure_status(paused_in_oms):
    _, task_id = paused_in_oms
    with pytest.raises(OMSMigrationError, match=f"OMS migration task {task_id} failed"):
        sensor_for(task_id, failure_statuses=[TaskStatus.PAUSED]).poke(context={})


def test_poke_on_an_unknown_task_raises_the_api_error(fast):
    with pytest.raises(OMSError, match=r"OMS\.1009"):
        sensor_for("99999").poke(context={})


# -- execute in poke mode ------------------------------------------------------------------------


def test_execute_in_poke_mode_returns_the_result_once_succeeded(make_emulator):
    emulator, hook = make_emulator(object_delay=0.1)
    task_id = create_sample_task(emulator, hook, files=4)
    emulator.reset_requests()

    value = sensor_for(task_id, poke_interval=0.1, timeout=WAIT, deferrable=False).execute(context={})

    assert value["status"] == TaskStatus.SUCCEEDED
    assert value["successful_num"] == 4
    polls = [r for r in emulator.requests if r.method == "GET" and r.path.endswith(f"/tasks/{task_id}")]
    assert len(polls) >= 2


def test_execute_in_poke_mode_fails_on_a_failed_task(failed_task):
    _, task_id = failed_task
    with pytest.raises(OMSMigrationError, match=r"TRF\.0001"):
        sensor_for(task_id, poke_interval=0.1, timeout=WAIT, deferrable=False).execute(context={})


# -- deferrable ----------------------------------------------------------------------------------


def test_deferrable_execute_defers_with_the_trigger(make_emulator):
    emulator, hook = make_emulator(task_start_delay=30)
    task_id = create_sample_task(emulator, hook)
    sensor = sensor_for(task_id, deferrable=True, poke_interval=45, timeout=timedelta(minutes=10))

    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context={})
    after = time.time()

    assert deferred.value.method_name == "execute_complete"
    trigger = deferred.value.trigger
    assert isinstance(trigger, MigrationTaskTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_oms.triggers.oms.MigrationTaskTrigger"
    assert kwargs["migration_task_id"] == task_id
    assert kwargs["oms_conn_id"] == "huaweicloud_oms_default"
    assert kwargs["poll_interval"] == 45.0
    assert before + 600 <= kwargs["deadline"] <= after + 600
    assert kwargs["target_statuses"] == [TaskStatus.SUCCEEDED]
    assert kwargs["failure_statuses"] == [TaskStatus.FAILED]
    dumped = json.dumps(kwargs)
    assert no_secret_in(dumped)
    assert no_secret_in(repr(trigger))
    # Deferring does not start, stop or change the task.
    assert [r.method for r in emulator.requests if task_id in r.path] == ["GET"]
    assert emulator.get_task(task_id)["status"] == TaskStatus.WAITING


def test_deferrable_passes_custom_statuses_and_conn(make_emulator, oms_conn):
    emulator, hook = make_emulator(task_start_delay=30)
    task_id = create_sample_task(emulator, hook)
    sensor = sensor_for(
        task_id,
        oms_conn_id=oms_conn,
        deferrable=True,
        target_statuses={TaskStatus.PAUSED},
        failure_statuses=[TaskStatus.FAILED, TaskStatus.SUCCEEDED],
    )

    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context={})

    _, kwargs = deferred.value.trigger.serialize()
    assert kwargs["target_statuses"] == [3]
    assert sorted(kwargs["failure_statuses"]) == [4, 5]
    # The sensor's default timeout (7 days unless configured) still gives a deadline.
    assert kwargs["deadline"] == pytest.approx(time.time() + sensor.timeout, abs=60)


def test_deferrable_execute_on_a_succeeded_task_returns_without_deferring(succeeded_task):
    _, task_id = succeeded_task

    value = sensor_for(task_id, deferrable=True).execute(context={})

    assert set(value) == DOCUMENTED_RESULT_KEYS  # the sensor's XCom is the operator's result
    assert value["status"] == TaskStatus.SUCCEEDED
    assert value["successful_num"] == 3


def test_deferrable_execute_on_a_failed_task_raises_without_deferring(failed_task):
    _, task_id = failed_task
    with pytest.raises(OMSMigrationError, match=r"TRF\.0001"):
        sensor_for(task_id, deferrable=True).execute(context={})


def test_deferral_round_trip_through_the_real_trigger(make_emulator):
    emulator, hook = make_emulator(object_delay=0.1)
    task_id = create_sample_task(emulator, hook, files=4)
    sensor = sensor_for(task_id, deferrable=True, poke_interval=0.1, timeout=WAIT)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context={})
    classpath, kwargs = deferred.value.trigger.serialize()
    trigger_class = import_string(classpath)  # as the triggerer rebuilds it from the database

    async def run():
        return [event async for event in trigger_class(**kwargs).run()]

    events = asyncio.run(asyncio.wait_for(run(), WAIT))
    assert len(events) == 1

    value = getattr(sensor, deferred.value.method_name)(context={}, event=events[0].payload)

    assert value["status"] == TaskStatus.SUCCEEDED
    assert value["successful_num"] == 4


# -- execute_complete ----------------------------------------------------------------------------


def summary(**fields) -> dict:
    task = dict.fromkeys(SUMMARY_FIELDS)
    task.update(fields)
    return task


def event(status: str, task: dict | None = None, message: str = "") -> dict:
    return {
        "status": status,
        "migration_task_id": "77",
        "task": task,
        "message": message,
        "restarts": 0,
        "started_at": None,
    }


def test_execute_complete_success_returns_the_result():
    task = summary(status=5, total_num=3, successful_num=3, failed_num=0, skipped_num=0, progress=1.0)

    value = sensor_for("77").execute_complete(context={}, event=event("success", task))

    assert set(value) == DOCUMENTED_RESULT_KEYS  # the sensor's XCom is the operator's result
    assert value["migration_task_id"] == "77"
    assert value["status"] == 5
    assert value["status_name"] == "succeeded"
    assert value["successful_num"] == 3
    json.dumps(value)


def test_execute_complete_success_with_a_custom_target():
    value = sensor_for("77", target_statuses=[3]).execute_complete(
        context={}, event=event("success", summary(status=3))
    )
    assert value["status"] == 3


def test_execute_complete_failed_raises_with_the_reason():
    task = summary(
        status=4,
        failed_num=2,
        error_reason={"error_code": "TRF.0001", "error_msg": "2 objects failed to migrate."},
        failed_object_record={"result": True, "list_file_key": "oms/failed/1.txt", "error_code": ""},
    )

    with pytest.raises(OMSMigrationError) as raised:
        sensor_for("77").execute_complete(context={}, event=event("failed", task))

    message = str(raised.value)
    assert message.startswith("OMS migration task 77 failed: TRF.0001")
    assert "2 objects failed" in message
    assert "oms/failed/1.txt" in message
    assert raised.value.task["error_reason"]["error_code"] == "TRF.0001"


def test_execute_complete_stuck_raises():
    with pytest.raises(OMSMigrationError, match="77 is paused and will not become succeeded"):
        sensor_for("77").execute_complete(context={}, event=event("stuck", summary(status=3)))


def test_execute_complete_timeout_raises_with_the_last_progress():
    task = summary(status=2, total_num=10, successful_num=4)

    with pytest.raises(OMSMigrationError, match="did not reach the awaited status") as raised:
        sensor_for("77").execute_complete(context={}, event=event("timeout", task))

    assert "77" in str(raised.value)
    assert raised.value.task["status"] == 2
    assert raised.value.task["successful_num"] == 4


def test_execute_complete_error_raises_with_the_message():
    message = "OMS show task 77 failed: HTTP 404 OMS.1009: The task does not exist."

    with pytest.raises(OMSError) as raised:
        sensor_for("77").execute_complete(context={}, event=event("error", None, message))

    assert not isinstance(raised.value, OMSMigrationError)
    assert "77" in str(raised.value)
    assert "OMS.1009" in str(raised.value)


def test_execute_complete_unknown_status_raises():
    with pytest.raises(OMSMigrationError, match="unknown"):
        sensor_for("77").execute_complete(context={}, event=event("unknown", summary(status=42)))
