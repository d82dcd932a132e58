"""
Run many MigrationTaskTriggers at once in one event loop, as a triggerer does, and measure this process.

Waits for the task ids in ``--ids`` (a JSON list, written once the tasks exist) and writes what it measured
to ``--result`` (JSON). Runs in a process of its own, started by ``trigger_scale.py``, so that its memory and
CPU are the triggers' alone; the emulator is yet another process.

Every request goes through the loop's shared ``httpx.AsyncClient``; event hooks on that client record when
each request was sent and each answer came, with the CPU the process had used by then. Once the tasks have
finished, more rounds of one read per task follow: under ``tracemalloc`` (the Python heap), under ``cProfile``
(where the CPU goes), then side by side with floors that send the same reads signed in advance: httpx with
the trigger module's pool limits, httpx with a pool of 10, and bare asyncio streams.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from airflow.sdk import BaseHook
from support import rss

from airflow_provider_oms.client import OMSRequestBuilder, PreparedCall
from airflow_provider_oms.connections import config_from_connection
from airflow_provider_oms.triggers import oms as trigger_module
from airflow_provider_oms.triggers.oms import MigrationTaskTrigger, shared_async_client

#: Connections of the bare asyncio floor: as many as the trigger module's pool allows by default.
FLOOR_CONNECTIONS = 100


def _reset_peakrss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; ``False`` where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


class Recorder:
    """Records each request sent and each answer received: (monotonic time, process CPU time, task id)."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, float, str]] = []
        self.answered: list[tuple[float, float, str]] = []

    async def on_request(self, request: httpx.Request) -> None:
        """Record a request (the client's request event hook)."""
        self.sent.append((time.monotonic(), time.process_time(), request.url.path.rsplit("/", 1)[-1]))

    async def on_response(self, response: httpx.Response) -> None:
        """Record an answer (the client's response event hook)."""
        self.answered.append((time.monotonic(), time.process_time(), response.request.url.path.rsplit("/", 1)[-1]))


def _package(filename: str) -> str:
    """Return the top-level package of a profiled function's file."""
    parts = filename.replace("\\", "/").split("/")
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    if "airflow_provider_oms" in parts:
        return "airflow_provider_oms"
    if filename.startswith("<") or "/lib/python" in filename:
        return "stdlib and built-ins"
    return "other"


