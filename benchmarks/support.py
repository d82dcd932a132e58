"""
What every benchmark shares: results, the emulator in a process of its own, connections, machine facts.

A benchmark reports and never asserts: each one returns a :class:`Section` of tables, targets and notes, and
``run.py`` prints them and writes ``BENCHMARKS.md``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
PYTHON = sys.executable


# -- results ---------------------------------------------------------------------------------------


@dataclass
class Table:
    """A side-by-side comparison: one row per client or scenario."""

    headers: list[str]
    rows: list[list[str]]
    title: str = ""


@dataclass
class Target:
    """A goal of the issue and whether this run met it; ``why`` explains a miss (or a caveat)."""

    name: str
    measured: str
    goal: str
    met: bool | None
    why: str = ""


@dataclass
class Section:
    """The outcome of one benchmark."""

    title: str
    method: str
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


# -- formatting ------------------------------------------------------------------------------------


def us(seconds: float) -> str:
    """Format a duration in microseconds."""
    return f"{seconds * 1e6:,.0f} us"


def ms(seconds: float) -> str:
    """Format a duration in milliseconds."""
    return f"{seconds * 1e3:,.1f} ms"


def median(values: Sequence[float]) -> float:
    """Return the median, 0 for no values."""
    return statistics.median(values) if values else 0.0


def rss() -> tuple[int, int]:
    """Return the resident set size of this process now, and its peak (VmHWM), in bytes (Linux)."""
    fields = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in {"VmRSS", "VmHWM"}:
                fields[name] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


# -- the emulator in a process of its own ------------------------------------------------------------


class EmulatorProcess:
    """
    The OMS emulator in a separate Python process, so that CPU time measured here is the client's alone.

    It runs ``emulator_process.py``, which serves the emulator and answers ``stats`` and ``reset`` on stdin:
    the emulator counts requests and TCP connections on its side of the socket.

    :param data_dir: the emulator's bucket folders.
    :param options: ``OMSEmulator`` options (``task_start_delay``, ``object_delay``...).
    """

    def __init__(self, data_dir: Path, log: Path, **options: float) -> None:
        self.data_dir = data_dir
        self._log_path = log
        self._options = options
        self._process: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None
        self.connection: dict[str, Any] = {}

    def __enter__(self) -> EmulatorProcess:
        args = [PYTHON, str(BENCH_DIR / "emulator_process.py"), "--data-dir", str(self.data_dir)]
        for name, value in self._options.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        self._log = self._log_path.open("w")
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        self.connection = self._read()["connection"]
        return self

    def __exit__(self, *exc_info: object) -> None:
        process = self._process
        if process is not None and process.stdin is not None:
            process.stdin.close()  # end of input: the emulator stops
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()

    @property
    def url(self) -> str:
        """The emulator's endpoint."""
        return str(self.connection["extra"]["endpoint"])

    def _read(self) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator process ended; see {self._log_path}")
        return dict(json.loads(line))

    def command(self, name: str) -> dict[str, Any]:
        """Send one command (``stats`` or ``reset``) and return its JSON answer."""
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(name + "\n")
        self._process.stdin.flush()
        return self._read()

    def stats(self) -> dict[str, Any]:
        """Return requests by kind (``GET show``, ``POST start``...), errors, connections opened since a reset."""
        return self.command("stats")

    def reset(self) -> None:
        """Forget the requests and connections counted so far."""
        self.command("reset")


def use_connection(conn_id: str, connection: Mapping[str, Any]) -> None:
    """Define an Airflow connection for this process and its children, as an ``AIRFLOW_CONN_*`` variable."""
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(dict(connection))


def sample_task_body(bucket: str = "src", prefix: str = "data/", save_prefix: str = "in/") -> dict[str, Any]:
    """Return a CreateTaskReq copying ``prefix`` of ``bucket`` to bucket ``dst``, like ``tests/helpers.py``."""
    return {
        "task_type": "prefix",
        "src_node": {"region": "local", "bucket": bucket, "object_key": [prefix], "ak": "SRC-AK", "sk": "SRC-SK"},
        "dst_node": {"region": "local", "bucket": "dst", "save_prefix": save_prefix, "ak": "DST-AK", "sk": "DST-SK"},
    }


def write_objects(bucket: Path, count: int, prefix: str = "data/") -> None:
    """Write ``count`` small objects under ``prefix`` of a bucket folder."""
    for index in range(count):
        path = bucket / f"{prefix}f{index}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"benchmark object\n" * 8)


# -- the machine -----------------------------------------------------------------------------------


def _first_line(path: str, key: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip() if ":" in line else line.split("=", 1)[1].strip().strip('"')
    except OSError:
        return None
    return None


def machine() -> dict[str, str]:
    """CPU model, cores, memory and OS of this machine."""
    memory = _first_line("/proc/meminfo", "MemTotal")
    memory_text = f"{int(memory.split()[0]) / 1024 / 1024:.1f} GiB" if memory else "unknown"
    os_name = _first_line("/etc/os-release", "PRETTY_NAME") or platform.platform()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return {
        "CPU": _first_line("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "Cores": str(os.cpu_count()),
        "Memory": memory_text,
        "OS": f"{os_name} (kernel {platform.release()})",
        "Load average at start (1, 5, 15 min)": load,
    }


def versions() -> dict[str, str]:
    """Versions of Python and of the packages compared."""
    found = {"Python": f"{platform.python_version()} ({platform.python_implementation()})"}
    for package in (
        "airflow-provider-oms",
        "apache-airflow",
        "apache-airflow-task-sdk",
        "huaweicloudsdkoms",
        "huaweicloudsdkcore",
        "requests",
        "httpx",
        "aiohttp",
        "tenacity",
    ):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


# -- sizes -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark is: the full run's sizes by default, :data:`QUICK` for a smoke run."""

    #: Fresh interpreters per module and prelude (the median is reported).
    import_runs: int = 7
    #: Sequential calls of each kind per client.
    calls: int = 2000
    #: Calls per turn of a client before the next client's turn.
    call_block: int = 250
    #: Concurrent triggers, their poll interval, and when their tasks succeed (seconds after creation).
    triggers: int = 1000
    poll_interval: float = 5.0
    finish_after: float = 35.0
    #: Mapped task instances per fan-out DAG, and runs of each DAG (after one untimed warm-up run).
    mapped: int = 200
    fan_out_runs: int = 2
    #: Concurrent waits of the shared-polling benchmark, and the rounds it times.
    poll_waits: tuple[int, ...] = (100, 1000, 3000)
    poll_rounds: int = 3
    quick: bool = False


QUICK = Sizes(
    import_runs=1,
    calls=200,
    call_block=50,
    triggers=50,
    poll_interval=1.0,
    finish_after=3.0,
    mapped=5,
    fan_out_runs=1,
    poll_waits=(10, 50),
    poll_rounds=2,
    quick=True,
)
