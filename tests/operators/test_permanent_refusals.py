"""
Refusals that a retry cannot change fail the Airflow task once (``AirflowFailException``), judged from the task
read back, not from the refusal's error code; what may change later is left for Airflow to retry. Against the
emulator over HTTP; nothing is mocked.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.exceptions import OMSApiError, OMSMigrationError, OMSRefusedError
from airflow_provider_oms.operators.lifecycle import (
    CreateMigrationTaskOperator,
    DeleteMigrationTaskOperator,
    StopMigrationTaskOperator,
)
from airflow_provider_oms.version_compat import AirflowFailException
from tests.helpers import create_sample_task, paused_sample_task, running_sample_task, start_operator
from tests.operators.deferral import retry_context

WAIT = 20.0


def start_requests(emulator) -> int:
    return sum(1 for r in emulator.requests if r.method == "POST" and r.path.endswith("/start"))


def finished_yesterday(emulator, hook) -> tuple[str, dict]:
    """A task that succeeded; the DAG run starting it again began a day later."""
    task_id = create_sample_task(emulator, hook, files=2)
    emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED}, timeout=WAIT)
    emulator.reset_requests()
    return task_id, retry_context(try_number=1, dag_run_started=datetime.now(timezone.utc) + timedelta(days=1))


@pytest.mark.parametrize("try_number", [1, 2])
def test_a_task_finished_before_this_run_fails_once_naming_the_recipe(make_emulator, try_number):
    emulator, hook = make_emulator(task_start_delay=0.2)
    task_id, context = finished_yesterday(emulator, hook)
    context["ti"].try_number = try_number

    with pytest.raises(OMSRefusedError) as raised:
        start_operator(task_id).execute(context=context)

    assert isinstance(raised.value, AirflowFailException), "Airflow must not retry it"
    message = str(raised.value)
    assert "already succeeded" in message and "before this DAG run" in message
    assert "CreateMigrationTaskOperator with migrate_since" in message
    assert "A pipeline that runs on a schedule" in message
    assert raised.value.error_code == "OMS.0067" and raised.value.http_status == 400  # OMS's refusal kept
    assert start_requests(emulator) == 1


def test_the_judgement_is_the_status_read_back_not_the_error_code(make_emulator):
    """A refusal without OMS's code for "finished" (a 400 page from a gateway here): the task read back decides."""
    emulator, hook = make_emulator(task_start_delay=0.2)
    task_id, context = finished_yesterday(emulator, hook)
    emulator.inject_fault("html", path=r"/start$", status=400)

    with pytest.raises(OMSRefusedError, match="already succeeded"):
        start_operator(task_id).execute(context=context)
    assert start_requests(emulator) == 1


def test_a_task_started_outside_this_airflow_task_fails_once(make_emulator):
    emulator, hook = make_emulator(task_start_delay=0.2, object_delay=0.5)
    task_id = running_sample_task(emulator, hook, files=20)

    with pytest.raises(OMSRefusedError, match="already running, started outside this Airflow task"):
        start_operator(task_id).execute(context=retry_context(try_number=1))
    hook.stop_task(task_id)


def test_a_task_that_does_not_exist_fails_once(make_emulator):
    make_emulator()

    with pytest.raises(OMSRefusedError, match="does not exist in this project"):
        start_operator("999999").execute(context=retry_context(try_number=1))


def test_an_unreachable_oms_is_left_to_airflows_retries(make_emulator, monkeypatch, oms_conn):
    emulator, hook = make_emulator(task_start_delay=0.2)
    task_id = paused_sample_task(emulator, hook, files=2)
    conn = json.loads(emulator.airflow_connection_uri_env())
    conn["extra"].update(retry_max_attempts=2, retry_base_wait=0.1, retry_max_wait=0.2)
    monkeypatch.setenv(f"AIRFLOW_CONN_{oms_conn.upper()}", json.dumps(conn))
    emulator.inject_fault("error", path=r"/start$", status=503, count=2)

    with pytest.raises(OMSApiError) as raised:
        start_operator(task_id).execute(context=retry_context(try_number=1))
    assert not isinstance(raised.value, AirflowFailException)


def test_a_create_refused_as_invalid_fails_once(make_emulator):
    """A definition OMS refuses as invalid (OMS.0064): nothing was created, a retry would be refused too."""
    emulator, _ = make_emulator()
    definition = {
        "task_type": "prefix",
        "src_node": {"cloud_type": "AWS", "region": "local", "bucket": "src", "object_key": ["data/"]},
        "dst_node": {"region": "local", "bucket": "Not_A_Bucket", "save_prefix": "in/"},
    }
    operator = CreateMigrationTaskOperator(task_id="create", task_definition=definition, source_conn_id=None)

    with pytest.raises(OMSRefusedError, match=r"refused to create the migration task.*OMS\.0064") as raised:
        operator.execute(context=retry_context(try_number=1))
    assert isinstance(raised.value, AirflowFailException)
    assert emulator.applied_creates == 0


def test_stopping_a_finished_task_fails_once(make_emulator):
    emulator, hook = make_emulator(task_start_delay=0.2)
    task_id = create_sample_task(emulator, hook, files=1)
    emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED}, timeout=WAIT)

    with pytest.raises(OMSRefusedError, match="has succeeded and cannot be paused any more"):
        StopMigrationTaskOperator(task_id="stop", migration_task_id=task_id).execute(context={})


def test_stopping_or_deleting_a_task_that_does_not_exist(make_emulator):
    make_emulator()

    with pytest.raises(OMSRefusedError, match="does not exist"):
        StopMigrationTaskOperator(task_id="stop", migration_task_id="999999").execute(context={})
    DeleteMigrationTaskOperator(task_id="delete", migration_task_id="999999").execute(context={})  # gone: done


def test_deleting_a_task_in_progress_is_left_to_airflows_retries(make_emulator):
    """OMS refuses to delete a running task; once it has ended, a retry can delete it."""
    emulator, hook = make_emulator(task_start_delay=0.2, object_delay=0.5)
    task_id = running_sample_task(emulator, hook, files=20)

    with pytest.raises(OMSApiError, match=r"OMS\.0063") as raised:
        DeleteMigrationTaskOperator(task_id="delete", migration_task_id=task_id).execute(context={})
    assert not isinstance(raised.value, AirflowFailException)
    hook.stop_task(task_id)


@pytest.mark.parametrize(("retry_failed_objects", "final"), [(1, True), (0, False)])
def test_a_migration_that_fails_for_good(make_emulator, retry_failed_objects, final):
    """
    With retry_failed_objects, the restarts for failed objects were the wait's retries: once they are spent,
    Airflow does not repeat the migration. Without it, Airflow's retries start the task again (as documented).
    """
    emulator, hook = make_emulator(task_start_delay=0.2)
    task_id = paused_sample_task(emulator, hook, files=2)
    emulator.add_fail_rule("data/f1.txt")  # fails every time

    with pytest.raises(OMSMigrationError, match="1 objects failed") as raised:
        start_operator(task_id, retry_failed_objects=retry_failed_objects).execute(context=retry_context(try_number=1))

    assert isinstance(raised.value, AirflowFailException) is final
    if final:
        assert "Not retried by Airflow: retry_failed_objects (1) is spent" in str(raised.value)
