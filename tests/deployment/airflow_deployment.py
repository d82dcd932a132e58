"""
A real Airflow deployment on loopback for tests: api-server, scheduler, dag-processor and triggerer, each its
own ``airflow`` process, with a throw-away AIRFLOW_HOME, SQLite and the LocalExecutor.

Why not ``airflow standalone``: it starts the scheduler and the triggerer with their log servers, which listen
on every interface (``[::]`` / ``0.0.0.0``) on the fixed ports 8793 and 8794. Here every component is started on
its own, like in a deployment: the API server on 127.0.0.1 and a free port, the log servers skipped (the API
server reads task and trigger logs from the local files under AIRFLOW_HOME/logs).

Each of the four processes starts a session of its own, which holds every process it starts (LocalExecutor
workers, task supervisors and runners, the triggerer's trigger runner): :meth:`AirflowDeployment.stop` stops
each main process, then ends whatever is left in its session.

What every deployment of the tests shares (this one and the distributed one of tests/distributed/cluster.py)
lives here too: the processes' sessions read from /proc, :class:`LoopbackAirflow` (AIRFLOW_HOME, the environment,
the REST API on 127.0.0.1, waiting while checking that the processes run), and the fixtures' building blocks of
tests/deployment and tests/ui (:func:`slow_emulator`, :func:`running_deployment`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from airflow_provider_oms.testing import OMSEmulator
from airflow_provider_oms.testing.airflow_runner import AirflowTestEnvironment

T = TypeVar("T")

COMPONENTS: dict[str, tuple[str, ...]] = {
    "api-server": ("api-server", "--workers", "1"),  # host and port come from the environment ([api] host, port)
    "scheduler": ("scheduler", "--skip-serve-logs"),
    "dag-processor": ("dag-processor",),
    "triggerer": ("triggerer", "--skip-serve-logs"),
}
ADMIN = "admin"
#: The parts of ``GET /api/v2/monitor/health`` that must all say healthy.
HEALTH_PARTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
#: The settings of tests/deployment and tests/ui: every operator deferrable by default (``[operators]
#: default_deferrable``, which the example DAG's operator follows), the [core] Test button on.
DEFERRABLE_WITH_TEST_BUTTON = {
    "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
    "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
}


class DeploymentError(AssertionError):
    """The deployment did not do what it should in time; the message ends with the processes' output."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def live_processes() -> Iterator[tuple[int, list[str]]]:
    """
    The pid of every live (not zombie) process, with the fields of its /proc/PID/stat after the command name
    (``state ppid pgrp session ...``).
    """
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process just ended
            continue
        # "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses, so split after the last ")".
        fields = text[text.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            yield int(stat.parent.name), fields


def session_members(sid: int) -> list[int]:
    """
    The live (not zombie) processes of a session, read from /proc.

    A session rather than a process group: Airflow's task supervisor puts each task runner into a process
    group of its own (``setpgid``), which stays in the session.
    """
    return [pid for pid, fields in live_processes() if int(fields[3]) == sid]


def command_line(pid: int) -> str:
    """The pid and command line of a process, for messages."""
    try:
        return f"{pid} " + Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return f"{pid} (ended)"


def signal_session(sid: int, signum: int) -> None:
    """Send a signal to every process of a session."""
    for pid in session_members(sid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
    return inodes


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    # IPv6: four 32-bit words, each in host (little-endian) order.
    return socket.inet_ntop(socket.AF_INET6, b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))


def listening_sockets(pids: list[int]) -> set[tuple[str, int]]:
    """The TCP addresses and ports that these processes listen on, read from /proc."""
    inodes = set().union(*(_socket_inodes(pid) for pid in pids)) if pids else set()
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    address, port = fields[1].split(":")
                    found.add((_address(address), int(port, 16)))
    return found


def spawn(argv: list[str], *, env: Mapping[str, str], cwd: Path, output: Path) -> subprocess.Popen[bytes]:
    """Start a process in a session of its own (which holds every process it starts), its output into a file."""
    with open(output, "wb") as out:
        return subprocess.Popen(
            argv,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session and process group: stopped and killed as a whole
        )


def reap(processes: Iterable[subprocess.Popen[bytes]], deadline: float) -> None:
    """Reap the session leaders and wait until every one's session is empty, or the deadline."""
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        while session_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)


