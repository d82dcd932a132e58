"""
The emulator's bandwidth policies, task groups, sync tasks and IAM tokens over HTTP, and the official SDK on them.

Requests are signed with the provider's OMSRequestBuilder (or carry an IAM token) and sent with ``requests``;
every status the emulator documents is reached, every refusal answered with its code, and files really copied.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_oms.testing import (
    EMULATOR_AK,
    EMULATOR_IAM_DOMAIN,
    EMULATOR_IAM_PASSWORD,
    EMULATOR_IAM_USER,
    EMULATOR_PROJECT_ID,
    EMULATOR_SK,
    OMSEmulator,
)
from airflow_provider_oms.testing.groups import GroupStatus
from tests.testing.helpers import (
    DST_AK,
    DST_SK,
    SRC_AK,
    SRC_SK,
    START_BODY,
    OMSCaller,
    assert_error,
    bucket_keys,
    task_body,
    wait_until,
    write_objects,
)

SECRETS = (SRC_AK, SRC_SK, DST_AK, DST_SK)
WAIT = 15.0  # seconds; every wait ends as soon as its condition holds
WINDOW = {"start": "00:00", "end": "06:00", "max_bandwidth": 1048576}
SYNC_KEYS = {"src_ak": SRC_AK, "src_sk": SRC_SK, "dst_ak": DST_AK, "dst_sk": DST_SK}
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def group_body(prefixes: list[str], src: str = "src-bucket", dst: str = "dst-bucket", **fields: Any) -> dict:
    """A CreateTaskGroupReq: one task per prefix."""
    body = task_body(src, dst, object_key=prefixes, **fields)
    body.pop("task_type", None)
    return body


def sync_body(src: str = "sync-source", dst: str = "sync-target", **fields: Any) -> dict:
    return {
        **SYNC_KEYS,
        "src_cloud_type": "HuaweiCloud",
        "src_region": "cn-north-4",
        "src_bucket": src,
        "dst_region": "cn-north-4",
        "dst_bucket": dst,
        **fields,
    }


def assert_invalid(response: requests.Response, field: str) -> None:
    body = assert_error(response, 400, "OMS.0064")
    assert f"request parameter [{field}] invalid" in body["error_detail"]
    assert not any(secret in response.text for secret in SECRETS)


def assert_empty_ok(response: requests.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.content == b""


def no_secret_in(text: str) -> bool:
    return not any(secret in text for secret in SECRETS)


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[tuple[OMSEmulator, OMSCaller]]:
    """Objects take 0.1 s each and a stopped task stays pausing 0.5 s, so that each group status can be seen."""
    with OMSEmulator(tmp_path / "slow", object_delay=0.1, pausing_delay=0.5) as emulator:
        caller = OMSCaller(emulator.url)
        yield emulator, caller
        caller.close()


def create_group(oms: OMSCaller, body: dict) -> str:
    response = oms("POST", "/taskgroups", json_body=body)
    assert response.status_code == 200, response.text
    return response.json()["group_id"]


def show_group(oms: OMSCaller, group_id: str) -> dict:
    response = oms("GET", "/taskgroups/{group_id}", group_id=group_id)
    assert response.status_code == 200, response.text
    assert no_secret_in(response.text)
    return response.json()


def group_action(oms: OMSCaller, group_id: str, action: str, body: Any = None) -> requests.Response:
    return oms("PUT", f"/taskgroups/{{group_id}}/{action}", group_id=group_id, json_body=body)


def group_tasks(oms: OMSCaller, group_id: str) -> list[dict]:
    return oms("GET", "/tasks", query={"group_id": group_id, "limit": 100}).json()["tasks"]


# -- bandwidth policy ------------------------------------------------------------------------------


def test_bandwidth_policy_is_stored_shown_and_removed(tmp_path: Path) -> None:
    with OMSEmulator(tmp_path, task_start_delay=30) as emulator:
        oms = OMSCaller(emulator.url)
        task_id = oms.create(task_body(bandwidth_policy=[WINDOW]))
        assert oms.show(task_id).json()["bandwidth_policy"] == [WINDOW]
        windows = [
            {"start": "22:00", "end": "06:00", "max_bandwidth": 209715200},  # past midnight
            {"start": "06:00", "end": "12:00", "max_bandwidth": 1048576},  # touching the first: no overlap
        ]
        assert_empty_ok(
            oms("PUT", "/tasks/{task_id}/bandwidth-policy", task_id=task_id, json_body={"bandwidth_policy": windows})
        )
        assert oms.show(task_id).json()["bandwidth_policy"] == windows
        assert emulator.get_task(task_id)["bandwidth_policy"] == windows
        assert_empty_ok(
            oms("PUT", "/tasks/{task_id}/bandwidth-policy", task_id=task_id, json_body={"bandwidth_policy": []})
        )
        assert oms.show(task_id).json()["bandwidth_policy"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"bandwidth_policy": [WINDOW] * 6}, "bandwidth_policy"),
        ({"bandwidth_policy": "00:00-06:00"}, "bandwidth_policy"),
        ({}, "bandwidth_policy"),
        ({"bandwidth_policy": [{**WINDOW, "start": "24:00"}]}, "bandwidth_policy[0].start"),
        ({"bandwidth_policy": [WINDOW, {**WINDOW, "start": "07:00", "end": "6:00"}]}, "bandwidth_policy[1].end"),
        ({"bandwidth_policy": [{**WINDOW, "max_bandwidth": 1048575}]}, "bandwidth_policy[0].max_bandwidth"),
        ({"bandwidth_policy": [{**WINDOW, "max_bandwidth": 209715201}]}, "bandwidth_policy[0].max_bandwidth"),
        ({"bandwidth_policy": [{**WINDOW, "max_bandwidth": True}]}, "bandwidth_policy[0].max_bandwidth"),
        ({"bandwidth_policy": [WINDOW, {**WINDOW, "start": "05:59", "end": "07:00"}]}, "bandwidth_policy[1]"),
        ({"bandwidth_policy": ["00:00"]}, "bandwidth_policy[0]"),
    ],
)
def test_bandwidth_policy_is_checked(oms: OMSCaller, oms_emulator: OMSEmulator, body: dict, field: str) -> None:
    task_id = oms.create(task_body())
    response = oms("PUT", "/tasks/{task_id}/bandwidth-policy", task_id=task_id, json_body=body)
    assert_invalid(response, field)
    assert oms_emulator.get_task(task_id)["bandwidth_policy"] == []


def test_bandwidth_policy_of_an_unknown_task_is_not_found(oms: OMSCaller) -> None:
    response = oms("PUT", "/tasks/{task_id}/bandwidth-policy", task_id=404, json_body={"bandwidth_policy": [WINDOW]})
    assert_error(response, 404, "OMS.1009")


# -- task groups -----------------------------------------------------------------------------------


def test_group_creates_one_task_per_prefix_that_really_copies_and_completes(
    oms: OMSCaller, oms_emulator: OMSEmulator
) -> None:
    source = oms_emulator.bucket_path("src-bucket")
    write_objects(source, {"a/1.txt": "1", "a/2.txt": "22", "b/3.txt": "333", "c/4.txt": "4444", "other.txt": "x"})
    body = group_body(["a/", "b/", "c/"], save_prefix="in/", description="three prefixes", bandwidth_policy=[WINDOW])

    group_id = create_group(oms, body)

    assert UUID_RE.fullmatch(group_id)
    group = oms_emulator.wait_for_group_status(group_id, {GroupStatus.COMPLETED}, timeout=WAIT)
    assert show_group(oms, group_id) == group
    assert bucket_keys(oms_emulator.bucket_path("dst-bucket")) == {
        "in/a/1.txt",
        "in/a/2.txt",
        "in/b/3.txt",
        "in/c/4.txt",
    }
    assert group["status"] == 6
    assert group["error_reason"] is None
    assert (group["total_task_num"], group["create_task_num"], group["complete_task_num"]) == (3, 3, 3)
    assert (group["failed_task_num"], group["paused_task_num"]) == (0, 0)
    assert (group["executing_task_num"], group["waiting_task_num"]) == (0, 0)
    assert (group["total_num"], group["success_num"], group["fail_num"]) == (4, 4, 0)
    assert group["total_size"] == group["complete_size"] == 10
    assert group["description"] == "three prefixes"
    assert group["src_node"] == {
        "bucket": "src-bucket",
        "region": "cn-north-4",
        "cloud_type": "HuaweiCloud",
        "object_key": ["a/", "b/", "c/"],
    }
    assert group["dst_node"] == {"bucket": "dst-bucket", "region": "cn-north-4", "save_prefix": "in/"}
    assert group["bandwidth_policy"] == [WINDOW]

    tasks = group_tasks(oms, group_id)
    assert sorted(task["src_node"]["object_key"][0] for task in tasks) == ["a/", "b/", "c/"]
    assert {task["group_id"] for task in tasks} == {group_id}
    assert all(task["bandwidth_policy"] == [WINDOW] for task in tasks)
    assert oms_emulator.applied_group_creates == 1
    assert oms_emulator.applied_creates == 0  # the group's tasks are not create-task calls


def test_group_without_prefixes_migrates_the_whole_bucket(oms: OMSCaller, oms_emulator: OMSEmulator) -> None:
    write_objects(oms_emulator.bucket_path("src-bucket"), {"x.txt": "x", "d/y.txt": "y"})
    group_id = create_group(oms, group_body([]))
    group = oms_emulator.wait_for_group_status(group_id, {GroupStatus.COMPLETED}, timeout=WAIT)
    assert group["total_task_num"] == 1
    assert group["src_node"]["object_key"] == [""]
    assert bucket_keys(oms_emulator.bucket_path("dst-bucket")) == {"x.txt", "d/y.txt"}


def test_group_waits_then_stop_pauses_it_at_once_and_start_completes_it(tmp_path: Path) -> None:
    with OMSEmulator(tmp_path, task_start_delay=0.5) as emulator:
        write_objects(emulator.bucket_path("src-bucket"), {"a/1.txt": "1", "b/2.txt": "2"})
        oms = OMSCaller(emulator.url)
        group_id = create_group(oms, group_body(["a/", "b/"]))
        waiting = show_group(oms, group_id)
        assert (waiting["status"], waiting["waiting_task_num"]) == (GroupStatus.WAITING, 2)

        assert_empty_ok(group_action(oms, group_id, "stop"))
        paused = show_group(oms, group_id)  # waiting tasks pause at once: no pausing status
        assert (paused["status"], paused["paused_task_num"]) == (GroupStatus.PAUSED, 2)
        assert_error(group_action(oms, group_id, "stop"), 400, "OMS.0066")
        assert_invalid(group_action(oms, group_id, "start", {"dst_ak": DST_AK}), "dst_sk")
        assert_invalid(group_action(oms, group_id, "start", None), "dst_ak")
        assert_error(group_action(oms, group_id, "retry", START_BODY), 400, "OMS.0067")  # not failed

        assert_empty_ok(group_action(oms, group_id, "start", {**START_BODY, "src_ak": SRC_AK, "src_sk": SRC_SK}))
        assert show_group(oms, group_id)["status"] in (GroupStatus.WAITING, GroupStatus.EXECUTING)
        emulator.wait_for_group_status(group_id, {GroupStatus.COMPLETED}, timeout=WAIT)
        assert bucket_keys(emulator.bucket_path("dst-bucket")) == {"a/1.txt", "b/2.txt"}

        assert_error(group_action(oms, group_id, "start", START_BODY), 400, "OMS.0067")
        assert_error(group_action(oms, group_id, "stop"), 400, "OMS.0066")
        assert_error(group_action(oms, group_id, "retry", START_BODY), 400, "OMS.0067")


def test_running_group_goes_through_pausing_to_paused_and_resumes_where_it_stopped(
    slow: tuple[OMSEmulator, OMSCaller],
) -> None:
    emulator, oms = slow
    write_objects(emulator.bucket_path("src-bucket"), {f"{p}/{n}.txt": p * n for p in "ab" for n in range(1, 9)})
    group_id = create_group(oms, group_body(["a/", "b/"]))
    emulator.wait_for_group_status(group_id, {GroupStatus.EXECUTING}, timeout=WAIT)
    wait_until(lambda: emulator.get_task_group(group_id)["success_num"] >= 2, timeout=WAIT)
    assert emulator.get_task_group(group_id)["executing_task_num"] == 2
    assert_error(group_action(oms, group_id, "start", START_BODY), 400, "OMS.0065")
    assert_error(group_action(oms, group_id, "retry", START_BODY), 400, "OMS.0065")
    assert_error(oms("DELETE", "/taskgroups/{group_id}", group_id=group_id), 400, "OMS.0063")

    assert_empty_ok(group_action(oms, group_id, "stop"))
    assert show_group(oms, group_id)["status"] == GroupStatus.PAUSING
    assert_error(group_action(oms, group_id, "stop"), 400, "OMS.0066")  # already pausing
    paused = emulator.wait_for_group_status(group_id, {GroupStatus.PAUSED}, timeout=WAIT)
    assert paused["paused_task_num"] == 2
    copied_before = paused["success_num"]
    assert 0 < copied_before < 16

    assert_empty_ok(group_action(oms, group_id, "start", START_BODY))
    done = emulator.wait_for_group_status(group_id, {GroupStatus.COMPLETED}, timeout=WAIT)
    assert len(bucket_keys(emulator.bucket_path("dst-bucket"))) == 16
    assert done["success_num"] == 16 - copied_before  # the second runs skipped what the first had copied
    assert done["success_num"] + sum(task["skipped_num"] for task in group_tasks(oms, group_id)) == 16


@pytest.mark.parametrize("migrate_failed_object", [True, False])
def test_failed_group_retries_its_failed_tasks_failed_objects_only_when_asked(
    oms: OMSCaller, oms_emulator: OMSEmulator, migrate_failed_object: bool
) -> None:
    write_objects(oms_emulator.bucket_path("src-bucket"), {"a/ok.txt": "a", "b/ok.txt": "b", "b/bad.txt": "bad"})
    oms_emulator.add_fail_rule("b/bad.txt", times=1)
    group_id = create_group(oms, group_body(["a/", "b/"]))

    failed = oms_emulator.wait_for_group_status(group_id, {GroupStatus.MIGRATION_FAILED}, timeout=WAIT)
    assert (failed["failed_task_num"], failed["complete_task_num"], failed["fail_num"]) == (1, 1, 1)
    assert failed["error_reason"]["error_code"] == "TRF.0001"
    assert "1 of 2 migration tasks failed" in failed["error_reason"]["error_msg"]
    assert_error(group_action(oms, group_id, "start", START_BODY), 400, "OMS.0067")
    assert_error(group_action(oms, group_id, "stop"), 400, "OMS.0066")
    assert_invalid(
        group_action(oms, group_id, "retry", {**START_BODY, "migrate_failed_object": "yes"}), "migrate_failed_object"
    )

    # Removed from the destination: a retry of the failed objects only leaves it missing, a whole retry copies it.
    (oms_emulator.bucket_path("dst-bucket") / "b" / "ok.txt").unlink()
    retry = {**START_BODY, "migrate_failed_object": migrate_failed_object}
    assert_empty_ok(group_action(oms, group_id, "retry", retry))
    oms_emulator.wait_for_group_status(group_id, {GroupStatus.COMPLETED}, timeout=WAIT)
    expected = {"a/ok.txt", "b/bad.txt"} | (set() if migrate_failed_object else {"b/ok.txt"})
    copied = bucket_keys(oms_emulator.bucket_path("dst-bucket"))
    assert {key for key in copied if not key.startswith("oms/")} == expected  # oms/: the failed-object lists


def test_list_groups_newest_first_with_paging_and_status(oms: OMSCaller, oms_emulator: OMSEmulator) -> None:
    write_objects(oms_emulator.bucket_path("src-bucket"), {"a/1.txt": "1", "b/2.txt": "2"})
    oms_emulator.add_fail_rule("b/*")
    completed = create_group(oms, group_body(["a/"]))
    failed = create_group(oms, group_body(["b/"]))
    oms_emulator.wait_for_group_status(completed, {GroupStatus.COMPLETED}, timeout=WAIT)
    oms_emulator.wait_for_group_status(failed, {GroupStatus.MIGRATION_FAILED}, timeout=WAIT)

    listed = oms("GET", "/taskgroups").json()
    assert listed["count"] == 2
    assert [group["group_id"] for group in listed["taskgroups"]] == [failed, completed]
    page = oms("GET", "/taskgroups", query={"limit": 1, "offset": 1}).json()
    assert (page["count"], [group["group_id"] for group in page["taskgroups"]]) == (2, [completed])
    only_failed = oms("GET", "/taskgroups", query={"status": 5}).json()
    assert (only_failed["count"], only_failed["taskgroups"][0]["group_id"]) == (1, failed)
    assert_invalid(oms("GET", "/taskgroups", query={"limit": 101}), "limit")
    assert_invalid(oms("GET", "/taskgroups", query={"offset": "x"}), "offset")


def test_delete_group_removes_it_and_its_tasks(oms: OMSCaller, oms_emulator: OMSEmulator) -> None:
    write_objects(oms_emulator.bucket_path("src-bucket"), {"a/1.txt": "1"})
    group_id = create_group(oms, group_body(["a/"]))
    oms_emulator.wait_for_group_status(group_id, {GroupStatus.COMPLETED}, timeout=WAIT)
    assert_empty_ok(oms("DELETE", "/taskgroups/{group_id}", group_id=group_id))
    assert_error(oms("GET", "/taskgroups/{group_id}", group_id=group_id), 404, "OMS.1009")
    assert group_tasks(oms, group_id) == []
    assert oms("GET", "/taskgroups").json() == {"taskgroups": [], "count": 0}


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("DELETE", "", None),
        ("PUT", "/stop", None),
        ("PUT", "/start", START_BODY),
        ("PUT", "/retry", START_BODY),
    ],
)
def test_unknown_group_is_not_found(oms: OMSCaller, method: str, suffix: str, body: Any) -> None:
    response = oms(method, f"/taskgroups/{{group_id}}{suffix}", group_id="no-such-group", json_body=body)
    assert_error(response, 404, "OMS.1009")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda body: body["dst_node"].pop("ak"), "dst_node.ak"),
        (lambda body: body["src_node"].pop("sk"), "src_node.sk"),
        (lambda body: body.update(task_type="LIST"), "task_type"),
        (lambda body: body.update(task_type="SOMETHING"), "task_type"),
        (lambda body: body["src_node"].update(object_key=["a/", "a/"]), "src_node.object_key"),
        (lambda body: body["src_node"].update(object_key=["../up"]), "src_node.object_key"),
        (lambda body: body.update(description="a <b>"), "description"),
        (
            lambda body: body.update(bandwidth_policy=[{**WINDOW, "max_bandwidth": 1}]),
            "bandwidth_policy[0].max_bandwidth",
        ),
    ],
)
def test_create_group_is_checked_and_never_echoes_credentials(
    oms: OMSCaller, oms_emulator: OMSEmulator, change: Any, field: str
) -> None:
    body = group_body(["a/"])
    change(body)
    assert_invalid(oms("POST", "/taskgroups", json_body=body), field)
    assert oms_emulator.applied_group_creates == 0


def test_python_api_of_groups(oms_emulator: OMSEmulator) -> None:
    from airflow_provider_oms.testing import OMSEmulatorError

    with pytest.raises(OMSEmulatorError, match=r"OMS\.1009"):
        oms_emulator.get_task_group("nothing")
    oms_emulator.bucket_path("src-bucket")
    group_id = create_group(OMSCaller(oms_emulator.url), group_body(["a/"]))
    assert oms_emulator.wait_for_group_status(group_id, {6}, timeout=WAIT)["group_id"] == group_id
    with pytest.raises(TimeoutError, match=r"status 6 after 0\.1 s, expected one of \[3\]"):
        oms_emulator.wait_for_group_status(group_id, {3}, timeout=0.1)


# -- sync tasks ------------------------------------------------------------------------------------


@pytest.fixture
def sync_emulator(tmp_path: Path) -> Iterator[tuple[OMSEmulator, OMSCaller]]:
    with OMSEmulator(tmp_path / "sync", sync_interval=0.05) as emulator:
        caller = OMSCaller(emulator.url)
        yield emulator, caller
        caller.close()


def show_sync(oms: OMSCaller, sync_task_id: str) -> dict:
    response = oms("GET", "/sync-tasks/{sync_task_id}", sync_task_id=sync_task_id)
    assert response.status_code == 200, response.text
    assert no_secret_in(response.text)
    return response.json()


def sync_action(oms: OMSCaller, sync_task_id: str, action: str, body: Any = None) -> requests.Response:
    return oms("POST", f"/sync-tasks/{{sync_task_id}}/{action}", sync_task_id=sync_task_id, json_body=body)


def test_sync_task_copies_new_and_changed_objects_while_synchronizing_only(
    sync_emulator: tuple[OMSEmulator, OMSCaller],
) -> None:
    emulator, oms = sync_emulator
    source, target = emulator.bucket_path("sync-source"), emulator.bucket_path("sync-target")
    write_objects(source, {"old.txt": "old", "dir/deep.txt": "deep"})
    before = int(time.time() * 1000)

    response = oms("POST", "/sync-tasks", json_body=sync_body(description="keep in sync"))
    assert response.status_code == 200, response.text
    sync_task_id = response.json()["sync_task_id"]
    assert UUID_RE.fullmatch(sync_task_id)
    shown = show_sync(oms, sync_task_id)
    assert shown["status"] == "SYNCHRONIZING"  # created running, as the SDK documents
    assert shown["src_bucket"] == "sync-source" and shown["dst_bucket"] == "sync-target"
    assert shown["src_region"] == shown["dst_region"] == "cn-north-4"
    assert shown["src_cloud_type"] == "HuaweiCloud"
    assert shown["description"] == "keep in sync"
    assert shown["create_time"] >= before and shown["last_start_time"] >= shown["create_time"]

    emulator.wait_for_sync_pass(sync_task_id, timeout=WAIT)
    assert bucket_keys(target) == {"old.txt", "dir/deep.txt"}
    write_objects(source, {"new.txt": "new", "old.txt": "changed"})
    synced = emulator.wait_for_sync_pass(sync_task_id, timeout=WAIT)
    assert (target / "new.txt").read_text() == "new"
    assert (target / "old.txt").read_text() == "changed"
    assert synced["monthly_success_object"] == synced["monthly_acceptance_request"] == 4
    assert synced["monthly_size"] == len("olddeepnewchanged")
    assert show_sync(oms, sync_task_id)["monthly_success_object"] == 4  # unchanged objects are not copied again

    assert_empty_ok(sync_action(oms, sync_task_id, "stop"))
    assert show_sync(oms, sync_task_id)["status"] == "STOPPED"
    assert_error(sync_action(oms, sync_task_id, "stop"), 400, "OMS.0066")
    write_objects(source, {"while-stopped.txt": "later"})
    with pytest.raises(TimeoutError):
        emulator.wait_for_sync_pass(sync_task_id, timeout=0.3)  # six intervals: no pass while stopped
    assert not (target / "while-stopped.txt").exists()

    assert_invalid(sync_action(oms, sync_task_id, "start", {**SYNC_KEYS, "src_sk": None}), "src_sk")
    assert_invalid(sync_action(oms, sync_task_id, "start", {**SYNC_KEYS, "dst_ak": ""}), "dst_ak")
    assert_invalid(sync_action(oms, sync_task_id, "start", None), "src_ak")
    assert_empty_ok(sync_action(oms, sync_task_id, "start", SYNC_KEYS))
    restarted = show_sync(oms, sync_task_id)
    assert restarted["status"] == "SYNCHRONIZING"
    assert restarted["last_start_time"] >= shown["last_start_time"]
    assert_error(sync_action(oms, sync_task_id, "start", SYNC_KEYS), 400, "OMS.0065")
    emulator.wait_for_sync_pass(sync_task_id, timeout=WAIT)
    assert (target / "while-stopped.txt").read_text() == "later"


def test_sync_tasks_list_delete_and_python_api(sync_emulator: tuple[OMSEmulator, OMSCaller]) -> None:
    emulator, oms = sync_emulator
    first = emulator.create_sync_task("sync-source", "sync-target")
    second = oms("POST", "/sync-tasks", json_body=sync_body(dst="sync-other")).json()["sync_task_id"]
    assert_empty_ok(sync_action(oms, first, "stop"))

    listed = oms("GET", "/sync-tasks").json()
    assert (listed["count"], [task["sync_task_id"] for task in listed["tasks"]]) == (2, [second, first])
    stopped = oms("GET", "/sync-tasks", query={"status": "STOPPED"}).json()
    assert [task["sync_task_id"] for task in stopped["tasks"]] == [first]
    assert_invalid(oms("GET", "/sync-tasks", query={"status": "RUNNING"}), "status")
    assert show_sync(oms, first) == emulator.get_sync_task(first)
    assert oms("GET", "/sync-tasks/{id}", id=first, query={"query_time": 1700000000000}).status_code == 200

    assert_error(oms("DELETE", "/sync-tasks/{id}", id=second), 400, "OMS.0063")
    assert_empty_ok(oms("DELETE", "/sync-tasks/{id}", id=first))
    for method, suffix, body in [("GET", "", None), ("DELETE", "", None), ("POST", "/start", SYNC_KEYS)]:
        assert_error(oms(method, f"/sync-tasks/{{id}}{suffix}", id=first, json_body=body), 404, "OMS.1009")
    assert_error(sync_action(oms, first, "stop"), 404, "OMS.1009")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"src_ak": None}, "src_ak"),
        ({"dst_sk": "x" * 101}, "dst_sk"),
        ({"src_bucket": None}, "src_bucket"),
        ({"dst_bucket": "Not_A_Bucket"}, "dst_bucket"),
        ({"dst_bucket": "sync-source"}, "dst_bucket"),
        ({"src_region": ""}, "src_region"),
        ({"description": "it's"}, "description"),
    ],
)
def test_create_sync_task_is_checked(oms: OMSCaller, change: dict, field: str) -> None:
    assert_invalid(oms("POST", "/sync-tasks", json_body={**sync_body(), **change}), field)
    assert oms("GET", "/sync-tasks").json()["count"] == 0


# -- IAM tokens ------------------------------------------------------------------------------------


def token_request(
    password: str = EMULATOR_IAM_PASSWORD,
    user: str = EMULATOR_IAM_USER,
    domain: str = EMULATOR_IAM_DOMAIN,
    project_id: str = EMULATOR_PROJECT_ID,
) -> dict:
    """The password body of oms-api.md."""
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "password": password, "domain": {"name": domain}}},
            },
            "scope": {"project": {"id": project_id}},
        }
    }


def get_token(emulator: OMSEmulator, **fields: str) -> requests.Response:
    return requests.post(f"{emulator.url}/v3/auth/tokens", json=token_request(**fields), timeout=10)


def with_token(emulator: OMSEmulator, token: str, method: str = "GET", template: str = "/tasks", **kwargs: Any):
    """Send a request that carries the token instead of a signature."""
    oms = OMSCaller(emulator.url)
    call = oms.builder.build(method, oms.builder.path(template), auth_token=token, **kwargs)
    assert "Authorization" not in call.headers
    return requests.request(call.method, call.url, headers=call.headers, data=call.body, timeout=10)


def test_token_endpoint_issues_a_long_token_valid_24_hours_for_the_project(oms_emulator: OMSEmulator) -> None:
    response = get_token(oms_emulator)

    assert response.status_code == 201, response.text
    token = response.headers["X-Subject-Token"]
    assert len(token) > 1000
    body = response.json()["token"]
    assert body["project"]["id"] == EMULATOR_PROJECT_ID
    assert body["user"] == {"name": EMULATOR_IAM_USER, "domain": {"name": EMULATOR_IAM_DOMAIN}}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", body["expires_at"])
    expires_at = datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert abs(expires_at - datetime.now(timezone.utc) - timedelta(hours=24)) < timedelta(minutes=1)
    assert EMULATOR_IAM_PASSWORD not in response.text and token not in response.text
    assert oms_emulator.tokens_issued == 1

    assert with_token(oms_emulator, token).json() == {"tasks": [], "count": 0}
    created = with_token(oms_emulator, token, "POST", "/taskgroups", json_body=group_body(["a/"]))
    assert created.status_code == 200, created.text
    second = get_token(oms_emulator).headers["X-Subject-Token"]
    assert second != token
    assert with_token(oms_emulator, token).status_code == with_token(oms_emulator, second).status_code == 200
    assert oms_emulator.tokens_issued == 2


@pytest.mark.parametrize(
    "fields",
    [
        {"password": "Wrong-Password-0001"},
        {"user": "someone-else"},
        {"domain": "another-domain"},
        {"project_id": "another-project"},
    ],
)
def test_token_endpoint_refuses_a_wrong_user_password_domain_or_project(
    oms_emulator: OMSEmulator, fields: dict
) -> None:
    response = get_token(oms_emulator, **fields)
    assert response.status_code == 401
    assert "X-Subject-Token" not in response.headers
    error = response.json()["error"]
    assert (error["code"], error["title"]) == (401, "Unauthorized")
    assert error["message"]
    assert "Wrong-Password-0001" not in response.text and EMULATOR_IAM_PASSWORD not in response.text
    assert oms_emulator.tokens_issued == 0


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"auth": {}}',
        b'{"auth": {"identity": {"methods": ["token"]}}}',
        b'{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "u", "password": "p"}}}}}',
    ],
)
def test_token_endpoint_refuses_a_malformed_body(oms_emulator: OMSEmulator, body: bytes) -> None:
    response = requests.post(f"{oms_emulator.url}/v3/auth/tokens", data=body, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["title"] == "Bad Request"
    assert oms_emulator.tokens_issued == 0


def test_project_scope_by_name_is_refused(oms_emulator: OMSEmulator) -> None:
    body = token_request()
    body["auth"]["scope"] = {"project": {"name": "cn-north-4"}}
    response = requests.post(f"{oms_emulator.url}/v3/auth/tokens", json=body, timeout=10)
    assert response.status_code == 400
    assert "scope" in response.json()["error"]["message"]


def test_unknown_revoked_expired_and_foreign_tokens_are_refused_like_bad_signatures(tmp_path: Path) -> None:
    with OMSEmulator(tmp_path, token_ttl=0.5) as emulator:
        assert_error(with_token(emulator, "MIIE-not-a-token"), 401, "APIGW.0301")
        token = get_token(emulator).headers["X-Subject-Token"]
        assert with_token(emulator, token).status_code == 200

        # The token's project must be the path's: a request on another project's API is refused.
        oms = OMSCaller(emulator.url, project_id="another-project")
        call = oms.builder.build("GET", oms.builder.path("/tasks"), auth_token=token)
        foreign = requests.get(call.url, headers=call.headers, timeout=10)
        assert "not scoped to the project" in assert_error(foreign, 401, "APIGW.0301")["error_msg"]

        emulator.revoke_tokens()
        assert_error(with_token(emulator, token), 401, "APIGW.0301")
        fresh = get_token(emulator).headers["X-Subject-Token"]
        assert with_token(emulator, fresh).status_code == 200
        time.sleep(0.6)
        assert "expired" in assert_error(with_token(emulator, fresh), 401, "APIGW.0301")["error_msg"]
        assert emulator.tokens_issued == 2


def test_custom_iam_users_and_the_token_connection(tmp_path: Path) -> None:
    users = {("acme", "deployer"): "Deployer-Password-1"}
    with OMSEmulator(tmp_path, iam_users=users) as emulator:
        assert get_token(emulator).status_code == 401  # the default user is not there
        assert get_token(emulator, domain="acme", user="deployer", password="Deployer-Password-1").status_code == 201
        assert emulator.airflow_connection(auth="token") == {
            "conn_type": "huaweicloud_oms",
            "login": "deployer",
            "password": "Deployer-Password-1",
            "extra": {
                "project_id": EMULATOR_PROJECT_ID,
                "endpoint": emulator.url,
                "auth_type": "token",
                "domain": "acme",
                "iam_endpoint": emulator.url,
            },
        }
        assert emulator.airflow_connection()["login"] == EMULATOR_AK
        assert emulator.airflow_connection()["password"] == EMULATOR_SK
        with pytest.raises(ValueError, match="auth must be"):
            emulator.airflow_connection(auth="password")
    with OMSEmulator(tmp_path / "none", iam_users={}) as emulator, pytest.raises(ValueError, match="no IAM user"):
        emulator.airflow_connection(auth="token")


def test_token_names_are_the_providers() -> None:
    from airflow_provider_oms import client, iam
    from airflow_provider_oms.testing import tokens

    assert (tokens.TOKEN_PATH, tokens.SUBJECT_TOKEN_HEADER) == (iam.TOKEN_PATH, iam.SUBJECT_TOKEN_HEADER)
    assert tokens.AUTH_TOKEN_HEADER == client.AUTH_TOKEN_HEADER


def test_no_token_password_or_body_is_logged(oms_emulator: OMSEmulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="airflow_provider_oms.emulator")
    get_token(oms_emulator, password="Wrong-Password-0001")
    token = get_token(oms_emulator).headers["X-Subject-Token"]
    with_token(oms_emulator, token, "POST", "/sync-tasks", json_body=sync_body())
    with_token(oms_emulator, "MIIE-unknown-token")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/v3/auth/tokens" in logged  # the requests are logged, by method, path and status only
    for secret in (token, "MIIE-unknown-token", EMULATOR_IAM_PASSWORD, "Wrong-Password-0001", *SECRETS):
        assert secret not in logged


# -- the official SDK --------------------------------------------------------------------------------


def test_official_sdk_drives_groups_sync_tasks_and_bandwidth_policies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Importing the SDK writes ~/.huaweicloud/application_id: keep it out of the real home.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
    from huaweicloudsdkoms.v2 import (
        BandwidthPolicyDto,
        CreateTaskGroupReq,
        CreateTaskGroupRequest,
        CreateTaskReq,
        CreateTaskRequest,
        DstNodeReq,
        ListTaskGroupRequest,
        OmsClient,
        ShowSyncTaskRequest,
        ShowTaskGroupRequest,
        ShowTaskRequest,
        SrcNodeReq,
        StartSyncTaskReq,
        StartSyncTaskRequest,
        StartTaskGroupReq,
        StartTaskGroupRequest,
        StopSyncTaskRequest,
        StopTaskGroupRequest,
        TaskGroupDstNode,
        TaskGroupSrcNode,
        UpdateBandwidthPolicyReq,
        UpdateBandwidthPolicyRequest,
    )

    with OMSEmulator(tmp_path / "data", object_delay=0.1, pausing_delay=0.3, sync_interval=0.05) as emulator:
        write_objects(emulator.bucket_path("sdk-source"), {f"{p}/{n}.txt": p for p in "ab" for n in range(6)})
        client = (
            OmsClient.new_builder()
            .with_credentials(BasicCredentials(EMULATOR_AK, EMULATOR_SK, emulator.project_id))
            .with_endpoints([emulator.url])
            .build()
        )

        created = client.create_task_group(
            CreateTaskGroupRequest(
                body=CreateTaskGroupReq(
                    src_node=TaskGroupSrcNode(
                        ak="SRC", sk="SRC", region="cn-north-4", bucket="sdk-source", cloud_type="HuaweiCloud",
                        object_key=["a/", "b/"],
                    ),
                    dst_node=TaskGroupDstNode(ak="DST", sk="DST", region="cn-north-4", bucket="sdk-target"),
                    description="group by the official SDK",
                    bandwidth_policy=[BandwidthPolicyDto(start="01:00", end="02:00", max_bandwidth=2097152)],
                )
            )
        )  # fmt: skip
        group_id = created.group_id
        emulator.wait_for_group_status(group_id, {GroupStatus.EXECUTING}, timeout=WAIT)
        assert client.stop_task_group(StopTaskGroupRequest(group_id=group_id)).status_code == 200
        shown = client.show_task_group(ShowTaskGroupRequest(group_id=group_id))
        assert shown.status == GroupStatus.PAUSING
        assert (shown.total_task_num, shown.src_node.bucket, shown.description) == (
            2,
            "sdk-source",
            "group by the official SDK",
        )
        assert shown.bandwidth_policy[0].max_bandwidth == 2097152
        emulator.wait_for_group_status(group_id, {GroupStatus.PAUSED}, timeout=WAIT)
        listed = client.list_task_group(ListTaskGroupRequest(limit=5, offset=0, status=GroupStatus.PAUSED))
        assert (listed.count, [group.group_id for group in listed.taskgroups]) == (1, [group_id])
        with pytest.raises(ClientRequestException) as raised:
            client.stop_task_group(StopTaskGroupRequest(group_id=group_id))
        assert (raised.value.status_code, raised.value.error_code) == (400, "OMS.0066")
        started = client.start_task_group(
            StartTaskGroupRequest(
                group_id=group_id, body=StartTaskGroupReq(src_ak="S", src_sk="S", dst_ak="D", dst_sk="D")
            )
        )
        assert started.status_code == 200
        emulator.wait_for_group_status(group_id, {GroupStatus.COMPLETED}, timeout=WAIT)
        assert len(bucket_keys(emulator.bucket_path("sdk-target"))) == 12

        task_id = client.create_task(
            CreateTaskRequest(
                body=CreateTaskReq(
                    src_node=SrcNodeReq(
                        ak="S", sk="S", region="cn-north-4", bucket="sdk-source", object_key=["a/0.txt"]
                    ),
                    dst_node=DstNodeReq(ak="D", sk="D", region="cn-north-4", bucket="sdk-target"),
                )
            )
        ).id
        policy = [BandwidthPolicyDto(start="00:00", end="06:00", max_bandwidth=1048576)]
        updated = client.update_bandwidth_policy(
            UpdateBandwidthPolicyRequest(task_id=str(task_id), body=UpdateBandwidthPolicyReq(bandwidth_policy=policy))
        )
        assert updated.status_code == 200
        assert client.show_task(ShowTaskRequest(task_id=str(task_id))).bandwidth_policy[0].end == "06:00"

        sync_task_id = emulator.create_sync_task("sdk-source", "sdk-synced")
        emulator.wait_for_sync_pass(sync_task_id, timeout=WAIT)
        assert len(bucket_keys(emulator.bucket_path("sdk-synced"))) == 12
        sync = client.show_sync_task(ShowSyncTaskRequest(sync_task_id=sync_task_id, query_time=int(time.time() * 1000)))
        assert (sync.status, sync.src_bucket, sync.monthly_success_object) == ("SYNCHRONIZING", "sdk-source", 12)
        assert client.stop_sync_task(StopSyncTaskRequest(sync_task_id=sync_task_id)).status_code == 200
        assert client.show_sync_task(ShowSyncTaskRequest(sync_task_id=sync_task_id)).status == "STOPPED"
        start_body = StartSyncTaskReq(src_ak="S", src_sk="S", dst_ak="D", dst_sk="D")
        client.start_sync_task(StartSyncTaskRequest(sync_task_id=sync_task_id, body=start_body))
        assert client.show_sync_task(ShowSyncTaskRequest(sync_task_id=sync_task_id)).status == "SYNCHRONIZING"
        with pytest.raises(ClientRequestException) as raised:
            client.start_sync_task(StartSyncTaskRequest(sync_task_id=sync_task_id, body=start_body))
        assert (raised.value.status_code, raised.value.error_code) == (400, "OMS.0065")
