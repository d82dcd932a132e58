"""
Clearing a running CreateMigrationTaskOperator in a real Airflow deployment (scheduler, LocalExecutor, SQLite)
against the OMS emulator: the try after the clear creates a new OMS task instead of resuming the old one.

The path staged is the one where Airflow does not raise ``max_tries``: the task's worker is lost (``kill -9`` of
the task's supervisor and runner) and a person clears the task, which still shows running. Airflow marks it
``restarting``; the scheduler finds it without heartbeats and retries it (``up_for_retry``), ``max_tries``
unchanged, so by the try number alone the next try looks like a retry of the same clear. The clear raised the
DAG run's ``clear_number`` (Airflow 3.3 raises it on every clear that resets the run; 3.1.3 only when it resets a
finished run), which the marker takes in. When the restarting try ends as a success for the executor (its
supervisor killed it), Airflow 3.1.3 and 3.3 raise ``max_tries`` themselves, and the next try creates anew.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from airflow import __version__ as airflow_version
from packaging.version import Version

from airflow_provider_oms.testing import OMSEmulator
from tests.deployment.airflow_deployment import AirflowDeployment, DeploymentError
from tests.helpers import write_objects

pytestmark = pytest.mark.e2e

DAG_FILE = Path(__file__).parent / "dags" / "oms_clear_dags.py"
DAG_ID = "oms_clear_running_create"
CONN_ID = "huaweicloud_oms_default"
AK = "CLEARAK7Q2W9E4R1T6Y3U"
SK = "clear-SK-p4Lm8Nq2Rv6Tx1Zb5Wc9"
#: Seconds without heartbeats before the scheduler gives up on a running (or restarting) task instance.
HEARTBEAT_TIMEOUT = 20


@pytest.fixture
def emulator(tmp_path) -> Iterator[OMSEmulator]:
    """An emulator whose tasks take a minute (20 objects, 3 s each): the task is still running when cleared."""
    with OMSEmulator(tmp_path / "buckets", access_key=AK, secret_key=SK, object_delay=3.0) as emu:
        write_objects(emu.bucket_path("src"), [f"data/{n:02}.txt" for n in range(20)])
        emu.bucket_path("dst")
        yield emu


@pytest.fixture
def airflow(tmp_path, emulator) -> Iterator[AirflowDeployment]:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / DAG_FILE.name).write_text(DAG_FILE.read_text())
    connections = {
        CONN_ID: emulator.airflow_connection(),
        "oms_source": {"conn_type": "generic", "login": "SOURCE-AK-0001", "password": "SOURCE-SK-0001"},
    }
    config = {
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
    }
    (tmp_path / "home").mkdir()
    deployment = AirflowDeployment(tmp_path / "home", dags, connections, config=config)
    try:
        deployment.start(timeout=180)
        yield deployment
    finally:
        deployment.stop()


def read(airflow: AirflowDeployment, path: str, **kwargs: Any) -> Any:
    """GET through the REST API; ``None`` when the API server is too busy to answer in time (a busy CI machine)."""
    try:
        return airflow.get(path, **kwargs)
    except httpx.TimeoutException:
        return None


def task_log(airflow: AirflowDeployment, run_id: str, try_number: int) -> str:
    """A try's log as the UI shows it, one line per event; empty while there is none."""
    try:
        answer = read(
            airflow,
            f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/create/logs/{try_number}",
            params={"full_content": "true"},
            headers={"Accept": "application/json"},
        )
    except DeploymentError:  # no log yet
        return ""
    lines = (answer or {}).get("content") or []
    return "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)


@pytest.mark.xfail(
    Version(airflow_version) < Version("3.3"),
    # Seen on 3.1.3; 3.2 not tried, hence not strict.
    reason="before 3.3, clearing a task of a running DAG run leaves clear_number: the clear looks like a retry",
    strict=False,
)
def test_clearing_a_running_create_whose_worker_was_lost_creates_a_new_oms_task(airflow, emulator):
    airflow.wait_for("the DAG to be parsed", lambda: airflow.find(f"/api/v2/dags/{DAG_ID}"), 120)
    airflow.request("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
    run_id = airflow.request("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None})["dag_run_id"]
    ti_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/create"

    first = airflow.wait_for(
        "a try to run and create the OMS task",
        lambda: (ti := read(airflow, ti_path) or {}).get("state") == "running" and emulator.applied_creates == 1 and ti,
        120,
    )
    # The worker is lost: the task's runner and its supervisor die at once, nothing of them reports.
    runner = int(first["pid"])
    supervisor = int(Path(f"/proc/{runner}/stat").read_text().rsplit(")", 1)[1].split()[1])
    for pid in (runner, supervisor):
        os.kill(pid, signal.SIGKILL)
    # A person clears the task, which still shows running.
    airflow.request(
        "POST",
        f"/api/v2/dags/{DAG_ID}/clearTaskInstances",
        json={"dag_run_id": run_id, "task_ids": ["create"], "dry_run": False, "only_failed": False},
    )
    assert airflow.get(ti_path)["state"] == "restarting"

    # (On a busy machine an earlier try may have failed on its own before the create: the next try counts.)
    after_clear = first["try_number"] + 1

    def next_try_decided() -> str | None:
        log = (
            task_log(airflow, run_id, after_clear)
            if (read(airflow, ti_path) or {}).get("try_number") == after_clear
            else ""
        )
        return log if ("Created OMS migration task" in log or "Reusing OMS migration task" in log) else None

    log = airflow.wait_for("the try after the clear to create or reuse", next_try_decided, HEARTBEAT_TIMEOUT + 90)
    second = airflow.get(ti_path)

    assert second["max_tries"] == first["max_tries"], "Airflow raised max_tries: this is not the path under test"
    assert "Reusing OMS migration task" not in log, "the cleared task resumed the OMS task of the try before"
    assert emulator.applied_creates == 2
