from __future__ import annotations

import json

import pytest

from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.testing import OMSEmulator

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


@pytest.fixture
def make_emulator(tmp_path, monkeypatch, oms_conn):
    """Start an emulator with options and point the `oms_conn` connection at it: make_emulator(**opts)."""
    started: list[OMSEmulator] = []

    def _make(**options) -> tuple[OMSEmulator, OMSHook]:
        emulator = OMSEmulator(tmp_path / f"oms-{len(started)}", **options).start()
        started.append(emulator)
        monkeypatch.setenv(f"AIRFLOW_CONN_{oms_conn.upper()}", emulator.airflow_connection_uri_env())
        return emulator, OMSHook(oms_conn)

    yield _make
    for emulator in started:
        emulator.stop()


@pytest.fixture
def fast(oms_emulator, oms_conn):
    """The default emulator (tasks finish at once) and a hook on it."""
    return oms_emulator, OMSHook(oms_conn)
