from __future__ import annotations

import importlib
import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from airflow_provider_oms.get_provider_info import get_provider_info
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.testing.airflow_runner import AirflowTestEnvironment


def test_entry_point_points_at_get_provider_info():
    found = [ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_provider_oms")]
    assert len(found) == 1
    assert found[0].load() is get_provider_info


def test_connection_type_matches_the_hook():
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-oms"
    (conn_type,) = info["connection-types"]
    module, _, name = conn_type["hook-class-name"].rpartition(".")
    hook_class = getattr(importlib.import_module(module), name)
    assert hook_class is OMSHook
    assert conn_type["connection-type"] == OMSHook.conn_type == "huaweicloud_oms"
    assert conn_type["hook-name"] == OMSHook.hook_name == "Huawei Cloud OMS"
    assert OMSHook.conn_name_attr == "oms_conn_id"
    assert OMSHook.default_conn_name == "huaweicloud_oms_default"
    for module_list in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[module_list]:
            for module_name in entry["python-modules"]:
                importlib.import_module(module_name)
    for link in info["extra-links"]:
        module, _, name = link.rpartition(".")
        assert getattr(importlib.import_module(module), name)().name == "OMS Console"


@pytest.mark.e2e
def test_airflow_lists_the_provider_and_its_connection_type(tmp_path):
    env = AirflowTestEnvironment(tmp_path / "home", Path(__file__).resolve().parents[1] / "dags", {})
    providers = env.run("providers", "list", "--output", "json")
    assert providers.returncode == 0, providers.stderr
    assert "airflow-provider-oms" in [p["package_name"] for p in json.loads(providers.stdout)]
    hooks = env.run("providers", "hooks", "--output", "json")
    assert hooks.returncode == 0, hooks.stderr
    assert any(h.get("connection_type") == "huaweicloud_oms" for h in json.loads(hooks.stdout)), hooks.stdout
    triggers = env.run("providers", "triggers", "--output", "json")
    assert "airflow_provider_oms.triggers.oms" in triggers.stdout, triggers.stderr
    links = env.run("providers", "links", "--output", "json")
    assert "airflow_provider_oms.links.oms.OMSConsoleLink" in links.stdout, links.stderr
