"""
Shared polling: many deferred waits on running migrations in one event loop, side by side.

Each task read with its own show (one request per wait per poll interval, as before the shared poller), then
through the shared poller (one list of the running tasks a round), at several numbers of waits. The emulator runs
in its own process and counts the requests by kind; every task stays running (status 2) for the whole
measurement (its one object takes an hour). The project holds exactly as many running tasks as there are waits,
the case the list call serves worst: it lists every running task of the project, watched or not.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from support import BENCH_DIR, PYTHON, EmulatorProcess, Section, Sizes, Table, Target, sample_task_body, use_connection

from airflow_provider_oms.hooks.oms import OMSHook

CONN_ID = "oms_bench_shared_poll"
MODES = ("per-task", "shared", "shared, no progress lines")
#: The goals of issue 22, for 1,000 concurrent waits.
GOAL_REQUESTS_PER_ROUND = 15
GOAL_CPU_PER_ROUND = 0.15
#: The operator's and the trigger's default poll interval (seconds).
DEFAULT_POLL_INTERVAL = 30.0


def _run_worker(
    ids: list[str],
    mode: str,
    sizes: Sizes,
    scratch: Path,
    emulator: EmulatorProcess,
    *,
    poll_interval: float | None = None,
    spread: bool = False,
) -> dict[str, Any]:
    poll_interval = poll_interval or sizes.poll_interval
    tag = f"poll-{len(ids)}-{mode}" + (f"-spread-{poll_interval:g}" if spread else "")
    ids_file, result = scratch / f"{tag}-ids.json", scratch / f"{tag}.json"
    ids_file.write_text(json.dumps(ids))
    args = [
        PYTHON,
        str(BENCH_DIR / "shared_poll_worker.py"),
        "--ids",
        str(ids_file),
        "--result",
        str(result),
        "--conn-id",
        CONN_ID,
        "--poll-interval",
        str(poll_interval),
        "--rounds",
        str(sizes.poll_rounds),
        "--mode",
        mode,
        "--log",
        str(scratch / f"{tag}-triggers.jsonl"),
    ] + (["--spread"] if spread else [])
    with (scratch / f"{tag}.log").open("w") as log:
        worker = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 - fixed argv, no shell
        try:
            deadline = time.monotonic() + 600 + poll_interval * (sizes.poll_rounds + 2)
            for step in (".warm", ".done"):
                while not result.with_suffix(step).exists():
                    if worker.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{tag}: the worker stopped before {step} (see {log.name})")
                    time.sleep(0.05)
                if step == ".warm":
                    emulator.reset()
                    result.with_suffix(".go").touch()
            stats = emulator.stats()
            if worker.wait(timeout=120) != 0:
                raise RuntimeError(f"{tag}: the worker failed (see {log.name})")
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    measured: dict[str, Any] = json.loads(result.read_text())
    rounds = measured["reads"] / len(ids)
    # Every read logs its progress line, but where the lines are sent nowhere on purpose.
    expected = 0 if mode == "shared, no progress lines" else len(ids) * (1 + rounds)
    if measured["progress_lines"] < expected:
        raise RuntimeError(f"{tag}: {measured['progress_lines']} progress lines logged, {expected:.0f} expected")
    by_kind = stats["by_kind"]
    measured.update(
        rounds=rounds,
        lists=by_kind.get("GET list", 0) / rounds,
        shows=by_kind.get("GET show", 0) / rounds,
        requests=stats["requests"] / rounds,
        cpu_per_round=measured["cpu"] / rounds,
    )
    return measured


def run(sizes: Sizes, scratch: Path) -> Section:
    """Measure each number of waits in ``sizes.poll_waits``, per-task shows and the shared poller."""
    section = Section(
        title="Shared polling: many deferred waits, one list a round",
        method=(
            f"For {', '.join(f'{n:,}' for n in sizes.poll_waits)} concurrent `MigrationTaskTrigger`s on running "
            f"migrations, `poll_interval={sizes.poll_interval:g}` s, in one event loop in a process of their own: "
            "first every task read with its own show (the shared poller's threshold raised above the number of "
            "waits: what the provider did before), then through the shared poller, then the same with the waits' "
            "log lines (one progress line per read) sent nowhere, one after the other against the "
            "same emulator (its own process) and the same tasks. After every wait has read its task once, "
            f"{sizes.poll_rounds} more reads per wait are timed: requests counted by the emulator, CPU "
            "(`time.process_time`) of the trigger process, both per round (one read per wait); peak RSS (VmHWM) of "
            "the trigger process. The project holds as many running tasks as there are waits. Logging is set up as "
            "the triggerer's trigger runner sets it up (JSON lines, one unbuffered write each, there to the "
            "triggerer's supervisor, here to a file); the supervisor's share is not counted. The rows 'deferred "
            "over one interval' start the waits one after the other over one poll interval, as waits that "
            "deferred at different moments (at this interval and at the default 30 s): a round gathers the asks "
            "of a tenth of the interval, of 6 s at most."
        ),
    )
    reference = 1000 if 1000 in sizes.poll_waits else max(sizes.poll_waits)
    long_poll = DEFAULT_POLL_INTERVAL if not sizes.quick else 3 * sizes.poll_interval
    data_dir = scratch / "poll-data"
    (data_dir / "src" / "data").mkdir(parents=True, exist_ok=True)
    (data_dir / "src" / "data" / "one.txt").write_bytes(b"benchmark object\n")
    (data_dir / "dst").mkdir(parents=True, exist_ok=True)
    rows, results = [], {}
    with EmulatorProcess(data_dir, scratch / "poll-emulator.log", object_delay=3600.0) as emulator:
        use_connection(CONN_ID, emulator.connection)
        hook = OMSHook(oms_conn_id=CONN_ID)
        ids: list[str] = []
        for count in sorted(sizes.poll_waits):
            ids += [str(hook.create_task(sample_task_body(save_prefix=f"p{n}/"))["id"]) for n in range(len(ids), count)]
            runs: list[tuple[str, str, dict[str, Any]]] = [(mode, mode, {}) for mode in MODES]
            if count == reference:  # waits that deferred at different moments, at this and at the default interval
                runs += [
                    (f"shared, deferred over one {poll:g}-s interval", "shared", dict(spread=True, poll_interval=poll))
                    for poll in (sizes.poll_interval, long_poll)
                ]
            for label, mode, options in runs:
                measured = results[count, label] = _run_worker(ids, mode, sizes, scratch, emulator, **options)
                rows.append(
                    [
                        f"{count:,}",
                        label,
                        f"{measured['requests']:,.1f}",
                        f"{measured['lists']:,.1f} / {measured['shows']:,.1f}",
                        f"{measured['cpu_per_round']:.3f} s",
                        f"{measured['cpu_per_round'] * 1000 / count:.3f} s",
                        f"{measured['peak_rss'] / 1e6:,.0f} MB",
                    ]
                )
        hook.close()
    section.tables.append(
        Table(
            headers=[
                "waits",
                "how each task is read",
                "OMS requests a round",
                "list pages / shows a round",
                "CPU a round",
                "CPU a round per 1,000 waits",
                "peak RSS",
            ],
            rows=rows,
        )
    )
    shared, per_task = results[reference, "shared"], results[reference, "per-task"]
    section.targets.append(
        Target(
            name=f"OMS requests a round, {reference:,} waits",
            measured=f"{shared['requests']:,.1f} (per-task shows: {per_task['requests']:,.1f})",
            goal=f"<= {GOAL_REQUESTS_PER_ROUND} for 1,000 waits",
            met=shared["requests"] <= GOAL_REQUESTS_PER_ROUND if reference == 1000 else None,
        )
    )
    cpu = shared["cpu_per_round"] * 1000 / reference
    quiet = results[reference, "shared, no progress lines"]["cpu_per_round"] * 1000 / reference
    section.targets.append(
        Target(
            name="CPU a round per 1,000 waits (httpx)",
            measured=f"{cpu:.3f} s (per-task shows: {per_task['cpu_per_round'] * 1000 / reference:.3f} s)",
            goal=f"<= {GOAL_CPU_PER_ROUND} s",
            met=cpu <= GOAL_CPU_PER_ROUND if reference == 1000 else None,
            why=(
                ""
                if cpu <= GOAL_CPU_PER_ROUND
                else f"The waits' own log lines (a progress line per read, through Airflow's logging as the "
                f"trigger runner sets it up) cost {cpu - quiet:.3f} s of it: {quiet:.3f} s a round without them"
                f"{' (within the goal)' if quiet <= GOAL_CPU_PER_ROUND else ''}. Each wait keeps its progress "
                "line per read. The transport's share is in the async transport benchmark below"
            ),
        )
    )
    spread = {
        poll: results[reference, f"shared, deferred over one {poll:g}-s interval"]["requests"]
        for poll in (sizes.poll_interval, long_poll)
    }
    section.targets.append(
        Target(
            name=f"OMS requests a round, {reference:,} waits deferred at different moments",
            measured=", ".join(f"{requests:,.1f} at {poll:g} s" for poll, requests in spread.items())
            + f" (per-task shows: {per_task['requests']:,.1f})",
            goal="reported (issue 22 asks a tenth of per-task shows for waits run together)",
            met=None,
            why=(
                "A round gathers the asks of a tenth of the poll interval, 6 s at most: waits that deferred at "
                "different moments make up to about ten rounds an interval, each listing the pages that hold its "
                "tasks"
            ),
        )
    )
    section.notes.append(
        "The waits of the 'Scale of waiting' section wait for their tasks to start (status 1), which the list of "
        "running tasks does not serve: they are still read with shows."
    )
    if reference != 1000:
        section.notes.append(f"No 1,000-wait size in this run: {reference:,} waits shown, no goal judged.")
    return section
