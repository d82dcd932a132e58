"""A sensor that starts and ends in the triggerer: no worker runs it (deployment test, Airflow 3.3+)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param, task

from airflow_provider_oms.sensors.oms import MigrationTaskSensor

with DAG(
    "oms_test_sensor_from_trigger",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"migration_task_id": Param("", type=["string", "integer"])},
):
    wait = MigrationTaskSensor(
        task_id="wait_for_migration",
        migration_task_id="{{ params.migration_task_id }}",
        deferrable=True,
        start_from_trigger=True,
        poke_interval=1,
        timeout=120,
    )

    @task
    def read_figures(figures: dict) -> dict:
        """What a downstream task pulls from the sensor's XCom, which the triggerer pushed."""
        return {"type": type(figures).__name__, "figures": figures}

    read_figures(wait.output)