def output_tails(outputs: Mapping[str, str], lines: int) -> str:
    """The last lines of each process's output (without the API access log) under its label, for messages."""
    parts = []
    for label, text in outputs.items():
        # The API server's access log (one line per request, the test's polls included) would hide the rest.
        kept = [line for line in text.splitlines() if "[http.access]" not in line]
        parts.append(f"\n----- {label} (last {lines} lines) -----\n" + "\n".join(kept[-lines:]))
    return "".join(parts)


class LoopbackAirflow:
    """
    What every Airflow deployment of the tests has: an AIRFLOW_HOME, the environment of its processes, and the
    API server on 127.0.0.1 and a free port, which nothing else of the deployment listens beside.

    Subclasses start the processes, log in (set :attr:`token`), and say whether their processes still run
    (:meth:`check_running`) and what they wrote (:meth:`tails`).

    :param home: the AIRFLOW_HOME (the processes' output goes to its ``process-output`` folder).
    :param dags_folder: the DAGS_FOLDER.
    :param connections: connection id -> connection dict, passed as ``AIRFLOW_CONN_<ID>`` variables.
    :param jwt_issuer: the "iss" of the deployment's tokens.
    """

    def __init__(
        self, home: Path, dags_folder: Path, connections: Mapping[str, Mapping[str, Any]], *, jwt_issuer: str
    ) -> None:
        self.home = home
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.output_dir = home / "process-output"
        # The environment of ``airflow dags test`` in the other end-to-end tests, plus a deployment's settings.
        self.env = AirflowTestEnvironment(home, dags_folder, connections).env
        self.env.update(
            {
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                # Every process must sign and check the task and API tokens with the same keys.
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
                # Airflow 3.1 up to 3.1.6 put an empty list as "iss" into their tokens unless an issuer is set, which
                # recent PyJWT (2.15) refuses to encode (POST /auth/token answers 500). Harmless on every version.
                "AIRFLOW__API_AUTH__JWT_ISSUER": jwt_issuer,
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(64),
                # Not listening anywhere but the API port: no scheduler health check server; the log servers are
                # skipped, their ports moved off the fixed 8793/8794 all the same.
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.token: str | None = None
        self._client = httpx.Client(base_url=self.base_url, trust_env=False, timeout=30)

    def check_running(self) -> None:
        """Fail if a process that should run has exited."""
        raise NotImplementedError

    def tails(self, lines: int = 40) -> str:
        """The last lines of every process's output, for failure messages."""
        raise NotImplementedError

    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run one ``airflow`` command in this deployment; return it finished (output captured)."""
        return subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def migrate(self, timeout: float) -> None:
        """Create the metadata database (``airflow db migrate``)."""
        migrated = self.airflow("db", "migrate", timeout=timeout)
        if migrated.returncode != 0:
            raise DeploymentError(f"airflow db migrate failed:\n{migrated.stdout[-3000:]}\n{migrated.stderr[-3000:]}")

    def api_healthy(self) -> bool:
        """Whether the API server answers that the database, scheduler, triggerer and dag-processor are healthy."""
        try:
            health = self._client.get("/api/v2/monitor/health").json()
        except (httpx.HTTPError, ValueError):
            return False
        return all((health.get(part) or {}).get("status") == "healthy" for part in HEALTH_PARTS)

    def wait_for(self, what: str, condition: Callable[[], T | None], timeout: float, interval: float = 1) -> T:
        """Poll ``condition`` until it returns something truthy and return it; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_running()
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise DeploymentError(f"timed out after {timeout:.0f} s waiting for {what}{self.tails()}")
            time.sleep(interval)

    def request(self, method: str, path: str, *, expect: int = 200, **kwargs: Any) -> Any:
        """Call the REST API with the token; fail unless the status is ``expect``; return the JSON answer."""
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        answer = self._client.request(method, path, headers=headers, **kwargs)
        if answer.status_code != expect:
            raise DeploymentError(f"{method} {path}: {answer.status_code} {answer.text[:2000]}{self.tails()}")
        return answer.json()


class AirflowDeployment(LoopbackAirflow):
    """
    Airflow's own processes on 127.0.0.1, with connections from ``AIRFLOW_CONN_*`` variables.

    :param home: an empty folder that becomes AIRFLOW_HOME (SQLite database, logs, the processes' output).
    :param dags_folder: the DAGS_FOLDER.
    :param connections: connection id -> connection dict, passed as ``AIRFLOW_CONN_<ID>`` variables.
    :param config: more ``AIRFLOW__SECTION__KEY`` variables.
    """

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        connections: Mapping[str, Mapping[str, Any]],
        config: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(home, dags_folder, connections, jwt_issuer="airflow-provider-oms-tests")
        self.env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                **(config or {}),
            }
        )
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        #: The components whose session was not empty after the grace time (with what was left), and how long
        #: stop() took.
        self.killed: dict[str, list[str]] = {}
        self.stop_seconds: float | None = None

    # -- processes --------------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> None:
        """Create the database, start the four components, wait until all report healthy, and log in."""
        deadline = time.monotonic() + timeout
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.migrate(timeout)
        for name, args in COMPONENTS.items():
            self.processes[name] = spawn(
                [sys.executable, "-m", "airflow", *args],
                env=self.env,
                cwd=self.home,
                output=self.output_dir / f"{name}.log",
            )
        self.wait_for("every component to report healthy", self.api_healthy, deadline - time.monotonic())
        self.login()

    def check_running(self) -> None:
        """Fail if a component has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise DeploymentError(f"airflow {name} exited with {process.returncode}{self.tails()}")

    def stop(self, grace: float = 15) -> None:
        """
        Stop every component and everything it started, like a service manager does.

        SIGTERM to each component's main process, which then stops its own children (the scheduler waits for
        its running tasks, the triggerer for its trigger runner); up to ``grace`` seconds for the sessions to
        empty; then SIGTERM to whatever is left in a session, and after 5 s more, SIGKILL.
        """
        started = time.monotonic()
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        reap(self.processes.values(), started + grace)
        for name, process in self.processes.items():
            left = session_members(process.pid)
            if process.poll() is None or left:
                self.killed[name] = [command_line(pid) for pid in left]
                signal_session(process.pid, signal.SIGTERM)
        if self.killed:
            reap(self.processes.values(), time.monotonic() + 5)
            for process in self.processes.values():
                signal_session(process.pid, signal.SIGKILL)
            reap(self.processes.values(), time.monotonic() + 10)
        self._client.close()
        self.stop_seconds = time.monotonic() - started

    def crash_and_restart(self, name: str, timeout: float = 10) -> None:
        """
        Kill a component and everything it started at once (SIGKILL, as a crash or the OOM killer would: nothing
        of it runs its shutdown), then start it again. Its output so far moves to ``<name>-crashed.log``.
        """
        process = self.processes[name]
        signal_session(process.pid, signal.SIGKILL)
        reap([process], time.monotonic() + timeout)
        if process.poll() is None or session_members(process.pid):
            raise DeploymentError(f"airflow {name} (pid {process.pid}) still runs after SIGKILL{self.tails()}")
        log = self.output_dir / f"{name}.log"
        log.replace(self.output_dir / f"{name}-crashed.log")
        self.processes[name] = spawn(
            [sys.executable, "-m", "airflow", *COMPONENTS[name]], env=self.env, cwd=self.home, output=log
        )

    def leftovers(self) -> dict[str, list[int]]:
        """The processes still alive in each component's session (empty after a clean stop)."""
        left = {name: session_members(process.pid) for name, process in self.processes.items()}
        left.update({name: [process.pid] for name, process in self.processes.items() if process.poll() is None})
        return {name: pids for name, pids in left.items() if pids}

    def listening(self) -> set[tuple[str, int]]:
        """The TCP addresses and ports that any process of the deployment listens on."""
        return listening_sockets([pid for process in self.processes.values() for pid in session_members(process.pid)])

    def output(self, name: str) -> str:
        """What a component wrote to stdout and stderr so far."""
        path = self.output_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def tails(self, lines: int = 40) -> str:
        """The last lines of every component's output (without the API access log), for assertion messages."""
        return output_tails({f"airflow {name}": self.output(name) for name in COMPONENTS}, lines)

    # -- REST API ---------------------------------------------------------------------------------

    def admin_password(self) -> str:
        """The admin user's password, which the API server generated into AIRFLOW_HOME (for the login form too)."""
        password_file = self.home / "simple_auth_manager_passwords.json.generated"
        return str(json.loads(password_file.read_text())[ADMIN])

    def login(self) -> None:
        """Get a JWT for the admin user with the password the API server generated into AIRFLOW_HOME."""
        answer = self._client.post("/auth/token", json={"username": ADMIN, "password": self.admin_password()})
        assert answer.status_code == 201, f"POST /auth/token: {answer.status_code} {answer.text}"
        self.token = answer.json()["access_token"]

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def find(self, path: str) -> Any:
        """GET as the admin user: the JSON answer, or ``None`` if there is no such thing (404)."""
        answer = self._client.get(path, headers={"Authorization": f"Bearer {self.token}"})
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise DeploymentError(f"GET {path}: {answer.status_code} {answer.text[:2000]}{self.tails()}")
        return answer.json()


