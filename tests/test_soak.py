"""
Soak: about 5,000 start and stop calls through the hook, from a few threads, against one emulator that
injects random faults (seeded) into a tenth of them.

Every start must be applied exactly once: the emulator's count of applied starts equals the starts the
hook reported, plus any start that raised but took effect. Open file descriptors and threads must come
back to where they were, and memory must stay bounded. The test stops by itself: a fixed number of cycles,
and a wall-clock guard.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog.testing

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.exceptions import OMSApiError
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.testing import OMSEmulator
from tests.helpers import create_sample_task

SEED = 20261129
THREADS = 4
#: Each cycle is two calls, a start and a stop: 4 threads x 625 cycles x 2 = 5,000 calls.
CYCLES = 625
FAULT_RATE = 0.1
#: The client's timeout; a "delay" fault holds its answer a little longer.
TIMEOUT = 1.0
DELAY = TIMEOUT + 0.1
CONN_EXTRA = {
    "retry_max_attempts": 10,
    "retry_max_seconds": 30,
    "retry_base_wait": 0.001,
    "retry_max_wait": 0.005,
    "timeout": TIMEOUT,
}
#: The faults and their weights; a "delay" costs a whole client timeout, so it is rarer.
FAULTS: list[tuple[float, str, dict[str, Any]]] = [
    (2, "throttle", {"retry_after": 0}),
    (1, "error", {"status": 502}),
    (1, "error", {"status": 503}),
    (1, "html", {}),
    (2, "reset_before", {}),
    (2, "reset_after", {}),
    (0.5, "delay", {"delay": DELAY}),
]
#: The wall-clock guard: no new cycle starts after this many seconds.
GUARD_SECONDS = 100
#: Far fewer calls than planned means the guard cut the soak short: too little to prove anything.
MIN_CALLS = 2_000
#: Bounds from start to end: leaked sockets or threads would grow with the calls, thousands of them.
FD_TOLERANCE = 3
THREAD_TOLERANCE = 2
#: The emulator keeps a record of every request (~10,000 here); anything leaking per call would add far more.
RSS_GROWTH_LIMIT = 64 * 1024 * 1024


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Tally:
    """What one thread's calls did."""

    calls: int = 0
    starts_reported: int = 0
    #: Starts that raised, and of those the ones the task's status shows took effect.
    starts_raised: int = 0
    starts_raised_but_applied: int = 0
    stops_reported: int = 0
    stops_raised: int = 0
    faults_injected: int = 0
    errors: list[str] = field(default_factory=list)


def soak(emulator: OMSEmulator, conn_id: str, task_id: str, index: int, deadline: float, tally: Tally) -> None:
    """Cycle a paused task through start and stop, injecting a random fault before a tenth of the calls."""
    rng = random.Random(SEED + index)  # noqa: S311 - reproducible faults, not a secret
    weights = [weight for weight, _, _ in FAULTS]
    # The fault lands on this thread's next request: its start, stop, or the read after a refused retry.
    own_path = rf"/tasks/{task_id}(/start|/stop)?$"
    hook = OMSHook(conn_id)
    try:
        body = hook.build_start_task_body()
        for _ in range(CYCLES):
            if time.monotonic() > deadline:
                return
            for action in ("start", "stop"):
                if rng.random() < FAULT_RATE:
                    _, kind, options = rng.choices(FAULTS, weights)[0]
                    count = rng.choice((1, 1, 1, 2))
                    emulator.inject_fault(kind, path=own_path, count=count, **options)
                    tally.faults_injected += count
                tally.calls += 1
                try:
                    if action == "start":
                        hook.start_task(task_id, body)
                        tally.starts_reported += 1
                    else:
                        hook.stop_task(task_id)
                        tally.stops_reported += 1
                except OMSApiError as err:
                    status = emulator.get_task(task_id)["status"]
                    tally.errors.append(f"{action}: {err} (task status {status})")
                    if action == "start":
                        tally.starts_raised += 1
                        if status != TaskStatus.WAITING:
                            break  # still paused: start it again in the next cycle
                        tally.starts_raised_but_applied += 1
                    else:
                        tally.stops_raised += 1
                        if status != TaskStatus.PAUSED:
                            emulator.pause_task(task_id)
    except Exception as err:  # a bug, not an OMS error: report it rather than lose it in the thread
        tally.errors.append(f"unexpected {type(err).__name__}: {err}")
    finally:
        hook.close()


