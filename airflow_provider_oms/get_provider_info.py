"""Provider metadata that Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_oms import __version__

_INTEGRATION = "Huawei Cloud OMS"


def get_provider_info() -> dict[str, Any]:
    """Return what this provider registers: connection type, hooks, operators, sensors, triggers, links, assets."""
    return {
        "package-name": "airflow-provider-oms",
        "name": "Huawei Cloud OMS",
        "description": "Huawei Cloud OMS (Object Storage Migration Service): start, watch and manage "
        "migration tasks into OBS.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://support.huaweicloud.com/intl/en-us/api-oms/oms_api_0001.html",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": _INTEGRATION, "python-modules": ["airflow_provider_oms.hooks.oms"]}],
        "operators": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    "airflow_provider_oms.operators.oms",
                    "airflow_provider_oms.operators.lifecycle",
                    "airflow_provider_oms.operators.housekeeping",
                ],
            }
        ],
        "sensors": [{"integration-name": _INTEGRATION, "python-modules": ["airflow_provider_oms.sensors.oms"]}],
        "triggers": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": ["airflow_provider_oms.triggers.oms", "airflow_provider_oms.triggers.events"],
            }
        ],
        "extra-links": ["airflow_provider_oms.links.oms.OMSConsoleLink"],
        # Huawei Cloud OBS as an Asset URI scheme: no other provider registers ``obs``.
        "asset-uris": [
            {
                "schemes": ["obs"],
                "handler": "airflow_provider_oms.assets.sanitize_uri",
                "factory": "airflow_provider_oms.assets.create_asset",
                "to_openlineage_converter": "airflow_provider_oms.assets.convert_asset_to_openlineage",
            }
        ],
        "connection-types": [
            {
                "connection-type": "huaweicloud_oms",
                "hook-class-name": "airflow_provider_oms.hooks.oms.OMSHook",
                "hook-name": "Huawei Cloud OMS",
                "conn-fields": {
                    "project_id": {
                        "label": "Project ID",
                        "description": "Huawei Cloud project id of the region (required).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "region": {
                        "label": "Region",
                        "description": "e.g. cn-north-4; gives https://oms.{region}.myhuaweicloud.com.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "endpoint": {
                        "label": "Endpoint",
                        "description": "Overrides the region's endpoint, e.g. a local emulator's URL.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "security_token": {
                        "label": "Security token",
                        "description": "For temporary AK/SK; sent as X-Security-Token.",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "auth_type": {
                        "label": "Authentication",
                        "description": "aksk (default): sign requests with the AK/SK above. token: log in to IAM "
                        "as the user above (login: IAM user name, password: its password) and send its token.",
                        "schema": {
                            "type": ["string", "null"],
                            "enum": ["aksk", "token", None],
                            # What the form's list shows for each value; unset is aksk, not "null".
                            "values_display": {"aksk": "aksk", "token": "token", "null": "aksk (default)"},
                        },
                    },
                    "domain": {
                        "label": "IAM domain (token auth)",
                        "description": "The account (domain) name the IAM user belongs to; required with token.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "iam_endpoint": {
                        "label": "IAM endpoint (token auth)",
                        "description": "Default: https://iam.{region}.myhuaweicloud.com, or the global IAM "
                        "endpoint without a region.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "verify": {
                        "label": "Verify TLS",
                        "description": "true (default), false, or the path of a CA bundle file.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "proxy": {
                        "label": "Proxy",
                        "description": "http(s)://[user:password@]host:port for every OMS and IAM request (wins "
                        "over HTTPS_PROXY/HTTP_PROXY), 'none' for no proxy; empty: the environment's.",
                        # A password field: the URL may hold the proxy's password.
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "timeout": {
                        "label": "Timeout (seconds)",
                        "description": "How long one request may take; default 60.",
                        "schema": {"type": ["number", "string", "null"]},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port"],
                    # One form serves both kinds of authentication: the labels name what each mode reads.
                    "relabeling": {
                        "login": "Access Key ID (AK), or IAM user name",
                        "password": "Secret Access Key (SK), or IAM password",
                    },
                    "placeholders": {
                        "login": "AK (aksk auth) or IAM user name (token auth)",
                        "password": "SK (aksk auth) or IAM user password (token auth)",
                        "project_id": "0123456789abcdef0123456789abcdef",
                        "region": "cn-north-4",
                        "endpoint": "https://oms.cn-north-4.myhuaweicloud.com",
                        "auth_type": "aksk",
                        "domain": "my-account-name",
                        "iam_endpoint": "https://iam.cn-north-4.myhuaweicloud.com",
                        "verify": "true",
                        "timeout": "60",
                        "proxy": "http://proxy.example.com:3128",
                    },
                },
            }
        ],
    }


def connection_form_widgets() -> dict[str, Any]:
    """Return the connection form's extra fields built from ``conn-fields`` (Airflow 3.1 asks the hook for them)."""
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import PasswordField, StringField

    (connection_type,) = get_provider_info()["connection-types"]
    widgets: dict[str, Any] = {}
    for name, spec in connection_type["conn-fields"].items():
        secret = spec["schema"].get("format") == "password"
        field, widget = (PasswordField, BS3PasswordFieldWidget) if secret else (StringField, BS3TextFieldWidget)
        widgets[name] = field(lazy_gettext(spec["label"]), widget=widget(), description=spec["description"])
    return widgets


def ui_field_behaviour() -> dict[str, Any]:
    """Return the connection form's hidden fields, labels and placeholders in Airflow 3.1's hook spelling."""
    (connection_type,) = get_provider_info()["connection-types"]
    behaviour = connection_type["ui-field-behaviour"]
    # Airflow 3.1's schema spells it hidden_fields (provider info: hidden-fields) and requires relabeling.
    return {
        "hidden_fields": list(behaviour["hidden-fields"]),
        "relabeling": dict(behaviour["relabeling"]),
        "placeholders": dict(behaviour["placeholders"]),
    }
