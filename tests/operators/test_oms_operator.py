from __future__ import annotations

import json

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.exceptions import OMSValidationError
from airflow_provider_oms.operators.oms import StartMigrationTaskOperator
from tests.helpers import paused_sample_task, task_context


def test_template_fields_are_the_oms_arguments():
    assert set(StartMigrationTaskOperator.template_fields) == {
        "migration_task_id",
        "migrate_failed_object",
        "oms_conn_id",
        "source_conn_id",
        "destination_conn_id",
    }


def test_constructor_keeps_arguments_as_given_for_templating():
    op = StartMigrationTaskOperator(
        task_id="start", migration_task_id="{{ params.id }}", migrate_failed_object="{{ params.flag }}"
    )
    assert op.migration_task_id == "{{ params.id }}"
    assert op.migrate_failed_object == "{{ params.flag }}"


def test_credentials_are_not_operator_arguments():
    for name in ("src_ak", "src_sk", "dst_ak", "dst_sk", "ak", "sk", "access_key", "secret_key"):
        with pytest.raises(TypeError):
            StartMigrationTaskOperator(task_id="start", migration_task_id="1", **{name: "x"})


@pytest.fixture
def paused_task(make_emulator):
    """An emulator whose task waits 5 s before copying, paused right after creation."""
    emulator, hook = make_emulator(task_start_delay=5)
    task_id = paused_sample_task(emulator, hook)
    emulator.reset_requests()
    return emulator, task_id


@pytest.mark.parametrize("flag", [False, "false", "False", True, "TRUE"])
def test_execute_without_waiting_starts_the_task_and_reads_it_once(paused_task, flag):
    emulator, task_id = paused_task
    op = StartMigrationTaskOperator(
        task_id="start", migration_task_id=task_id, migrate_failed_object=flag, wait_for_completion=False
    )
    result = op.execute(context=task_context())
    assert result["migration_task_id"] == task_id
    assert result["status"] in {TaskStatus.WAITING, TaskStatus.RUNNING, TaskStatus.RETRYING}
    assert result["status_name"] in {"waiting", "running", "retrying"}
    assert result["restarts"] == 0
    json.dumps(result)  # XCom-serializable
    assert [(r.method, r.path.rsplit("/", 1)[-1], r.status) for r in emulator.requests] == [
        ("POST", "start", 200),
        ("GET", task_id, 200),
    ]


@pytest.mark.parametrize("flag", ["yes", "1", "", "None", 1, None])
def test_nonsense_flag_fails_before_any_request(paused_task, flag):
    emulator, task_id = paused_task
    op = StartMigrationTaskOperator(task_id="start", migration_task_id=task_id, migrate_failed_object=flag)
    with pytest.raises(OMSValidationError, match="migrate_failed_object must be a boolean or the string"):
        op.execute(context=task_context())
    assert emulator.requests == []


@pytest.mark.parametrize("bad_id", ["", "1/../2", "12?x=1", "9" * 1025])
def test_bad_task_id_fails_before_any_request(paused_task, bad_id):
    emulator, _ = paused_task
    op = StartMigrationTaskOperator(task_id="start", migration_task_id=bad_id, wait_for_completion=False)
    with pytest.raises(OMSValidationError, match="migration_task_id"):
        op.execute(context=task_context())
    assert emulator.requests == []