# -- the fixtures' building blocks (tests/deployment, tests/ui) ---------------------------------------------------


@contextlib.contextmanager
def slow_emulator(buckets: Path, *, access_key: str, secret_key: str, conn_id: str) -> Iterator[OMSEmulator]:
    """
    The OMS emulator for a deployment, in this process, with a test's own credentials; ``conn_id`` in this
    process's environment points at it, for the provider's hook here.

    Slow enough (1 s before a task starts, 2 s an object) that a run waits through several polls, long enough to
    be seen deferred, and that the trigger fires well after the worker reported the deferral: Airflow 3.3.2's
    scheduler fails a task whose trigger fires before the executor's report of the deferring try arrives (up to
    ``[workers] min_heartbeat_interval``, 5 s, late), see apache/airflow#66374, #67287, #72716.
    """
    with (
        OMSEmulator(
            buckets, access_key=access_key, secret_key=secret_key, task_start_delay=1.0, object_delay=2.0
        ) as emu,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", emu.airflow_connection_uri_env())
        yield emu


@contextlib.contextmanager
def running_deployment(
    home: Path,
    dag_files: Iterable[Path],
    connections: Mapping[str, Mapping[str, Any]],
    *,
    say: Callable[[str], None] = print,
    config: Mapping[str, str] | None = None,
) -> Iterator[AirflowDeployment]:
    """
    An :class:`AirflowDeployment` in ``home`` with copies of ``dag_files``, set up
    :data:`DEFERRABLE_WITH_TEST_BUTTON` and ``config`` (more ``AIRFLOW__SECTION__KEY`` variables), started; at the
    end stopped, and checked to leave no process running and nothing listening on its port. ``say`` reports how
    long it took to start and to stop.
    """
    dags = home / "dags"
    dags.mkdir()
    for dag_file in dag_files:
        shutil.copy(dag_file, dags)
    deployment = AirflowDeployment(home, dags, connections, config={**DEFERRABLE_WITH_TEST_BUTTON, **(config or {})})
    started = time.monotonic()
    try:
        deployment.start(timeout=120)
        say(f"Airflow up on {deployment.base_url} after {time.monotonic() - started:.0f} s")
        yield deployment
    finally:
        deployment.stop()
        say(f"Airflow stopped in {deployment.stop_seconds:.1f} s; killed after the grace time: {deployment.killed}")
        left = deployment.leftovers()
        assert not left, f"processes left running: {left}"
        assert not port_is_open(deployment.port), f"something still listens on 127.0.0.1:{deployment.port}"
