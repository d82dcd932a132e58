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


with DAG(
    "oms_test_sensor_from_trigger_edges",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "migration_task_ids": Param([], type="array"),
        "long_migration_task_id": Param("", type=["string", "integer"]),
    },
):

    @task
    def watched_ids(**context) -> list[str]:
        """The ids a mapped sensor waits for, one map index each."""
        return [str(task_id) for task_id in context["params"]["migration_task_ids"]]

    # Airflow 3.3 cannot start a mapped task in the triggerer (GH-52141): each map index defers from a worker.
    MigrationTaskSensor.partial(
        task_id="wait_mapped", deferrable=True, start_from_trigger=True, poke_interval=1, timeout=120
    ).expand(migration_task_id=watched_ids())

    # The trigger's time (StartTriggerArgs.timeout) runs out long before the migration ends.
    MigrationTaskSensor(
        task_id="wait_times_out",
        migration_task_id="{{ params.long_migration_task_id }}",
        deferrable=True,
        start_from_trigger=True,
        poke_interval=1,
        timeout=3,
    )
