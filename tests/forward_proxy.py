"""
A real forward HTTP proxy on 127.0.0.1 for the proxy tests: absolute-form requests are forwarded, CONNECT is
tunnelled, and each request is counted by (method, host:port) and by the ``Proxy-Authorization`` it carried.
"""

from __future__ import annotations

import select
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit


class _Handler(socketserver.StreamRequestHandler):
    server: _ProxyServer

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.connection.recv(65536)
            if not chunk:
                return
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, version = request_line.split(" ", 2)
        headers = [line.split(":", 1) for line in header_lines if ":" in line]
        auth = next((value.strip() for name, value in headers if name.lower() == "proxy-authorization"), None)
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            self.server.record(method, f"{host}:{port}", auth)
            upstream = socket.create_connection((host, int(port)))
            self.connection.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self._splice(upstream, rest)
            return
        url = urlsplit(target)
        port = url.port or 80
        self.server.record(method, f"{url.hostname}:{port}", auth)
        kept = [
            f"{name}:{value}" for name, value in headers if name.lower() not in ("proxy-authorization", "connection")
        ]
        path = url.path + (f"?{url.query}" if url.query else "")
        upstream = socket.create_connection((url.hostname or "", port))
        forwarded = "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close", "", ""]).encode("latin-1")
        upstream.sendall(forwarded + rest)
        self._splice(upstream, b"", until_upstream_closes=True)

    def _splice(self, upstream: socket.socket, pending: bytes, *, until_upstream_closes: bool = False) -> None:
        if pending:
            upstream.sendall(pending)
        sockets = [self.connection, upstream]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 30)
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is self.connection else self.connection).sendall(data)
        except OSError:
            return
        finally:
            upstream.close()


class _ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, str, str | None]] = []
        self._lock = threading.Lock()

    def record(self, method: str, target: str, auth: str | None) -> None:
        with self._lock:
            self.seen.append((method, target, auth))


class ForwardProxy:
    """What a test sees of the proxy: its URL and what passed through it."""

    def __init__(self, server: _ProxyServer) -> None:
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"

    @property
    def seen(self) -> list[tuple[str, str, str | None]]:
        """``(method, host:port, Proxy-Authorization)`` of each request or tunnel, in order."""
        return list(self._server.seen)

    def reset(self) -> None:
        self._server.seen.clear()


@contextmanager
def forward_proxy() -> Iterator[ForwardProxy]:
    """Run a forward proxy on 127.0.0.1 for the block, and stop it after."""
    server = _ProxyServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ForwardProxy(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
