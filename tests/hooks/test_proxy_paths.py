"""
Every OMS and IAM request goes where the proxy rules say, on all three paths (sync hook, deferrable trigger, IAM
login), through a real forward proxy on 127.0.0.1 that counts what passes: the connection's extra ``proxy``,
``HTTP_PROXY`` from the environment, and ``NO_PROXY`` naming the host.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_oms import iam
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.proxies import bypassed, proxy_for
from airflow_provider_oms.testing import OMSEmulator
from airflow_provider_oms.triggers.oms import MigrationTaskTrigger
from tests.forward_proxy import ForwardProxy, forward_proxy
from tests.helpers import paused_sample_task

PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ForwardProxy]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setattr(iam, "_cache", {})
    with forward_proxy() as running:
        yield running


@pytest.fixture
def oms_emulator(make_emulator: Any) -> OMSEmulator:
    """An emulator whose tasks wait a moment before they run, so that a sample task can be made paused."""
    emulator, _ = make_emulator(task_start_delay=0.5)
    return emulator


def connect(emulator: OMSEmulator, set_connection: Any, conn_id: str, *, auth: str = "aksk", **extra: Any) -> str:
    conn = emulator.airflow_connection(auth=auth)
    return set_connection(
        conn_id,
        conn_type=conn["conn_type"],
        login=conn["login"],
        password=conn["password"],
        extra={**conn["extra"], **extra},
    )


def through(proxy: ForwardProxy, emulator: OMSEmulator) -> list[str]:
    host = f"127.0.0.1:{emulator.url.rsplit(':', 1)[-1].rstrip('/')}"
    return [method for method, target, _ in proxy.seen if target == host]


def test_the_extra_proxy_carries_every_sync_call_and_wins_over_the_environment(
    oms_emulator: OMSEmulator, proxy: ForwardProxy, set_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there: the extra must win
    hook = OMSHook(connect(oms_emulator, set_connection, "via_extra", proxy=proxy.url))
    assert hook.list_tasks()["count"] == 0
    hook.get_task(paused_sample_task(oms_emulator, hook, files=1))
    assert len(oms_emulator.requests) >= 4
    assert len(through(proxy, oms_emulator)) == len(oms_emulator.requests) >= 4


def test_http_proxy_from_the_environment_and_no_proxy_bypass(
    oms_emulator: OMSEmulator, proxy: ForwardProxy, set_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn_id = connect(oms_emulator, set_connection, "via_env")
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    OMSHook(conn_id).list_tasks()
    assert through(proxy, oms_emulator) == ["GET"]

    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.0/8")
    OMSHook(conn_id).list_tasks()
    assert through(proxy, oms_emulator) == ["GET"]  # the second call went direct
    assert len(oms_emulator.requests) == 2

    OMSHook(connect(oms_emulator, set_connection, "direct", proxy="none")).list_tasks()
    monkeypatch.delenv("NO_PROXY")
    OMSHook(connect(oms_emulator, set_connection, "direct", proxy="none")).list_tasks()
    assert through(proxy, oms_emulator) == ["GET"]  # "none" wins over HTTP_PROXY


def test_the_deferrable_wait_goes_through_the_extra_proxy(
    oms_emulator: OMSEmulator, proxy: ForwardProxy, set_connection: Any
) -> None:
    conn_id = connect(oms_emulator, set_connection, "deferred_via_extra", proxy=proxy.url)
    hook = OMSHook(conn_id)
    task_id = paused_sample_task(oms_emulator, hook, files=1)
    oms_emulator.reset_requests()
    proxy.reset()
    trigger = MigrationTaskTrigger(
        migration_task_id=task_id,
        oms_conn_id=conn_id,
        poll_interval=0.1,
        deadline=time.time() + 30,
        target_statuses=[3],  # paused: one read ends the wait
    )

    async def first_event() -> Any:
        async for event in trigger.run():
            return event
        return None

    event = asyncio.run(asyncio.wait_for(first_event(), 30))
    assert event is not None and event.payload["status"] == "success", event
    assert len(through(proxy, oms_emulator)) == len(oms_emulator.requests) >= 1


def test_the_iam_login_goes_through_the_proxy_too(
    oms_emulator: OMSEmulator, proxy: ForwardProxy, set_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    OMSHook(connect(oms_emulator, set_connection, "token_via_env", auth="token")).list_tasks()
    paths = [record.path.rsplit("/", 1)[-1] for record in oms_emulator.requests]
    assert paths == ["tokens", "tasks"]
    assert through(proxy, oms_emulator) == ["POST", "GET"]  # the password went where the OMS calls go


def test_the_proxy_password_is_masked_and_never_in_the_config_repr(
    oms_emulator: OMSEmulator, proxy: ForwardProxy, set_connection: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with_password = proxy.url.replace("http://", "http://proxyuser:Proxy-Secret-1@")
    hook = OMSHook(connect(oms_emulator, set_connection, "proxy_auth", proxy=with_password))
    hook.list_tasks()
    assert [auth is not None for _, _, auth in proxy.seen] == [True]  # requests sent the proxy credentials
    assert "Proxy-Secret-1" not in repr(hook.config) and "Proxy-Secret-1" not in caplog.text

    from airflow.sdk.execution_time.secrets_masker import _secrets_masker

    assert "Proxy-Secret-1" not in str(_secrets_masker().redact(f"proxy {with_password}"))


@pytest.mark.parametrize(
    ("url", "no_proxy", "bypass"),
    [
        ("http://api.example.com", "example.com", True),
        ("http://api.example.com", ".example.com", True),
        ("http://api.example.com", "*.example.com", True),
        ("http://example.com", "example.com", True),
        ("http://badexample.com", "example.com", False),
        ("http://API.Example.COM", "example.com", True),
        ("http://example.com:8080", "example.com:8080", True),
        ("http://example.com:8081", "example.com:8080", False),
        ("https://example.com", "example.com:443", True),
        ("http://10.1.2.3", "10.0.0.0/8", True),
        ("http://11.1.2.3", "10.0.0.0/8", False),
        ("http://127.0.0.1:5000", "127.0.0.1", True),
        ("http://[::1]:5000", "::1", True),
        ("http://anything", "*", True),
        ("http://anything", "", False),
    ],
)
def test_no_proxy_rules(url: str, no_proxy: str, bypass: bool) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    assert bypassed(parts.hostname or "", port, no_proxy) is bypass
    env = {"HTTP_PROXY": "http://p:1", "HTTPS_PROXY": "http://p:2", "NO_PROXY": no_proxy}
    assert proxy_for(url, None, env) == (None if bypass else env[f"{parts.scheme.upper()}_PROXY"])


def test_proxy_choice_order() -> None:
    env = {"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:1", "HTTP_PROXY": "http://plain:1"}
    assert proxy_for("https://oms.example.com", None, env) == "http://lower:1"  # lower-case first, as urllib
    assert proxy_for("http://oms.example.com", None, env) == "http://plain:1"
    assert proxy_for("https://oms.example.com", "http://extra:1", env) == "http://extra:1"
    assert proxy_for("https://oms.example.com", "none", env) is None
    assert proxy_for("https://oms.example.com", None, {"HTTP_PROXY": "http://plain:1"}) is None  # https: not HTTP_
