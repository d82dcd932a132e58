"""MigrationTaskTrigger, run for real in an event loop against the local OMS emulator over HTTP."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import structlog.testing
from airflow.sdk import BaseHook
from airflow.sdk.module_loading import import_string

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.testing import EMULATOR_AK, EMULATOR_SK, OMSEmulator
from airflow_provider_oms.triggers.oms import MigrationTaskTrigger, shared_async_client
from airflow_provider_oms.waiting import SUMMARY_FIELDS
from tests.helpers import create_sample_task, running_sample_task

WAIT = 20.0  # seconds: the machine may be slow; every wait below ends as soon as its condition holds
SECRETS = (EMULATOR_AK, EMULATOR_SK)


def trigger_for(task_id, conn_id="huaweicloud_oms_default", **kwargs) -> MigrationTaskTrigger:
    kwargs.setdefault("poll_interval", 0.1)
    kwargs.setdefault("deadline", time.time() + 60)
    return MigrationTaskTrigger(migration_task_id=task_id, oms_conn_id=conn_id, **kwargs)


async def collect(trigger: MigrationTaskTrigger) -> list:
    """Iterate the whole generator: every event it yields, until it returns."""
    return [event async for event in trigger.run()]


def run_trigger(trigger: MigrationTaskTrigger, timeout: float = WAIT) -> list:
    return asyncio.run(asyncio.wait_for(collect(trigger), timeout))


def the_event(events: list) -> dict:
    assert len(events) == 1, f"expected exactly one event, got {events}"
    payload = events[0].payload
    assert set(payload) == {"status", "migration_task_id", "task", "message", "restarts", "started_at", "attempts"}
    dumped = json.dumps(payload)  # the triggerer stores it: it must be JSON
    for secret in SECRETS:
        assert secret not in dumped
    return payload


def task_requests(emulator: OMSEmulator, task_id: str, method: str = "GET", suffix: str = "") -> list:
    return [r for r in emulator.requests if r.method == method and r.path.endswith(f"/tasks/{task_id}{suffix}")]


def stop_requests(emulator: OMSEmulator) -> list:
    return [r for r in emulator.requests if r.path.endswith("/stop")]


def assert_left_alone(emulator: OMSEmulator, task_id: str, status: int) -> None:
    """No stop was sent, and the OMS task is still in ``status``."""
    assert stop_requests(emulator) == []
    assert emulator.get_task(task_id)["status"] == status


# -- the connection ------------------------------------------------------------------------------


def test_connection_from_the_environment_outside_a_task(oms_emulator, oms_conn):
    conn = asyncio.run(BaseHook.aget_connection(oms_conn))
    assert conn.login == EMULATOR_AK
    assert conn.extra_dejson["endpoint"] == oms_emulator.url
    assert BaseHook.get_connection(oms_conn).password == EMULATOR_SK


# -- (a) success ---------------------------------------------------------------------------------


def test_success_after_several_polls_yields_exactly_one_event(make_emulator):
    emulator, hook = make_emulator(object_delay=0.1)
    task_id = create_sample_task(emulator, hook, files=5)
    emulator.reset_requests()

    started_at = time.time() - 5
    attempts = [{"kind": "whole_task", "total_num": 5, "successful_num": 3}, {"kind": "failed_objects"}]
    trigger = trigger_for(task_id, poll_interval=0.2, restarts=2, started_at=started_at, attempts=attempts)
    payload = the_event(run_trigger(trigger))

    assert payload["status"] == "success"
    assert payload["migration_task_id"] == task_id
    assert payload["message"] == ""
    # The operator's state comes back in the event.
    assert (payload["restarts"], payload["started_at"], payload["attempts"]) == (2, started_at, attempts)
    task = payload["task"]
    assert tuple(task) == SUMMARY_FIELDS
    assert task["status"] == TaskStatus.SUCCEEDED
    assert (task["total_num"], task["successful_num"], task["failed_num"], task["skipped_num"]) == (5, 5, 0, 0)
    assert task["complete_size"] == task["total_size"] > 0
    assert task["progress"] == 1.0
    assert task["error_reason"] is None
    polls = task_requests(emulator, task_id)
    assert len(polls) >= 2, "the task took ~0.5 s: the trigger should have polled more than once"
    # It only reads: it never starts, stops or changes the task.
    assert {r.method for r in emulator.requests} == {"GET"}
    assert all(r.status == 200 for r in polls)


def test_already_succeeded_task_gives_success_on_the_first_poll(fast):
    emulator, hook = fast
    task_id = create_sample_task(emulator, hook, files=2)
    emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED}, timeout=WAIT)
    emulator.reset_requests()

    payload = the_event(run_trigger(trigger_for(task_id, poll_interval=30)))

    assert payload["status"] == "success"
    assert payload["task"]["successful_num"] == 2
    assert len(task_requests(emulator, task_id)) == 1


def test_custom_target_status_paused_is_success(paused_in_oms):
    _, task_id = paused_in_oms

    payload = the_event(run_trigger(trigger_for(task_id, target_statuses=[TaskStatus.PAUSED])))

    assert payload["status"] == "success"
    assert payload["task"]["status"] == TaskStatus.PAUSED


# -- (b) failure ---------------------------------------------------------------------------------


def test_failed_task_gives_failed_with_the_reason_and_failed_object_list(fast):
    emulator, hook = fast
    emulator.add_fail_rule("data/f1.txt")
    task_id = create_sample_task(emulator, hook, files=3)

    payload = the_event(run_trigger(trigger_for(task_id)))

    assert payload["status"] == "failed"
    task = payload["task"]
    assert task["status"] == TaskStatus.FAILED
    assert (task["successful_num"], task["failed_num"]) == (2, 1)
    assert task["error_reason"]["error_code"] == "TRF.0001"
    assert task["error_reason"]["error_msg"]
    record = task["failed_object_record"]
    assert record["result"] is True
    assert record["list_file_key"]
    assert (emulator.bucket_path("dst") / record["list_file_key"]).read_text() == "data/f1.txt\n"


def test_custom_failure_status(paused_in_oms):
    _, task_id = paused_in_oms

    payload = the_event(run_trigger(trigger_for(task_id, failure_statuses=[TaskStatus.PAUSED])))

    assert payload["status"] == "failed"


# -- (c) stuck -----------------------------------------------------------------------------------


def test_task_paused_from_outside_while_waiting_gives_stuck(make_emulator):
    emulator, hook = make_emulator(object_delay=0.2)
    task_id = create_sample_task(emulator, hook, files=10)

    async def scenario():
        waiting = asyncio.create_task(collect(trigger_for(task_id, poll_interval=0.1)))
        await asyncio.to_thread(emulator.wait_for_status, task_id, {TaskStatus.RUNNING}, WAIT)
        emulator.pause_task(task_id)
        return await asyncio.wait_for(waiting, WAIT)

    payload = the_event(asyncio.run(scenario()))

    # Pausing (7) goes on by itself, so the trigger waited through it for paused (3).
    assert payload["status"] == "stuck"
    assert payload["task"]["status"] == TaskStatus.PAUSED
    assert payload["task"]["successful_num"] < 10


# -- (d) timeout ---------------------------------------------------------------------------------


def test_deadline_in_the_past_gives_timeout_and_leaves_the_task_alone(make_emulator):
    emulator, hook = make_emulator(task_start_delay=30)
    task_id = create_sample_task(emulator, hook)
    emulator.reset_requests()

    payload = the_event(run_trigger(trigger_for(task_id, deadline=time.time() - 1, restarts=1, started_at=1.5)))

    assert payload["status"] == "timeout"
    assert (payload["restarts"], payload["started_at"]) == (1, 1.5)
    assert payload["task"]["status"] == TaskStatus.WAITING
    assert len(task_requests(emulator, task_id)) == 1
    assert_left_alone(emulator, task_id, TaskStatus.WAITING)


def test_short_deadline_on_a_running_task_gives_timeout_without_pausing_it(make_emulator):
    emulator, hook = make_emulator(object_delay=0.2)
    task_id = running_sample_task(emulator, hook, files=30)
    emulator.reset_requests()

    started = time.monotonic()
    # The poll interval is much longer than the time left: the trigger must wake up at the deadline.
    payload = the_event(run_trigger(trigger_for(task_id, poll_interval=60, deadline=time.time() + 0.5)))
    took = time.monotonic() - started

    assert payload["status"] == "timeout"
    assert payload["task"]["status"] == TaskStatus.RUNNING
    assert 0.4 <= took < 10
    assert len(task_requests(emulator, task_id)) == 2
    # The operator pauses the task after the timeout, not the trigger.
    assert_left_alone(emulator, task_id, TaskStatus.RUNNING)


# -- (e) errors ----------------------------------------------------------------------------------


def test_unknown_task_id_gives_an_error_event_without_credentials(fast):
    emulator, _ = fast

    payload = the_event(run_trigger(trigger_for("987654")))

    assert payload["status"] == "error"
    assert payload["task"] is None
    assert (payload["restarts"], payload["started_at"]) == (0, None)
    assert "OMS.1009" in payload["message"]
    assert "987654" in payload["message"]
    for secret in SECRETS:
        assert secret not in payload["message"]
    assert [r.error_code for r in task_requests(emulator, "987654")] == ["OMS.1009"]


def test_unreachable_endpoint_is_retried_then_gives_an_error_event_past_the_outage_tolerance(
    set_connection, oms_emulator
):
    conn = oms_emulator.airflow_connection()
    extra = {**conn["extra"], "retry_max_attempts": 3, "retry_base_wait": 0.01, "outage_tolerance": 0}
    conn_id = set_connection(
        "oms_fast_retries", conn_type=conn["conn_type"], login=conn["login"], password=conn["password"], extra=extra
    )
    url = oms_emulator.url
    oms_emulator.stop()

    with structlog.testing.capture_logs() as logs:
        payload = the_event(run_trigger(trigger_for("1", conn_id)))

    assert payload["status"] == "error"
    assert "OMS was unreachable since" in payload["message"]
    assert f"no answer from {url} (ConnectError" in payload["message"]
    retries = [entry for entry in logs if "retrying in" in str(entry.get("event"))]
    assert len(retries) == 2


def test_invalid_connection_gives_an_error_event(set_connection, oms_emulator):
    conn_id = set_connection(
        "oms_without_project",
        conn_type="huaweicloud_oms",
        login=EMULATOR_AK,
        password=EMULATOR_SK,
        extra={"endpoint": oms_emulator.url},
    )

    payload = the_event(run_trigger(trigger_for("1", conn_id)))

    assert payload["status"] == "error"
    assert "project_id" in payload["message"]
    assert oms_emulator.requests == []


# -- (f) serialization ---------------------------------------------------------------------------


def test_serialize_round_trip_has_no_secret(set_connection, oms_emulator):
    token = "SECURITY-TOKEN-" + "t" * 40
    conn_id = set_connection(
        "oms_with_token",
        conn_type="huaweicloud_oms",
        login=EMULATOR_AK,
        password=EMULATOR_SK,
        extra={"endpoint": oms_emulator.url, "project_id": oms_emulator.project_id, "security_token": token},
    )
    deadline = time.time() + 3600
    trigger = MigrationTaskTrigger(
        migration_task_id=123,
        oms_conn_id=conn_id,
        poll_interval=15,
        deadline=deadline,
        target_statuses={TaskStatus.SUCCEEDED, TaskStatus.PAUSED},
        failure_statuses=(TaskStatus.FAILED,),
        restarts=1,
        started_at=deadline - 7200,
    )
    # The connection is read in run(), never in the constructor or serialize().
    asyncio.run(trigger._connect())

    classpath, kwargs = trigger.serialize()

    assert classpath == "airflow_provider_oms.triggers.oms.MigrationTaskTrigger"
    cls = import_string(classpath)
    assert cls is MigrationTaskTrigger
    assert cls(**kwargs).serialize() == (classpath, kwargs)
    assert kwargs["migration_task_id"] == "123"
    assert kwargs["oms_conn_id"] == conn_id
    assert kwargs["poll_interval"] == 15.0
    assert kwargs["deadline"] == deadline
    assert sorted(kwargs["target_statuses"]) == [3, 5]
    assert kwargs["failure_statuses"] == [4]
    assert kwargs["restarts"] == 1
    assert kwargs["started_at"] == deadline - 7200
    dumped = json.dumps(kwargs)
    assert json.loads(dumped) == kwargs
    assert all(type(s) is int for s in kwargs["target_statuses"] + kwargs["failure_statuses"])
    for secret in (*SECRETS, token):
        assert secret not in dumped
        assert secret not in repr(trigger)
        assert secret not in str(trigger)
    assert "123" in repr(trigger)


def test_serialize_without_deadline():
    classpath, kwargs = MigrationTaskTrigger(migration_task_id="5", oms_conn_id="c").serialize()
    assert kwargs["deadline"] is None
    assert kwargs["target_statuses"] == [5]
    assert kwargs["failure_statuses"] == [4]
    assert (kwargs["restarts"], kwargs["started_at"], kwargs["attempts"]) == (0, None, [])
    assert import_string(classpath)(**kwargs).serialize() == (classpath, kwargs)


# -- (g) one shared HTTP client per event loop ---------------------------------------------------


def test_shared_async_client_is_one_per_loop_and_tls_setting():
    async def two_calls():
        first, second = shared_async_client(True), shared_async_client(True)
        other = shared_async_client(False)
        return first, second, other

    first, second, other = asyncio.run(two_calls())
    assert first is second
    assert other is not first
    again, _, _ = asyncio.run(two_calls())
    assert again is not first


def test_shared_async_client_replaces_a_closed_client():
    async def scenario():
        client = shared_async_client(True)
        await client.aclose()
        replacement = shared_async_client(True)
        return client, replacement

    client, replacement = asyncio.run(scenario())
    assert replacement is not client
    assert not replacement.is_closed


def test_many_triggers_in_one_loop_share_one_connection_pool(make_emulator):
    emulator, hook = make_emulator(object_delay=0.05)
    task_ids = [create_sample_task(emulator, hook, files=5, prefix=f"p{n}/") for n in range(5)]
    emulator.reset_requests()
    count = 50

    async def one(n: int) -> list:
        # A triggerer picks up new triggers over time, not all in the same instant.
        await asyncio.sleep(n * 0.02)
        return await collect(trigger_for(task_ids[n % len(task_ids)], poll_interval=0.1))

    async def all_of_them() -> list:
        return await asyncio.gather(*(one(n) for n in range(count)))

    results = asyncio.run(asyncio.wait_for(all_of_them(), WAIT))

    assert [the_event(events)["status"] for events in results] == ["success"] * count
    sent = len(emulator.requests)
    assert sent >= count
    opened = emulator.connections_opened
    assert 1 <= opened <= 25, f"{count} triggers opened {opened} connections for {sent} requests"


# -- (h) on_kill pauses the task -----------------------------------------------------------------


def test_on_kill_pauses_a_running_task(make_emulator):
    emulator, hook = make_emulator(object_delay=0.5)
    task_id = running_sample_task(emulator, hook, files=20)
    emulator.reset_requests()

    with structlog.testing.capture_logs() as logs:
        asyncio.run(asyncio.wait_for(trigger_for(task_id).on_kill(), WAIT))

    # The stop call returned: the task is pausing, then paused once the current object is done.
    assert emulator.get_task(task_id)["status"] == TaskStatus.PAUSING
    assert emulator.wait_for_status(task_id, {TaskStatus.PAUSED}, timeout=WAIT)["status"] == TaskStatus.PAUSED
    assert [(r.method, r.status) for r in stop_requests(emulator)] == [("POST", 200)]
    assert any("Paused OMS migration task" in entry["event"] for entry in logs)


def test_on_kill_on_a_paused_task_logs_and_does_not_raise(paused_in_oms):
    emulator, task_id = paused_in_oms
    emulator.reset_requests()

    with structlog.testing.capture_logs() as logs:
        asyncio.run(asyncio.wait_for(trigger_for(task_id).on_kill(), WAIT))

    assert [r.error_code for r in stop_requests(emulator)] == ["OMS.0066"]
    assert emulator.get_task(task_id)["status"] == TaskStatus.PAUSED
    assert [entry["log_level"] for entry in logs if "not in progress" in entry["event"]] == ["info"], logs
    # Only the trigger's own lines: Airflow 3.1 adds a warning of its own about "_" in connection types.
    assert all(entry["log_level"] == "info" for entry in logs if "OMS" in str(entry["event"])), logs


def test_on_kill_on_an_unknown_task_warns_without_credentials(fast):
    emulator, _ = fast

    with structlog.testing.capture_logs() as logs:
        asyncio.run(asyncio.wait_for(trigger_for("424242").on_kill(), WAIT))

    # The trigger's own warnings (Airflow 3.1 adds one about "_" in connection types).
    warnings = [entry for entry in logs if entry["log_level"] == "warning" and "OMS" in str(entry["event"])]
    assert len(warnings) == 1
    assert "Could not pause" in warnings[0]["event"]
    assert "OMS.1009" in str(warnings[0])
    for secret in SECRETS:
        assert secret not in str(logs)
    assert [r.error_code for r in stop_requests(emulator)] == ["OMS.1009"]


# -- (i) cleanup and cancellation leave the task running -----------------------------------------


def test_cleanup_does_not_pause_the_task(make_emulator):
    emulator, hook = make_emulator(object_delay=0.2)
    task_id = running_sample_task(emulator, hook, files=20)
    emulator.reset_requests()

    asyncio.run(asyncio.wait_for(trigger_for(task_id).cleanup(), WAIT))

    assert_left_alone(emulator, task_id, TaskStatus.RUNNING)


def test_cancelled_run_does_not_pause_the_task(make_emulator):
    """A triggerer restart cancels run() and calls cleanup(); the OMS task must go on."""
    emulator, hook = make_emulator(object_delay=0.2)
    task_id = running_sample_task(emulator, hook, files=20)
    emulator.reset_requests()
    trigger = trigger_for(task_id, poll_interval=0.05)

    async def scenario():
        waiting = asyncio.create_task(collect(trigger))
        while not task_requests(emulator, task_id):
            await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await trigger.cleanup()

    asyncio.run(asyncio.wait_for(scenario(), WAIT))

    assert_left_alone(emulator, task_id, TaskStatus.RUNNING)
