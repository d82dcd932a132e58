"""
A nightly incremental migration that downstream DAGs schedule on, and one such downstream DAG.

Every night ``example_oms_incremental_assets`` creates an OMS task for what changed in the source prefix since
the data interval began (OMS's ``migrate_since``), waits for it in the triggerer, and emits the destination as
an Asset, with the migration's figures as the event's extra. ``example_oms_incremental_consumer`` is scheduled on
that Asset: it runs once the migrated data has landed, and reads the figures from its triggering event.

The source credentials come from the connection ``oms_source`` (aws, google_cloud_platform, wasb, or AK/SK in
login/password); the destination's from the OMS connection.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Asset, task

from airflow_provider_oms.operators.lifecycle import CreateMigrationTaskOperator

#: The migrated prefix as an Asset: obs://{destination bucket}/{save_prefix}.
LANDING = Asset("obs://warehouse/landing/")

with DAG(
    dag_id="example_oms_incremental_assets",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "oms", "assets"],
) as dag:
    CreateMigrationTaskOperator(
        task_id="migrate_changes",
        task_definition={
            "task_type": "prefix",
            "src_node": {
                "cloud_type": "AWS",
                "region": "us-east-1",
                "bucket": "legacy-exports",
                "object_key": ["2026/"],
            },
            "dst_node": {"region": "cn-north-4", "bucket": "warehouse", "save_prefix": "landing/"},
            # Only what was modified since this run's data interval began (UNIX seconds).
            "migrate_since": "{{ data_interval_start.int_timestamp }}",
            "description": "nightly incremental migration",
        },
        source_conn_id="oms_source",
        wait_for_completion=True,
        deferrable=True,
        poll_interval=60,
        timeout=6 * 3600,
        retry_failed_objects=2,
        outlets=[LANDING],
    )

with DAG(
    dag_id="example_oms_incremental_consumer",
    schedule=[LANDING],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "oms", "assets"],
) as consumer:

    @task
    def load_landed_data(triggering_asset_events=None) -> dict:
        """Read the figures the migration attached to the asset event that triggered this run."""
        (event,) = triggering_asset_events[LANDING]
        figures = event.extra
        print(f"OMS task {figures['migration_task_id']} landed {figures['successful_num']} objects")
        return figures

    load_landed_data()
