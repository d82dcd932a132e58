"""
Resume a paused or failed Huawei Cloud OMS migration task and wait until the data has arrived.

The OMS task id and whether to re-migrate only the failed objects come from the DAG run's params, through
templates. Trigger it with e.g. ``{"migration_task_id": "1234567890123", "migrate_failed_object": true}``.

``make demo`` runs this DAG against the local OMS emulator.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_oms.operators.oms import StartMigrationTaskOperator

with DAG(
    dag_id="example_oms_start_migration",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "migration_task_id": Param("", type=["string", "integer"], description="The OMS migration task id to start."),
        # A string is allowed too so that the operator, not the form, judges it: it accepts true/false only.
        "migrate_failed_object": Param(
            False,
            type=["boolean", "string"],
            description="true: re-migrate only the objects that failed; false: the whole task again.",
        ),
    },
    tags=["example", "oms"],
) as dag:
    StartMigrationTaskOperator(
        task_id="start_migration",
        migration_task_id="{{ params.migration_task_id }}",
        migrate_failed_object="{{ params.migrate_failed_object }}",
        oms_conn_id="huaweicloud_oms_default",
        # Wait for the migration to finish, reading its progress every 5 s (short, for the demo; 30 s or more
        # suits real migrations), and restart the objects that failed once before giving up.
        wait_for_completion=True,
        poll_interval=5,
        retry_failed_objects=1,
    )
