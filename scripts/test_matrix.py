#!/usr/bin/env python3
"""
Run the test suite on each supported Airflow version (``make test-matrix``).

For every version of the matrix (default: the oldest supported release, i.e. pyproject.toml's lower bound, and
the newest release) this creates a venv ``.venv-matrix/airflow-<version>``, installs ``apache-airflow==<version>``
together with this project (``-e '.[test]'``), checks that the resolver kept the pinned Airflow, and runs
``pytest`` there with its own AIRFLOW_HOME. A venv is re-used while its stamp (Airflow version, Python,
pyproject.toml) matches, so a second run only runs the tests. The exit status is non-zero if any version fails to
install or to pass.

Usage::

    python3 scripts/test_matrix.py                      # the whole matrix
    python3 scripts/test_matrix.py 3.1.8                # any one version
    python3 scripts/test_matrix.py --recreate           # rebuild the venvs
    python3 scripts/test_matrix.py -- -x -k trigger     # arguments after -- go to pytest

Only the standard library is used, so any Python >= 3.10 can run it; the venvs use the same interpreter.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MATRIX_DIR = ROOT / ".venv-matrix"

#: The supported range, tested at both ends: the lower bound ``apache-airflow>=X.Y.Z`` of pyproject.toml (the oldest
#: release we support) and the newest release.
OLDEST = "3.1.3"
NEWEST = "3.3.2"
DEFAULT_VERSIONS = (OLDEST, NEWEST)

#: Libraries released after an Airflow version that break that Airflow itself (not this provider). Airflow's own
#: constraint file for the version would pin them; it is not reachable from every machine, so the few pins that
#: matter are here. 3.2.2: fastapi >= 0.137 (with cadwyn >= 8) fails to build its API schema, svcs >= 26 breaks
#: the in-process execution API of ``airflow dags test``; Airflow 3.3 caps fastapi and works with svcs 26.
AIRFLOW_DEPENDENCY_PINS: dict[str, tuple[str, ...]] = {
    "3.2.2": ("fastapi<0.137", "svcs<26"),
}

STAMP_NAME = ".matrix-stamp.json"
_SUMMARY_RE = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)")


@dataclass
class Outcome:
    version: str
    task_sdk: str = "-"
    core: str = "-"
    status: str = "not run"
    counts: str = ""
    install_seconds: float = 0.0
    test_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "passed"


def log(message: str) -> None:
    print(f"[test-matrix] {message}", flush=True)


def venv_dir(version: str) -> Path:
    return MATRIX_DIR / f"airflow-{version}"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def expected_stamp(version: str) -> dict[str, str]:
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    return {
        "airflow": version,
        "python": sys.version.split()[0],
        "interpreter": os.path.realpath(sys.executable),
        "pyproject_sha256": hashlib.sha256(pyproject).hexdigest(),
        "pins": " ".join(AIRFLOW_DEPENDENCY_PINS.get(version, ())),
    }


def check_lower_bound() -> None:
    """Warn if the matrix's oldest version differs from pyproject's ``apache-airflow>=X.Y.Z`` lower bound."""
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'"apache-airflow\s*>=\s*([0-9]+(?:\.[0-9]+)*)', text)
    if not match:
        log("warning: no apache-airflow>=X.Y.Z lower bound found in pyproject.toml")
        return
    bound = match.group(1)
    if bound != OLDEST:
        log(f"warning: pyproject.toml declares apache-airflow>={bound} but the matrix's oldest version is {OLDEST}")


def installed_versions(python: Path) -> dict[str, str]:
    code = (
        "import json, importlib.metadata as m\n"
        "out = {}\n"
        "for name in ('apache-airflow', 'apache-airflow-core', 'apache-airflow-task-sdk', 'pytest'):\n"
        "    try:\n"
        "        out[name] = m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        out[name] = '-'\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    versions: dict[str, str] = json.loads(done.stdout)
    return versions


def run(cmd: list[str]) -> None:
    log("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True, cwd=ROOT)


def ensure_venv(version: str, recreate: bool, outcome: Outcome) -> Path:
    """Create (or re-use) the venv for ``version``; raise RuntimeError if the pin was not honoured."""
    venv = venv_dir(version)
    stamp_file = venv / STAMP_NAME
    stamp = expected_stamp(version)
    python = venv_python(venv)
    if not recreate and stamp_file.exists() and python.exists():
        try:
            if json.loads(stamp_file.read_text()) == stamp:
                log(f"re-using {venv.relative_to(ROOT)} (stamp matches)")
                return python
        except ValueError:
            pass
        log(f"stamp of {venv.relative_to(ROOT)} is outdated: rebuilding")
    started = time.monotonic()
    if venv.exists():
        shutil.rmtree(venv)
    run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
    run([*pip, "install", "--quiet", "--upgrade", "pip"])
    # The pin and the editable project in one resolution: the pin wins over the ``apache-airflow>=`` bound.
    pins = AIRFLOW_DEPENDENCY_PINS.get(version, ())
    if pins:
        log(f"pinning for Airflow {version} (see AIRFLOW_DEPENDENCY_PINS): {' '.join(pins)}")
    run([*pip, "install", "--quiet", f"apache-airflow=={version}", *pins, "-e", ".[test]"])
    outcome.install_seconds = time.monotonic() - started
    versions = installed_versions(python)
    for name in ("apache-airflow", "apache-airflow-core"):
        if versions[name] != version:
            raise RuntimeError(f"the resolver installed {name} {versions[name]}, not {version}")
    check = subprocess.run([*pip, "check"], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise RuntimeError(f"pip check failed:\n{check.stdout}{check.stderr}")
    stamp_file.write_text(json.dumps(stamp, indent=2) + "\n")
    return python


def summarize(output: str) -> str:
    """The counts of pytest's final summary line, e.g. ``870 passed, 2 failed``."""
    for line in reversed(output.splitlines()):
        if " in " in line and _SUMMARY_RE.search(line):
            return ", ".join(f"{n} {what}" for n, what in _SUMMARY_RE.findall(line))
    return ""


