"""
Run a DAG when an OMS migration that Airflow did not start ends: one started in the OMS console, by another team or
by a script. An ``AssetWatcher`` runs ``MigrationTaskEventTrigger`` in the triggerer; each new outcome of a watched
task (failed, then succeeded after a retry in the console...) is an asset event, and schedules this DAG once.
Nothing runs on a worker until then. Why and how: docs/operators.md, "Run a DAG when a migration outside Airflow
ends".
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_oms.triggers.events import MigrationTaskEventTrigger

#: The OMS task ids to watch, as the OMS console shows them (comma-separated here, so that a test can set them).
WATCHED_TASK_IDS = os.environ.get("OMS_WATCHED_TASK_IDS", "your-oms-task-id").split(",")
#: Seconds between two reads of the watched tasks in the triggerer.
POLL_SECONDS = float(os.environ.get("OMS_WATCH_POLL_SECONDS", "60"))

MIGRATION_OUTCOMES = Asset(
    "oms_migration_outcomes",
    watchers=[
        AssetWatcher(
            name="oms_migration_watcher",
            trigger=MigrationTaskEventTrigger(migration_task_ids=WATCHED_TASK_IDS, poll_interval=POLL_SECONDS),
        )
    ],
)

with DAG(
    dag_id="example_oms_migration_watcher",
    schedule=[MIGRATION_OUTCOMES],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "oms", "assets"],
) as dag:

    @task
    def report_outcomes(triggering_asset_events=None) -> list[dict]:
        """Log each migration outcome that scheduled this run (several if they ended close together)."""
        outcomes = [event.extra["payload"] for event in triggering_asset_events[MIGRATION_OUTCOMES]]
        for outcome in outcomes:
            figures = outcome["task"]
            print(
                f"OMS task {outcome['migration_task_id']} {outcome['status_name']}: "
                f"{figures.get('successful_num')} objects migrated, {figures.get('failed_num')} failed"
            )
        return outcomes

    report_outcomes()
