"""
HTTP economy: requests per operator run and connections per wait, counted by the emulator.

``StartMigrationTaskOperator.execute`` runs here with a stand-in context (the one thing it needs from a task
instance is a place for the console link's XCom). The emulator runs in this process: only counts matter.
A deferrable run is driven the way Airflow does: ``execute`` defers, the trigger runs in an event loop, and
``execute_complete`` gets its event.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any
from unittest import mock

from airflow.sdk.exceptions import TaskDeferred
from support import Section, Sizes, Table, Target, sample_task_body, use_connection, write_objects

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.operators.oms import StartMigrationTaskOperator
from airflow_provider_oms.testing import OMSEmulator

CONN_ID = "oms_bench_economy"
POLL_INTERVAL = 1
#: Each task waits this long, then copies its objects one per OBJECT_DELAY: about 3 s in all.
TASK_START_DELAY = 1.0
OBJECT_DELAY = 0.5
OBJECTS = 4


def _kinds(emulator: OMSEmulator) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for record in emulator.requests:
        tail = record.path.rsplit("/", 1)[-1]
        kinds[
            "start" if tail == "start" else "stop" if tail == "stop" else "show" if record.method == "GET" else "other"
        ] += 1
    return kinds


def _paused_task(emulator: OMSEmulator, hook: OMSHook) -> str:
    task_id = str(hook.create_task(sample_task_body())["id"])
    hook.stop_task(task_id)
    emulator.wait_for_status(task_id, {TaskStatus.PAUSED})
    return task_id


def _operator(task_id: str, **kwargs: Any) -> StartMigrationTaskOperator:
    return StartMigrationTaskOperator(
        task_id="start_migration", migration_task_id=task_id, oms_conn_id=CONN_ID, poll_interval=POLL_INTERVAL, **kwargs
    )


async def _run_trigger(deferred: TaskDeferred) -> dict[str, Any]:
    events = [event async for event in deferred.trigger.run()]
    return dict(events[-1].payload)


def run(sizes: Sizes, scratch: Path) -> Section:
    """Measure; the same at every size (it takes a few seconds)."""
    section = Section(
        title="HTTP economy",
        method=(
            "`StartMigrationTaskOperator.execute` with a stand-in context (`{'ti': Mock()}`) against the emulator "
            f"in this process, which counts requests and TCP connections. Each task waits {TASK_START_DELAY:g} s, "
            f"then copies {OBJECTS} objects at {OBJECT_DELAY:g} s each; `poll_interval={POLL_INTERVAL}`."
        ),
    )
    rows = []
    with OMSEmulator(
        scratch / "economy-data", task_start_delay=TASK_START_DELAY, object_delay=OBJECT_DELAY
    ) as emulator:
        write_objects(emulator.bucket_path("src"), OBJECTS)
        emulator.bucket_path("dst")
        use_connection(CONN_ID, emulator.airflow_connection())
        hook = OMSHook(oms_conn_id=CONN_ID)

        # Start only.
        task_id = _paused_task(emulator, hook)
        emulator.reset_requests()
        _operator(task_id, wait_for_completion=False).execute({"ti": mock.Mock()})
        no_wait = _kinds(emulator)
        no_wait_connections = emulator.connections_opened
        rows.append(["start, no wait", "-", _describe(no_wait), str(no_wait_connections), "-"])

        # Start and wait in the worker.
        task_id = _paused_task(emulator, hook)
        emulator.reset_requests()
        started = time.monotonic()
        _operator(task_id, wait_for_completion=True, deferrable=False).execute({"ti": mock.Mock()})
        sync_seconds = time.monotonic() - started
        sync = _kinds(emulator)
        sync_connections = emulator.connections_opened
        rows.append(
            [
                "start, wait in the worker",
                f"{sync_seconds:.1f} s",
                _describe(sync),
                str(sync_connections),
                str(sync_connections),
            ]
        )

        # Start, defer, wait in the triggerer, resume.
        task_id = _paused_task(emulator, hook)
        emulator.reset_requests()
        started = time.monotonic()
        operator = _operator(task_id, wait_for_completion=True, deferrable=True)
        try:
            operator.execute({"ti": mock.Mock()})
            raise RuntimeError("the deferrable operator did not defer")
        except TaskDeferred as deferred:
            start_connections = emulator.connections_opened
            event = asyncio.run(_run_trigger(deferred))
            getattr(operator, deferred.method_name)({"ti": mock.Mock()}, event)
        deferred_seconds = time.monotonic() - started
        deferrable = _kinds(emulator)
        wait_connections = emulator.connections_opened - start_connections
        rows.append(
            [
                "start, wait in the triggerer",
                f"{deferred_seconds:.1f} s",
                _describe(deferrable),
                str(emulator.connections_opened),
                str(wait_connections),
            ]
        )

    section.tables.append(
        Table(["operator run", "wait", "requests (emulator)", "connections opened", "connections per wait"], rows)
    )
    reads = no_wait["show"]
    section.targets.append(
        Target(
            "requests per operator run without waiting",
            f"{sum(no_wait.values())} ({_describe(no_wait)})",
            "the start plus at most one read",
            no_wait["start"] == 1 and reads <= 1 and sum(no_wait.values()) == 1 + reads,
        )
    )
    section.targets.append(
        Target(
            "connections per wait (kept alive)",
            f"worker {sync_connections}, triggerer {wait_connections}",
            "1",
            sync_connections == 1 and wait_connections == 1,
        )
    )
    for label, seconds, counted in (("worker", sync_seconds, sync), ("triggerer", deferred_seconds, deferrable)):
        most = int(seconds // POLL_INTERVAL) + 1
        # A waiting start reads the task once before it starts it: what a stale read after the start would look
        # like (docs/operators.md, "Stale statuses").
        waiting_reads = counted["show"] - 1
        section.targets.append(
            Target(
                f"reads while waiting in the {label}",
                f"{waiting_reads} reads in {seconds:.1f} s (and 1 before the start)",
                f"at most one per poll interval ({most}), and 1 before the start",
                0 <= waiting_reads <= most,
            )
        )
    return section


def _describe(kinds: Counter[str]) -> str:
    return ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items(), key=lambda item: item[0] != "start"))