def _profile_summary(profile: cProfile.Profile) -> dict[str, Any]:
    """CPU by package and the most expensive functions, from a profile."""
    stats = pstats.Stats(profile)
    by_package: Counter[str] = Counter()
    functions = []
    cumulative = {}
    for (filename, line, name), (_, _, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        package = _package(filename)
        by_package[package] += tottime
        functions.append((tottime, f"{package}: {name} ({Path(filename).name}:{line})"))
        cumulative[f"{Path(filename).name}:{name}"] = cumtime
    total = sum(by_package.values())
    return {
        "total": total,
        "by_package": dict(by_package.most_common(6)),
        "top_functions": [[seconds, label] for seconds, label in sorted(functions, reverse=True)[:5]],
        "pool_bookkeeping": cumulative.get("connection_pool.py:_assign_requests_to_connections", 0.0),
    }


async def _collect(trigger: MigrationTaskTrigger) -> list[dict[str, Any]]:
    return [dict(event.payload) async for event in trigger.run()]


async def _run_all(ids: list[str], conn_id: str, poll_interval: float, timeout: float) -> list[list[dict[str, Any]]]:
    deadline = time.time() + timeout
    triggers = [
        MigrationTaskTrigger(
            migration_task_id=task_id, oms_conn_id=conn_id, poll_interval=poll_interval, deadline=deadline
        )
        for task_id in ids
    ]
    return await asyncio.gather(*(_collect(trigger) for trigger in triggers))


async def _round(label: str, reads: int, send_all: Any) -> dict[str, Any]:
    """Time one round: ``send_all()`` makes ``reads`` reads at once."""
    cpu, wall = time.process_time(), time.monotonic()
    await send_all()
    return {"label": label, "reads": reads, "cpu": time.process_time() - cpu, "wall": time.monotonic() - wall}


async def _httpx_floor(
    calls: list[PreparedCall], limits: httpx.Limits, label: str, in_flight: int | None = None
) -> dict[str, Any]:
    """
    Two rounds of the pre-signed reads through a fresh httpx client; the second (warm) one is returned.

    :param in_flight: at most this many reads handed to httpx at once (an ``asyncio.Semaphore``); ``None``:
        all of them, as independent triggers do.
    """
    gate = asyncio.Semaphore(in_flight or len(calls))
    # The trigger's own timeout (the connection's, 60 s by default) also bounds the wait for a pooled connection.
    async with httpx.AsyncClient(limits=limits, timeout=60.0, trust_env=False) as client:

        async def read(call: PreparedCall) -> Any:
            async with gate:
                response = await client.get(call.url, headers=call.headers)
            response.raise_for_status()
            return response.json()

        async def send_all() -> None:
            await asyncio.gather(*(read(call) for call in calls))

        await send_all()
        return await _round(label, len(calls), send_all)


async def _asyncio_floor(calls: list[PreparedCall], connections: int) -> dict[str, Any]:
    """Two rounds of the pre-signed reads over bare keep-alive asyncio streams; the second one is returned."""
    parts = urlsplit(calls[0].url)
    streams = [await asyncio.open_connection(parts.hostname, parts.port) for _ in range(connections)]
    requests = [
        (
            f"GET {urlsplit(call.url).path} HTTP/1.1\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in call.headers.items())
            + "\r\n"
        ).encode()
        for call in calls
    ]

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, queue: list[bytes]) -> None:
        while queue:
            writer.write(queue.pop())
            await writer.drain()
            status = await reader.readline()
            length = 0
            while (header := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = header.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            if b" 200 " not in status:
                raise RuntimeError(f"the floor's read answered {status!r}")
            json.loads(body)

    async def send_all() -> None:
        queue = list(requests)
        await asyncio.gather(*(worker(reader, writer, queue) for reader, writer in streams))

    await send_all()
    result = await _round(
        f"bare asyncio streams, {connections} connections, signed in advance (floor)", len(calls), send_all
    )
    for _, writer in streams:
        writer.close()
    return result


async def _compare(args: argparse.Namespace, ids: list[str], calls: list[PreparedCall]) -> list[dict[str, Any]]:
    """One round of one read per (finished) task: the triggers, then the floors; a failed one is reported."""
    limits = getattr(trigger_module, "_POOL_LIMITS", httpx.Limits())
    small = httpx.Limits(max_connections=10, max_keepalive_connections=10)

    async def triggers() -> dict[str, Any]:
        async def send_all() -> None:
            await _run_all(ids, args.conn_id, args.poll_interval, args.timeout)

        return await _round(
            "MigrationTaskTrigger (provider): create, read the connection, one read each", len(ids), send_all
        )

    rounds: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]] = [
        ("MigrationTaskTrigger (provider)", triggers),
        (
            "httpx, the trigger module's pool",
            lambda: _httpx_floor(
                calls,
                limits,
                f"httpx.AsyncClient, the trigger module's pool (max {limits.max_connections} connections), signed "
                "in advance",
            ),
        ),
        ("httpx, pool of 10", lambda: _httpx_floor(calls, small, "httpx.AsyncClient, pool of 10, signed in advance")),
        (
            "httpx, pool of 10, 10 in flight",
            lambda: _httpx_floor(
                calls,
                small,
                "httpx.AsyncClient, pool of 10, at most 10 reads in flight, signed in advance",
                in_flight=10,
            ),
        ),
        ("bare asyncio", lambda: _asyncio_floor(calls, min(FLOOR_CONNECTIONS, len(calls)))),
    ]
    results = []
    for label, measure in rounds:
        try:
            results.append(await measure())
        except Exception as err:  # a floor that fails is reported, not fatal: the benchmark reports
            results.append({"label": label, "reads": len(ids), "error": f"{type(err).__name__}: {err}"[:200]})
    return results


