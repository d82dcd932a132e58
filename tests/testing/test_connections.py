"""How the emulator's HTTP server treats connections: Nagle off, keep-alive, and closed after a broken request."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from airflow_provider_oms.testing import OMSEmulator
from airflow_provider_oms.testing.server import OMSHTTPServer, OMSRequestHandler
from airflow_provider_oms.testing.store import TaskStore
from tests.testing.helpers import OMSCaller


def raw_exchange(emulator: OMSEmulator, data: bytes, *, end_of_request: bool = False) -> bytes:
    """
    Send ``data`` on a new connection and return all the server answers until it closes the connection.

    :param end_of_request: also shut the sending side down, as a client that sent all it had.
    """
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=10) as sock:
        sock.sendall(data)
        if end_of_request:
            sock.shutdown(socket.SHUT_WR)
        # Reading to the end only returns if the server closes the connection: else the timeout fails the test.
        return sock.makefile("rb").read()


def signed_get_tasks(emulator: OMSEmulator) -> bytes:
    call = OMSCaller(emulator.url).prepare("GET", "/tasks")
    parts = urlsplit(call.url)
    head = [f"GET {parts.path} HTTP/1.1", *(f"{name}: {value}" for name, value in call.headers.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii")


def test_accepted_connections_have_nagle_off(tmp_path: Path) -> None:
    # Answers are small: with Nagle's algorithm and delayed ACKs, each call on a kept-alive connection would
    # wait ~40 ms for the previous answer's ACK.
    server = OMSHTTPServer(("127.0.0.1", 0), TaskStore(tmp_path), credentials={}, project_id="project")
    try:
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as client:
            accepted, _ = server.get_request()
            with accepted:
                assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0  # the default
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        server.server_close()


def test_keep_alive_calls_share_one_connection(oms: OMSCaller, oms_emulator: OMSEmulator) -> None:
    oms_emulator.reset_requests()
    for _ in range(20):
        assert oms("GET", "/tasks").status_code == 200
    assert oms_emulator.connections_opened == 1


def test_internal_error_closes_the_connection(oms_emulator: OMSEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in the emulator")

    monkeypatch.setattr(TaskStore, "list_tasks", broken)
    request = signed_get_tasks(oms_emulator)
    # Two requests in one go: after the 500 the connection ends, and the second one is never answered.
    answer = raw_exchange(oms_emulator, request + request)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500")
    assert b"\r\nConnection: close" in head
    assert body == b'{"error_code": "OMS.EMULATOR", "error_msg": "Internal emulator error."}'


def test_body_shorter_than_its_content_length_closes_the_connection(oms_emulator: OMSEmulator) -> None:
    path = f"/v2/{oms_emulator.project_id}/tasks"
    request = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n".encode() + b'{"short": '
    answer = raw_exchange(oms_emulator, request, end_of_request=True)
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"\r\nConnection: close" in answer
    assert answer.endswith(
        b'{"error_code": "APIGW.0201", "error_msg": "The request body is shorter than its Content-Length."}'
    )


def test_body_that_times_out_closes_the_connection(oms_emulator: OMSEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(OMSRequestHandler, "timeout", 0.3)
    path = f"/v2/{oms_emulator.project_id}/tasks"
    # The rest of the body never comes: what would follow it must not be read as a request.
    request = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n".encode() + b'{"slow": '
    answer = raw_exchange(oms_emulator, request)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"\r\nConnection: close" in answer
    assert b'"error_code": "APIGW.0201"' in answer
