"""
End to end: a deferrable DAG run (`airflow dags test`: the start from the worker's requests session, every poll
from the trigger's httpx client) sends every OMS request through the proxy the rules name, and none when
``NO_PROXY`` names the host. A real forward proxy on 127.0.0.1 counts what passes; nothing is mocked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.testing import EMULATOR_AK, EMULATOR_SK, OMSEmulator
from airflow_provider_oms.testing.airflow_runner import AirflowTestEnvironment
from tests.forward_proxy import ForwardProxy, forward_proxy
from tests.helpers import create_sample_task

pytestmark = pytest.mark.e2e

DAGS = Path(__file__).resolve().parent / "dags"
CONN_ID = "huaweicloud_oms_default"
DAG_ID = "oms_test_wait_deferrable"
#: Nothing listens there: a request sent to this proxy fails.
DEAD_PROXY = "http://127.0.0.1:9"
PROXY_NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


class ProxiedAirflow(AirflowTestEnvironment):
    """An Airflow installation whose commands run with these proxy variables only (none of the caller's)."""

    proxy_env: dict[str, str] = {}  # replaced per test, never mutated

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in super().env.items() if k.upper() not in PROXY_NAMES}
        return {**env, **self.proxy_env}


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> ProxiedAirflow:
    environment = ProxiedAirflow(tmp_path_factory.mktemp("airflow-home"), DAGS, {})
    environment.migrate()
    return environment


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ForwardProxy]:
    for name in PROXY_NAMES:  # this process makes the sample task directly
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    with forward_proxy() as running:
        yield running


@pytest.mark.parametrize("setting", ["extra", "http_proxy", "no_proxy"])
def test_a_deferrable_run_sends_every_oms_request_where_the_rules_say(
    setting: str, airflow: ProxiedAirflow, proxy: ForwardProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with OMSEmulator(tmp_path / "buckets", task_start_delay=1.0, object_delay=0.3) as emulator:
        conn = emulator.airflow_connection()
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", emulator.airflow_connection_uri_env())
        hook = OMSHook(CONN_ID)
        task_id = create_sample_task(emulator, hook, files=4)
        hook.stop_task(task_id)
        emulator.wait_for_status(task_id, {TaskStatus.PAUSED}, timeout=20)
        emulator.reset_requests()
        if setting == "extra":
            conn["extra"]["proxy"] = proxy.url
            airflow.proxy_env = {"HTTP_PROXY": DEAD_PROXY}  # the extra wins over the environment
        elif setting == "http_proxy":
            airflow.proxy_env = {"HTTP_PROXY": proxy.url}
        else:
            airflow.proxy_env = {"HTTP_PROXY": proxy.url, "NO_PROXY": f"localhost,127.0.0.1:{emulator.port}"}
        airflow.connections[CONN_ID] = conn

        result = airflow.dags_test(DAG_ID, {"migration_task_id": task_id})

        assert result.succeeded, result.output[-3000:]
        assert "running trigger in line" in result.output  # the polls came from the trigger
        assert emulator.get_task(task_id)["status"] == TaskStatus.SUCCEEDED
        methods = [record.method for record in emulator.requests]
        assert methods.count("POST") == 1 and methods.count("GET") >= 3, methods  # the start, then the polls
        carried = [method for method, target, _ in proxy.seen if target == f"127.0.0.1:{emulator.port}"]
        assert carried == ([] if setting == "no_proxy" else methods)
        for secret in (EMULATOR_AK, EMULATOR_SK):
            assert secret not in result.output
    assert not {k for k in os.environ if k.upper() in PROXY_NAMES}