def _handshake(prefix: Path) -> None:
    """Tell the parent process the timed wait is over; go on once it has read the emulator's counts."""
    prefix.with_suffix(".waited").touch()
    go = prefix.with_suffix(".go")
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def _presigned_reads(conn_id: str, ids: list[str]) -> list[PreparedCall]:
    config = config_from_connection(BaseHook.get_connection(conn_id))
    builder = OMSRequestBuilder(config.endpoint, config.project_id, config.credentials)
    return [builder.build("GET", builder.path("/tasks/{task_id}", task_id=task_id)) for task_id in ids]


async def _measure(args: argparse.Namespace, ids: list[str], calls: list[PreparedCall]) -> dict[str, Any]:
    client = shared_async_client(True)  # the client every trigger of this loop will share
    recorder = Recorder()
    client.event_hooks = {"request": [recorder.on_request], "response": [recorder.on_response]}
    peak_reset = _reset_peakrss()
    rss_before, _ = rss()
    samples = [rss_before]
    cpu_samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        # A thread, not a task of the loop: it keeps sampling while the loop is busy.
        while not done.wait(0.1):
            samples.append(rss()[0])
            cpu_samples.append((time.monotonic(), time.process_time()))

    sampler = threading.Thread(target=sample, name="sampler", daemon=True)
    sampler.start()
    cpu_start, wall_start = time.process_time(), time.monotonic()
    results = await _run_all(ids, args.conn_id, args.poll_interval, args.timeout)
    cpu_end, wall_end = time.process_time(), time.monotonic()
    done.set()
    sampler.join()
    rss_after, rss_peak = rss()
    peak = rss_peak if peak_reset else max([*samples, rss_after])
    timed_requests, timed_answers = len(recorder.sent), len(recorder.answered)
    _handshake(args.handshake)

    # Memory of the Python heap alone: the same number of triggers again (their tasks have finished now, so
    # each polls once), under tracemalloc, which would have slowed the timed run.
    tracemalloc.start()
    await _run_all(ids, args.conn_id, args.poll_interval, args.timeout)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    # Where the CPU goes: one more round of all triggers (one read each), under cProfile.
    profile = cProfile.Profile()
    profile.enable()
    await _run_all(ids, args.conn_id, args.poll_interval, args.timeout)
    profile.disable()

    comparison = await _compare(args, ids, calls)
    pool = getattr(trigger_module, "_POOL_LIMITS", None)
    return {
        "comparison": comparison,
        "pool_limit": pool.max_connections if pool is not None else None,
        "triggers": len(ids),
        "outcomes": dict(Counter(events[-1]["status"] if events else "none" for events in results)),
        "events_per_trigger": sorted({len(events) for events in results}),
        "cpu_start": cpu_start,
        "cpu_end": cpu_end,
        "wall_start": wall_start,
        "wall_end": wall_end,
        "sent": recorder.sent[:timed_requests],
        "answered": recorder.answered[:timed_answers],
        "cpu_samples": cpu_samples,
        "profile": _profile_summary(profile),
        "rss_before": rss_before,
        "rss_peak": peak,
        "peak_from_kernel": peak_reset,
        "traced_peak": traced_peak,
        "clients_in_loop": 1 if shared_async_client(True) is client else 2,
    }


def main() -> int:
    """Run the triggers and write the result file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ids", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--conn-id", required=True)
    parser.add_argument("--poll-interval", type=float, required=True)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument(
        "--handshake",
        type=Path,
        required=True,
        help="PREFIX: touch PREFIX.ready once imported, PREFIX.waited after the wait, then await PREFIX.go",
    )
    args = parser.parse_args()
    # Started before the tasks exist: say the imports are done, then wait for the tasks' ids.
    args.handshake.with_suffix(".ready").touch()
    deadline = time.monotonic() + 600
    while not args.ids.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no task ids in {args.ids}")
        time.sleep(0.02)
    ids = json.loads(args.ids.read_text())
    calls = _presigned_reads(args.conn_id, ids)
    result = asyncio.run(_measure(args, ids, calls))
    args.result.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