@contextlib.contextmanager
def version_lock(version: str) -> Iterator[None]:
    """Hold ``.venv-matrix/airflow-<version>.lock``: a second run on the same version waits for the first."""
    with (MATRIX_DIR / f"airflow-{version}.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"another test-matrix run uses Airflow {version}: waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def run_tests(version: str, python: Path, pytest_args: list[str], outcome: Outcome) -> None:
    with tempfile.TemporaryDirectory(prefix=f"oms-matrix-{version}-") as scratch:
        _run_tests(version, python, pytest_args, outcome, Path(scratch))


def _run_tests(version: str, python: Path, pytest_args: list[str], outcome: Outcome, scratch: Path) -> None:
    venv = venv_dir(version)
    home = scratch / "airflow-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "VIRTUAL_ENV": str(venv),
            "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.pop("PYTHONHOME", None)
    # Own AIRFLOW_HOME and temp dir, no cache plugin: `make test` or other runs at the same time are not disturbed.
    cmd = [
        str(python),
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        f"--basetemp={scratch / 'pytest'}",
        *pytest_args,
    ]
    log_file = venv / "pytest.log"
    log(f"$ {' '.join(cmd)}   (output also in {log_file.relative_to(ROOT)})")
    started = time.monotonic()
    with (
        subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc,
        log_file.open("w") as sink,
    ):
        assert proc.stdout is not None
        chunks = []
        for line in proc.stdout:
            sys.stdout.write(line)
            sink.write(line)
            chunks.append(line)
        returncode = proc.wait()
    outcome.test_seconds = time.monotonic() - started
    outcome.counts = summarize("".join(chunks))
    outcome.status = "passed" if returncode == 0 else f"FAILED (exit {returncode})"


def print_table(outcomes: list[Outcome]) -> None:
    headers = ("airflow", "core", "task-sdk", "result", "tests", "install", "pytest")
    rows = [
        (
            o.version,
            o.core,
            o.task_sdk,
            o.status,
            o.counts or "-",
            f"{o.install_seconds:.0f}s" if o.install_seconds else "re-used",
            f"{o.test_seconds:.0f}s",
        )
        for o in outcomes
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print()
    print(line.format(*headers))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))
    print(flush=True)


def check_version(version: str, args: argparse.Namespace, pytest_args: list[str], outcome: Outcome) -> None:
    try:
        python = ensure_venv(version, args.recreate, outcome)
    except (subprocess.CalledProcessError, RuntimeError) as err:
        log(f"install for Airflow {version} failed: {err}")
        outcome.status = "INSTALL FAILED"
        return
    versions = installed_versions(python)
    outcome.core = versions["apache-airflow-core"]
    outcome.task_sdk = versions["apache-airflow-task-sdk"]
    log(
        f"installed: apache-airflow {versions['apache-airflow']}, apache-airflow-core {outcome.core}, "
        f"apache-airflow-task-sdk {outcome.task_sdk}, pytest {versions['pytest']}"
    )
    if args.install_only:
        outcome.status = "passed"
        outcome.counts = "installed only"
        return
    run_tests(version, python, pytest_args, outcome)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, pytest_args = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[1], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "versions",
        nargs="*",
        default=list(os.environ.get("AIRFLOW_VERSIONS", " ".join(DEFAULT_VERSIONS)).split()),
        help=f"Airflow versions to test (default: {' '.join(DEFAULT_VERSIONS)}; or env AIRFLOW_VERSIONS)",
    )
    parser.add_argument("--recreate", action="store_true", help="rebuild the venvs even if their stamp matches")
    parser.add_argument("--install-only", action="store_true", help="create the venvs, do not run pytest")
    args = parser.parse_args(argv)

    check_lower_bound()
    MATRIX_DIR.mkdir(exist_ok=True)
    outcomes = []
    for version in args.versions:
        outcome = Outcome(version)
        outcomes.append(outcome)
        log(f"=== Airflow {version} ===")
        with version_lock(version):
            check_version(version, args, pytest_args, outcome)

    print_table(outcomes)
    failed = [o.version for o in outcomes if not o.ok]
    if failed:
        log(f"failed on Airflow {', '.join(failed)}")
        return 1
    log(f"all passed: Airflow {', '.join(o.version for o in outcomes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
