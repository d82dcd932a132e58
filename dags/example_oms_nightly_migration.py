"""
A nightly migration: each night a new OMS task (OMS cannot restart one that succeeded) for what changed the day
before, a consumer DAG that runs once the data has landed, and housekeeping. Source keys come from the connection
``oms_source``. Why each choice: docs/operators.md, "A pipeline that runs on a schedule".
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, task

from airflow_provider_oms.operators.housekeeping import DeleteFinishedMigrationTasksOperator
from airflow_provider_oms.operators.lifecycle import CreateMigrationTaskOperator

#: The destination prefix as an Asset: obs://{destination bucket}/{save_prefix}, without a trailing slash.
LANDING = Asset("obs://warehouse/landing")

with DAG(
    dag_id="example_oms_nightly_migration",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    # Retries are for lost workers: a retry finds the OMS task its earlier try created instead of creating another.
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["example", "oms", "assets"],
) as dag:
    migrate = CreateMigrationTaskOperator(
        task_id="migrate_changes",
        task_definition={
            "task_type": "prefix",
            "src_node": {
                "cloud_type": "AWS",
                "region": "us-east-1",
                "bucket": "legacy-exports",
                "object_key": ["exports/"],
            },
            "dst_node": {"region": "cn-north-4", "bucket": "warehouse", "save_prefix": "landing/"},
            # Only what was modified after this run's data interval began (UNIX seconds).
            "migrate_since": "{{ data_interval_start.int_timestamp }}",
            "description": "nightly migration of {{ ds }}",
        },
        source_conn_id="oms_source",
        wait_for_completion=True,
        deferrable=True,
        poll_interval=60,
        timeout=timedelta(hours=6),
        retry_failed_objects=2,
        outlets=[LANDING],
    )

    delete_old_tasks = DeleteFinishedMigrationTasksOperator(task_id="delete_old_tasks", older_than=timedelta(days=7))

    migrate >> delete_old_tasks

with DAG(
    dag_id="example_oms_nightly_consumer",
    schedule=[LANDING],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "oms", "assets"],
) as consumer:

    @task
    def load_landed_data(triggering_asset_events=None) -> list[dict]:
        """Read the figures each night's migration attached to its asset event."""
        nights = [event.extra for event in triggering_asset_events[LANDING]]
        for figures in nights:
            print(f"OMS task {figures['migration_task_id']} landed {figures['successful_num']} objects")
        return nights

    load_landed_data()
