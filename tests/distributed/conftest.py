"""
Fixtures of the distributed deployment test: one OMS emulator and one CeleryExecutor deployment per session.

These tests need their own environment (.venv-distributed: Celery, PostgreSQL and Redis wheels) and several
minutes: `make test-distributed` runs them with OMS_DISTRIBUTED=1. Without it (a plain `pytest`, `make test`),
they are not collected at all, rather than failing for a missing Celery or passing as skipped.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from airflow_provider_oms.testing import OMSEmulator
from tests.distributed import figures

if not os.environ.get("OMS_DISTRIBUTED"):
    collect_ignore_glob = ["test_*.py"]

DAG_FILES = [Path(__file__).resolve().parent / "dags" / "oms_distributed_dags.py"]
CONN_ID = "oms_distributed"
# Distinctive credentials of this test only: finding any of them at rest anywhere means a leak.
AK = "DISTAKQ7W3ZK9P2M5X8R"
SK = "dist-SK-Vq4Nz8Lk2Wp6Rt9Yc3Hm7Bx1Fd5Gj0"
SECURITY_TOKEN = "dist-STS-" + "Tk7Qw2Ep9Rz4Uy6Io1Pa3Sd8Fg5Hj0Kl" * 3
#: The source side: an `aws` connection with temporary keys, kept in the metadata database (Fernet-encrypted),
#: as a person would add it in the UI; every start reads it and sends the keys to OMS.
SOURCE_CONN_ID = "oms_dist_source"
SRC_AK = "ASIADISTSRC7Q2W9E4R6"
SRC_SK = "dist-src-SK-Lp3Mx8Vb2Nq7Tz5Wc9Ky4Hd6"
SRC_TOKEN = "dist-src-session-" + "Fq8Wm3Zr6Yt1Ub4Xe7Ic2Ov5" * 3
#: Start-body field -> the value this test's source connection must put there.
SOURCE_FIELDS = {"src_ak": SRC_AK, "src_sk": SRC_SK, "src_security_token": SRC_TOKEN}
#: Seconds each object takes in the emulator, and a created or started task's wait: migrations of a few
#: dozen files last long enough to kill things in the middle of them.
OBJECT_DELAY = 1.0
TASK_START_DELAY = 1.0
#: The settings that decide how fast a lost worker or triggerer is noticed (defaults 300, 30 and 5 s).
HEARTBEAT_TIMEOUT = 20
TRIGGERER_THRESHOLD = 10
TRIGGERER_HEARTBEAT = 2
SETTINGS = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_THRESHOLD),
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": str(TRIGGERER_HEARTBEAT),
    # Fewer than the fan-out's deferred waits, and few per loop: both triggerers must take some.
    "AIRFLOW__TRIGGERER__CAPACITY": "14",
    "AIRFLOW__TRIGGERER__MAX_TRIGGER_TO_SELECT_PER_LOOP": "4",
}


def oms_connection(emulator: OMSEmulator) -> dict:
    """The connection every component uses: the emulator with this test's AK/SK and a security token."""
    conn = emulator.airflow_connection()
    conn["extra"]["security_token"] = SECURITY_TOKEN
    return conn


def source_connection() -> dict[str, Any]:
    """The source connection, as the REST API takes it."""
    return {
        "connection_id": SOURCE_CONN_ID,
        "conn_type": "aws",
        # In extras, not login/password: Airflow encrypts a connection's password and extra, never its login.
        "extra": json.dumps(
            {
                "aws_access_key_id": SRC_AK,
                "aws_secret_access_key": SRC_SK,
                "aws_session_token": SRC_TOKEN,
                "region_name": "eu-west-1",
            }
        ),
    }


@pytest.fixture(scope="session")
def emulator(tmp_path_factory) -> Iterator[OMSEmulator]:
    """The OMS emulator, in this process, on 127.0.0.1; this process's hook talks to it as every component."""
    with (
        OMSEmulator(
            tmp_path_factory.mktemp("oms-buckets"),
            access_key=AK,
            secret_key=SK,
            object_delay=OBJECT_DELAY,
            task_start_delay=TASK_START_DELAY,
        ) as emu,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(oms_connection(emu)))
        yield emu


@pytest.fixture(scope="session")
def source_keys_sent(emulator) -> Iterator[dict[str, list[str]]]:
    """
    OMS task id -> the source fields each of its start requests carried with this test's source keys.

    The emulator keeps no request body (they carry credentials), so its store's start is wrapped here to note
    which fields matched; the values themselves are never kept.
    """
    sent: dict[str, list[str]] = {}
    store = emulator._store
    start_task = store.start_task

    def noting_start(task_id: int | str, body: Any) -> None:
        fields = body if isinstance(body, Mapping) else {}
        sent[str(task_id)] = sorted(name for name, value in SOURCE_FIELDS.items() if fields.get(name) == value)
        start_task(task_id, body)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "start_task", noting_start)
        yield sent


def _interrupted(signum: int, frame: FrameType | None) -> None:
    # pytest turns KeyboardInterrupt into an orderly end that still runs the fixtures' teardown.
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keep each test's call report on its item, for the outcomes of the generated report."""
    result = yield
    report = result.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def deployment(request, emulator) -> Iterator:
    """The running deployment; stopped at the end whatever happens (teardown, atexit, SIGTERM, SIGHUP)."""
    from tests.distributed.cluster import DistributedDeployment

    session_started = time.monotonic()
    figures.record("heartbeat_timeout", HEARTBEAT_TIMEOUT)
    figures.record("triggerer_threshold", TRIGGERER_THRESHOLD)
    figures.record("triggerer_heartbeat", TRIGGERER_HEARTBEAT)
    cluster = DistributedDeployment(DAG_FILES, {CONN_ID: json.dumps(oms_connection(emulator))}, config=SETTINGS)
    # Past pytest's capture: where to look after a failed run.
    print(f"\ndeployment folder: {cluster.base}", file=sys.__stderr__, flush=True)
    atexit.register(cluster.stop)
    previous = {sig: signal.signal(sig, _interrupted) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        try:
            cluster.start()
            cluster.request("POST", "/api/v2/connections", expect=201, json=source_connection())
        finally:
            for key, value in cluster.timings.items():
                figures.record(key, value)
        yield cluster
    finally:
        # Normally test_teardown_leaves_nothing stopped it already; this catches every other way out.
        cluster.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        atexit.unregister(cluster.stop)
        figures.record("session_seconds", time.monotonic() - session_started)
        failed = request.session.testsfailed
        figures.write_report(cluster.home / "figures.json")
        if not failed:  # a failed run's logs stay for its reader; the folder's path was printed at the start
            cluster.remove()
        left = cluster.leftovers()
        marked = cluster.ports_open()
        assert not left, f"processes left running after the deployment stopped: {left}"
        assert not marked, f"ports of the deployment still open on 127.0.0.1: {marked}"
