from __future__ import annotations

import importlib
import json
from types import SimpleNamespace

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.testing import OMSEmulator
from tests.helpers import create_sample_task, write_objects

pytest_plugins = ["airflow_provider_oms.testing.pytest_plugin"]

OMS_CONN_ID = "huaweicloud_oms_default"
#: The source connection ``src`` of the tests that create OMS tasks (emulator_with_source).
SOURCE_AK, SOURCE_SK = "SOURCE-AK-0001", "SOURCE-SK-0001"


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


@pytest.fixture
def emulator_with_source(make_emulator, set_connection):
    """
    An emulator (make_emulator) with objects in bucket ``src``, an empty bucket ``dst``, and the source
    connection ``src`` (SOURCE_AK, SOURCE_SK): emulator_with_source(keys, **options).
    """

    def _make(keys: list[str], **options) -> OMSEmulator:
        emulator, _ = make_emulator(**options)
        write_objects(emulator.bucket_path("src"), keys)
        emulator.bucket_path("dst")
        set_connection("src", login=SOURCE_AK, password=SOURCE_SK)
        return emulator

    return _make


@pytest.fixture
def paused_in_oms(make_emulator):
    """
    An emulator whose tasks wait 30 s before copying, and a sample task on it paused in OMS itself (as from the
    console, not through the API): (emulator, task_id).
    """
    emulator, hook = make_emulator(task_start_delay=30)
    task_id = create_sample_task(emulator, hook)
    emulator.pause_task(task_id)
    emulator.wait_for_status(task_id, {TaskStatus.PAUSED}, timeout=20)
    return emulator, task_id


@pytest.fixture(scope="session")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The official SDK signer, imported with HOME in a temporary directory (it writes ~/.huaweicloud)."""
    home = tmp_path_factory.mktemp("sdk-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("USERPROFILE", str(home))
        signer_module = importlib.import_module("huaweicloudsdkcore.signer.signer")
        request_module = importlib.import_module("huaweicloudsdkcore.sdk_request")
    return SimpleNamespace(Signer=signer_module.Signer, SdkRequest=request_module.SdkRequest)
