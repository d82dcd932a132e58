"""
Migrate many prefixes at once with an OMS task group, wait for it, and retry its failed objects if needed.

Source credentials from the connection `oms_source`; the destination's from the OMS connection.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_oms.operators.lifecycle import CreateMigrationTaskGroupOperator
from airflow_provider_oms.sensors.oms import MigrationTaskGroupSensor

with DAG(
    dag_id="example_oms_task_group",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "source_bucket": Param("demo-source", type="string"),
        "source_cloud": Param("AWS", type="string"),
        "prefixes": Param(["exports/a/", "exports/b/"], type="array"),
        "destination_bucket": Param("demo-destination", type="string"),
        "region": Param("cn-north-4", type="string"),
    },
    render_template_as_native_obj=True,  # the prefixes stay a list
    tags=["example", "oms"],
) as dag:
    create = CreateMigrationTaskGroupOperator(
        task_id="create_task_group",
        group_definition={
            "task_type": "PREFIX",
            "src_node": {
                "cloud_type": "{{ params.source_cloud }}",
                "region": "{{ params.region }}",
                "bucket": "{{ params.source_bucket }}",
                "object_key": "{{ params.prefixes }}",
            },
            "dst_node": {
                "region": "{{ params.region }}",
                "bucket": "{{ params.destination_bucket }}",
                "save_prefix": "",
            },
            "description": "created by example_oms_task_group",
        },
        source_conn_id="oms_source",
    )
    wait = MigrationTaskGroupSensor(
        task_id="wait_for_task_group",
        group_id="{{ ti.xcom_pull(task_ids='create_task_group')['group_id'] }}",
        mode="reschedule",
        poke_interval=5,
        timeout=12 * 3600,
    )
    create >> wait
