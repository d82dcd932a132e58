"""
The local OMS emulator: :class:`OMSEmulator` for tests, and a command line to run it on its own.

Run ``python -m airflow_provider_oms.testing.emulator --port 8080 --data-dir ./oms-data``; it prints one
line, ``OMS emulator listening on http://127.0.0.1:PORT``, then serves until SIGINT (Ctrl-C) or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from airflow_provider_oms.testing import EMULATOR_AK, EMULATOR_PROJECT_ID, EMULATOR_SK
from airflow_provider_oms.testing.server import FaultInjector, OMSHTTPServer, RequestRecord
from airflow_provider_oms.testing.store import TaskStore

#: How often the HTTP thread checks for a shutdown; also the longest stop() waits for it.
_POLL_INTERVAL = 0.05


class OMSEmulator:
    """
    A local OMS v2 API over real HTTP, migrating between folders: bucket ``B`` is the folder ``data_dir/B``.

    Requests are authenticated like on Huawei Cloud (SDK-HMAC-SHA256 signatures, checked against the given
    AK/SK pairs). Tasks run in background threads and really copy files, so a DAG can be tested end to end.
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
        ``-clock_offset``. Task times keep this machine's clock.
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
    ) -> None:
        self.data_dir = Path(data_dir)
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
        )
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
        self._store.close()

    @property
    def port(self) -> int:
        """The port the emulator listens on."""
        return int(self._started_server().server_address[1])

    @property
    def url(self) -> str:
        """The endpoint, ``http://HOST:PORT``."""
        host = self._started_server().server_address[0]
        return f"http://{host!s}:{self.port}"

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
    ) -> None:
        """
        Inject a fault into the next ``count`` requests whose path matches ``path``.

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
        :param status: the HTTP status of an ``error`` or ``html`` fault.
        :param retry_after: the ``Retry-After`` seconds of a ``throttle`` fault (``0`` for no wait).
        :param delay: the seconds a ``delay`` fault holds the answer back; required for that kind.
        :raises ValueError: for an unknown kind, a count below 1, or an option the kind does not take.
        :raises re.error: if ``path`` is not a regular expression.
        """
        self._faults.inject(kind, path=path, count=count, status=status, retry_after=retry_after, delay=delay)

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

    def pause_task(self, task_id: int | str) -> None:
        """Pause a task as the stop-task API does, without a signed request."""
        self._store.stop_task(task_id)

    def airflow_connection(self, conn_type: str = "huaweicloud_oms") -> dict[str, Any]:
        """Return an Airflow connection (as a dict) that points at this emulator."""
        return {
            "conn_type": conn_type,
            "login": self._access_key,
            "password": self._secret_key,
            "extra": {"project_id": self.project_id, "endpoint": self.url},
        }

    def airflow_connection_uri_env(self) -> str:
        """Return :meth:`airflow_connection` as JSON, the value of an ``AIRFLOW_CONN_<ID>`` variable."""
        return json.dumps(self.airflow_connection())

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
