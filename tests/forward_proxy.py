"""
A real forward HTTP proxy on 127.0.0.1 for the proxy tests: absolute-form requests are forwarded, CONNECT is
tunnelled, and each request is counted by (method, host:port) and by the ``Proxy-Authorization`` it carried.

Optionally it asks for credentials (``407`` without the right ``Proxy-Authorization``), and it can inspect TLS as
enterprise proxies do: a tunnel's TLS ends at the proxy, under the proxy's own certificate, and the proxy opens its
own TLS connection to the target.
"""

from __future__ import annotations

import base64
import select
import socket
import socketserver
import ssl
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
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
        if self.server.credentials is not None and auth != self.server.credentials:
            self.server.record(method, "407", auth)
            self.connection.sendall(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n"
                b"Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            self.server.record(method, f"{host}:{port}", auth)
            upstream = socket.create_connection((host, int(port)))
            self.connection.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if self.server.inspect is None:
                self._splice(self.connection, upstream, rest)
                return
            # Inspecting: the client's TLS ends here, under the proxy's certificate; a new TLS goes to the target.
            server_side, client_side = self.server.inspect
            try:
                inward = server_side.wrap_socket(self.connection, server_side=True)
            except OSError:  # the client refused the proxy's certificate
                upstream.close()
                return
            with inward:
                self._splice(inward, client_side.wrap_socket(upstream, server_hostname=host), rest)
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
        self._splice(self.connection, upstream, b"")

    @staticmethod
    def _splice(client: socket.socket, upstream: socket.socket, pending: bytes) -> None:
        """Copy bytes both ways until either side closes (``pending``: what the client sent after the head)."""
        if pending:
            upstream.sendall(pending)
        sockets = [client, upstream]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 30)
                if not readable:
                    return
                for sock in readable:
                    other = upstream if sock is client else client
                    data = _receive(sock)
                    if data is None:
                        continue
                    if not data:
                        return
                    other.sendall(data)
        except OSError:
            return
        finally:
            upstream.close()


def _receive(sock: socket.socket) -> bytes | None:
    """
    What a readable socket holds (``b""``: it closed), or ``None`` when a TLS socket got only TLS housekeeping.

    A readable TLS socket may hold no application data (a TLS 1.3 session ticket after the handshake): a blocking
    ``recv`` would then wait for data while the other side waits for us. Read without blocking instead, and take
    the decrypted bytes ``select()`` cannot see too.
    """
    sock.settimeout(0)
    try:
        data = sock.recv(65536)
        while isinstance(sock, ssl.SSLSocket) and data and sock.pending():
            data += sock.recv(sock.pending())
        return data
    except ssl.SSLWantReadError:
        return None
    finally:
        sock.settimeout(None)


class _ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, credentials: str | None, inspect: tuple[ssl.SSLContext, ssl.SSLContext] | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, str, str | None]] = []
        self._lock = threading.Lock()
        #: The ``Proxy-Authorization`` value a request must carry, or None.
        self.credentials = credentials
        #: (the proxy's server-side context, its client-side context) when inspecting TLS, else None.
        self.inspect = inspect

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client or target that went away (or refused a certificate) is no error of the proxy's."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

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
        """``(method, host:port, Proxy-Authorization)`` of each request or tunnel, in order (``407``: refused)."""
        return list(self._server.seen)

    def reset(self) -> None:
        self._server.seen.clear()


@contextmanager
def forward_proxy(
    *, user: str | None = None, password: str = "", inspect_tls: tuple[Path, Path, Path] | None = None
) -> Iterator[ForwardProxy]:
    """
    Run a forward proxy on 127.0.0.1 for the block, and stop it after.

    :param user: ask for Basic proxy credentials, this user and ``password`` (``407`` otherwise).
    :param inspect_tls: inspect tunnelled TLS: (the proxy's certificate, its key, the CA bundle it trusts the
        targets by).
    """
    credentials = None if user is None else "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    inspect = None
    if inspect_tls is not None:
        certfile, keyfile, upstream_ca = inspect_tls
        server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_side.load_cert_chain(certfile, keyfile)
        inspect = (server_side, ssl.create_default_context(cafile=upstream_ca))
    server = _ProxyServer(credentials, inspect)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield ForwardProxy(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
