"""
End to end: the lifecycle example DAGs (`dags/`) run by a real Airflow (`airflow dags test`) against the
emulator, which really copies files. Nothing is mocked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_oms.constants import GROUP_COMPLETED
from airflow_provider_oms.testing import OMSEmulator
from tests.helpers import files_under, migrated_airflow, write_objects

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SOURCE = {"conn_type": "aws", "login": "EXAMPLE-SOURCE-AK-01", "password": "EXAMPLE-SOURCE-SK-01"}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    with OMSEmulator(tmp_path_factory.mktemp("buckets"), sync_interval=0.1) as emu:
        yield emu


@pytest.fixture(scope="module")
def airflow(emulator, tmp_path_factory):
    connections = {"huaweicloud_oms_default": emulator.airflow_connection(), "oms_source": SOURCE}
    return migrated_airflow(tmp_path_factory.mktemp("airflow-home"), ROOT / "dags", connections)


def files(folder: Path) -> set[str]:
    return set(files_under(folder))


def test_task_lifecycle_example(emulator, airflow):
    write_objects(emulator.bucket_path("life-src"), ["exports/a.csv", "exports/b.csv", "other/c.csv"])
    conf = {"source_bucket": "life-src", "destination_bucket": "life-dst", "source_cloud": "AWS", "prefix": "exports/"}

    result = airflow.dags_test("example_oms_task_lifecycle", conf)

    assert result.succeeded, result.output[-3000:]
    created = airflow.xcom_value("example_oms_task_lifecycle", "create_migration")
    waited = airflow.xcom_value("example_oms_task_lifecycle", "wait_for_migration")
    assert waited["status_name"] == "succeeded"
    assert files(emulator.bucket_path("life-dst") / "landing") == {"exports/a.csv", "exports/b.csv"}
    with pytest.raises(Exception, match="1009"):
        emulator.get_task(created["migration_task_id"])  # deleted at the end


def test_task_group_example(emulator, airflow):
    write_objects(emulator.bucket_path("group-src"), ["exports/a/1.csv", "exports/b/2.csv", "exports/c/3.csv"])
    conf = {"source_bucket": "group-src", "destination_bucket": "group-dst", "prefixes": ["exports/a/", "exports/b/"]}

    result = airflow.dags_test("example_oms_task_group", conf)

    assert result.succeeded, result.output[-3000:]
    group_id = airflow.xcom_value("example_oms_task_group", "create_task_group")["group_id"]
    assert emulator.get_task_group(group_id)["status"] == GROUP_COMPLETED
    assert airflow.xcom_value("example_oms_task_group", "wait_for_task_group")["status"] == GROUP_COMPLETED
    assert files(emulator.bucket_path("group-dst")) >= {"exports/a/1.csv", "exports/b/2.csv"}
    assert "exports/c/3.csv" not in files(emulator.bucket_path("group-dst"))


def test_sync_task_example(emulator, airflow, monkeypatch):
    from airflow_provider_oms.hooks.oms import OMSHook

    write_objects(emulator.bucket_path("sync-src"), ["data/1.csv"])
    emulator.bucket_path("sync-dst")
    sync_task_id = emulator.create_sync_task(src_bucket="sync-src", dst_bucket="sync-dst")
    emulator.wait_for_sync_pass(sync_task_id)
    monkeypatch.setenv("AIRFLOW_CONN_HUAWEICLOUD_OMS_DEFAULT", emulator.airflow_connection_uri_env())
    OMSHook().stop_sync_task(sync_task_id)  # the DAG starts a stopped sync task, then stops it again

    result = airflow.dags_test("example_oms_sync_task", {"sync_task_id": sync_task_id})

    assert result.succeeded, result.output[-3000:]
    assert airflow.xcom_value("example_oms_sync_task", "start_sync") == {
        "sync_task_id": sync_task_id,
        "status": "SYNCHRONIZING",
    }
    assert airflow.xcom_value("example_oms_sync_task", "stop_sync") == {
        "sync_task_id": sync_task_id,
        "status": "STOPPED",
    }
    assert emulator.get_sync_task(sync_task_id)["status"] == "STOPPED"