def test_soak_with_random_faults(tmp_path: Path, set_connection: Any, caplog: pytest.LogCaptureFixture) -> None:
    # A log record per request would pile up in pytest's capture and count as memory growth.
    caplog.set_level(logging.WARNING, logger="airflow_provider_oms.emulator")
    # A started task waits for an hour before it runs, so that every start stays visible until its stop.
    with OMSEmulator(tmp_path / "oms-data", task_start_delay=3600) as emulator:
        conn = emulator.airflow_connection()
        conn_id = set_connection(
            "oms_soak",
            conn_type=conn["conn_type"],
            login=conn["login"],
            password=conn["password"],
            extra={**conn["extra"], **CONN_EXTRA},
        )
        setup_hook = OMSHook(conn_id)
        task_ids = [create_sample_task(emulator, setup_hook, files=1) for _ in range(THREADS)]
        setup_hook.close()
        for task_id in task_ids:
            emulator.pause_task(task_id)
        emulator.reset_requests()

        gc.collect()
        fds_before, threads_before, rss_before = open_fds(), threading.active_count(), rss_bytes()
        began = time.monotonic()
        tallies = [Tally() for _ in task_ids]
        workers = [
            threading.Thread(target=soak, args=(emulator, conn_id, task_id, index, began + GUARD_SECONDS, tally))
            for index, (task_id, tally) in enumerate(zip(task_ids, tallies, strict=True))
        ]
        with structlog.testing.capture_logs() as logs:
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(timeout=GUARD_SECONDS + 60)
        duration = time.monotonic() - began
        assert not any(worker.is_alive() for worker in workers), "a soak thread did not stop"
        emulator.clear_faults()

        # The emulator ends a connection's thread when its client closes it, and a "delay" thread after its delay:
        # give them a moment. No garbage collection: OMSHook.close() must release every socket itself.
        fds_uncollected, threads_uncollected = open_fds(), threading.active_count()
        settle_by = time.monotonic() + 10
        while (open_fds(), threading.active_count()) != (fds_before, threads_before) and time.monotonic() < settle_by:
            time.sleep(0.1)
        fds_after, threads_after, rss_after = open_fds(), threading.active_count(), rss_bytes()

        calls = sum(tally.calls for tally in tallies)
        reported = sum(tally.starts_reported for tally in tallies)
        raised_but_applied = sum(tally.starts_raised_but_applied for tally in tallies)
        requests = emulator.requests
        faults_served = Counter(record.fault for record in requests if record.fault)
        counted_done = Counter(
            str(entry["event"]).split()[1] for entry in logs if "counted as done" in str(entry["event"])
        )
        summary = {
            "calls": calls,
            "requests": len(requests),
            "seconds": round(duration, 1),
            "faults injected": sum(tally.faults_injected for tally in tallies),
            "faults served": dict(faults_served),
            "starts applied": emulator.applied_starts,
            "starts reported": reported,
            "retries logged": sum("retrying in" in str(entry["event"]) for entry in logs),
            "lost answers counted as done": dict(counted_done),
            "starts raised": sum(tally.starts_raised for tally in tallies),
            "stops raised": sum(tally.stops_raised for tally in tallies),
            "fds": (fds_before, fds_uncollected, fds_after),
            "threads": (threads_before, threads_uncollected, threads_after),
            "rss MiB": (round(rss_before / 2**20, 1), round(rss_after / 2**20, 1)),
        }
        print(f"soak: {summary}")  # shown with -s; fds and threads: before, after without and with collecting

        assert calls >= MIN_CALLS, summary
        # Zero lost and zero duplicated starts.
        assert emulator.applied_starts == reported + raised_but_applied, summary
        # Every call was retried to success: no fault here should outlast ten attempts.
        assert [error for tally in tallies for error in tally.errors] == [], summary
        assert sum(faults_served.values()) > calls * FAULT_RATE / 2, summary
        # The faults reached both paths of a lost answer: a start and a stop that had taken effect.
        assert counted_done["start"] > 0 and counted_done["stop"] > 0, summary
        assert fds_after <= fds_before + FD_TOLERANCE, summary
        assert threads_after <= threads_before + THREAD_TOLERANCE, summary
        assert rss_after - rss_before < RSS_GROWTH_LIMIT, summary
        for task_id in task_ids:
            assert emulator.get_task(task_id)["status"] == TaskStatus.PAUSED
