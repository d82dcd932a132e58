"""
The local OMS emulator: :class:`OMSEmulator` for tests, and a command line to run it on its own.

Run ``python -m airflow_provider_oms.testing.emulator --port 8080 --data-dir ./oms-data``; it prints one
line, ``OMS emulator listening on http://127.0.0.1:PORT``, then serves until SIGINT (Ctrl-C) or SIGTERM. With
``--certfile cert.pem [--keyfile key.pem]`` it serves https instead (``https://127.0.0.1:PORT``).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import ssl
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.testing import (
    EMULATOR_AK,
    EMULATOR_IAM_DOMAIN,
    EMULATOR_IAM_PASSWORD,
    EMULATOR_IAM_USER,
    EMULATOR_PROJECT_ID,
    EMULATOR_SK,
)
from airflow_provider_oms.testing.groups import TaskGroupStore
from airflow_provider_oms.testing.server import FaultInjector, OMSHTTPServer, RequestRecord
from airflow_provider_oms.testing.store import TaskStore
from airflow_provider_oms.testing.sync import DEFAULT_SYNC_INTERVAL, SyncTaskStore
from airflow_provider_oms.testing.tokens import DEFAULT_TOKEN_TTL, TokenIssuer

#: How often the HTTP thread checks for a shutdown; also the longest stop() waits for it.
_POLL_INTERVAL = 0.05
AUTH_AKSK = "aksk"
AUTH_TOKEN = "token"  # noqa: S105 - the name of an auth type


class OMSEmulator:
    """
    A local OMS v2 API over real HTTP, migrating between folders: bucket ``B`` is the folder ``data_dir/B``.

    Requests are authenticated like on Huawei Cloud: SDK-HMAC-SHA256 signatures, checked against the given
    AK/SK pairs, or IAM tokens (``X-Auth-Token``) that the emulator's own IAM endpoint, ``POST /v3/auth/tokens``,
    issues to its IAM users. Tasks run in background threads and really copy files, so a DAG can be tested end
    to end; so do the tasks of task groups (one per prefix) and sync tasks (which copy what is new or changed).
    Faults of a gateway or a network can be injected into the next requests (:meth:`inject_fault`), and the
    starts and creates that took effect are counted (:attr:`applied_starts`, :attr:`applied_creates`), to
    test that a client neither loses nor repeats a call.

    :param data_dir: the folder holding one sub-folder per bucket; created if missing.
    :param access_key: the AK that requests must be signed with.
    :param secret_key: its SK.
    :param project_id: the project of the API paths (``/v2/{project_id}/...``).
    :param host: the IPv4 address to listen on.
    :param port: the port to listen on; 0 picks a free one (see :attr:`port`).
    :param task_start_delay: seconds a created or started task stays waiting (status 1) before it runs.
    :param object_delay: seconds each object takes to migrate, to make tasks last long enough to observe.
    :param bytes_per_second: migration speed limit; each object also takes its size divided by this.
    :param pausing_delay: seconds a stopped running task stays pausing (status 7) before it is paused, to make
        that status long enough to observe; ``None``: as long as one object takes (``object_delay``).
    :param fail_patterns: globs on source object keys whose migration fails (see :meth:`add_fail_rule`).
    :param fail_times: with ``fail_patterns``: fail only the first N attempts at each object; None: always.
    :param extra_credentials: more accepted AK/SK pairs, ``{access_key: secret_key}``.
    :param clock_offset: seconds added to this machine's clock for the emulator's ``Date`` header and its check
        of ``X-Sdk-Date`` (refused when more than 15 minutes off), to test a client whose clock is off by
        ``-clock_offset``; tokens expire by that clock too. Task times keep this machine's clock.
    :param iam_users: the IAM users that can get a token, ``{(domain name, user name): password}``; default
        one user, :data:`EMULATOR_IAM_USER` of :data:`EMULATOR_IAM_DOMAIN` with :data:`EMULATOR_IAM_PASSWORD`.
    :param token_ttl: seconds an IAM token is valid (IAM's: 24 hours).
    :param sync_interval: seconds between two passes of a synchronizing sync task over its source bucket.
    :param start_lag_reads: after a start, this many show-task reads still answer the task as it was before
        the start (paused or failed), as the real service may for a moment after it accepted a start.
    :param start_lag_seconds: the same, for this many seconds after a start (with both: until both ran out).
    :param certfile: serve https (TLS) with this PEM certificate (chain) instead of plain http; real OMS and IAM
        are https, and this is how a test reaches the emulator through a proxy's ``CONNECT`` tunnel. A
        self-signed certificate for ``127.0.0.1`` is its own CA bundle: :meth:`airflow_connection` then sets extra
        ``verify`` to this file.
    :param keyfile: the certificate's PEM private key; default: in ``certfile``.
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        access_key: str = EMULATOR_AK,
        secret_key: str = EMULATOR_SK,
        project_id: str = EMULATOR_PROJECT_ID,
        host: str = "127.0.0.1",
        port: int = 0,
        task_start_delay: float = 0.0,
        object_delay: float = 0.0,
        bytes_per_second: float | None = None,
        fail_patterns: Sequence[str] = (),
        fail_times: int | None = None,
        extra_credentials: Mapping[str, str] | None = None,
        pausing_delay: float | None = None,
        clock_offset: float = 0.0,
        iam_users: Mapping[tuple[str, str], str] | None = None,
        token_ttl: float = DEFAULT_TOKEN_TTL,
        sync_interval: float = DEFAULT_SYNC_INTERVAL,
        start_lag_reads: int = 0,
        start_lag_seconds: float = 0.0,
        certfile: str | Path | None = None,
        keyfile: str | Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.certfile = None if certfile is None else Path(certfile)
        self._keyfile = keyfile
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.project_id = project_id
        self._access_key = access_key
        self._secret_key = secret_key
        self._credentials = {**(extra_credentials or {}), access_key: secret_key}
        self._address = (host, port)
        self._clock_offset = clock_offset
        self._faults = FaultInjector()
        self._store = TaskStore(
            self.data_dir,
            task_start_delay=task_start_delay,
            object_delay=object_delay,
            bytes_per_second=bytes_per_second,
            pausing_delay=pausing_delay,
            start_lag_reads=start_lag_reads,
            start_lag_seconds=start_lag_seconds,
        )
        self._groups = TaskGroupStore(self._store)
        self._sync_tasks = SyncTaskStore(self.data_dir, interval=sync_interval)
        self._iam_users = dict(
            {(EMULATOR_IAM_DOMAIN, EMULATOR_IAM_USER): EMULATOR_IAM_PASSWORD} if iam_users is None else iam_users
        )
        self._tokens = TokenIssuer(self._iam_users, project_id=project_id, ttl=token_ttl, clock=self._now)
        for pattern in fail_patterns:
            self.add_fail_rule(pattern, times=fail_times)
        self._server: OMSHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "not started"
        return f"OMSEmulator({where}, data_dir={str(self.data_dir)!r})"

    def __enter__(self) -> OMSEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> OMSEmulator:
        """Start listening and serving in a background thread; return the emulator. An emulator starts once."""
        if self._server is not None:
            raise RuntimeError("this emulator was already started")
        self._server = OMSHTTPServer(
            self._address,
            self._store,
            credentials=self._credentials,
            project_id=self.project_id,
            faults=self._faults,
            clock_offset=self._clock_offset,
            groups=self._groups,
            sync_tasks=self._sync_tasks,
            tokens=self._tokens,
            ssl_context=self._ssl_context(),
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name="oms-emulator-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and stop the running tasks' workers. Safe to call twice."""
        if self._server is None or self._thread is None or self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._sync_tasks.close()
        self._store.close()

    @property
    def port(self) -> int:
        """The port the emulator listens on."""
        return int(self._started_server().server_address[1])

    @property
    def url(self) -> str:
        """The endpoint, ``http://HOST:PORT`` (``https://`` with a ``certfile``)."""
        host = self._started_server().server_address[0]
        return f"{'http' if self.certfile is None else 'https'}://{host!s}:{self.port}"

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request received, in order (a copy): method, path, status and error code; no header, no body."""
        return self._server.requests if self._server is not None else []

    @property
    def connections_opened(self) -> int:
        """How many TCP connections clients opened (since the start or :meth:`reset_requests`)."""
        return self._started_server().connections_opened

    def reset_requests(self) -> None:
        """Forget the requests received so far."""
        if self._server is not None:
            self._server.reset_requests()

    def inject_fault(
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
        Inject a fault into the next ``count`` requests whose path matches ``path``, or for ``seconds``.

        ``inject_fault("error", status=503, seconds=60)`` is a one-minute outage of the whole API.

        A request takes the first fault, in the order injected, whose ``path`` matches. Each injected request is
        recorded in :attr:`requests` with its ``fault``; a closed connection with status ``0``. Faults may be
        injected before :meth:`start`, and are thread-safe. Kinds:

        * ``throttle``: HTTP 429 ``APIGW.0308`` with ``Retry-After: retry_after`` (default 1 second).
        * ``error``: an API gateway error, HTTP ``status`` 500, 502, 503 (default) or 504, with a JSON body.
        * ``html``: an HTML error page (``Content-Type: text/html``), HTTP ``status`` (default 502).
        * ``redirect``: HTTP 302 with a ``Location`` to another path.
        * ``reset_before``: the connection is reset (TCP RST) without an answer; nothing is applied.
        * ``reset_after``: the request is applied, then the connection is reset without an answer.
        * ``delay``: the request is applied, and answered ``delay`` seconds late (e.g. past the client's timeout).
        * ``truncated_json``: the request is applied, and its answer's JSON cut in half (an empty body becomes
          ``{``), as if corrupted on the way back.

        The first four are answered instead of the request, which never reaches the tasks.

        :param kind: one of the kinds above.
        :param path: a regular expression searched (``re.search``) in the request path without its query, such
            as ``r"/start$"``; ``None`` for every request.
        :param count: how many requests the fault applies to.
        :param seconds: instead of ``count``: every matching request for this many seconds from now.
        :param status: the HTTP status of an ``error`` or ``html`` fault.
        :param retry_after: the ``Retry-After`` seconds of a ``throttle`` fault (``0`` for no wait).
        :param delay: the seconds a ``delay`` fault holds the answer back; required for that kind.
        :raises ValueError: for an unknown kind, a count below 1, or an option the kind does not take.
        :raises re.error: if ``path`` is not a regular expression.
        """
        self._faults.inject(
            kind, path=path, count=count, status=status, retry_after=retry_after, delay=delay, seconds=seconds
        )

    def clear_faults(self) -> None:
        """Drop every injected fault not used up yet."""
        self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """How many more requests the injected faults will apply to."""
        return self._faults.pending

    @property
    def applied_starts(self) -> int:
        """How many start calls started a task; a refused start, or one a fault kept out, does not count."""
        return self._store.applied_starts

    @property
    def applied_creates(self) -> int:
        """How many create calls created a task."""
        return self._store.applied_creates

    def bucket_path(self, bucket: str) -> Path:
        """
        Return the folder of ``bucket``, created if missing.

        :raises ValueError: if ``bucket`` does not follow the OBS bucket naming rules (3 to 63 characters:
            lower-case letters, digits, ``-`` and ``.``).
        """
        path = self._store.bucket_path(bucket)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def add_fail_rule(self, pattern: str, *, times: int | None = None, task_id: int | str | None = None) -> None:
        """
        Make the migration of matching objects fail (they count in ``failed_num``).

        :param pattern: a glob (``fnmatch``) on the whole source object key; ``*`` also matches ``/``.
        :param times: ``None`` to fail every attempt; N to fail only the first N attempts at each matching
            object of each task, so that a restart can succeed.
        :param task_id: only objects of this migration task; ``None`` for every task.
        """
        self._store.add_fail_rule(pattern, times=times, task_id=task_id)

    def clear_fail_rules(self) -> None:
        """Remove every fail rule."""
        self._store.clear_fail_rules()

    def get_task(self, task_id: int | str) -> dict[str, Any]:
        """
        Return a task as the show-task API does.

        :raises OMSEmulatorError: (``OMS.1009``) if there is no such task.
        """
        return self._store.get_task(task_id)

    def wait_for_status(self, task_id: int | str, statuses: Iterable[int], timeout: float = 10.0) -> dict[str, Any]:
        """
        Wait until a task has one of ``statuses`` (see :class:`~airflow_provider_oms.constants.TaskStatus`).

        :return: the task, as the show-task API returns it.
        :raises TimeoutError: if it does not within ``timeout`` seconds.
        """
        return self._store.wait_for_status(task_id, statuses, timeout)

    def add_finished_tasks(self, body: Any, count: int = 1, *, status: int = TaskStatus.SUCCEEDED) -> list[int]:
        """
        Add ``count`` tasks that ran earlier and ended, from one CreateTaskReq body, without running them.

        For tests of a long task list (thousands of tasks in a moment, where creates over HTTP would take
        minutes); not counted in :attr:`applied_creates`. :meth:`backdate_task` moves one into the past.

        :param body: a CreateTaskReq body (checked like a create's; its credentials are dropped).
        :param count: how many.
        :param status: succeeded (5), failed (4) or paused (3).
        :return: the ids, oldest first.
        """
        return self._store.add_finished_tasks(body, count, status=status)

    def backdate_task(self, task_id: int | str, seconds: float) -> dict[str, Any]:
        """
        Move a task that is not in progress ``seconds`` into the past (its ``start_time``), as if it had run then.

        A migration of last night, for a test of tonight's run.

        :return: the task, as the show-task API returns it.
        :raises ValueError: if the task is in progress.
        """
        return self._store.backdate_task(task_id, seconds)

    def list_tasks(self) -> list[dict[str, Any]]:
        """Return every migration task, newest first, as show-task does (no page limit, no start lag)."""
        tasks: list[dict[str, Any]] = []
        while True:
            page = self._store.list_tasks(limit=100, offset=len(tasks))["tasks"]
            tasks.extend(page)
            if len(page) < 100:
                return tasks

    def pause_task(self, task_id: int | str) -> None:
        """Pause a task as the stop-task API does, without a signed request."""
        self._store.stop_task(task_id)

    @property
    def applied_group_creates(self) -> int:
        """How many create calls created a task group."""
        return self._groups.applied_creates

    def get_task_group(self, group_id: str) -> dict[str, Any]:
        """
        Return a task group as the show-task-group API does: status, task and object counts, error_reason.

        :raises OMSEmulatorError: (``OMS.1009``) if there is no such group.
        """
        return self._groups.get(group_id)

    def wait_for_group_status(self, group_id: str, statuses: Iterable[int], timeout: float = 10.0) -> dict[str, Any]:
        """
        Wait until a task group has one of ``statuses``.

        The statuses a group of the emulator takes: 0 waiting, 1 executing, 3 paused, 5 migration failed,
        6 completed, 7 pausing.

        :return: the group, as the show-task-group API returns it.
        :raises TimeoutError: if it does not within ``timeout`` seconds.
        """
        return self._groups.wait_for_status(group_id, statuses, timeout)

    def create_sync_task(
        self,
        src_bucket: str,
        dst_bucket: str,
        *,
        src_region: str = "cn-north-4",
        dst_region: str = "cn-north-4",
        src_cloud_type: str = "HuaweiCloud",
        description: str = "",
    ) -> str:
        """
        Create a sync task as the create-sync-task API does, without a signed request; it starts synchronizing.

        :return: its ``sync_task_id``.
        """
        # The API needs keys in the body; the emulator checks their shape only.
        keys = {"src_ak": "emulator", "src_sk": "emulator", "dst_ak": "emulator", "dst_sk": "emulator"}
        body = {
            **keys,
            "src_bucket": src_bucket,
            "dst_bucket": dst_bucket,
            "src_region": src_region,
            "dst_region": dst_region,
            "src_cloud_type": src_cloud_type,
            "description": description,
        }
        return self._sync_tasks.create(body)["sync_task_id"]

    def get_sync_task(self, sync_task_id: str) -> dict[str, Any]:
        """
        Return a sync task as the show-sync-task API does.

        :raises OMSEmulatorError: (``OMS.1009``) if there is no such sync task.
        """
        return self._sync_tasks.get(sync_task_id)

    def wait_for_sync_pass(self, sync_task_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """
        Wait until a sync task has gone over its whole source bucket once, in a pass that began after this call.

        What was in the source before the call is then in the destination.

        :return: the sync task, as the show-sync-task API returns it.
        :raises TimeoutError: if no such pass ends within ``timeout`` seconds (a stopped task makes none).
        """
        return self._sync_tasks.wait_for_pass(sync_task_id, timeout)

    @property
    def tokens_issued(self) -> int:
        """How many IAM tokens the emulator's ``POST /v3/auth/tokens`` issued."""
        return self._tokens.issued

    def revoke_tokens(self) -> None:
        """Make every IAM token issued so far invalid: requests with one get HTTP 401 ``APIGW.0301``."""
        self._tokens.revoke_all()

    def airflow_connection(self, conn_type: str = "huaweicloud_oms", *, auth: str = AUTH_AKSK) -> dict[str, Any]:
        """
        Return an Airflow connection (as a dict) that points at this emulator.

        :param conn_type: the connection type.
        :param auth: ``"aksk"``: the AK/SK in login and password; ``"token"``: the first IAM user's name and
            password in login and password, with extras ``auth_type: token``, ``domain`` and ``iam_endpoint``
            (this emulator). Such a connection holds no AK/SK for the destination: start-like calls need a
            ``destination_conn_id``.
        """
        extra: dict[str, Any] = {"project_id": self.project_id, "endpoint": self.url}
        if self.certfile is not None:
            extra["verify"] = str(self.certfile)
        if auth == AUTH_AKSK:
            return {"conn_type": conn_type, "login": self._access_key, "password": self._secret_key, "extra": extra}
        if auth != AUTH_TOKEN:
            raise ValueError(f"auth must be {AUTH_AKSK!r} or {AUTH_TOKEN!r}, got {auth!r}")
        if not self._iam_users:
            raise ValueError("this emulator has no IAM user (iam_users is empty)")
        (domain, user), password = next(iter(self._iam_users.items()))
        extra.update(auth_type=AUTH_TOKEN, domain=domain, iam_endpoint=self.url)
        return {"conn_type": conn_type, "login": user, "password": password, "extra": extra}

    def airflow_connection_uri_env(self, *, auth: str = AUTH_AKSK) -> str:
        """Return :meth:`airflow_connection` as JSON, the value of an ``AIRFLOW_CONN_<ID>`` variable."""
        return json.dumps(self.airflow_connection(auth=auth))

    def _now(self) -> datetime:
        return datetime.now(timezone.utc) + timedelta(seconds=self._clock_offset)

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.certfile is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certfile, self._keyfile)
        return context

    def _started_server(self) -> OMSHTTPServer:
        if self._server is None:
            raise RuntimeError("the emulator is not started; call start() first")
        return self._server


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_oms.testing.emulator",
        description="Run a local Huawei Cloud OMS v2 API that migrates between folders of --data-dir.",
    )
    parser.add_argument("--port", type=int, required=True, help="port to listen on; 0 picks a free one")
    parser.add_argument("--data-dir", type=Path, required=True, help="folder with one sub-folder per bucket")
    parser.add_argument("--host", default="127.0.0.1", help="IPv4 address to listen on (default %(default)s)")
    parser.add_argument("--ak", default=EMULATOR_AK, help="access key requests are signed with")
    parser.add_argument("--sk", default=EMULATOR_SK, help="its secret key")
    parser.add_argument("--project-id", default=EMULATOR_PROJECT_ID, help="project id of the API paths")
    parser.add_argument("--certfile", type=Path, help="serve https with this PEM certificate (chain)")
    parser.add_argument("--keyfile", type=Path, help="with --certfile: its PEM private key (default: in --certfile)")
    parser.add_argument(
        "--fail-pattern",
        action="append",
        default=[],
        metavar="GLOB",
        help="make objects whose key matches GLOB fail to migrate (repeatable)",
    )
    parser.add_argument(
        "--fail-times", type=int, metavar="N", help="with --fail-pattern: fail only the first N attempts per object"
    )
    parser.add_argument(
        "--task-start-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="how long a created or started task stays waiting (status 1) before it runs",
    )
    parser.add_argument(
        "--object-delay", type=float, default=0.0, metavar="SECONDS", help="how long each object takes to migrate"
    )
    parser.add_argument(
        "--bytes-per-second", type=float, metavar="N", help="migration speed limit, in bytes per second"
    )
    parser.add_argument(
        "--token-ttl",
        type=float,
        default=DEFAULT_TOKEN_TTL,
        metavar="SECONDS",
        help="how long an IAM token from POST /v3/auth/tokens stays valid (default %(default)s)",
    )
    parser.add_argument(
        "--sync-interval",
        type=float,
        default=DEFAULT_SYNC_INTERVAL,
        metavar="SECONDS",
        help="seconds between two passes of a synchronizing sync task over its source (default %(default)s)",
    )
    parser.add_argument(
        "--start-lag-reads",
        type=int,
        default=0,
        metavar="N",
        help="after a start, answer show-task with the task as it was before the start for N reads",
    )
    parser.add_argument(
        "--start-lag-seconds",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="after a start, answer show-task with the task as it was before the start for this long",
    )
    parser.add_argument(
        "--pausing-delay",
        type=float,
        metavar="SECONDS",
        help="how long a stopped running task stays pausing (status 7); default: --object-delay",
    )
    args = parser.parse_args(argv)
    if args.bytes_per_second is not None and args.bytes_per_second <= 0:
        parser.error("--bytes-per-second must be more than 0")
    if args.fail_times is not None and (not args.fail_pattern or args.fail_times < 1):
        parser.error("--fail-times needs --fail-pattern and must be at least 1")
    if min(args.task_start_delay, args.object_delay, args.pausing_delay or 0.0) < 0:
        parser.error("delays must not be negative")
    if args.start_lag_reads < 0 or args.start_lag_seconds < 0:
        parser.error("--start-lag-reads and --start-lag-seconds must not be negative")
    if args.token_ttl <= 0 or args.sync_interval <= 0:
        parser.error("--token-ttl and --sync-interval must be more than 0")
    if args.keyfile is not None and args.certfile is None:
        parser.error("--keyfile needs --certfile")
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT or SIGTERM; return the exit code."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    # SIGTERM stops the emulator the same clean way as Ctrl-C. SIGINT is set too: a shell starts background
    # jobs with SIGINT ignored, and Python then leaves it ignored. Installed before starting, so that no signal
    # can kill the emulator half way.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, _interrupt)
    emulator = OMSEmulator(
        args.data_dir,
        access_key=args.ak,
        secret_key=args.sk,
        project_id=args.project_id,
        host=args.host,
        port=args.port,
        task_start_delay=args.task_start_delay,
        object_delay=args.object_delay,
        bytes_per_second=args.bytes_per_second,
        pausing_delay=args.pausing_delay,
        fail_patterns=args.fail_pattern,
        fail_times=args.fail_times,
        token_ttl=args.token_ttl,
        sync_interval=args.sync_interval,
        start_lag_reads=args.start_lag_reads,
        start_lag_seconds=args.start_lag_seconds,
        certfile=args.certfile,
        keyfile=args.keyfile,
    )
    try:
        emulator.start()
    except OSError as err:
        print(f"cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1
    try:
        print(f"OMS emulator listening on {emulator.url}", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        # A second signal must not interrupt the shutdown.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
