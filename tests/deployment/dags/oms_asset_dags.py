"""A migration that emits its destination as an Asset, and a DAG scheduled on that Asset (deployment test)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Asset, Param, task

from airflow_provider_oms.operators.oms import StartMigrationTaskOperator

LANDED = Asset("obs://dst/asset-producer")

with DAG(
    "oms_asset_producer",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"migration_task_id": Param("", type=["string", "integer"])},
):
    StartMigrationTaskOperator(
        task_id="start_migration",
        migration_task_id="{{ params.migration_task_id }}",
        poll_interval=2,
        outlets=[LANDED],
    )

with DAG("oms_asset_consumer", schedule=[LANDED], start_date=datetime(2026, 1, 1), catchup=False):

    @task
    def read_figures(triggering_asset_events=None) -> dict:
        """Return the figures of the migration whose asset event triggered this run."""
        (event,) = triggering_asset_events[LANDED]
        return dict(event.extra)

    read_figures()
