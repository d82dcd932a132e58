from __future__ import annotations

import json

import pytest

pytest_plugins = ["airflow_provider_oms.testing.pytest_plugin"]

OMS_CONN_ID = "huaweicloud_oms_default"


@pytest.fixture
def oms_conn(oms_emulator, monkeypatch):
    """The default OMS connection, pointing at the emulator, as an AIRFLOW_CONN_* variable."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{OMS_CONN_ID.upper()}", oms_emulator.airflow_connection_uri_env())
    return OMS_CONN_ID


@pytest.fixture
def set_connection(monkeypatch):
    """Define an Airflow connection through the environment: set_connection(conn_id, login=..., ...)."""

    def _set(conn_id: str, *, conn_type: str = "generic", login=None, password=None, extra=None) -> str:
        conn = {"conn_type": conn_type, "login": login, "password": password, "extra": extra or {}}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    return _set
