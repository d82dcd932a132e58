"""
A migration task's whole life from a DAG: create it, limit its bandwidth, wait for it, delete it.

The source credentials come from the connection `oms_source` (any type: aws, google_cloud_platform, wasb, or
AK/SK in login/password); the destination's from the OMS connection. Buckets and prefix come from params.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_oms.operators.lifecycle import (
    CreateMigrationTaskOperator,
    DeleteMigrationTaskOperator,
    UpdateBandwidthPolicyOperator,
)
from airflow_provider_oms.sensors.oms import MigrationTaskSensor

with DAG(
    dag_id="example_oms_task_lifecycle",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "source_bucket": Param("demo-source", type="string"),
        "source_region": Param("cn-north-4", type="string"),
        "source_cloud": Param(
            "AWS", type="string", description="cloud_type of the source, e.g. AWS, Aliyun, HuaweiCloud"
        ),
        "prefix": Param("exports/", type="string"),
        "destination_bucket": Param("demo-destination", type="string"),
        "destination_region": Param("cn-north-4", type="string"),
    },
    tags=["example", "oms"],
) as dag:
    create = CreateMigrationTaskOperator(
        task_id="create_migration",
        task_definition={
            "task_type": "prefix",
            "src_node": {
                "cloud_type": "{{ params.source_cloud }}",
                "region": "{{ params.source_region }}",
                "bucket": "{{ params.source_bucket }}",
                "object_key": ["{{ params.prefix }}"],
            },
            "dst_node": {
                "region": "{{ params.destination_region }}",
                "bucket": "{{ params.destination_bucket }}",
                "save_prefix": "landing/",
            },
            "description": "created by example_oms_task_lifecycle",
        },
        source_conn_id="oms_source",
    )
    limit = UpdateBandwidthPolicyOperator(
        task_id="limit_bandwidth_by_day",
        migration_task_id="{{ ti.xcom_pull(task_ids='create_migration')['migration_task_id'] }}",
        bandwidth_policy=[{"start": "08:00", "end": "18:00", "max_bandwidth": 20 * 1024 * 1024}],
    )
    wait = MigrationTaskSensor(
        task_id="wait_for_migration",
        migration_task_id="{{ ti.xcom_pull(task_ids='create_migration')['migration_task_id'] }}",
        mode="reschedule",
        poke_interval=5,
        timeout=6 * 3600,
    )
    delete = DeleteMigrationTaskOperator(
        task_id="delete_migration_task",
        migration_task_id="{{ ti.xcom_pull(task_ids='create_migration')['migration_task_id'] }}",
    )
    create >> limit >> wait >> delete
