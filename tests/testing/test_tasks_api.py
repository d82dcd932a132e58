"""The task API of the emulator over HTTP: create, list, show, start, stop, delete, with OMS statuses and codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.testing import OMSEmulator
from tests.testing.helpers import (
    DST_AK,
    DST_SK,
    SRC_AK,
    SRC_SK,
    OMSCaller,
    assert_error,
    send_raw_signed,
    task_body,
    wait_until,
    write_objects,
)

SECRETS = (SRC_AK, SRC_SK, DST_AK, DST_SK)


def assert_invalid(response: Any, field: str) -> None:
    body = assert_error(response, 400, "OMS.0064")
    assert f"request parameter [{field}] invalid" in body["error_detail"]
    assert not any(secret in response.text for secret in SECRETS)


def assert_empty_ok(response: Any) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Length"] == "0"
    assert response.content == b""


def test_create_answers_increasing_15_digit_ids_and_a_name(oms: OMSCaller, oms_emulator: OMSEmulator) -> None:
    oms_emulator.bucket_path("src-bucket")
    first = oms("POST", "/tasks", json_body=task_body())
    second = oms("POST", "/tasks", json_body=task_body())
    assert first.status_code == second.status_code == 200
    ids = [first.json()["id"], second.json()["id"]]
    assert all(isinstance(task_id, int) and len(str(task_id)) == 15 for task_id in ids)
    assert ids[0] < ids[1]
    assert first.json()["name"] == first.json()["task_name"] == oms.show(ids[0]).json()["name"]


def test_created_task_waits_then_runs_by_itself(tmp_path: Path) -> None:
    # Two seconds of waiting: time enough for the show call to see it even on a busy machine.
    with OMSEmulator(tmp_path, task_start_delay=2) as emulator:
        write_objects(emulator.bucket_path("src-bucket"), {"a.txt": "a"})
        oms = OMSCaller(emulator.url)
        task_id = oms.create(task_body())
        assert oms.show(task_id).json()["status"] == TaskStatus.WAITING
        assert emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED})["successful_num"] == 1


def test_show_returns_the_task_without_credentials(oms: OMSCaller, oms_emulator: OMSEmulator) -> None:
    oms_emulator.bucket_path("src-bucket")
    body = task_body(
        object_key=["data/"],
        save_prefix="backup/",
        description="nightly copy",
        object_overwrite_mode="FULL_OVERWRITE",
    )
    body["src_node"]["security_token"] = "SRC-TOKEN-never-echoed"
    task_id = oms.create(body)
    oms_emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED})
    response = oms.show(task_id)
    task = response.json()
    assert task["id"] == task_id
    assert task["task_type"] == "object"
    assert task["description"] == "nightly copy"
    assert task["group_id"] is None
    assert task["object_overwrite_mode"] == "FULL_OVERWRITE"
    assert task["src_node"] == {
        "bucket": "src-bucket",
        "region": "cn-north-4",
        "cloud_type": "HuaweiCloud",
        "object_key": ["data/"],
    }
    assert task["dst_node"] == {"bucket": "dst-bucket", "region": "cn-north-4", "save_prefix": "backup/"}
    for secret in (*SECRETS, "SRC-TOKEN-never-echoed"):
        assert secret not in response.text


@pytest.mark.parametrize("task_id", ["123456789012345", "not-a-number", "-1"])
def test_show_unknown_task_is_404_oms_1009(oms: OMSCaller, task_id: str) -> None:
    assert_error(oms.show(task_id), 404, "OMS.1009")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"src_node": None}, "src_node"),
        ({"dst_node": None}, "dst_node"),
        ({"src_node": "src-bucket"}, "src_node"),
        ({"task_type": "url_list"}, "task_type"),
        ({"task_type": "everything"}, "task_type"),
        ({"object_overwrite_mode": "SOMETIMES"}, "object_overwrite_mode"),
        ({"description": "<script>"}, "description"),
        ({"description": "d" * 256}, "description"),
    ],
)
def test_create_refuses_invalid_top_level_fields(oms: OMSCaller, change: dict[str, Any], field: str) -> None:
    assert_invalid(oms("POST", "/tasks", json_body={**task_body(), **change}), field)


@pytest.mark.parametrize(
    ("node", "key", "value", "field"),
    [
        ("src_node", "bucket", None, "src_node.bucket"),
        ("src_node", "bucket", "Not_A_Bucket", "src_node.bucket"),
        ("src_node", "bucket", "../etc", "src_node.bucket"),
        ("src_node", "region", None, "src_node.region"),
        ("src_node", "ak", None, "src_node.ak"),
        ("src_node", "sk", "s" * 101, "src_node.sk"),
        ("src_node", "object_key", "a.txt", "src_node.object_key"),
        ("src_node", "object_key", ["../outside"], "src_node.object_key"),
        ("dst_node", "bucket", None, "dst_node.bucket"),
        ("dst_node", "region", None, "dst_node.region"),
        ("dst_node", "sk", None, "dst_node.sk"),
        ("dst_node", "save_prefix", "../outside/", "dst_node.save_prefix"),
        ("dst_node", "save_prefix", "/absolute/", "dst_node.save_prefix"),
    ],
)
def test_create_refuses_invalid_nodes(oms: OMSCaller, node: str, key: str, value: Any, field: str) -> None:
    body = task_body()
    body[node][key] = value
    assert_invalid(oms("POST", "/tasks", json_body=body), field)


def test_create_refuses_a_body_that_is_not_json(oms_emulator: OMSEmulator) -> None:
    response = send_raw_signed(oms_emulator, "POST", f"/v2/{oms_emulator.project_id}/tasks", body=b"{not json")
    assert_invalid(response, "body")


def test_list_pages_newest_first_and_filters(oms: OMSCaller, oms_emulator: OMSEmulator) -> None:
    write_objects(oms_emulator.bucket_path("src-bucket"), {"a.txt": "a"})
    succeeded = [oms.create(task_body()) for _ in range(3)]
    failed = oms.create(task_body(src="missing-bucket"))
    for task_id in succeeded:
        oms_emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED})
    oms_emulator.wait_for_status(failed, {TaskStatus.FAILED})
    newest_first = [failed, *reversed(succeeded)]

    def listed(**query: Any) -> tuple[list[int], int]:
        response = oms("GET", "/tasks", query=query)
        assert response.status_code == 200, response.text
        return [task["id"] for task in response.json()["tasks"]], response.json()["count"]

    assert listed() == (newest_first, 4)
    assert listed(limit=2) == (newest_first[:2], 4)
    assert listed(limit=2, offset=3) == (newest_first[3:], 4)
    assert listed(offset=10) == ([], 4)
    assert listed(status=TaskStatus.FAILED) == ([failed], 1)
    assert listed(status=TaskStatus.SUCCEEDED, limit=1) == (newest_first[1:2], 3)
    name = oms.show(succeeded[1]).json()["name"]
    assert listed(task_name=name) == ([succeeded[1]], 1)
    assert listed(task_name="OMS-TASK") == (newest_first, 4)
    assert listed(group_id="some-group") == ([], 0)
    assert listed(limit=100) == (newest_first, 4)


@pytest.mark.parametrize(
    ("query", "field"),
    [({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"limit": "ten"}, "limit"), ({"offset": -1}, "offset")],
)
def test_list_refuses_bad_paging(oms: OMSCaller, query: dict[str, Any], field: str) -> None:
    assert_invalid(oms("GET", "/tasks", query=query), field)


@pytest.fixture
def running_task(slow_oms: OMSCaller, slow_emulator: OMSEmulator) -> int:
    write_objects(slow_emulator.bucket_path("src-bucket"), {f"f{i}.txt": str(i) for i in range(30)})
    task_id = slow_oms.create(task_body())
    slow_emulator.wait_for_status(task_id, {TaskStatus.RUNNING})
    return task_id


def test_start_of_a_running_task_is_oms_0065(slow_oms: OMSCaller, running_task: int) -> None:
    assert_error(slow_oms.start(running_task), 400, "OMS.0065")


def test_start_of_a_waiting_task_is_oms_0065(tmp_path: Path) -> None:
    with OMSEmulator(tmp_path, task_start_delay=5) as emulator:
        oms = OMSCaller(emulator.url)
        task_id = oms.create(task_body())
        assert_error(oms.start(task_id), 400, "OMS.0065")


def test_start_of_a_completed_task_is_refused(oms: OMSCaller, oms_emulator: OMSEmulator) -> None:
    oms_emulator.bucket_path("src-bucket")
    task_id = oms.create(task_body())
    oms_emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED})
    body = assert_error(oms.start(task_id), 400, "OMS.0067")
    assert "completed" in body["error_msg"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"dst_sk": DST_SK}, "dst_ak"),
        ({"dst_ak": DST_AK}, "dst_sk"),
        ({"dst_ak": "", "dst_sk": DST_SK}, "dst_ak"),
        ({"dst_ak": 12345, "dst_sk": DST_SK}, "dst_ak"),
        ({"dst_ak": DST_AK, "dst_sk": DST_SK, "src_ak": "k" * 101}, "src_ak"),
        ({"dst_ak": DST_AK, "dst_sk": DST_SK, "src_sk": ""}, "src_sk"),
        ({"dst_ak": DST_AK, "dst_sk": DST_SK, "dst_security_token": "t" * 16385}, "dst_security_token"),
        (
            {"dst_ak": DST_AK, "dst_sk": DST_SK, "source_cdn_authentication_key": "c" * 256},
            "source_cdn_authentication_key",
        ),
        ({"dst_ak": DST_AK, "dst_sk": DST_SK, "migrate_failed_object": "yes"}, "migrate_failed_object"),
        ({"dst_ak": DST_AK, "dst_sk": DST_SK, "migrate_failed_object": 1}, "migrate_failed_object"),
        (["dst_ak", "dst_sk"], "body"),
    ],
)
def test_start_refuses_invalid_bodies_naming_the_field(
    oms: OMSCaller, oms_emulator: OMSEmulator, body: Any, field: str
) -> None:
    task_id = oms.create(task_body(src="missing-bucket"))
    oms_emulator.wait_for_status(task_id, {TaskStatus.FAILED})
    response = oms("POST", "/tasks/{task_id}/start", task_id=task_id, json_body=body)
    assert_invalid(response, field)
    assert "kkkk" not in response.text
    assert oms.show(task_id).json()["status"] == TaskStatus.FAILED


def test_start_accepts_the_seed_body_and_ignores_unknown_keys(oms: OMSCaller, oms_emulator: OMSEmulator) -> None:
    task_id = oms.create(task_body(src="missing-bucket"))
    oms_emulator.wait_for_status(task_id, {TaskStatus.FAILED})
    oms_emulator.bucket_path("missing-bucket")
    response = oms.start(
        task_id,
        src_ak=SRC_AK,
        src_sk=SRC_SK,
        src_security_token="",
        dst_security_token=None,
        json_auth_file="{}",
        source_cdn_authentication_key="",
        migrate_failed_object=False,
        connection_string="unknown to the seed",
    )
    assert_empty_ok(response)
    assert oms_emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED})["error_reason"] is None


def test_migrate_failed_object_without_a_failed_list_resumes_the_whole_task(tmp_path: Path) -> None:
    with OMSEmulator(tmp_path, object_delay=0.1) as emulator:
        write_objects(emulator.bucket_path("src-bucket"), {f"f{i:02}.txt": str(i) for i in range(12)})
        oms = OMSCaller(emulator.url)
        task_id = oms.create(task_body())
        wait_until(lambda: oms.show(task_id).json()["successful_num"] >= 2)
        assert_empty_ok(oms.stop(task_id))
        paused = emulator.wait_for_status(task_id, {TaskStatus.PAUSED})
        assert 2 <= paused["successful_num"] < 12
        assert_empty_ok(oms.start(task_id, migrate_failed_object=True))
        done = emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED})
    assert done["total_num"] == 12
    assert done["skipped_num"] == paused["successful_num"]
    assert done["successful_num"] == 12 - paused["successful_num"]


def test_stop_then_start_a_running_task(slow_oms: OMSCaller, slow_emulator: OMSEmulator, running_task: int) -> None:
    assert_empty_ok(slow_oms.stop(running_task))
    assert slow_oms.show(running_task).json()["status"] == TaskStatus.PAUSING
    assert_error(slow_oms.stop(running_task), 400, "OMS.0066")
    slow_emulator.wait_for_status(running_task, {TaskStatus.PAUSED})
    assert_error(slow_oms.stop(running_task), 400, "OMS.0066")
    assert_empty_ok(slow_oms.start(running_task))
    assert slow_oms.show(running_task).json()["status"] in {TaskStatus.WAITING, TaskStatus.RUNNING}


def test_stop_of_a_waiting_task_pauses_it_at_once(tmp_path: Path) -> None:
    with OMSEmulator(tmp_path, task_start_delay=5) as emulator:
        oms = OMSCaller(emulator.url)
        emulator.bucket_path("src-bucket")
        task_id = oms.create(task_body())
        assert_empty_ok(oms.stop(task_id))
        assert oms.show(task_id).json()["status"] == TaskStatus.PAUSED


@pytest.mark.parametrize("final", [TaskStatus.SUCCEEDED, TaskStatus.FAILED])
def test_stop_of_a_finished_task_is_oms_0066(oms: OMSCaller, oms_emulator: OMSEmulator, final: int) -> None:
    if final == TaskStatus.SUCCEEDED:
        oms_emulator.bucket_path("src-bucket")
    task_id = oms.create(task_body())
    oms_emulator.wait_for_status(task_id, {final})
    body = assert_error(oms.stop(task_id), 400, "OMS.0066")
    assert "not in progress" in body["error_msg"]


def test_delete_while_running_is_oms_0063_then_works_once_paused(
    slow_oms: OMSCaller, slow_emulator: OMSEmulator, running_task: int
) -> None:
    assert_error(slow_oms("DELETE", "/tasks/{task_id}", task_id=running_task), 400, "OMS.0063")
    slow_emulator.pause_task(running_task)
    assert_error(slow_oms("DELETE", "/tasks/{task_id}", task_id=running_task), 400, "OMS.0063")  # pausing
    slow_emulator.wait_for_status(running_task, {TaskStatus.PAUSED})
    assert_empty_ok(slow_oms("DELETE", "/tasks/{task_id}", task_id=running_task))
    assert_error(slow_oms.show(running_task), 404, "OMS.1009")
    assert_error(slow_oms("DELETE", "/tasks/{task_id}", task_id=running_task), 404, "OMS.1009")
    assert slow_oms("GET", "/tasks").json()["count"] == 0


def test_unknown_task_is_oms_1009_for_every_operation(oms: OMSCaller) -> None:
    for response in (
        oms.start(999999999999999),
        oms.stop(999999999999999),
        oms("DELETE", "/tasks/{task_id}", task_id=999999999999999),
    ):
        assert_error(response, 404, "OMS.1009")
