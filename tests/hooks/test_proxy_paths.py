"""
Every OMS and IAM request goes where the proxy rules say, on all three paths (sync hook, deferrable trigger, IAM
login), through a real forward proxy on 127.0.0.1 that counts what passes: the connection's extra ``proxy``,
``HTTP_PROXY`` with the plain emulator, ``HTTPS_PROXY`` and ``CONNECT`` tunnels with the emulator's https mode,
``NO_PROXY`` naming the host, a TLS-inspecting proxy trusted through extra ``verify``, and a proxy's password
kept out of logs, reprs and errors. The rules themselves are in tests/test_proxies.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_oms import iam
from airflow_provider_oms.exceptions import OMSApiError
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.testing import OMSEmulator
from airflow_provider_oms.triggers.oms import MigrationTaskTrigger, authorized_send
from tests.forward_proxy import ForwardProxy, forward_proxy
from tests.helpers import paused_sample_task
from tests.tls import self_signed_certificate

PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")
#: Nothing listens there: a request sent to this proxy fails.
DEAD_PROXY = "http://127.0.0.1:9"
PROXY_SECRET = "Proxy-Secret-1"


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setattr(iam, "_cache", {})


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with forward_proxy() as running:
        yield running


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Self-signed certificates for 127.0.0.1: the emulator's, and a TLS-inspecting proxy's."""
    folder = tmp_path_factory.mktemp("tls")
    return {name: self_signed_certificate(folder, name) for name in ("emulator", "proxy")}


@pytest.fixture
def emulators(tmp_path: Path) -> Iterator[Callable[..., OMSEmulator]]:
    """Start emulators whose tasks wait a moment before they run (a sample task can be made paused); stop them."""
    started: list[OMSEmulator] = []

    def _start(**options: Any) -> OMSEmulator:
        started.append(OMSEmulator(tmp_path / f"oms-{len(started)}", task_start_delay=0.5, **options).start())
        return started[-1]

    yield _start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def plain_emulator(emulators: Callable[..., OMSEmulator]) -> OMSEmulator:
    return emulators()


@pytest.fixture
def tls_emulator(emulators: Callable[..., OMSEmulator], certificates: dict[str, tuple[Path, Path]]) -> OMSEmulator:
    certfile, keyfile = certificates["emulator"]
    return emulators(certfile=certfile, keyfile=keyfile)


def connect(emulator: OMSEmulator, set_connection: Any, conn_id: str, *, auth: str = "aksk", **extra: Any) -> str:
    conn = emulator.airflow_connection(auth=auth)
    return set_connection(
        conn_id,
        conn_type=conn["conn_type"],
        login=conn["login"],
        password=conn["password"],
        extra={**conn["extra"], **extra},
    )


def target(emulator: OMSEmulator) -> str:
    return f"127.0.0.1:{emulator.port}"


def through(proxy: ForwardProxy, emulator: OMSEmulator) -> list[str]:
    """The methods of the requests (or CONNECT tunnels) the proxy carried to the emulator."""
    return [method for method, host, _ in proxy.seen if host == target(emulator)]


def tunnelled_everything(proxy: ForwardProxy, emulator: OMSEmulator) -> bool:
    """Every connection the emulator accepted came through one of the proxy's tunnels (and there was one)."""
    tunnels = through(proxy, emulator)
    return set(tunnels) == {"CONNECT"} and len(tunnels) == emulator.connections_opened


