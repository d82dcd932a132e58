"""The obs URI scheme (handler, factory, OpenLineage converter) and the dataset naming per OMS cloud type."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from airflow.sdk import Asset

from airflow_provider_oms import lineage
from airflow_provider_oms.assets import convert_asset_to_openlineage, create_asset, sanitize_uri
from airflow_provider_oms.get_provider_info import get_provider_info


def test_sanitize_uri_keeps_a_uri_with_a_bucket_and_refuses_one_without():
    uri = urlsplit("obs://warehouse/landing/")
    assert sanitize_uri(uri) == uri
    with pytest.raises(ValueError, match="bucket"):
        sanitize_uri(urlsplit("obs:///landing/"))


def test_create_asset_builds_the_obs_uri():
    # one form, as the docs write it: no trailing slash in the URI (Airflow drops it) nor in the name
    assert create_asset(bucket="warehouse", key="landing/") == Asset("obs://warehouse/landing")
    assert create_asset(bucket="warehouse", key="landing/").name == "obs://warehouse/landing"
    assert create_asset(bucket="warehouse", key="landing/").uri == "obs://warehouse/landing"
    assert create_asset(bucket="warehouse", key="/a/b.csv", extra={"x": 1}).uri == "obs://warehouse/a/b.csv"
    assert create_asset(bucket="warehouse", key="").uri == "obs://warehouse/"


def test_convert_asset_to_openlineage(openlineage):
    dataset = convert_asset_to_openlineage(Asset("obs://warehouse/landing/"), None)
    assert (dataset.namespace, dataset.name) == ("obs://warehouse", "landing")
    dataset = convert_asset_to_openlineage(Asset("obs://warehouse/"), None)
    assert (dataset.namespace, dataset.name) == ("obs://warehouse", "/")


def test_provider_info_registers_the_obs_scheme():
    (entry,) = get_provider_info()["asset-uris"]
    assert entry["schemes"] == ["obs"]
    assert entry["handler"] == "airflow_provider_oms.assets.sanitize_uri"
    assert entry["factory"] == "airflow_provider_oms.assets.create_asset"
    assert entry["to_openlineage_converter"] == "airflow_provider_oms.assets.convert_asset_to_openlineage"


def test_airflows_providers_manager_loads_the_obs_handlers():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    manager.initialize_providers_asset_uri_resources()
    assert manager.asset_uri_handlers["obs"] is sanitize_uri
    assert manager.asset_factories["obs"] is create_asset
    assert manager.asset_to_openlineage_converters["obs"] is convert_asset_to_openlineage
    # and Airflow now normalises obs:// URIs, which it does not do for a scheme nobody registered
    assert Asset("obs://warehouse/landing/").normalized_uri == "obs://warehouse/landing"
    with pytest.raises(ValueError, match="bucket"):
        Asset("obs:///landing/")


def _task(cloud_type, **src):
    return {
        "task_type": "prefix",
        "src_node": {"bucket": "legacy-exports", "cloud_type": cloud_type, "object_key": ["2026/"], **src},
        "dst_node": {"bucket": "warehouse", "save_prefix": "landing/"},
    }


@pytest.mark.parametrize(
    ("cloud_type", "namespace"),
    [
        ("AWS", "s3://legacy-exports"),
        ("Google", "gs://legacy-exports"),
        ("Aliyun", "oss://legacy-exports"),
        ("Tencent", "cos://legacy-exports"),
        ("HuaweiCloud", "obs://legacy-exports"),
        ("QingCloud", "qingstor://legacy-exports"),
        ("KingsoftCloud", "ks3://legacy-exports"),
        ("Baidu", "bos://legacy-exports"),
        ("Qiniu", "kodo://legacy-exports"),
        ("UCloud", "ufile://legacy-exports"),
        (None, "oss://legacy-exports"),  # OMS's default cloud type is Aliyun
    ],
)
def test_source_namespace_per_cloud_type(cloud_type, namespace):
    assert lineage.source_datasets(_task(cloud_type)) == [(namespace, "2026")]
    assert lineage.destination_dataset(_task(cloud_type)) == ("obs://warehouse", "landing")
    assert lineage.destination_uri(_task(cloud_type)) == "obs://warehouse/landing/"


def test_azure_namespace_names_container_and_account_but_never_the_key():
    conn_string = "DefaultEndpointsProtocol=https;AccountName=legacyacct;AccountKey=c2VjcmV0LWtleQ==;"
    account = lineage.azure_account(conn_string)
    assert account == "legacyacct"
    assert lineage.source_datasets(_task("Azure"), account=account) == [("wasbs://legacy-exports@legacyacct", "2026")]
    assert lineage.azure_account("AccountKey=abc") is None


def test_whole_bucket_several_prefixes_and_url_lists():
    task = _task("AWS", object_key=[])
    assert lineage.source_datasets(task) == [("s3://legacy-exports", "/")]
    task = _task("AWS", object_key=["a/", "b/c.csv"])
    assert lineage.source_datasets(task) == [("s3://legacy-exports", "a"), ("s3://legacy-exports", "b/c.csv")]
    url_list = {
        "task_type": "url_list",
        "src_node": {"cloud_type": "URLSource", "list_file": {"obs_bucket": "lists", "list_file_key": "urls.txt"}},
        "dst_node": {"bucket": "warehouse", "save_prefix": ""},
    }
    assert lineage.source_datasets(url_list) == [("obs://lists", "urls.txt")]
    assert lineage.destination_dataset(url_list) == ("obs://warehouse", "/")
    assert lineage.destination_uri(url_list) == "obs://warehouse/"


def test_operator_lineage_has_inputs_outputs_and_the_run_facet(openlineage):
    summary = {
        "migration_task_id": "42",
        "status_name": "failed",
        "successful_num": 3,
        "failed_num": 1,
        "failed_object_record": {"result": True, "list_file_key": "oms/failed/42.txt"},
    }
    result = lineage.operator_lineage(_task("AWS"), summary)
    assert [(d.namespace, d.name) for d in result.inputs] == [("s3://legacy-exports", "2026")]
    assert [(d.namespace, d.name) for d in result.outputs] == [("obs://warehouse", "landing")]
    facet = result.run_facets["oms_migration"]
    assert (facet.migrationTaskId, facet.status, facet.failedNum) == ("42", "failed", 1)
    assert facet.failedObjectListKey == "oms/failed/42.txt"


def test_the_provider_imports_nothing_of_openlineage_at_module_level():
    import subprocess
    import sys

    code = (
        "import sys, airflow.sdk\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_oms.operators.oms, airflow_provider_oms.operators.lifecycle\n"
        "import airflow_provider_oms.sensors.oms, airflow_provider_oms.hooks.oms\n"
        "new = set(sys.modules) - before\n"
        "bad = sorted(m for m in new if 'openlineage' in m or m.startswith('airflow_provider_oms.lineage'))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
