"""DAGs the lineage tests run with `airflow dags test`: a declared Asset and an AssetAlias on each operator."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Asset, AssetAlias, Param

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.operators.lifecycle import (
    CreateMigrationTaskOperator,
    DeleteMigrationTaskOperator,
    StopMigrationTaskOperator,
)
from airflow_provider_oms.operators.oms import StartMigrationTaskOperator
from airflow_provider_oms.sensors.oms import MigrationTaskSensor

PARAMS = {"migration_task_id": Param("", type=["string", "integer"]), "prefix": Param("data/", type="string")}
#: The destination the tests' tasks copy to (bucket dst, save_prefix in/), as a DAG author declares it.
DESTINATION = Asset("obs://dst/in/")


def start_dag(dag_id: str, **kwargs) -> DAG:
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, params=PARAMS) as dag:
        StartMigrationTaskOperator(
            task_id="start_migration",
            migration_task_id="{{ params.migration_task_id }}",
            poll_interval=1,
            outlets=[DESTINATION, AssetAlias(f"{dag_id}_alias")],
            **kwargs,
        )
    return dag


def create_dag(dag_id: str, *, wait_for_completion: bool = True, **kwargs) -> DAG:
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, params=PARAMS) as dag:
        CreateMigrationTaskOperator(
            task_id="create_migration",
            task_definition={
                "task_type": "prefix",
                "src_node": {"region": "local", "bucket": "src", "cloud_type": "AWS", "object_key": ["data/"]},
                "dst_node": {"region": "local", "bucket": "dst", "save_prefix": "in/"},
            },
            source_conn_id="oms_source",
            wait_for_completion=wait_for_completion,
            poll_interval=1,
            outlets=[DESTINATION, AssetAlias(f"{dag_id}_alias")],
            **kwargs,
        )
    return dag


lineage_sync = start_dag("oms_lineage_sync")
lineage_deferred = start_dag("oms_lineage_deferred", deferrable=True)
lineage_create_sync = create_dag("oms_lineage_create_sync")
lineage_create_deferred = create_dag("oms_lineage_create_deferred", deferrable=True)


def watchers_dag(dag_id: str) -> DAG:
    """Operators that touch a migration without moving data: none of them is a producer."""
    task_id = "{{ params.migration_task_id }}"
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, params=PARAMS) as dag:
        stop = StopMigrationTaskOperator(task_id="stop_migration", migration_task_id=task_id)
        watch = MigrationTaskSensor(
            task_id="watch_migration", migration_task_id=task_id, target_statuses=[TaskStatus.PAUSED], poke_interval=1
        )
        delete = DeleteMigrationTaskOperator(task_id="delete_migration", migration_task_id=task_id)
        stop >> watch >> delete
    return dag


lineage_watchers = watchers_dag("oms_lineage_watchers")
#: A create that does not wait: no figures yet, its datasets from the hook's lineage.
lineage_create_only = create_dag("oms_lineage_create_only", wait_for_completion=False)
