"""
Task-group, sync-task and bandwidth operators, the group sensor, and IAM token auth, against the emulator.

Everything goes over real HTTP to a local emulator whose tasks really copy files; the operators run with a
stand-in context (``execute(context)``), the sensor by ``poke``, the trigger in a real event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import PokeReturnValue

from airflow_provider_oms import iam
from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.exceptions import OMSApiError, OMSMigrationError, OMSValidationError
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.operators.lifecycle import (
    CreateMigrationTaskGroupOperator,
    CreateMigrationTaskOperator,
    RetryMigrationTaskGroupOperator,
    StartMigrationTaskGroupOperator,
    StartSyncTaskOperator,
    StopMigrationTaskGroupOperator,
    StopSyncTaskOperator,
    UpdateBandwidthPolicyOperator,
)
from airflow_provider_oms.sensors.oms import MigrationTaskGroupSensor
from airflow_provider_oms.testing import EMULATOR_AK, EMULATOR_IAM_PASSWORD, EMULATOR_SK, OMSEmulator
from airflow_provider_oms.testing.groups import GroupStatus
from airflow_provider_oms.triggers.oms import MigrationTaskTrigger
from tests.helpers import task_context, write_objects

WAIT = 15.0  # seconds; every wait ends as soon as its condition holds
SOURCE_AK, SOURCE_SK = "SOURCE-AK-0001", "SOURCE-SK-0001"
GROUP_DEFINITION = {
    "src_node": {"region": "local", "bucket": "src", "object_key": ["a/", "b/"], "cloud_type": "HuaweiCloud"},
    "dst_node": {"region": "local", "bucket": "dst", "save_prefix": "in/"},
    "description": "nightly groups",
}
TASK_DEFINITION = {
    "task_type": "prefix",
    "src_node": {"region": "local", "bucket": "src", "object_key": ["a/"], "cloud_type": "HuaweiCloud"},
    "dst_node": {"region": "local", "bucket": "dst"},
}
OBJECTS = ["a/1.txt", "a/2.txt", "b/3.txt", "b/bad.txt"]


def context(try_number: int = 1, run_id: str = "manual__1") -> dict:
    ctx = task_context()
    ti = ctx["ti"]
    ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number = "dag", run_id, "create_group", -1, try_number
    return ctx


def destination_keys(emulator: OMSEmulator, bucket: str = "dst") -> set[str]:
    root = emulator.bucket_path(bucket)
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def migrated(emulator: OMSEmulator) -> set[str]:
    """What the tasks copied into bucket ``dst``, without the failed-object lists OMS writes there."""
    return {key for key in destination_keys(emulator) if not key.startswith("oms/")}


@pytest.fixture
def make_group_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, oms_conn: str, set_connection: Any):
    """Start an emulator with options, point the default OMS connection at it and define the source connection."""
    started: list[OMSEmulator] = []

    def _make(**options: Any) -> OMSEmulator:
        emulator = OMSEmulator(tmp_path / f"oms-{len(started)}", **options).start()
        started.append(emulator)
        monkeypatch.setenv(f"AIRFLOW_CONN_{oms_conn.upper()}", emulator.airflow_connection_uri_env())
        set_connection("src", login=SOURCE_AK, password=SOURCE_SK)
        write_objects(emulator.bucket_path("src"), OBJECTS)
        return emulator

    yield _make
    for emulator in started:
        emulator.stop()


def create_group(**kwargs: Any) -> str:
    operator = CreateMigrationTaskGroupOperator(
        task_id="create_group", group_definition=GROUP_DEFINITION, source_conn_id="src", **kwargs
    )
    return operator.execute(context())["group_id"]


def group_sensor(group_id: str) -> MigrationTaskGroupSensor:
    return MigrationTaskGroupSensor(task_id="wait_for_group", group_id=group_id)


# -- task groups -----------------------------------------------------------------------------------


def test_create_group_puts_the_connections_credentials_in_and_a_retry_reuses_it(make_group_emulator: Any) -> None:
    emulator = make_group_emulator(task_start_delay=5)
    first = CreateMigrationTaskGroupOperator(
        task_id="create_group", group_definition=GROUP_DEFINITION, source_conn_id="src"
    ).execute(context(try_number=1))
    assert first["reused"] is False
    group = emulator.get_task_group(first["group_id"])
    assert group["description"].startswith("nightly groups airflow-")
    assert group["total_task_num"] == 2
    assert "ak" not in group["src_node"] and "sk" not in group["dst_node"]

    again = CreateMigrationTaskGroupOperator(
        task_id="create_group", group_definition=GROUP_DEFINITION, source_conn_id="src"
    ).execute(context(try_number=2))
    assert again == {**first, "reused": True}
    assert emulator.applied_group_creates == 1
    other_run = CreateMigrationTaskGroupOperator(
        task_id="create_group", group_definition=GROUP_DEFINITION, source_conn_id="src"
    ).execute(context(try_number=2, run_id="manual__2"))
    assert other_run["reused"] is False
    assert emulator.applied_group_creates == 2


def test_group_sensor_pokes_until_the_group_completes(make_group_emulator: Any) -> None:
    emulator = make_group_emulator(task_start_delay=0.3)
    emulator.bucket_path("src").joinpath("b", "bad.txt").unlink()
    group_id = create_group()
    sensor = group_sensor(group_id)

    pokes = []
    deadline = time.monotonic() + WAIT
    while not (poked := sensor.poke(context={})).is_done:
        assert time.monotonic() < deadline, "the group did not complete"
        pokes.append(poked.xcom_value["status"])
        time.sleep(0.05)

    assert isinstance(poked, PokeReturnValue)
    assert pokes and pokes[0] == GroupStatus.WAITING
    assert poked.xcom_value == {
        "group_id": group_id,
        "status": GroupStatus.COMPLETED,
        "status_name": "completed",
        "total_task_num": 2,
        "complete_task_num": 2,
        "failed_task_num": 0,
        "paused_task_num": 0,
    }
    assert migrated(emulator) == {"in/a/1.txt", "in/a/2.txt", "in/b/3.txt"}


def test_group_sensor_fails_with_the_reason_and_a_retry_of_the_failed_objects_completes(
    make_group_emulator: Any,
) -> None:
    emulator = make_group_emulator()
    emulator.add_fail_rule("b/bad.txt", times=1)
    group_id = create_group()
    emulator.wait_for_group_status(group_id, {GroupStatus.MIGRATION_FAILED}, timeout=WAIT)

    with pytest.raises(OMSMigrationError, match=r"is migration failed: TRF\.0001 1 of 2 migration tasks failed"):
        group_sensor(group_id).poke(context={})
    assert migrated(emulator) == {"in/a/1.txt", "in/a/2.txt", "in/b/3.txt"}

    RetryMigrationTaskGroupOperator(
        task_id="retry_group", group_id=group_id, source_conn_id="src", migrate_failed_object="true"
    ).execute(context())
    emulator.wait_for_group_status(group_id, {GroupStatus.COMPLETED}, timeout=WAIT)
    assert group_sensor(group_id).poke(context={}).is_done
    assert migrated(emulator) == {"in/a/1.txt", "in/a/2.txt", "in/b/3.txt", "in/b/bad.txt"}


def test_stop_then_start_the_group(make_group_emulator: Any) -> None:
    emulator = make_group_emulator(task_start_delay=1.0)
    group_id = create_group()
    StopMigrationTaskGroupOperator(task_id="stop_group", group_id=group_id).execute(context())
    assert emulator.get_task_group(group_id)["status"] == GroupStatus.PAUSED
    # Stopping a paused group is the service's error OMS.0066; the operator leaves a paused group as it is.
    StopMigrationTaskGroupOperator(task_id="stop_group", group_id=group_id).execute(context())
    assert emulator.get_task_group(group_id)["status"] == GroupStatus.PAUSED

    StartMigrationTaskGroupOperator(task_id="start_group", group_id=group_id, source_conn_id="src").execute(context())
    assert emulator.get_task_group(group_id)["status"] == GroupStatus.WAITING
    emulator.wait_for_group_status(group_id, {GroupStatus.COMPLETED}, timeout=WAIT)
    assert migrated(emulator) == {f"in/{key}" for key in OBJECTS}
    with pytest.raises(OMSApiError, match=r"OMS\.0067"):
        StartMigrationTaskGroupOperator(task_id="start_group", group_id=group_id).execute(context())


# -- bandwidth policy ------------------------------------------------------------------------------


def test_update_bandwidth_policy_then_the_task_shows_it(make_group_emulator: Any) -> None:
    emulator = make_group_emulator(task_start_delay=5)
    task_id = CreateMigrationTaskOperator(
        task_id="create", task_definition=TASK_DEFINITION, source_conn_id="src"
    ).execute(context())["migration_task_id"]
    windows = [
        {"start": "00:00", "end": "06:00", "max_bandwidth": 1048576},
        {"start": "18:00", "end": "23:59", "max_bandwidth": 209715200},
    ]
    UpdateBandwidthPolicyOperator(task_id="limit", migration_task_id=task_id, bandwidth_policy=windows).execute(
        context()
    )
    assert emulator.get_task(task_id)["bandwidth_policy"] == windows

    # Overlapping windows are refused before anything is sent (the service would refuse them too).
    overlapping = [windows[0], {"start": "05:00", "end": "07:00", "max_bandwidth": 1048576}]
    emulator.reset_requests()
    with pytest.raises(OMSValidationError, match="window 2 overlaps window 1"):
        UpdateBandwidthPolicyOperator(task_id="limit", migration_task_id=task_id, bandwidth_policy=overlapping).execute(
            context()
        )
    assert emulator.requests == []
    assert emulator.get_task(task_id)["bandwidth_policy"] == windows


# -- sync tasks ------------------------------------------------------------------------------------


def test_stop_and_start_a_sync_task_and_files_really_sync(make_group_emulator: Any, set_connection: Any) -> None:
    emulator = make_group_emulator(sync_interval=0.05)
    sync_task_id = emulator.create_sync_task("src", "synced")
    emulator.wait_for_sync_pass(sync_task_id, timeout=WAIT)
    assert destination_keys(emulator, "synced") == set(OBJECTS)

    stopped = StopSyncTaskOperator(task_id="stop_sync", sync_task_id=sync_task_id).execute(context())
    assert stopped == {"sync_task_id": sync_task_id, "status": "STOPPED"}
    write_objects(emulator.bucket_path("src"), ["c/new.txt"])
    time.sleep(0.3)  # six sync intervals
    assert "c/new.txt" not in destination_keys(emulator, "synced")

    set_connection("no_keys", conn_type="generic")
    with pytest.raises(OMSValidationError, match="source connection 'no_keys' holds no source keys"):
        StartSyncTaskOperator(task_id="start_sync", sync_task_id=sync_task_id, source_conn_id="no_keys").execute(
            context()
        )
    started = StartSyncTaskOperator(task_id="start_sync", sync_task_id=sync_task_id, source_conn_id="src").execute(
        context()
    )
    assert started == {"sync_task_id": sync_task_id, "status": "SYNCHRONIZING"}
    emulator.wait_for_sync_pass(sync_task_id, timeout=WAIT)
    assert "c/new.txt" in destination_keys(emulator, "synced")
    with pytest.raises(OMSApiError, match=r"OMS\.0065"):
        StartSyncTaskOperator(task_id="start_sync", sync_task_id=sync_task_id, source_conn_id="src").execute(context())


# -- IAM token auth ----------------------------------------------------------------------------------


@pytest.fixture
def token_emulator(
    make_group_emulator: Any, set_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OMSEmulator]:
    """An emulator, an ``oms_token`` connection logging in as its IAM user, and ``dst`` holding the OBS AK/SK."""
    # The provider caches tokens for the whole process: start each test without one.
    monkeypatch.setattr(iam, "_cache", {})
    emulator = make_group_emulator(task_start_delay=0.3)
    conn = emulator.airflow_connection(auth="token")
    set_connection(
        "oms_token", conn_type=conn["conn_type"], login=conn["login"], password=conn["password"], extra=conn["extra"]
    )
    set_connection("dst", login=EMULATOR_AK, password=EMULATOR_SK)
    yield emulator


def sample_task_body() -> dict:
    return {
        **TASK_DEFINITION,
        "src_node": {**TASK_DEFINITION["src_node"], "ak": SOURCE_AK, "sk": SOURCE_SK},
        "dst_node": {**TASK_DEFINITION["dst_node"], "ak": EMULATOR_AK, "sk": EMULATOR_SK},
    }


def test_token_auth_lists_shows_and_starts_with_one_cached_token(token_emulator: OMSEmulator) -> None:
    emulator = token_emulator
    hook = OMSHook("oms_token")
    task_id = str(hook.create_task(sample_task_body())["id"])
    emulator.pause_task(task_id)
    assert hook.list_tasks()["count"] == 1
    assert hook.get_task(task_id)["status"] == TaskStatus.PAUSED

    with pytest.raises(OMSValidationError, match="logs in as an IAM user"):
        hook.build_start_task_body(source_conn_id="src")
    hook.start_task(task_id, hook.build_start_task_body(source_conn_id="src", destination_conn_id="dst"))
    assert emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED}, timeout=WAIT)["successful_num"] == 2
    assert OMSHook("oms_token").get_task(task_id)["status"] == TaskStatus.SUCCEEDED  # another hook, same token
    assert emulator.tokens_issued == 1
    assert all(record.status < 400 for record in emulator.requests)


def test_token_is_renewed_once_after_a_401(token_emulator: OMSEmulator) -> None:
    emulator = token_emulator
    hook = OMSHook("oms_token")
    hook.list_tasks()
    emulator.revoke_tokens()
    emulator.reset_requests()

    assert hook.list_tasks() == {"tasks": [], "count": 0}

    assert emulator.tokens_issued == 2
    assert [(r.method, r.path.rsplit("/", 1)[-1], r.status, r.error_code) for r in emulator.requests] == [
        ("GET", "tasks", 401, "APIGW.0301"),
        ("POST", "tokens", 201, None),
        ("GET", "tasks", 200, None),
    ]
    hook.list_tasks()
    assert emulator.tokens_issued == 2


def test_a_wrong_iam_password_is_a_clear_error_without_the_password(
    token_emulator: OMSEmulator, set_connection: Any
) -> None:
    conn = token_emulator.airflow_connection(auth="token")
    set_connection(
        "oms_bad", conn_type="huaweicloud_oms", login=conn["login"], password="Wrong-Password-0002", extra=conn["extra"]
    )
    with pytest.raises(OMSApiError) as raised:
        OMSHook("oms_bad").list_tasks()
    message = str(raised.value)
    assert "IAM token request" in message and "HTTP 401" in message
    assert "check the IAM user name (login), password and extra 'domain'" in message
    assert "Wrong-Password-0002" not in message and EMULATOR_IAM_PASSWORD not in message
    assert raised.value.http_status == 401
    assert token_emulator.tokens_issued == 0
    assert not [r for r in token_emulator.requests if r.path.endswith("/tasks")]  # no OMS call without a token


def test_a_wrong_iam_password_never_rides_on_the_right_ones_token(
    token_emulator: OMSEmulator, set_connection: Any
) -> None:
    # Two connections of the same IAM user in one process (a shared triggerer, the API server): wrong, right,
    # wrong again. The token is cached per password too, so the wrong one is refused every time.
    conn = token_emulator.airflow_connection(auth="token")
    set_connection(
        "oms_bad", conn_type="huaweicloud_oms", login=conn["login"], password="Wrong-Password-0003", extra=conn["extra"]
    )
    with pytest.raises(OMSApiError, match="HTTP 401"):
        OMSHook("oms_bad").list_tasks()
    assert OMSHook("oms_token").list_tasks()["count"] == 0
    assert token_emulator.tokens_issued == 1
    with pytest.raises(OMSApiError, match="HTTP 401"):
        OMSHook("oms_bad").list_tasks()
    ok, message = OMSHook("oms_bad").test_connection()  # the form's Test button
    assert not ok
    assert "IAM user name (login) and password" in message and "AK (login)" not in message
    assert "401 401" not in message and "Wrong-Password-0003" not in message
    assert OMSHook("oms_token").test_connection()[0]
    assert token_emulator.tokens_issued == 1
    assert not any(conn["password"] in repr(key) for key in iam._cache)  # a hash of it, never the password


def test_the_trigger_waits_with_a_token_connection(token_emulator: OMSEmulator) -> None:
    emulator = token_emulator
    task_id = str(OMSHook("oms_token").create_task(sample_task_body())["id"])
    emulator.revoke_tokens()  # the trigger, too, renews a refused token once
    trigger = MigrationTaskTrigger(
        migration_task_id=task_id, oms_conn_id="oms_token", poll_interval=0.1, deadline=time.time() + 60
    )

    async def collect() -> list:
        return [event async for event in trigger.run()]

    events = asyncio.run(asyncio.wait_for(collect(), WAIT))

    assert len(events) == 1
    assert events[0].payload["status"] == "success"
    assert events[0].payload["task"]["status"] == TaskStatus.SUCCEEDED
    assert emulator.tokens_issued == 2


def test_a_group_start_whose_answer_was_lost_counts_as_done(make_group_emulator: Any) -> None:
    emulator = make_group_emulator(task_start_delay=5.0)
    group_id = create_group()
    StopMigrationTaskGroupOperator(task_id="stop_group", group_id=group_id).execute(context())
    emulator.inject_fault("reset_after", path=r"/taskgroups/[^/]+/start$")

    StartMigrationTaskGroupOperator(task_id="start_group", group_id=group_id, source_conn_id="src").execute(context())

    assert emulator.get_task_group(group_id)["status"] == GroupStatus.WAITING
    starts = [r for r in emulator.requests if r.path.endswith("/start")]
    assert [r.status for r in starts] == [0, 400]  # the lost answer, then the retry refused as already started
