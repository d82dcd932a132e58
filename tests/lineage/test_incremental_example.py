"""
End to end: the nightly example (`dags/example_oms_nightly_migration.py`) run by a real Airflow (`airflow dags
test`) against the emulator: only what changed since the data interval began is migrated, the destination asset's
event carries the figures and queues the consumer DAG, the housekeeping task runs, and OpenLineage (where
installed) shows s3 -> obs lineage. Thirty scheduled nights of it run in tests/deployment/test_thirty_nights.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from tests.helpers import write_objects
from tests.lineage.conftest import require_openlineage
from tests.lineage.test_lineage_dags import LineageAirflow, no_credential_in

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PRODUCER, CONSUMER = "example_oms_nightly_migration", "example_oms_nightly_consumer"
SOURCE = {"conn_type": "aws", "login": "LINEAGE-SOURCE-AK-0001", "password": "LINEAGE-SOURCE-SK-0001"}


def test_nightly_example_migrates_the_changes_and_emits_the_destination_asset(tmp_path):
    # Its asset event and the consumer's queued run need no OpenLineage, but its last half does: the whole of it
    # runs in .venv-distributed (make test-openlineage, part of make test) rather than twice.
    require_openlineage()
    from airflow_provider_oms.testing import OMSEmulator

    with OMSEmulator(tmp_path / "buckets") as emulator:
        source = emulator.bucket_path("legacy-exports")
        write_objects(source, ["exports/old.csv", "exports/new.csv", "elsewhere/new-but-elsewhere.csv"])
        os.utime(source / "exports/old.csv", (946_684_800, 946_684_800))  # 2000-01-01: before any data interval
        later = time.time() + 120  # after the data interval's start, whichever interval the run gets
        os.utime(source / "exports/new.csv", (later, later))
        emulator.bucket_path("warehouse")
        airflow = LineageAirflow(tmp_path / "home", ROOT / "dags", tmp_path / "events.jsonl")
        airflow.connections.update({"huaweicloud_oms_default": emulator.airflow_connection(), "oms_source": SOURCE})
        airflow.migrate()
        serialized = airflow.run("dags", "reserialize")  # the consumer DAG in the database, as a dag-processor does
        assert serialized.returncode == 0, serialized.stderr[-3000:]
        unpaused = airflow.run("dags", "unpause", CONSUMER)  # a paused DAG is not queued by asset events
        assert unpaused.returncode == 0, unpaused.stderr[-3000:]

        result = airflow.dags_test(PRODUCER)

        assert result.succeeded, result.output[-4000:]
        no_credential_in(result.output)
        landed = emulator.bucket_path("warehouse") / "landing"
        assert sorted(p.relative_to(landed).as_posix() for p in landed.rglob("*") if p.is_file()) == ["exports/new.csv"]

    xcom = airflow.xcom_value(PRODUCER, "migrate_changes")
    assert (xcom["status_name"], xcom["total_num"], xcom["successful_num"]) == ("succeeded", 1, 1)
    housekeeping = airflow.xcom_value(PRODUCER, "delete_old_tasks")  # tonight's task is kept: it just ended
    assert (housekeeping["deleted"], housekeeping["kept_recent"]) == ([], [xcom["migration_task_id"]]), housekeeping
    ((uri, extra),) = airflow.asset_events(PRODUCER)
    assert uri == "obs://warehouse/landing"
    assert (extra["migration_task_id"], extra["successful_num"]) == (xcom["migration_task_id"], 1)
    with closing(sqlite3.connect(airflow.home / "airflow.db")) as db:
        queued = db.execute("SELECT target_dag_id FROM asset_dag_run_queue").fetchall()
    assert queued == [(CONSUMER,)]  # the scheduler creates the consumer's run from this

    migrate = f"{PRODUCER}.migrate_changes"  # the migration; delete_old_tasks, the housekeeping, is another job
    (complete,) = [
        e for e in airflow.lineage_events(PRODUCER) if e["eventType"] == "COMPLETE" and e["job"]["name"] == migrate
    ]
    assert [(d["namespace"], d["name"]) for d in complete["inputs"]] == [("s3://legacy-exports", "exports")]
    assert [(d["namespace"], d["name"]) for d in complete["outputs"]] == [("obs://warehouse", "landing")]
    assert complete["run"]["facets"]["oms_migration"]["successfulNum"] == 1
    no_credential_in(json.dumps(complete))
