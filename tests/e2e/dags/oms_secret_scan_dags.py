"""
The DAG of the secret scan (tests/e2e/test_secret_scan.py): one task per path an OMS start can take.

The tasks do not depend on each other, so `airflow dags test` runs them all in one process, and `airflow tasks
test` can run each alone. Credentials come only from the connections named here; the test defines them with
distinctive values and then looks for those values everywhere Airflow and the provider write.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_oms.operators.oms import StartMigrationTaskOperator
from airflow_provider_oms.sensors.oms import MigrationTaskSensor

DAG_ID = "oms_secret_scan"
#: The OMS connection (its AK/SK are also the destination's when no destination connection is given).
OMS_CONN_ID = "oms_secret_scan"
#: The same credentials, with an endpoint on a closed port of 127.0.0.1: every call is a transport error.
CLOSED_CONN_ID = "oms_secret_scan_closed"
#: A destination connection of its own (AK/SK and security token).
DST_CONN_ID = "oms_secret_scan_dst"
#: The source connection: AK/SK, security token, GCS auth JSON and CDN key.
SRC_CONN_ID = "oms_secret_scan_src"
#: A source connection whose SK is one character too long (101): refused before anything is sent.
SRC_LONG_CONN_ID = "oms_secret_scan_src_long"
#: A task id the emulator does not know (OMS.1009).
UNKNOWN_TASK_ID = "987654321"

PARAMS = {
    "success_task_id": Param("", type=["string", "integer"]),
    "deferrable_task_id": Param("", type=["string", "integer"]),
    "running_task_id": Param("", type=["string", "integer"]),
    "sensor_task_id": Param("", type=["string", "integer"]),
}

with DAG(DAG_ID, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, params=PARAMS) as dag:
    full = {"oms_conn_id": OMS_CONN_ID, "source_conn_id": SRC_CONN_ID, "destination_conn_id": DST_CONN_ID}
    StartMigrationTaskOperator(
        task_id="success", migration_task_id="{{ params.success_task_id }}", poll_interval=1, **full
    )
    # The OMS connection is the destination here: its AK/SK and security token go into the start body.
    StartMigrationTaskOperator(
        task_id="deferrable_wait",
        migration_task_id="{{ params.deferrable_task_id }}",
        oms_conn_id=OMS_CONN_ID,
        source_conn_id=SRC_CONN_ID,
        poll_interval=1,
        deferrable=True,
    )
    StartMigrationTaskOperator(
        task_id="oms_error_already_started", migration_task_id="{{ params.running_task_id }}", **full
    )
    StartMigrationTaskOperator(task_id="oms_error_unknown_task", migration_task_id=UNKNOWN_TASK_ID, **full)
    StartMigrationTaskOperator(
        task_id="transport_error",
        migration_task_id="{{ params.running_task_id }}",
        oms_conn_id=CLOSED_CONN_ID,
        source_conn_id=SRC_CONN_ID,
        destination_conn_id=DST_CONN_ID,
    )
    StartMigrationTaskOperator(
        task_id="validation_error_flag",
        migration_task_id="{{ params.running_task_id }}",
        migrate_failed_object="maybe",
        **full,
    )
    StartMigrationTaskOperator(
        task_id="validation_error_long_sk",
        migration_task_id="{{ params.running_task_id }}",
        oms_conn_id=OMS_CONN_ID,
        source_conn_id=SRC_LONG_CONN_ID,
        destination_conn_id=DST_CONN_ID,
    )
    MigrationTaskSensor(
        task_id="sensor_deferrable",
        migration_task_id="{{ params.sensor_task_id }}",
        oms_conn_id=OMS_CONN_ID,
        poke_interval=1,
        timeout=120,
        deferrable=True,
    )