def wait_once(conn_id: str, migration_task_id: str) -> dict[str, Any]:
    """Run the deferrable wait's trigger, as the triggerer does, for a paused task; return its event's payload."""
    trigger = MigrationTaskTrigger(
        migration_task_id=migration_task_id,
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
    assert event is not None
    return dict(event.payload)


def test_the_extra_proxy_carries_every_sync_call_and_wins_over_the_environment(
    plain_emulator: OMSEmulator, proxy: ForwardProxy, set_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", DEAD_PROXY)  # the extra must win
    hook = OMSHook(connect(plain_emulator, set_connection, "via_extra", proxy=proxy.url))
    assert hook.list_tasks()["count"] == 0
    hook.get_task(paused_sample_task(plain_emulator, hook, files=1))
    assert len(plain_emulator.requests) >= 4
    assert len(through(proxy, plain_emulator)) == len(plain_emulator.requests)


def test_http_proxy_from_the_environment_no_proxy_bypass_and_none(
    plain_emulator: OMSEmulator, proxy: ForwardProxy, set_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn_id = connect(plain_emulator, set_connection, "via_env")
    monkeypatch.setenv("HTTPS_PROXY", DEAD_PROXY)  # an http:// endpoint takes HTTP_PROXY, not this one
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    OMSHook(conn_id).list_tasks()
    assert through(proxy, plain_emulator) == ["GET"]

    monkeypatch.setenv("NO_PROXY", f"localhost,127.0.0.1:{plain_emulator.port}")
    OMSHook(conn_id).list_tasks()
    assert through(proxy, plain_emulator) == ["GET"]  # the second call went direct
    assert len(plain_emulator.requests) == 2

    monkeypatch.delenv("NO_PROXY")
    OMSHook(connect(plain_emulator, set_connection, "direct", proxy="none")).list_tasks()
    assert through(proxy, plain_emulator) == ["GET"]  # "none" wins over HTTP_PROXY
    assert len(plain_emulator.requests) == 3


@pytest.mark.parametrize("setting", ["extra", "environment", "no_proxy"])
def test_the_deferrable_wait_follows_the_same_rules(
    setting: str,
    plain_emulator: OMSEmulator,
    proxy: ForwardProxy,
    set_connection: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extra = {"proxy": proxy.url} if setting == "extra" else {}
    conn_id = connect(plain_emulator, set_connection, "deferred", **extra)
    task_id = paused_sample_task(plain_emulator, OMSHook(conn_id), files=1)
    plain_emulator.reset_requests()
    proxy.reset()
    if setting != "extra":
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
    if setting == "no_proxy":
        monkeypatch.setenv("NO_PROXY", "10.0.0.0/8,127.0.0.0/8")

    assert wait_once(conn_id, task_id)["status"] == "success"
    assert len(plain_emulator.requests) >= 1
    expected = 0 if setting == "no_proxy" else len(plain_emulator.requests)
    assert len(through(proxy, plain_emulator)) == expected


@pytest.mark.parametrize("setting", ["extra", "environment", "no_proxy"])
def test_the_iam_login_follows_the_same_rules(
    setting: str,
    plain_emulator: OMSEmulator,
    proxy: ForwardProxy,
    set_connection: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extra = {"proxy": proxy.url} if setting == "extra" else {}
    if setting != "extra":
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
    if setting == "no_proxy":
        monkeypatch.setenv("no_proxy", "LOCALHOST,127.0.0.1")
    OMSHook(connect(plain_emulator, set_connection, "token_auth", auth="token", **extra)).list_tasks()
    assert [record.path.rsplit("/", 1)[-1] for record in plain_emulator.requests] == ["tokens", "tasks"]
    # The password goes where the OMS calls go.
    assert through(proxy, plain_emulator) == ([] if setting == "no_proxy" else ["POST", "GET"])


@pytest.mark.parametrize("path", ["sync", "deferrable"])
def test_https_proxy_tunnels_oms_calls_and_the_iam_login_to_the_https_emulator(
    path: str, tls_emulator: OMSEmulator, proxy: ForwardProxy, set_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", DEAD_PROXY)  # an https:// endpoint takes HTTPS_PROXY, not this one
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    conn_id = connect(tls_emulator, set_connection, "over_tls", auth="token")
    aksk_id = connect(tls_emulator, set_connection, "over_tls_aksk")
    assert tls_emulator.url.startswith("https://")
    task_id = paused_sample_task(tls_emulator, OMSHook(aksk_id), files=1)
    if path == "sync":
        OMSHook(conn_id).get_task(task_id)
    else:
        assert wait_once(conn_id, task_id)["status"] == "success"
    assert [record.path.rsplit("/", 1)[-1] for record in tls_emulator.requests][-2:] == ["tokens", task_id]
    assert tunnelled_everything(proxy, tls_emulator), (proxy.seen, tls_emulator.connections_opened)

    tls_emulator.reset_requests()
    proxy.reset()
    monkeypatch.setenv("NO_PROXY", ".localhost,127.0.0.1")
    iam._cache.clear()
    if path == "sync":
        OMSHook(conn_id).get_task(task_id)
    else:
        assert wait_once(conn_id, task_id)["status"] == "success"
    assert tls_emulator.connections_opened >= 1
    assert proxy.seen == []


def test_a_tls_inspecting_proxy_is_trusted_through_extra_verify(
    tls_emulator: OMSEmulator, set_connection: Any, certificates: dict[str, tuple[Path, Path]]
) -> None:
    proxy_cert, proxy_key = certificates["proxy"]
    with forward_proxy(inspect_tls=(proxy_cert, proxy_key, certificates["emulator"][0])) as inspecting:
        conn_id = connect(
            tls_emulator, set_connection, "inspected", auth="token", proxy=inspecting.url, verify=str(proxy_cert)
        )
        aksk_id = connect(tls_emulator, set_connection, "inspected_aksk", proxy=inspecting.url, verify=str(proxy_cert))
        task_id = paused_sample_task(tls_emulator, OMSHook(aksk_id), files=1)
        assert wait_once(conn_id, task_id)["status"] == "success"
        assert "tokens" in [record.path.rsplit("/", 1)[-1] for record in tls_emulator.requests]
        assert tunnelled_everything(inspecting, tls_emulator)

        # Trusting the emulator's own certificate is not enough: the proxy answers the handshake with its own.
        refused = connect(tls_emulator, set_connection, "not_inspected", proxy=inspecting.url, retry_max_attempts=1)
        with pytest.raises(OMSApiError, match=r"SSLError|certificate"):
            OMSHook(refused).list_tasks()


def test_the_proxy_password_stays_out_of_logs_reprs_and_errors(
    plain_emulator: OMSEmulator,
    tls_emulator: OMSEmulator,
    set_connection: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with forward_proxy(user="proxyuser", password=PROXY_SECRET) as guarded:
        with_password = guarded.url.replace("http://", f"http://proxyuser:{PROXY_SECRET}@")
        hook = OMSHook(connect(plain_emulator, set_connection, "proxy_auth", auth="token", proxy=with_password))
        hook.list_tasks()
        task_id = paused_sample_task(plain_emulator, OMSHook(connect(plain_emulator, set_connection, "aksk")), files=1)
        assert wait_once("proxy_auth", task_id)["status"] == "success"
        assert through(guarded, plain_emulator) and "407" not in [host for _, host, _ in guarded.seen]
        assert PROXY_SECRET not in repr(hook.config) and PROXY_SECRET not in repr(hook.config.iam)

        # Refused by the proxy (a wrong password) and unreachable: the errors never carry the password.
        wrong = guarded.url.replace("http://", "http://proxyuser:Wrong-Secret-2@")
        for conn_id, proxy_url, emulator in [
            ("wrong_password", wrong, plain_emulator),
            ("wrong_password_tls", wrong, tls_emulator),
            ("dead_proxy", DEAD_PROXY.replace("http://", f"http://proxyuser:{PROXY_SECRET}@"), tls_emulator),
        ]:
            for auth in ("aksk", "token"):
                failing = connect(
                    emulator, set_connection, f"{conn_id}_{auth}", auth=auth, proxy=proxy_url, retry_max_attempts=1
                )
                hook = OMSHook(failing)
                with pytest.raises(OMSApiError) as raised:
                    hook.list_tasks()
                assert "Secret" not in str(raised.value), raised.value
                # The trigger's path: one call through the shared httpx client, as each poll makes.
                with pytest.raises(OMSApiError) as raised:
                    asyncio.run(authorized_send(hook.request_builder, hook.config, "GET", "/tasks", "list tasks"))
                assert "Secret" not in str(raised.value), raised.value
    assert "Secret" not in caplog.text

    from airflow.sdk.log import redact

    # Airflow masks the whole URL (an extra's value); the password is masked on its own too, wherever it shows.
    for text in (f"proxy {with_password}", f"proxyuser:{PROXY_SECRET}", f"password={PROXY_SECRET}"):
        assert PROXY_SECRET not in str(redact(text)), text
