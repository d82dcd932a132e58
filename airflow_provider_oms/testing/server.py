"""
HTTP layer of the local OMS emulator: routing, signature checks, JSON bodies and errors.

The state lives in :mod:`airflow_provider_oms.testing.store`; this module maps HTTP requests onto it, and
authenticates each of them first, as Huawei Cloud's API gateway does before OMS sees a request. It is also
where faults are injected (:class:`FaultInjector`): what a gateway or a network can do to a request and its
answer, which the task store never sees. It also serves IAM's token endpoint (``POST /v3/auth/tokens``), and
accepts an IAM token (``X-Auth-Token``) in place of a signature. Nothing here logs a header or a body: they
carry credentials.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import socket
import ssl
import struct
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from http.client import responses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

from airflow_provider_oms import signer
from airflow_provider_oms.constants import ERROR_AUTH, ERROR_THROTTLED, MAX_CLOCK_SKEW_SECONDS
from airflow_provider_oms.testing.groups import TaskGroupStore
from airflow_provider_oms.testing.store import TaskStore
from airflow_provider_oms.testing.sync import SyncTaskStore
from airflow_provider_oms.testing.tasks import ERROR_EMULATOR, LIST_LIMIT_DEFAULT, OMSEmulatorError, invalid_parameter
from airflow_provider_oms.testing.tokens import AUTH_TOKEN_HEADER, SUBJECT_TOKEN_HEADER, TOKEN_PATH, TokenIssuer

logger = logging.getLogger("airflow_provider_oms.emulator")

ERROR_NO_SUCH_API = "APIGW.0101"
ERROR_BAD_REQUEST = "APIGW.0201"
#: Far above any OMS request body (the largest field, json_auth_file, is 64 KiB).
MAX_BODY_BYTES = 1024 * 1024
_API_PREFIX = "/v2/"

#: API gateway errors of the "error" fault, by HTTP status.
_GATEWAY_ERRORS = {
    500: ("APIGW.9999", "System error."),
    502: ("APIGW.0202", "Backend unavailable."),
    503: ("APIGW.0202", "Backend unavailable."),
    504: ("APIGW.0203", "Backend timeout."),
}
#: Faults answered instead of the request, which never reaches the task store.
_FAULTS_INSTEAD = frozenset({"throttle", "error", "html", "redirect", "reset_before"})
#: Faults that let the request change the store, then spoil or hold back its answer.
_FAULTS_AFTER = frozenset({"truncated_json", "reset_after", "delay"})
FAULT_KINDS = _FAULTS_INSTEAD | _FAULTS_AFTER
#: What a closed answer is recorded with in :class:`RequestRecord`.
NO_ANSWER = 0

#: An answer: HTTP status, JSON payload (``None``: empty body) and extra headers.
Answer = tuple[int, Any, Mapping[str, str]]
_NO_HEADERS: Mapping[str, str] = {}


@dataclass(frozen=True)
class RequestRecord:
    """
    One request the emulator received. Headers and bodies are never kept: they carry credentials.

    :param method: the HTTP method (empty for a request too malformed to have one).
    :param path: the path, without the query string.
    :param status: the HTTP status answered; ``0`` (:data:`NO_ANSWER`) when the connection was closed instead.
    :param error_code: the ``error_code`` of an error answer, else ``None``.
    :param fault: the kind of fault injected into this request (see ``OMSEmulator.inject_fault``), else ``None``.
    """

    method: str
    path: str
    status: int
    error_code: str | None
    fault: str | None = None


@dataclass
class Fault:
    """
    A fault waiting for requests, built by :meth:`FaultInjector.inject`.

    ``OMSEmulator.inject_fault`` documents the fields; ``remaining`` counts down as requests take the fault,
    unless ``until`` is set: then every matching request takes it until that monotonic time.
    """

    kind: str
    path: re.Pattern[str] | None
    remaining: int
    status: int
    retry_after: float
    delay: float
    until: float | None = None


class FaultInjector:
    """
    Faults for the next requests, per path or for all of them; thread-safe.

    Each request takes the first fault (in the order injected) whose path pattern matches it, and uses up one
    of its ``count``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def inject(
        self,
        kind: str,
        *,
        path: str | None = None,
        count: int = 1,
        status: int | None = None,
        retry_after: float | None = None,
        delay: float | None = None,
        seconds: float | None = None,
    ) -> None:
        """
        Inject a fault into the next ``count`` requests whose path matches ``path`` (or all, for ``seconds``).

        :meth:`OMSEmulator.inject_fault <airflow_provider_oms.testing.emulator.OMSEmulator.inject_fault>`
        documents the kinds and the options.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; the kinds are {', '.join(sorted(FAULT_KINDS))}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError("count must be a whole number of at least 1")
        if seconds is not None and not seconds > 0:
            raise ValueError("seconds must be more than 0")
        if status is not None and kind not in ("error", "html"):
            raise ValueError("status is only for the 'error' and 'html' faults")
        if retry_after is not None and (kind != "throttle" or retry_after < 0):
            raise ValueError("retry_after is only for the 'throttle' fault, and must not be negative")
        if (delay is None) != (kind != "delay") or (delay is not None and delay < 0):
            raise ValueError("delay is required for the 'delay' fault, only for it, and must not be negative")
        if kind == "error" and status is not None and status not in _GATEWAY_ERRORS:
            raise ValueError(f"an 'error' fault's status is one of {sorted(_GATEWAY_ERRORS)}")
        if kind == "html" and status is not None and not 400 <= status <= 599:
            raise ValueError("an 'html' fault's status is an error status, 400 to 599")
        fault = Fault(
            kind=kind,
            path=None if path is None else re.compile(path),
            remaining=count,
            status=status if status is not None else (503 if kind == "error" else 502),
            retry_after=1.0 if retry_after is None else retry_after,
            delay=delay or 0.0,
            until=None if seconds is None else time.monotonic() + seconds,
        )
        with self._lock:
            self._faults.append(fault)

    def take(self, path: str) -> Fault | None:
        """Return the fault for a request on ``path`` (without the query), using up one of its count; or None."""
        with self._lock:
            now = time.monotonic()
            self._faults = [fault for fault in self._faults if fault.until is None or fault.until > now]
            for index, fault in enumerate(self._faults):
                if fault.path is None or fault.path.search(path):
                    if fault.until is not None:
                        return fault
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        del self._faults[index]
                    return fault
        return None

    def clear(self) -> None:
        """Drop every fault not used up yet."""
        with self._lock:
            self._faults.clear()

    @property
    def pending(self) -> int:
        """How many more requests the injected faults will apply to (a fault for some seconds counts its count)."""
        with self._lock:
            now = time.monotonic()
            return sum(fault.remaining for fault in self._faults if fault.until is None or fault.until > now)


def _seconds(value: float) -> str:
    """Format a ``Retry-After`` value: whole seconds as an integer, as HTTP has it; a fraction if one was asked."""
    return str(int(value)) if value == int(value) else f"{value:g}"


def _html_page(status: int) -> bytes:
    title = f"{status} {responses.get(status, 'Error')}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
        "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    ).encode()


def _no_such_api() -> OMSEmulatorError:
    return OMSEmulatorError(
        404, ERROR_NO_SUCH_API, "The API does not exist or has not been published in the environment"
    )


def _auth_error(reason: str) -> OMSEmulatorError:
    return OMSEmulatorError(401, ERROR_AUTH, f"Incorrect IAM authentication information: {reason}")


def _json_body(body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise invalid_parameter("body", "is not valid JSON") from None


def _encode(payload: Any) -> bytes:
    return json.dumps(payload).encode("utf-8")


def _int_param(params: Mapping[str, str], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise invalid_parameter(name, "must be an integer") from None


def _paging(params: Mapping[str, str]) -> dict[str, int]:
    """Return the ``limit`` and ``offset`` of a list request, with the API's defaults."""
    limit = _int_param(params, "limit")
    offset = _int_param(params, "offset")
    return {"limit": LIST_LIMIT_DEFAULT if limit is None else limit, "offset": 0 if offset is None else offset}


