"""DAGs the end-to-end tests run with `airflow dags test`: each waits for an OMS task in another way."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_provider_oms.operators.oms import StartMigrationTaskOperator
from airflow_provider_oms.sensors.oms import MigrationTaskSensor

PARAMS = {
    "migration_task_id": Param("", type=["string", "integer"]),
    "migrate_failed_object": Param(False, type=["boolean", "string"]),
}


def start_dag(dag_id: str, **operator_kwargs) -> DAG:
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, params=PARAMS) as dag:
        StartMigrationTaskOperator(
            task_id="start_migration",
            migration_task_id="{{ params.migration_task_id }}",
            migrate_failed_object="{{ params.migrate_failed_object }}",
            poll_interval=1,
            **operator_kwargs,
        )
    return dag


def sensor_dag(dag_id: str, **sensor_kwargs) -> DAG:
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, params=PARAMS) as dag:
        MigrationTaskSensor(
            task_id="wait_for_migration",
            migration_task_id="{{ params.migration_task_id }}",
            poke_interval=1,
            timeout=120,
            **sensor_kwargs,
        )
    return dag


wait_sync = start_dag("oms_test_wait_sync")
wait_deferrable = start_dag("oms_test_wait_deferrable", deferrable=True)
retry_sync = start_dag("oms_test_retry_sync", retry_failed_objects=2)
retry_deferrable = start_dag("oms_test_retry_deferrable", retry_failed_objects=2, deferrable=True)
timeout_sync = start_dag("oms_test_timeout_sync", timeout=3)
timeout_deferrable = start_dag("oms_test_timeout_deferrable", timeout=3, deferrable=True)
sensor_poke = sensor_dag("oms_test_sensor_poke", mode="poke")
sensor_reschedule = sensor_dag("oms_test_sensor_reschedule", mode="reschedule")
sensor_deferrable = sensor_dag("oms_test_sensor_deferrable", deferrable=True)
exec_timeout_sync = start_dag("oms_test_exec_timeout_sync", execution_timeout=timedelta(seconds=4))
exec_timeout_deferrable = start_dag(
    "oms_test_exec_timeout_deferrable", execution_timeout=timedelta(seconds=4), deferrable=True
)
exec_timeout_sync_keep = start_dag(
    "oms_test_exec_timeout_sync_keep", execution_timeout=timedelta(seconds=4), cancel_on_kill=False
)
exec_timeout_deferrable_keep = start_dag(
    "oms_test_exec_timeout_deferrable_keep",
    execution_timeout=timedelta(seconds=4),
    deferrable=True,
    cancel_on_kill=False,
)
# A nightly start of one task, as a README reader might write it: it has retries, which must not be spent on a
# refusal that no retry can change (the task finished on an earlier night).
nightly_start = start_dag("oms_test_nightly_start", retries=2, retry_delay=timedelta(seconds=1))
