"""
Keep a bucket in sync for a while: start an OMS sync task, then stop it again.

The sync task already exists in OMS (its id comes from params); the source AK/SK from the connection
`oms_source`, the destination's from the OMS connection.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_oms.operators.lifecycle import StartSyncTaskOperator, StopSyncTaskOperator

with DAG(
    dag_id="example_oms_sync_task",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"sync_task_id": Param("", type="string", description="The OMS sync task id.")},
    tags=["example", "oms"],
) as dag:
    start = StartSyncTaskOperator(
        task_id="start_sync", sync_task_id="{{ params.sync_task_id }}", source_conn_id="oms_source"
    )
    stop = StopSyncTaskOperator(task_id="stop_sync", sync_task_id="{{ params.sync_task_id }}")
    start >> stop
