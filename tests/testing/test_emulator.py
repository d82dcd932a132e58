"""The OMSEmulator Python API, its pytest fixture, and its behaviour under concurrent clients."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import requests

from airflow_provider_oms.client import Credentials
from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.testing import (
    EMULATOR_AK,
    EMULATOR_PROJECT_ID,
    EMULATOR_SK,
    OMSEmulator,
)
from tests.testing.helpers import OMSCaller, task_body, write_objects


def test_fixture_yields_a_started_emulator_under_tmp_path(oms_emulator: OMSEmulator, tmp_path: Path) -> None:
    assert oms_emulator.data_dir.is_relative_to(tmp_path)
    assert oms_emulator.url == f"http://127.0.0.1:{oms_emulator.port}"
    assert oms_emulator.port > 0
    assert oms_emulator.project_id == EMULATOR_PROJECT_ID
    assert OMSCaller(oms_emulator.url)("GET", "/tasks").status_code == 200


def test_airflow_connection_points_at_the_emulator(oms_emulator: OMSEmulator) -> None:
    expected = {
        "conn_type": "huaweicloud_oms",
        "login": EMULATOR_AK,
        "password": EMULATOR_SK,
        "extra": {"project_id": EMULATOR_PROJECT_ID, "endpoint": oms_emulator.url},
    }
    assert oms_emulator.airflow_connection() == expected
    assert json.loads(oms_emulator.airflow_connection_uri_env()) == expected
    assert oms_emulator.airflow_connection(conn_type="other")["conn_type"] == "other"


def test_custom_credentials_and_project(tmp_path: Path) -> None:
    with OMSEmulator(tmp_path, access_key="MYAK", secret_key="MYSK", project_id="myproject") as emulator:
        connection = emulator.airflow_connection()
        assert (connection["login"], connection["password"], connection["extra"]["project_id"]) == (
            "MYAK",
            "MYSK",
            "myproject",
        )
        assert "MYSK" not in repr(emulator)
        mine = OMSCaller(emulator.url, project_id="myproject", credentials=Credentials("MYAK", "MYSK"))
        assert mine("GET", "/tasks").status_code == 200
        assert OMSCaller(emulator.url)("GET", "/tasks").status_code == 401


def test_bucket_path_creates_the_folder_and_checks_the_name(oms_emulator: OMSEmulator) -> None:
    path = oms_emulator.bucket_path("my-bucket.2024")
    assert path == oms_emulator.data_dir / "my-bucket.2024"
    assert path.is_dir()
    for name in ("..", "ab", "Upper", "under_score", "a/b", "-start", "x" * 64):
        with pytest.raises(ValueError, match="bucket name"):
            oms_emulator.bucket_path(name)


def test_lifecycle(tmp_path: Path) -> None:
    emulator = OMSEmulator(tmp_path / "created")
    assert (tmp_path / "created").is_dir()
    with pytest.raises(RuntimeError, match="not started"):
        _ = emulator.url
    assert emulator.requests == []
    try:
        assert emulator.start() is emulator
        url = emulator.url
        # A client with an open keep-alive connection must not keep talking to a stopped emulator.
        caller = OMSCaller(url)
        assert caller("GET", "/tasks").status_code == 200
        with pytest.raises(RuntimeError, match="already started"):
            emulator.start()
    finally:
        emulator.stop()
    emulator.stop()
    with pytest.raises(requests.ConnectionError):
        caller("GET", "/tasks")
    assert [record.status for record in emulator.requests] == [200]


def test_stop_ends_running_tasks(tmp_path: Path) -> None:
    with OMSEmulator(tmp_path, object_delay=0.5) as emulator:
        write_objects(emulator.bucket_path("src-bucket"), {f"{index}.txt": "x" for index in range(20)})
        task_id = OMSCaller(emulator.url).create(task_body())
        emulator.wait_for_status(task_id, {TaskStatus.RUNNING})
    # Leaving the block stopped the emulator.
    assert not [thread for thread in threading.enumerate() if thread.name.startswith(f"oms-emulator-task-{task_id}")]
    assert emulator.get_task(task_id)["successful_num"] < 20


def test_stop_cuts_a_long_pausing_short(tmp_path: Path) -> None:
    with OMSEmulator(tmp_path, object_delay=0.5, pausing_delay=60) as emulator:
        write_objects(emulator.bucket_path("src-bucket"), {f"{index}.txt": "x" for index in range(20)})
        task_id = OMSCaller(emulator.url).create(task_body())
        emulator.wait_for_status(task_id, {TaskStatus.RUNNING})
        emulator.pause_task(task_id)
        assert emulator.get_task(task_id)["status"] == TaskStatus.PAUSING
    assert not [thread for thread in threading.enumerate() if thread.name.startswith(f"oms-emulator-task-{task_id}")]
    assert emulator.get_task(task_id)["status"] == TaskStatus.PAUSED


def test_concurrent_clients(oms_emulator: OMSEmulator) -> None:
    write_objects(oms_emulator.bucket_path("src-bucket"), {"a.txt": "a", "b.txt": "b"})
    threads, per_thread = 8, 6
    created: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def client() -> None:
        caller = OMSCaller(oms_emulator.url)
        barrier.wait()
        for _ in range(per_thread):
            task_id = caller.create(task_body())
            shown = caller.show(task_id)
            listed = caller("GET", "/tasks", query={"limit": 100})
            with lock:
                created.append(task_id)
                if shown.status_code != 200 or shown.json()["id"] != task_id or listed.status_code != 200:
                    errors.append(f"{shown.status_code} {listed.status_code}")

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)

    assert errors == []
    assert len(created) == len(set(created)) == threads * per_thread
    for task_id in created:
        task = oms_emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED, TaskStatus.FAILED})
        assert (task["status"], task["successful_num"] + task["skipped_num"]) == (TaskStatus.SUCCEEDED, 2)
    listed = OMSCaller(oms_emulator.url)("GET", "/tasks", query={"limit": 100}).json()
    assert listed["count"] == threads * per_thread
    assert [task["id"] for task in listed["tasks"]] == sorted(created, reverse=True)
    records = oms_emulator.requests
    assert len(records) == threads * per_thread * 3 + 1
    assert {record.status for record in records} == {200}
