"""
Scale of waiting: many MigrationTaskTriggers at once in one event loop, against the emulator.

Three processes: this one creates the tasks through OMSHook and reads the emulator's counts; the emulator
serves in its own process (``emulator_process.py``) and counts requests and TCP connections on its side;
the triggers run in a third (``trigger_worker.py``), whose CPU and memory are theirs alone. Every task
waits ``task_start_delay`` seconds from its creation, then copies one small object and succeeds.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from support import (
    BENCH_DIR,
    PYTHON,
    EmulatorProcess,
    Section,
    Sizes,
    Table,
    Target,
    sample_task_body,
    use_connection,
    write_objects,
)

from airflow_provider_oms.hooks.oms import OMSHook

CONN_ID = "oms_bench_scale"
TARGET_CPU_PER_ROUND = 0.5
TARGET_MEMORY = 100e6
#: The trigger module's pool limit (the most connections its shared pool opens), if it cannot be read.
POOL_LIMIT = 100


def mb(size: float) -> str:
    """Format a size in MB (10^6 bytes), as the target is given."""
    return f"{size / 1e6:,.1f} MB"


def _first_round(answered: list[list[Any]], count: int) -> tuple[float, float] | None:
    """Return (time, CPU) when every trigger had had its first answer; ``None`` if some never had one."""
    seen: set[str] = set()
    for when, cpu, task_id in answered:
        seen.add(task_id)
        if len(seen) == count:
            return when, cpu
    return None


def _cpu_at(samples: list[list[float]], when: float) -> float:
    """Return the process CPU time at ``when``, from the last sample taken by then."""
    cpu = samples[0][1]
    for sampled_at, sampled_cpu in samples:
        if sampled_at > when:
            break
        cpu = sampled_cpu
    return cpu


def _intervals(result: dict[str, Any], poll_interval: float) -> list[list[str]]:
    """Per poll interval of wall time since the start: reads sent, answers received, CPU used."""
    start, end = result["wall_start"], result["wall_end"]
    samples = [[start, result["cpu_start"]], *result["cpu_samples"], [end, result["cpu_end"]]]
    rows = []
    number = 0
    while start + number * poll_interval < end:
        begin, finish = start + number * poll_interval, min(end, start + (number + 1) * poll_interval)
        sent = sum(begin <= when < finish for when, _, _ in result["sent"])
        answered = sum(begin <= when < finish for when, _, _ in result["answered"])
        cpu = _cpu_at(samples, finish) - _cpu_at(samples, begin)
        rows.append(
            [
                f"{begin - start:.1f}-{finish - start:.1f} s",
                f"{sent:,}",
                f"{answered:,}",
                f"{cpu:.2f} s",
                f"{cpu / (finish - begin):.0%}",
            ]
        )
        number += 1
    return rows


def _min_gap(sent: list[list[Any]]) -> float:
    """Return the shortest time between two reads of the same task."""
    last: dict[str, float] = {}
    gap = float("inf")
    for when, _, task_id in sent:
        if task_id in last:
            gap = min(gap, when - last[task_id])
        last[task_id] = when
    return gap


def _cpu_why(profile: dict[str, Any], count: int, comparison: list[dict[str, Any]], pool_limit: int) -> str:
    """Explain a CPU miss from the profiled round and the floors."""
    total = profile["total"] or 1.0
    packages = ", ".join(f"{name} {seconds / total:.0%}" for name, seconds in profile["by_package"].items())
    why = f"A round of {count:,} reads under cProfile spends its CPU in: {packages}."
    bookkeeping = profile["pool_bookkeeping"] / total
    if bookkeeping > 0.3:
        why += (
            f" {bookkeeping:.0%} is httpcore's connection-pool bookkeeping (`_assign_requests_to_connections`): "
            f"each time a request joins or leaves the pool, httpcore 1.x re-checks every connection (and, for "
            f"each idle one, counts the idle ones again), then scans every connection for each queued request. "
            f"With {count:,} reads at once over the trigger module's pool of {pool_limit} connections, that "
            "grows with connections squared and with queued reads times connections."
        )
    if len(comparison) == 5 and not any("error" in row for row in comparison):
        per_thousand = [row["cpu"] / row["reads"] * 1000 for row in comparison]
        why += (
            f" Side by side, one round of {count:,} reads costs {per_thousand[0]:.2f} s per 1,000 through the "
            f"triggers, {per_thousand[1]:.2f} s through a bare httpx client with the same pool limits, "
            f"{per_thousand[2]:.2f} s with a pool of 10, {per_thousand[3]:.2f} s with a pool of 10 and at most 10 "
            f"reads handed to httpx at once, and {per_thousand[4]:.3f} s over bare asyncio streams."
        )
    return why


def run(sizes: Sizes, scratch: Path) -> Section:
    """Measure with ``sizes.triggers`` triggers polling every ``sizes.poll_interval`` seconds."""
    count, poll_interval, finish_after = sizes.triggers, sizes.poll_interval, sizes.finish_after
    section = Section(
        title="Scale of waiting: concurrent triggers",
        method=(
            f"{count:,} `MigrationTaskTrigger`s in one event loop (`asyncio.gather`), "
            f"`poll_interval={poll_interval:g}` s, in a process of their own; the emulator in another process "
            "(its listen backlog raised, see `emulator_process.py`). Each task is created through OMSHook and "
            f"succeeds about {finish_after:g} s after its creation. Memory: the trigger process's peak RSS (kernel "
            "high-water mark, reset before the triggers start) minus its RSS before; then the same number of "
            "triggers again under `tracemalloc` (one read each, the tasks having finished). CPU: "
            "`time.process_time` of the trigger process over the whole wait, per 1,000 reads (a round); httpx "
            "event hooks on the shared client time every read. Connections: counted by the emulator. A last "
            "round runs under `cProfile` to show where the CPU goes."
        ),
    )
    data_dir = scratch / "scale-data"
    write_objects(data_dir / "src", 1)
    (data_dir / "dst").mkdir(parents=True, exist_ok=True)
    with EmulatorProcess(data_dir, scratch / "scale-emulator.log", task_start_delay=finish_after) as emulator:
        use_connection(CONN_ID, emulator.connection)
        ids_file, result_file = scratch / "scale-ids.json", scratch / "scale-result.json"
        handshake = scratch / "scale-handshake"
        with (scratch / "scale-triggers.log").open("w") as log:
            # Started first: once it has imported Airflow the tasks are created, and it starts its triggers as
            # soon as their ids are written, so that each task succeeds `finish_after` seconds after creation.
            worker = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [
                    PYTHON,
                    str(BENCH_DIR / "trigger_worker.py"),
                    "--ids",
                    str(ids_file),
                    "--result",
                    str(result_file),
                    "--conn-id",
                    CONN_ID,
                    "--poll-interval",
                    str(poll_interval),
                    "--timeout",
                    str(finish_after + 120),
                    "--handshake",
                    str(handshake),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                deadline = time.monotonic() + 300
                while worker.poll() is None and not handshake.with_suffix(".ready").exists():
                    if time.monotonic() > deadline:
                        raise TimeoutError("the trigger process did not start")
                    time.sleep(0.05)
                hook = OMSHook(oms_conn_id=CONN_ID)
                started = time.monotonic()
                ids = [str(hook.create_task(sample_task_body(save_prefix=f"t{n}/"))["id"]) for n in range(count)]
                create_seconds = time.monotonic() - started
                hook.close()
                emulator.reset()
                partial = ids_file.with_suffix(".partial")
                partial.write_text(json.dumps(ids))
                partial.rename(ids_file)
                # The emulator's counts of the timed wait alone, before the worker's later rounds.
                deadline = time.monotonic() + finish_after + 300
                while worker.poll() is None and not handshake.with_suffix(".waited").exists():
                    if time.monotonic() > deadline:
                        worker.kill()
                    time.sleep(0.1)
                stats = emulator.stats()
                handshake.with_suffix(".go").touch()
                try:
                    returncode = worker.wait(timeout=600)
                except subprocess.TimeoutExpired:
                    returncode = -1
            finally:
                if worker.poll() is None:  # something failed here: the worker must not wait on
                    worker.kill()
                    worker.wait()
        if returncode != 0:
            raise RuntimeError(f"the trigger process failed ({returncode}); see {scratch / 'scale-triggers.log'}")
    result = json.loads(result_file.read_text())

    sent, answered = result["sent"], result["answered"]
    memory = result["rss_peak"] - result["rss_before"]
    gap = _min_gap(sent)
    # The shows, and the shared poller's list of running tasks (one, in its first round: none runs here).
    served = stats["by_kind"].get("GET show", 0) + stats["by_kind"].get("GET list", 0)
    timed_served = served
    connections = stats["connections_opened"]
    pool_limit = result["pool_limit"] or POOL_LIMIT
    cpu_total = result["cpu_end"] - result["cpu_start"]
    wall = result["wall_end"] - result["wall_start"]
    scale = 1000 / count
    first = _first_round(answered, count)

    section.tables.append(
        Table(
            ["measure", "value"],
            [
                ["triggers", f"{count:,}"],
                ["outcomes", ", ".join(f"{status} x{n}" for status, n in result["outcomes"].items())],
                ["events per trigger", ", ".join(str(n) for n in result["events_per_trigger"])],
                ["tasks created through OMSHook in", f"{create_seconds:.1f} s"],
                ["wall time of the wait", f"{wall:.1f} s"],
                ["trigger process CPU, whole wait", f"{cpu_total:.2f} s for {len(sent):,} reads"],
                [
                    "every trigger had its first answer after",
                    f"{first[0] - result['wall_start']:.1f} s ({first[1] - result['cpu_start']:.2f} s CPU)"
                    if first
                    else "never",
                ],
                ["reads sent (client) / answered (emulator)", f"{len(sent):,} / {timed_served:,}"],
                [
                    "shortest time between two reads of one task",
                    f"{gap:.2f} s (poll interval {poll_interval:g} s)" if gap != float("inf") else "one read per task",
                ],
                ["TCP connections opened (emulator)", str(connections)],
                ["httpx clients in the loop", str(result["clients_in_loop"])],
                [
                    "memory: peak RSS minus RSS before",
                    f"{mb(memory)} ({'kernel high-water mark' if result['peak_from_kernel'] else 'sampled, 0.1 s'})",
                ],
                ["memory: Python heap peak (tracemalloc, second pass)", mb(result["traced_peak"])],
                [
                    "errors answered by the emulator",
                    ", ".join(f"{c} x{n}" for c, n in stats["errors"].items()) or "none",
                ],
            ],
        )
    )
    section.tables.append(
        Table(
            ["wall time since start", "reads sent", "answers received", "CPU", "of one core"],
            _intervals(result, poll_interval),
            title="Per poll interval",
        )
    )
    comparison = result["comparison"]
    section.tables.append(
        Table(
            ["client", "reads", "CPU", "CPU per 1,000 reads", "wall"],
            [
                [
                    row["label"],
                    f"{row['reads']:,}",
                    f"{row['cpu']:.2f} s",
                    f"{row['cpu'] / row['reads'] * 1000:.3f} s",
                    f"{row['wall']:.2f} s",
                ]
                if "error" not in row
                else [row["label"], f"{row['reads']:,}", "failed", row["error"], ""]
                for row in comparison
            ],
            title=f"One round of {count:,} reads at once (the tasks finished), side by side with floors",
        )
    )
    profile = result["profile"]
    section.tables.append(
        Table(
            ["function (package: name)", "own CPU under cProfile"],
            [[label, f"{seconds:.2f} s"] for seconds, label in profile["top_functions"]],
            title=f"Where the CPU goes: one more round of {count:,} reads under cProfile ({profile['total']:.1f} s)",
        )
    )
    section.targets.append(
        Target(
            "at most one request per task per poll interval",
            f"shortest gap between two reads of a task {gap:.2f} s" if gap != float("inf") else "one read per task",
            f">= {poll_interval:g} s",
            gap >= poll_interval * 0.99,
        )
    )
    section.targets.append(
        Target(
            "one shared connection pool",
            f"{connections} connections for {count:,} triggers; {len(sent):,} of {timed_served:,} reads through the "
            f"one shared client",
            f"one client, <= {pool_limit} connections (its pool limit)",
            connections <= pool_limit and len(sent) == timed_served and result["clients_in_loop"] == 1,
        )
    )
    section.targets.append(
        Target(
            f"memory of {count:,} waiting triggers",
            f"{mb(memory)} RSS ({mb(result['traced_peak'])} Python heap)",
            f"<= {mb(TARGET_MEMORY / scale)}" + (f" ({mb(TARGET_MEMORY)} for 1,000)" if count != 1000 else ""),
            memory <= TARGET_MEMORY / scale,
        )
    )
    per_thousand = cpu_total / max(1, len(sent)) * 1000
    section.targets.append(
        Target(
            "CPU per round of 1,000 reads (whole wait, creating the triggers and reading the connection included)",
            f"{per_thousand:.2f} s ({cpu_total:.1f} s for {len(sent):,} reads)",
            f"<= {TARGET_CPU_PER_ROUND} s",
            per_thousand <= TARGET_CPU_PER_ROUND,
            ""
            if per_thousand <= TARGET_CPU_PER_ROUND
            else f"{per_thousand / TARGET_CPU_PER_ROUND:.1f}x the target. "
            + _cpu_why(profile, count, comparison, pool_limit),
        )
    )
    if count != 1000:
        section.notes.append(f"{count:,} triggers in this run: CPU and memory targets are scaled to {count:,}.")
    return section