class OMSHTTPServer(ThreadingHTTPServer):
    """
    The emulator's HTTP server: one thread per connection, keep-alive, every request authenticated.

    :param address: ``(host, port)`` to listen on; port 0 picks a free one.
    :param store: the tasks the API works on.
    :param credentials: the accepted AK/SK pairs, ``{access_key: secret_key}``.
    :param project_id: the only project whose API exists.
    :param groups: the task groups; default: new ones, on ``store``.
    :param sync_tasks: the sync tasks; default: new ones, in ``store``'s data directory.
    :param tokens: the IAM users and their tokens; default: no user (no token can be had).
    :param faults: the faults to inject into requests; default none.
    :param clock_offset: seconds added to this machine's clock for the ``Date`` header and the check of the
        request date, as if the server's clock (or, seen from the server, the client's) were off.
    :param ssl_context: serve https with this server-side TLS context (the handshake runs in each connection's
        thread); default: plain http.
    """

    # socketserver's default backlog of 5 drops the SYNs of a burst of clients (a fan-out, many triggers).
    request_queue_size = 128
    daemon_threads = True
    # server_close() ends idle keep-alive connections instead of waiting for their clients.
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        store: TaskStore,
        *,
        credentials: Mapping[str, str],
        project_id: str,
        faults: FaultInjector | None = None,
        clock_offset: float = 0.0,
        groups: TaskGroupStore | None = None,
        sync_tasks: SyncTaskStore | None = None,
        tokens: TokenIssuer | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.store = store
        self.groups = groups if groups is not None else TaskGroupStore(store)
        self.sync_tasks = sync_tasks if sync_tasks is not None else SyncTaskStore(store.data_dir)
        self.tokens = tokens if tokens is not None else TokenIssuer({}, project_id=project_id, clock=self.now)
        self.credentials = dict(credentials)
        self.project_id = project_id
        self.faults = faults if faults is not None else FaultInjector()
        self.clock_offset = clock_offset
        self.ssl_context = ssl_context
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._connections: set[Any] = set()
        self._resetting: set[Any] = set()
        self._connections_opened = 0
        #: Set by server_close(): cuts short the answers a "delay" fault holds back.
        self.closing = threading.Event()
        super().__init__(address, OMSRequestHandler)

    def __repr__(self) -> str:
        return f"OMSHTTPServer(address={self.server_address!r}, project_id={self.project_id!r})"

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request received so far, in order (a copy)."""
        with self._lock:
            return list(self._records)

    def record(self, entry: RequestRecord) -> None:
        """Append one request to :attr:`requests`."""
        with self._lock:
            self._records.append(entry)

    def reset_requests(self) -> None:
        """Forget the requests received so far, and the count of connections opened."""
        with self._lock:
            self._records.clear()
            self._connections_opened = 0

    def now(self) -> datetime:
        """Return the server's time: this machine's, plus the clock offset."""
        return datetime.now(timezone.utc) + timedelta(seconds=self.clock_offset)

    def reset_on_close(self, connection: socket.socket) -> None:
        """Make the end of a connection a TCP reset (RST) instead of an orderly close (FIN)."""
        # SO_LINGER on, with a timeout of 0: close() drops the connection with a RST.
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._lock:
            self._resetting.add(connection)

    @property
    def connections_opened(self) -> int:
        """How many TCP connections clients opened (since the start or :meth:`reset_requests`)."""
        with self._lock:
            return self._connections_opened

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept a connection, with Nagle's algorithm off (and TLS, whose handshake the handler's thread runs)."""
        connection, address = super().get_request()
        # Responses are small: with Nagle and delayed ACKs, each keep-alive call would wait ~40 ms.
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            connection = self.ssl_context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return connection, address

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve a connection in its own thread, remembering it until it ends."""
        with self._lock:
            self._connections.add(request)
            self._connections_opened += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Close a connection that has ended; with a reset if :meth:`reset_on_close` asked for one."""
        with self._lock:
            self._connections.discard(request)
            reset = request in self._resetting
            self._resetting.discard(request)
        if reset:
            # No shutdown() first: it would send a FIN, an orderly end, before the reset.
            self.close_request(request)
        else:
            super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log what ended a connection; a client that went away is no error of the emulator."""
        if isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError):
            logger.debug("OMS emulator: a client closed its connection, or refused its TLS handshake")
        else:
            logger.exception("OMS emulator: error on a connection")

    def server_close(self) -> None:
        """Stop listening and end the open connections, so no client keeps talking to a stopped emulator."""
        self.closing.set()
        super().server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class OMSRequestHandler(BaseHTTPRequestHandler):
    """Answers one connection's requests with the OMS v2 API subset that the emulator implements."""

    protocol_version = "HTTP/1.1"
    server_version = "OMSEmulator"
    # Idle keep-alive connections are dropped after this many seconds, as a real gateway does.
    timeout = 120
    server: OMSHTTPServer

    def setup(self) -> None:
        """Set the connection up; a TLS one shakes hands here, in its own thread and under :attr:`timeout`."""
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def handle_one_request(self) -> None:
        """Serve one request of the connection."""
        # A malformed request never sets these: clear what the previous request on this connection left.
        self.command = self.path = ""
        super().handle_one_request()

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except OMSEmulatorError as err:
            self._respond(err.status, err.to_json())
            return
        fault = self.server.faults.take(self._path())
        if fault is None:
            self._respond(*self._answer(body))
            return
        logger.info("OMS emulator: injecting fault %s into %s %s", fault.kind, self.command, self._path())
        if fault.kind in _FAULTS_INSTEAD:
            self._answer_instead(fault)
        else:
            self._answer_after(fault, *self._answer(body))

    def _answer(self, body: bytes) -> Answer:
        """Process a request; return the status, JSON payload and extra headers of its answer."""
        try:
            return self._process(body)
        except OMSEmulatorError as err:
            return err.status, err.to_json(), _NO_HEADERS
        except Exception:
            logger.exception("OMS emulator: error while answering %s %s", self.command, self._path())
            # Whatever the request left unread must never be taken for the next request.
            self.close_connection = True
            return 500, {"error_code": ERROR_EMULATOR, "error_msg": "Internal emulator error."}, _NO_HEADERS

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer a request that cannot be parsed, in the API's JSON error format rather than HTML."""
        self.close_connection = True
        self._respond(code, {"error_code": ERROR_BAD_REQUEST, "error_msg": message or HTTPStatus(code).phrase})

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log the method, path (no query) and status of a request; never a header or a body."""
        logger.info("%s %s %s", self.command, self._path(), code)

    def log_message(self, format: str, *args: Any) -> None:
        """Send http.server's own messages (timeouts, protocol errors) to the emulator's logger."""
        logger.debug(format, *args)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """Return the ``Date`` header's value, by the server's clock (which may be set off)."""
        if timestamp is None:
            timestamp = time.time() + self.server.clock_offset
        return super().date_time_string(timestamp)

    def _path(self) -> str:
        return self.path.partition("?")[0]

    def _respond(self, status: int, payload: Any, headers: Mapping[str, str] = _NO_HEADERS) -> None:
        self._record(status, payload)
        self._write(status, b"" if payload is None else _encode(payload), headers=headers)

    def _record(self, status: int, payload: Any, fault: Fault | None = None) -> None:
        error_code = payload.get("error_code") if status >= 400 and isinstance(payload, dict) else None
        # Recorded before answering, so that a client that got its answer also finds the record.
        self.server.record(
            RequestRecord(self.command or "", self._path(), status, error_code, fault.kind if fault else None)
        )

    def _write(
        self,
        status: int,
        data: bytes,
        *,
        content_type: str = "application/json;charset=UTF-8",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("X-Request-Id", uuid.uuid4().hex)
        if data:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _reset(self) -> None:
        """End the connection with a TCP reset, without an answer."""
        self.close_connection = True
        self.server.reset_on_close(self.connection)

    def _answer_instead(self, fault: Fault) -> None:
        """Answer a fault in place of the request, which is not processed."""
        if fault.kind == "reset_before":
            self._record(NO_ANSWER, None, fault)
            self._reset()
            return
        if fault.kind == "html":
            self._record(fault.status, None, fault)
            self._write(fault.status, _html_page(fault.status), content_type="text/html")
            return
        if fault.kind == "redirect":
            self._record(302, None, fault)
            self._write(302, b"", headers={"Location": f"/moved{self._path()}"})
            return
        headers: dict[str, str] = {}
        if fault.kind == "throttle":
            status = 429
            payload = {
                "error_code": ERROR_THROTTLED,
                "error_msg": "The throttling threshold has been reached: policy user over ratelimit",
            }
            headers["Retry-After"] = _seconds(fault.retry_after)
        else:
            status = fault.status
            error_code, error_msg = _GATEWAY_ERRORS[status]
            payload = {"error_code": error_code, "error_msg": error_msg}
        self._record(status, payload, fault)
        self._write(status, _encode(payload), headers=headers)

    def _answer_after(self, fault: Fault, status: int, payload: Any, headers: Mapping[str, str]) -> None:
        """Answer a request that was processed, spoiled or held back by a fault."""
        if fault.kind == "reset_after":
            self._record(NO_ANSWER, None, fault)
            self._reset()
            return
        self._record(status, payload, fault)
        if fault.kind == "truncated_json":
            data = b"{}" if payload is None else _encode(payload)
            self._write(status, data[: len(data) // 2], headers=headers)
            return
        # A "delay": the server's shutdown cuts the wait short, as it ends the connection anyway.
        self.server.closing.wait(fault.delay)
        self._write(status, b"" if payload is None else _encode(payload), headers=headers)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise OMSEmulatorError(411, ERROR_BAD_REQUEST, "Chunked request bodies are not supported.")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            # The body is left unread, so the connection cannot carry another request.
            self.close_connection = True
            raise OMSEmulatorError(
                413 if length > MAX_BODY_BYTES else 400, ERROR_BAD_REQUEST, "Invalid or too large request body."
            )
        try:
            body = self.rfile.read(length)
        except OSError as err:
            # A timeout or a reset part way through: the rest of the body must never be read as a request.
            self.close_connection = True
            raise OMSEmulatorError(
                408 if isinstance(err, TimeoutError) else 400, ERROR_BAD_REQUEST, "The request body could not be read."
            ) from None
        if len(body) < length:
            self.close_connection = True
            raise OMSEmulatorError(400, ERROR_BAD_REQUEST, "The request body is shorter than its Content-Length.")
        return body

    def _process(self, body: bytes) -> Answer:
        raw_path, _, raw_query = self.path.partition("?")
        if raw_path == TOKEN_PATH and self.command == "POST":
            # IAM's endpoint: the password in the body is the authentication.
            try:
                request = json.loads(body)
            except ValueError:
                request = None  # refused by issue(), in IAM's error format rather than OMS's
            issued, answer = self.server.tokens.issue(request)
            return 201, answer, {SUBJECT_TOKEN_HEADER: issued}
        if not raw_path.startswith(_API_PREFIX):
            raise _no_such_api()
        project_id, *parts = (unquote(segment) for segment in raw_path[len(_API_PREFIX) :].split("/"))
        token = self.headers.get(AUTH_TOKEN_HEADER)
        if token is not None:
            self.server.tokens.check(token.strip(), project_id)
        else:
            self._authenticate(raw_path, raw_query, body)
        # A project that is not the AK's is an authentication failure, as for a token of another project.
        if project_id != self.server.project_id:
            raise _auth_error("the project in the path is not the project of the access key")
        header_project = self.headers.get(signer.HEADER_PROJECT_ID)
        if header_project is not None and header_project.strip() != project_id:
            raise _auth_error(f"the {signer.HEADER_PROJECT_ID} header does not match the project in the path")
        status, payload = self._route(parts, raw_query, body)
        return status, payload, _NO_HEADERS

    def _authenticate(self, raw_path: str, raw_query: str, body: bytes) -> None:
        """Verify the SDK-HMAC-SHA256 signature of the request as it arrived; never say what was expected."""
        authorization = self.headers.get(signer.HEADER_AUTHORIZATION)
        if not authorization:
            raise _auth_error("the Authorization header is missing")
        parsed = signer.parse_authorization(authorization)
        if parsed is None:
            raise _auth_error("the Authorization header is not an SDK-HMAC-SHA256 one")
        secret_key = self.server.credentials.get(parsed.access_key)
        if secret_key is None:
            raise _auth_error("verify aksk signature fail: unknown access key")
        sdk_date = (self.headers.get(signer.HEADER_DATE) or "").strip()
        if not sdk_date:
            raise _auth_error(f"the {signer.HEADER_DATE} header is missing")
        try:
            signed_at = signer.parse_sdk_date(sdk_date)
        except ValueError:
            raise _auth_error(f"the {signer.HEADER_DATE} header is malformed") from None
        if abs((self.server.now() - signed_at).total_seconds()) > MAX_CLOCK_SKEW_SECONDS:
            raise _auth_error("x-sdk-date expired: check this machine's clock")
        headers = {name: value for name in parsed.signed_headers if (value := self.headers.get(name)) is not None}
        query = signer.canonical_query(parse_qsl(raw_query, keep_blank_values=True))
        try:
            canonical = signer.canonical_request(self.command, raw_path, query, headers, parsed.signed_headers, body)
        except ValueError:
            raise _auth_error("verify aksk signature fail: a signed header is missing from the request") from None
        expected = signer.signature(secret_key, signer.string_to_sign(canonical, sdk_date))
        if not hmac.compare_digest(expected, parsed.signature):
            raise _auth_error("verify aksk signature fail")

    def _route(self, parts: list[str], raw_query: str, body: bytes) -> tuple[int, Any]:
        store, groups, sync_tasks = self.server.store, self.server.groups, self.server.sync_tasks
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        match (self.command, parts):
            case ("GET", ["tasks"]):
                return 200, store.list_tasks(
                    **_paging(params),
                    status=_int_param(params, "status"),
                    task_name=params.get("task_name"),
                    group_id=params.get("group_id"),
                )
            case ("POST", ["tasks"]):
                return 200, store.create_task(_json_body(body))
            case ("GET", ["tasks", task_id]):
                return 200, store.show_task(task_id)
            case ("DELETE", ["tasks", task_id]):
                store.delete_task(task_id)
                return 200, None
            case ("POST", ["tasks", task_id, "start"]):
                store.start_task(task_id, _json_body(body))
                return 200, None
            case ("POST", ["tasks", task_id, "stop"]):
                store.stop_task(task_id)
                return 200, None
            case ("PUT", ["tasks", task_id, "bandwidth-policy"]):
                store.update_bandwidth_policy(task_id, _json_body(body))
                return 200, None
            case ("GET", ["taskgroups"]):
                return 200, groups.list(**_paging(params), status=_int_param(params, "status"))
            case ("POST", ["taskgroups"]):
                return 200, groups.create(_json_body(body))
            case ("GET", ["taskgroups", group_id]):
                return 200, groups.get(group_id)
            case ("DELETE", ["taskgroups", group_id]):
                groups.delete(group_id)
                return 200, None
            case ("PUT", ["taskgroups", group_id, "start"]):
                groups.start(group_id, _json_body(body))
                return 200, None
            case ("PUT", ["taskgroups", group_id, "stop"]):
                groups.stop(group_id)
                return 200, None
            case ("PUT", ["taskgroups", group_id, "retry"]):
                groups.retry(group_id, _json_body(body))
                return 200, None
            case ("GET", ["sync-tasks"]):
                return 200, sync_tasks.list(**_paging(params), status=params.get("status"))
            case ("POST", ["sync-tasks"]):
                return 200, sync_tasks.create(_json_body(body))
            case ("GET", ["sync-tasks", sync_task_id]):
                # query_time (ms) picks the month of the monthly_* counters; the emulator counts since creation.
                _int_param(params, "query_time")
                return 200, sync_tasks.get(sync_task_id)
            case ("DELETE", ["sync-tasks", sync_task_id]):
                sync_tasks.delete(sync_task_id)
                return 200, None
            case ("POST", ["sync-tasks", sync_task_id, "start"]):
                sync_tasks.start(sync_task_id, _json_body(body))
                return 200, None
            case ("POST", ["sync-tasks", sync_task_id, "stop"]):
                sync_tasks.stop(sync_task_id)
                return 200, None
        raise _no_such_api()
