"""`python -m airflow_provider_oms.testing.emulator` serves until SIGTERM or SIGINT, then exits 0."""

from __future__ import annotations

import re
import selectors
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airflow_provider_oms.client import Credentials
from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.testing import EMULATOR_AK
from tests.testing.helpers import OMSCaller, bucket_keys, task_body, wait_until, write_objects

LISTENING = re.compile(r"OMS emulator listening on (http://127\.0\.0\.1:(\d+))\n")


RunCli = Callable[..., tuple["subprocess.Popen[str]", str]]


@pytest.fixture
def run_cli(tmp_path: Path) -> Iterator[RunCli]:
    """Start the emulator's command line with the given options; return the process and the URL it printed."""
    processes: list[subprocess.Popen[str]] = []
    stderr_path = tmp_path / "stderr.log"

    def run(*args: str) -> tuple[subprocess.Popen[str], str]:
        with stderr_path.open("w") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "airflow_provider_oms.testing.emulator", "--data-dir", str(tmp_path), *args],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        processes.append(process)
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=15), "the emulator printed nothing"
        line = process.stdout.readline()
        match = LISTENING.fullmatch(line)
        assert match, f"unexpected first line {line!r}; stderr: {stderr_path.read_text()}"
        return process, match[1]

    yield run
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_signed_requests_and_exits_0_on_signal(run_cli: RunCli, stop_signal: signal.Signals) -> None:
    process, url = run_cli("--port", "0")
    # Signed with the default credentials and project: the package's EMULATOR_* constants.
    assert OMSCaller(url)("GET", "/tasks").json() == {"tasks": [], "count": 0}
    assert OMSCaller(url, credentials=Credentials(EMULATOR_AK, "wrong"))("GET", "/tasks").status_code == 401

    process.send_signal(stop_signal)
    assert process.wait(timeout=5) == 0
    assert process.stdout is not None
    assert process.stdout.read() == ""  # exactly one line was printed


def test_cli_options(run_cli: RunCli, tmp_path: Path) -> None:
    write_objects(tmp_path / "src-bucket", {"keep.txt": "k", "flaky.bad": "f"})
    process, url = run_cli(
        "--port", "0", "--ak", "CLIAK", "--sk", "CLISK", "--project-id", "cliproject",
        "--fail-pattern", "*.bad", "--fail-pattern", "*.worse", "--fail-times", "1",
        "--task-start-delay", "1", "--object-delay", "0.01",
    )  # fmt: skip
    oms = OMSCaller(url, project_id="cliproject", credentials=Credentials("CLIAK", "CLISK"))
    # Each run waits 1 s: time enough for the show call to see it waiting even on a busy machine.
    task_id = oms.create(task_body())
    assert oms.show(task_id).json()["status"] == TaskStatus.WAITING
    wait_until(lambda: oms.show(task_id).json()["status"] == TaskStatus.FAILED, timeout=15)
    assert oms.show(task_id).json()["failed_num"] == 1
    assert oms.start(task_id, migrate_failed_object=True).status_code == 200
    wait_until(lambda: oms.show(task_id).json()["status"] == TaskStatus.SUCCEEDED, timeout=15)
    assert {"keep.txt", "flaky.bad"} <= bucket_keys(tmp_path / "dst-bucket")
    process.terminate()
    assert process.wait(timeout=5) == 0


@pytest.mark.parametrize(
    "args",
    [
        ["--fail-times", "2"],
        ["--fail-pattern", "*", "--fail-times", "0"],
        ["--object-delay", "-1"],
        ["--pausing-delay", "-1"],
        [],
    ],
)
def test_cli_refuses_bad_options(tmp_path: Path, args: list[str]) -> None:
    port = [] if args == [] else ["--port", "0"]
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_oms.testing.emulator", "--data-dir", str(tmp_path), *port, *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == ""


def test_emulator_package_does_not_import_airflow() -> None:
    code = (
        "import sys\n"
        "import airflow_provider_oms.testing.emulator, airflow_provider_oms.testing.pytest_plugin\n"
        "from airflow_provider_oms.testing import OMSEmulator, OMSEmulatorError, RequestRecord\n"
        "loaded = sorted(name for name in sys.modules if name == 'airflow' or name.startswith('airflow.'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
