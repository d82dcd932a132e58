"""
A nightly migration pipeline: one OMS task per night for what changed that day, a DAG that runs once the data
has landed, and housekeeping that keeps the OMS task list short.

Every night ``example_oms_nightly_migration`` handles the day that just ended (its data interval):

1. It creates an OMS task for the source objects modified since the data interval began (OMS's
   ``migrate_since``). A new task every night, never a restart of last night's: OMS refuses to start a task that
   has succeeded. Each night's window runs from the start of its day to the moment the task is created, so the
   windows overlap by how late after midnight the run starts: nothing modified at a day boundary is missed, and
   an object in the overlap is migrated again.
2. It waits for the task in the triggerer (deferrable, no worker slot), and restarts it for its failed objects
   only, up to twice, before failing.
3. On success it emits the destination ``obs://warehouse/landing`` as an Asset, with the night's figures as the
   event's extra.
4. It deletes this DAG's own finished OMS tasks that are older than 7 days.

``example_oms_nightly_consumer`` is scheduled on that Asset: it runs once a night's data has landed, and reads
the figures from the events that triggered it (Airflow merges the events of nights that land close together
into one run of the consumer).

The schedule is a ``CronDataIntervalTimetable``: the run after midnight covers the day before it. A plain
``schedule="@daily"`` would, on Airflow 3, give each run an empty interval beginning when it runs, and
``migrate_since`` would then skip the day that just ended.

Write the Asset's URI in one form everywhere, without a trailing slash: Airflow keys an asset by name and URI,
and ``Asset("obs://warehouse/landing/")`` would be another asset, whose events never reach this consumer.

The source credentials come from the connection ``oms_source`` (aws, google_cloud_platform, wasb, or AK/SK in
login/password); the destination's from the OMS connection, ``huaweicloud_oms_default``.
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
