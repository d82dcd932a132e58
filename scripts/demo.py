"""
`make demo`: resume a paused OMS migration task from an Airflow DAG, against the local OMS emulator.

1. starts the emulator on 127.0.0.1 with a sample source bucket (a folder of files);
2. creates a migration task through OMSHook and pauses it before it copies anything;
3. runs the example DAG `example_oms_start_migration` with `airflow dags test` (SQLite, temporary AIRFLOW_HOME),
   which starts the task again through StartMigrationTaskOperator;
4. waits for the migration to finish, prints the outcome and where the migrated files are; stops the emulator.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from airflow_provider_oms.constants import TaskStatus, status_name
from airflow_provider_oms.testing import OMSEmulator
from airflow_provider_oms.testing.airflow_runner import AirflowTestEnvironment

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".demo"
CONN_ID = "huaweicloud_oms_default"
DAG_ID = "example_oms_start_migration"
SOURCE_BUCKET = "demo-source"
DEST_BUCKET = "demo-destination"


def make_sample_bucket(bucket: Path) -> int:
    """Write a few small objects into the source bucket; return how many."""
    objects = {
        f"exports/2026-11/sales-{day:02d}.csv": "".join(f"{day},{n},{n * 7 % 101}\n" for n in range(200))
        for day in range(1, 6)
    }
    objects["exports/2026-11/README.txt"] = "Daily sales exports.\n"
    for key, text in objects.items():
        path = bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return len(objects)


def main() -> int:
    """Run the demo; return the process exit code."""
    shutil.rmtree(WORK, ignore_errors=True)
    data_dir = WORK / "buckets"
    # The task waits 2 s in status "waiting" before it copies, so the pause below lands before any copy.
    with OMSEmulator(data_dir, task_start_delay=2.0) as emulator:
        count = make_sample_bucket(emulator.bucket_path(SOURCE_BUCKET))
        emulator.bucket_path(DEST_BUCKET)
        print(f"OMS emulator at {emulator.url}; source bucket {SOURCE_BUCKET} has {count} objects")

        connection = emulator.airflow_connection()
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = emulator.airflow_connection_uri_env()
        from airflow_provider_oms.hooks.oms import OMSHook

        hook = OMSHook(oms_conn_id=CONN_ID)
        # OMS wants both ends' credentials at creation; the emulator accepts any, so use the connection's.
        credentials = hook.config.credentials
        keys = {"ak": credentials.access_key, "sk": credentials.secret_key}
        created = hook.create_task(
            {
                "task_type": "prefix",
                "src_node": {"region": "local", "bucket": SOURCE_BUCKET, "object_key": ["exports/"], **keys},
                "dst_node": {"region": "local", "bucket": DEST_BUCKET, "save_prefix": "landing/", **keys},
                "description": "make demo",
            }
        )
        task_id = str(created["id"])
        hook.stop_task(task_id)
        paused = emulator.wait_for_status(task_id, {TaskStatus.PAUSED})
        print(f"Created OMS task {task_id} and paused it: status {paused['status']} ({status_name(paused['status'])})")

        airflow = AirflowTestEnvironment(WORK / "airflow-home", ROOT / "dags", {CONN_ID: connection})
        print(f"Running DAG {DAG_ID} with `airflow dags test` (AIRFLOW_HOME={airflow.home}) ...")
        result = airflow.dags_test(DAG_ID, {"migration_task_id": task_id, "migrate_failed_object": False})
        log_file = WORK / "airflow-dags-test.log"
        log_file.write_text(result.output)
        print(f"DAG run finished: state={result.state} (full output: {log_file})")
        if not result.succeeded:
            print(result.output[-4000:], file=sys.stderr)
            return 1
        print(f"The operator returned (XCom): {airflow.xcom_value(DAG_ID, 'start_migration')}")

        final = emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED, TaskStatus.FAILED}, timeout=60)
        print(
            f"OMS task {task_id}: {status_name(final['status'])}, "
            f"{final['successful_num']}/{final['total_num']} objects, {final['complete_size']} bytes migrated"
        )
        landing = emulator.bucket_path(DEST_BUCKET) / "landing"
        migrated = sorted(p.relative_to(landing).as_posix() for p in landing.rglob("*") if p.is_file())
        print(f"Migrated files are in {landing}:")
        for key in migrated:
            print(f"  {key}")
        return 0 if final["status"] == TaskStatus.SUCCEEDED and len(migrated) == count else 1


if __name__ == "__main__":
    sys.exit(main())
