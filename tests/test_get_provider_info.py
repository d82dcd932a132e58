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
    assert "airflow_provider_oms.triggers.events" in triggers.stdout, triggers.stderr
    links = env.run("providers", "links", "--output", "json")
    assert "airflow_provider_oms.links.oms.OMSConsoleLink" in links.stdout, links.stderr


# Airflow 3.1 builds the connection form from the hook (get_connection_form_widgets / get_ui_field_behaviour);
# 3.2+ from get_provider_info(). These tests hold the hook's answers to 3.1's contract and to the provider info.


def test_ui_field_behaviour_follows_airflows_schema_and_the_provider_info():
    import jsonschema
    from airflow import providers_manager

    schema = json.loads(
        (Path(providers_manager.__file__).parent / "customized_form_field_behaviours.schema.json").read_text()
    )
    behaviour = OMSHook.get_ui_field_behaviour()
    jsonschema.validate(behaviour, schema)
    (conn_type,) = get_provider_info()["connection-types"]
    declared = conn_type["ui-field-behaviour"]
    assert behaviour["hidden_fields"] == declared["hidden-fields"] == ["host", "schema", "port"]
    assert behaviour["relabeling"] == declared["relabeling"]
    assert behaviour["placeholders"] == declared["placeholders"]


def test_connection_form_widgets_match_the_fields_airflow_builds_from_the_provider_info(monkeypatch):
    """The 3.1 path (hook widgets) gives the same form fields as the 3.2+ path (provider info)."""
    import sys
    import types

    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    # wtforms and Flask-AppBuilder are not installed with Airflow 3; stand in for them exactly as Airflow's own
    # connection-form API does when they are missing (HookMetaService's mock fields, which record a Param).
    stand_ins = {
        "wtforms": {"StringField": HookMetaService.MockStringField, "PasswordField": HookMetaService.MockPasswordField},
        "flask_babel": {"lazy_gettext": lambda text: text},
        "flask_appbuilder": {},
        "flask_appbuilder.fieldwidgets": {
            "BS3TextFieldWidget": HookMetaService.MockAnyWidget,
            "BS3PasswordFieldWidget": HookMetaService.MockAnyWidget,
        },
    }
    for name, attributes in stand_ins.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)

    widgets = OMSHook.get_connection_form_widgets()

    plain = {"project_id", "region", "endpoint", "auth_type", "domain", "iam_endpoint", "verify", "timeout"}
    assert set(widgets) == plain | {"security_token", "proxy"}
    assert widgets["security_token"].field_class is HookMetaService.MockPasswordField
    assert widgets["proxy"].field_class is HookMetaService.MockPasswordField  # the URL may hold a password
    assert {widgets[n].field_class for n in plain} == {HookMetaService.MockStringField}
    from_hook = {name: field.param.dump() for name, field in widgets.items()}
    (conn_type,) = get_provider_info()["connection-types"]
    for name, spec in conn_type["conn-fields"].items():
        assert from_hook[name]["schema"]["title"] == spec["label"]
        assert from_hook[name]["description"] == spec["description"]
        assert from_hook[name]["schema"].get("format") == spec["schema"].get("format")


def test_the_form_has_a_field_for_token_auth_tls_and_timeout_and_labels_for_both_auth_modes():
    (conn_type,) = get_provider_info()["connection-types"]
    fields = conn_type["conn-fields"]
    for name in ("auth_type", "domain", "iam_endpoint", "verify", "timeout"):
        assert name in fields, name
        assert fields[name]["label"] and fields[name]["description"]
    assert fields["auth_type"]["schema"]["enum"][:2] == ["aksk", "token"]
    labels = conn_type["ui-field-behaviour"]["relabeling"]
    assert "IAM user name" in labels["login"] and "AK" in labels["login"]
    assert "IAM password" in labels["password"] and "SK" in labels["password"]


def test_a_token_connection_as_the_form_saves_it_is_usable():
    """The form saves every field as a plain extra, numbers and booleans as text."""
    from airflow.sdk import Connection

    from airflow_provider_oms.connections import config_from_connection

    conn = Connection(
        conn_id="from_the_form",
        conn_type="huaweicloud_oms",
        login="iam-user",
        password="iam-password-0001",
        extra=json.dumps(
            {
                "project_id": "0123456789abcdef0123456789abcdef",
                "region": "cn-north-4",
                "auth_type": "token",
                "domain": "my-account",
                "iam_endpoint": "",
                "verify": "false",
                "timeout": "30",
                "endpoint": "",
                "security_token": "",
            }
        ),
    )
    config = config_from_connection(conn)
    assert config.iam is not None
    assert (config.iam.domain, config.iam.user, config.iam.endpoint) == (
        "my-account",
        "iam-user",
        "https://iam.cn-north-4.myhuaweicloud.com",
    )
    assert (config.verify, config.timeout) == (False, 30.0)


def test_empty_form_fields_are_unset_ones():
    from airflow.sdk import Connection

    from airflow_provider_oms.connections import DEFAULT_TIMEOUT, config_from_connection

    extra = {"project_id": "p1", "region": "cn-north-4", "auth_type": "", "domain": "", "iam_endpoint": ""}
    extra.update(verify="", timeout="", security_token="", retry_max_attempts="")
    conn = Connection(
        conn_id="c", conn_type="huaweicloud_oms", login="AK-0001", password="SK-0001", extra=json.dumps(extra)
    )
    config = config_from_connection(conn)
    assert (config.verify, config.timeout, config.iam, config.credentials.security_token) == (
        True,
        DEFAULT_TIMEOUT,
        None,
        None,
    )
