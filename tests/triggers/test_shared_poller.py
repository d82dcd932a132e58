"""
Many deferred waits in one event loop share one poller (``triggers/poller.py``): one list page a round for the
running tasks, a show for a task that left the list, plain shows for a few waits, one backoff for a 429. Run for
real against the emulator over HTTP; what the emulator received is what is counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.testing import OMSEmulator
from airflow_provider_oms.triggers import poller as poller_module
from airflow_provider_oms.triggers.oms import MigrationTaskTrigger, connect
from airflow_provider_oms.triggers.poller import shared_poller
from airflow_provider_oms.waiting import fingerprint
from tests.helpers import create_sample_task, paused_sample_task

WAIT = 60.0
POLL = 0.3


def is_list(record: Any) -> bool:
    return record.method == "GET" and record.path.endswith("/tasks")


def is_show(record: Any) -> bool:
    return record.method == "GET" and "/tasks/" in record.path and not record.path.endswith(("/start", "/stop"))


def running_tasks(emulator: OMSEmulator, hook: Any, count: int, files: int) -> list[str]:
    ids = [create_sample_task(emulator, hook, files=files, prefix=f"p{n}/") for n in range(count)]
    for task_id in ids:
        emulator.wait_for_status(task_id, {TaskStatus.RUNNING, TaskStatus.SUCCEEDED}, timeout=20)
    return ids


async def wait_all(triggers: list[MigrationTaskTrigger]) -> list[dict[str, Any]]:
    async def first(trigger: MigrationTaskTrigger) -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("no event")

    return await asyncio.wait_for(asyncio.gather(*(first(t) for t in triggers)), WAIT)


def triggers_for(task_ids: list[str], conn_id: str, **kwargs: Any) -> list[MigrationTaskTrigger]:
    kwargs.setdefault("poll_interval", POLL)
    kwargs.setdefault("deadline", time.time() + WAIT)
    return [MigrationTaskTrigger(migration_task_id=t, oms_conn_id=conn_id, **kwargs) for t in task_ids]


def test_many_waits_read_their_tasks_with_one_list_page_a_round(make_emulator: Any, oms_conn: str) -> None:
    emulator, hook = make_emulator(task_start_delay=0, object_delay=0.4)
    task_ids = running_tasks(emulator, hook, count=30, files=6)  # ~2.4 s of copying each
    emulator.reset_requests()
    started = time.monotonic()

    events = asyncio.run(wait_all(triggers_for(task_ids, oms_conn)))

    took = time.monotonic() - started
    assert [event["status"] for event in events] == ["success"] * len(task_ids), events
    assert {event["task"]["successful_num"] for event in events} == {6}
    lists = sum(map(is_list, emulator.requests))
    shows = sum(map(is_show, emulator.requests))
    one_read_each = len(task_ids) * took / POLL  # what one show per wait per poll interval would have sent
    assert lists >= 3, (lists, shows)
    # Every wait reads its task with a show once it left the running list (it succeeded), maybe a few times.
    assert shows <= 3 * len(task_ids), (lists, shows)
    assert lists + shows <= one_read_each / 3, (lists, shows, one_read_each)


def test_waits_on_tasks_not_started_yet_list_once_then_show_until_one_runs(
    make_emulator: Any, oms_conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(poller_module, "MIN_SHARED_ASKS", 1)  # the waits connect one by one, maybe far apart
    emulator, hook = make_emulator(task_start_delay=60, object_delay=0.1)
    task_ids = [create_sample_task(emulator, hook, files=1, prefix=f"w{n}/") for n in range(6)]  # status 1
    emulator.reset_requests()

    events = asyncio.run(wait_all(triggers_for(task_ids, oms_conn, deadline=time.time() + 3)))

    assert [event["status"] for event in events] == ["timeout"] * len(task_ids), events
    # The first round's list found no running task: the list cannot serve these waits, and is not sent again.
    assert sum(map(is_list, emulator.requests)) == 1
    assert sum(map(is_show, emulator.requests)) >= 4 * len(task_ids)


def test_a_show_that_finds_a_task_running_sends_the_list_again(
    make_emulator: Any, oms_conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(poller_module, "MIN_SHARED_ASKS", 1)  # the waits connect one by one, maybe far apart
    emulator, hook = make_emulator(task_start_delay=1.5, object_delay=0.4)
    task_ids = [create_sample_task(emulator, hook, files=8, prefix=f"r{n}/") for n in range(6)]  # start in 1.5 s
    emulator.reset_requests()

    events = asyncio.run(wait_all(triggers_for(task_ids, oms_conn)))

    assert [event["status"] for event in events] == ["success"] * len(task_ids), events
    # The first (none running yet), then again once a show found a task running (without that: the first only).
    assert sum(map(is_list, emulator.requests)) >= 2


def test_a_few_waits_read_with_shows_as_before(make_emulator: Any, oms_conn: str) -> None:
    emulator, hook = make_emulator(task_start_delay=0, object_delay=0.2)
    task_ids = running_tasks(emulator, hook, count=poller_module.MIN_SHARED_ASKS - 1, files=4)
    emulator.reset_requests()

    events = asyncio.run(wait_all(triggers_for(task_ids, oms_conn)))

    assert [event["status"] for event in events] == ["success"] * len(task_ids)
    assert sum(map(is_list, emulator.requests)) == 0
    assert sum(map(is_show, emulator.requests)) >= 2 * len(task_ids)


def test_shows_when_the_running_tasks_fill_more_pages_than_there_are_waits(
    make_emulator: Any, oms_conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(poller_module, "PAGE_SIZE", 2)  # 12 running tasks: 6 pages for 5 waits
    # No refreshing list (on a loaded machine the waits may last the 20 rounds after which one comes), and the
    # first round lists however few asks it gathered (a loaded machine may split the five waits' rounds).
    monkeypatch.setattr(poller_module, "LIST_REFRESH_ROUNDS", 10**6)
    monkeypatch.setattr(poller_module, "MIN_SHARED_ASKS", 1)
    emulator, hook = make_emulator(task_start_delay=0, object_delay=0.3)
    others = running_tasks(emulator, hook, count=7, files=12)
    watched = running_tasks(emulator, hook, count=5, files=5)
    emulator.reset_requests()

    events = asyncio.run(wait_all(triggers_for(watched, oms_conn)))

    assert [event["status"] for event in events] == ["success"] * len(watched)
    lists = [record for record in emulator.requests if is_list(record)]
    # The first round of 4 or more asks lists (the count is not known yet: up to 3 pages, newest first, the
    # watched tasks being the newest), learns 12 are running, and every round after reads with shows.
    assert 1 <= len(lists) <= 3, len(lists)
    assert sum(map(is_show, emulator.requests)) >= 3 * len(watched)
    assert others


def test_waits_that_ask_apart_share_a_round_of_a_tenth_of_their_interval(make_emulator: Any, oms_conn: str) -> None:
    emulator, hook = make_emulator(task_start_delay=0, object_delay=3600)  # running for the whole test
    task_ids = running_tasks(emulator, hook, count=5, files=1)
    emulator.reset_requests()
    log = logging.getLogger(__name__)

    async def read_apart() -> tuple[list[dict[str, Any]], list[float]]:
        builder, config = await connect(oms_conn)
        poller = shared_poller(builder, config)
        started = time.monotonic()

        async def ask(n: int, task_id: str) -> tuple[dict[str, Any], float]:
            await asyncio.sleep(0.6 * n)  # as waits that deferred at different moments
            asked = time.monotonic()
            task = await poller.read(task_id, poll_interval=30, wait_log=log)
            return task, time.monotonic() - asked

        with poller.watching(len(task_ids)):
            answers = await asyncio.gather(*(ask(n, task_id) for n, task_id in enumerate(task_ids)))
        assert time.monotonic() - started < 15
        return [task for task, _ in answers], [late for _, late in answers]

    tasks, lateness = asyncio.run(read_apart())

    assert [str(task["id"]) for task in tasks] == task_ids
    assert {task["status"] for task in tasks} == {TaskStatus.RUNNING}
    # Asked over 2.4 s, all read in one round: the 3 s (a tenth of 30 s) after the first ask. With a 1-s window
    # they made three rounds, each too small to list: five shows.
    assert (sum(map(is_list, emulator.requests)), sum(map(is_show, emulator.requests))) == (1, 0)
    assert max(lateness) < 3 + 1.5, lateness  # no read later than a tenth of its interval (and the list's time)


def test_a_429_on_the_list_backs_the_whole_poller_off_once(make_emulator: Any, oms_conn: str) -> None:
    emulator, hook = make_emulator(task_start_delay=0, object_delay=0.3)
    task_ids = running_tasks(emulator, hook, count=10, files=6)
    emulator.reset_requests()
    emulator.inject_fault("throttle", path=r"/tasks$", count=1, retry_after=0.5)

    events = asyncio.run(wait_all(triggers_for(task_ids, oms_conn)))

    assert [event["status"] for event in events] == ["success"] * len(task_ids)
    throttled = [record for record in emulator.requests if record.status == 429]
    assert len(throttled) == 1  # one list, retried once for all ten waits
    assert not any(record.status == 429 for record in emulator.requests if is_show(record))


def test_the_list_lags_after_a_start_as_a_show_does_and_the_waits_take_it_as_stale(
    make_emulator: Any, oms_conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first round lists however few asks it gathered: a loaded machine may split the five waits' rounds.
    monkeypatch.setattr(poller_module, "MIN_SHARED_ASKS", 1)
    emulator, hook = make_emulator(task_start_delay=0.5, object_delay=0.2, start_lag_seconds=1.5)
    task_ids = [paused_sample_task(emulator, hook, files=3, prefix=f"s{n}/") for n in range(5)]
    befores = {task_id: hook.get_task(task_id) for task_id in task_ids}
    for task_id in task_ids:
        hook.start_task(task_id, hook.build_start_task_body())
    # For a moment OMS shows the tasks as they were before the start, in the list as in a show.
    listed = {str(task["id"]): task["status"] for task in hook.list_tasks(limit=100)["tasks"]}
    assert listed == dict.fromkeys(task_ids, TaskStatus.PAUSED)
    assert hook.list_tasks(status=TaskStatus.RUNNING)["count"] == 0
    emulator.reset_requests()
    triggers = [
        MigrationTaskTrigger(
            migration_task_id=task_id,
            oms_conn_id=oms_conn,
            poll_interval=POLL,
            deadline=time.time() + WAIT,
            stale_fingerprint=fingerprint(befores[task_id]),
            grace_until=time.time() + 30,
        )
        for task_id in task_ids
    ]

    events = asyncio.run(wait_all(triggers))

    # Read as paused at first, the waits did not take that for the outcome (a task paused from outside).
    assert [event["status"] for event in events] == ["success"] * len(task_ids), events
    assert sum(map(is_list, emulator.requests)) >= 1


def test_pollers_are_kept_per_event_loop(make_emulator: Any, oms_conn: str) -> None:
    emulator, hook = make_emulator(task_start_delay=0, object_delay=0.1)
    for _ in range(2):  # as `airflow dags test` runs each trigger: a fresh asyncio.run each time
        task_ids = running_tasks(emulator, hook, count=poller_module.MIN_SHARED_ASKS, files=3)
        events = asyncio.run(wait_all(triggers_for(task_ids, oms_conn)))
        assert [event["status"] for event in events] == ["success"] * len(task_ids)
