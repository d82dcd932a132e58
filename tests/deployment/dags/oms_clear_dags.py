"""A create operator that waits in the worker, for tests/deployment/test_clear_running_create.py."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_oms.operators.lifecycle import CreateMigrationTaskOperator

with DAG("oms_clear_running_create", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    CreateMigrationTaskOperator(
        task_id="create",
        task_definition={
            "task_type": "prefix",
            "src_node": {"region": "local", "bucket": "src", "cloud_type": "AWS", "object_key": ["data/"]},
            "dst_node": {"region": "local", "bucket": "dst", "save_prefix": "in/"},
        },
        source_conn_id="oms_source",
        wait_for_completion=True,
        deferrable=False,  # the wait is in the worker, whose loss the test stages
        poll_interval=1,
        retries=2,
        retry_delay=timedelta(seconds=1),
    )
