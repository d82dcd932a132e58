"""
Run many MigrationTaskTriggers on running migrations in one event loop, for a number of rounds, and measure.

Started by ``shared_poll.py`` once per size and mode, in a process of its own so that its CPU and memory are the
triggers' alone. ``--mode per-task`` reads every task with its own show, as before the shared poller (the poller's
threshold raised above the number of waits); ``--mode shared`` is the provider as it ships; ``--mode "shared, no
progress lines"`` is the same with the waits' log lines sent nowhere, to show what they cost.

Logging is set up as Airflow 3's triggerer sets it up in its trigger runner process: JSON lines, one unbuffered
write each, there to the triggerer's supervisor process (which writes each trigger's log file), here to the file
``--log``. The supervisor's share (decoding and writing the lines) is not in the figures.

``--spread`` starts the triggers one after the other over one poll interval, as waits that deferred at different
moments, instead of all at once.

Handshake with the parent through files next to ``--result``: ``.warm`` once every trigger has read its task once
(the parent then resets the emulator's counts and writes ``.go``), ``.done`` after ``--rounds`` more reads per
trigger (the parent then reads the emulator's counts). The triggers are then cancelled; nothing is paused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from support import rss

from airflow_provider_oms.triggers import poller as poller_module
from airflow_provider_oms.triggers.oms import MigrationTaskTrigger


async def _measure(
    ids: list[str], conn_id: str, poll_interval: float, rounds: int, result: Path, spread: bool
) -> dict[str, Any]:
    reads = 0
    seen: set[str] = set()
    read = poller_module.SharedPoller.read

    async def counted(
        self: poller_module.SharedPoller, migration_task_id: str, *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        nonlocal reads
        task = await read(self, migration_task_id, *args, **kwargs)
        reads += 1
        seen.add(migration_task_id)
        return task

    poller_module.SharedPoller.read = counted  # type: ignore[method-assign]
    triggers = [
        MigrationTaskTrigger(
            migration_task_id=task_id, oms_conn_id=conn_id, poll_interval=poll_interval, cancel_on_kill=False
        )
        for task_id in ids
    ]
    waits = []
    for trigger in triggers:
        waits.append(asyncio.ensure_future(anext(trigger.run())))
        if spread:
            await asyncio.sleep(poll_interval / len(triggers))
    while len(seen) < len(ids):
        await asyncio.sleep(0.05)
    result.with_suffix(".warm").touch()
    while not result.with_suffix(".go").exists():
        await asyncio.sleep(0.05)
    reads_before, cpu_before, started = reads, time.process_time(), time.monotonic()
    while reads - reads_before < rounds * len(ids):
        await asyncio.sleep(0.05)
    cpu, seconds = time.process_time() - cpu_before, time.monotonic() - started
    result.with_suffix(".done").touch()
    ended = [wait for wait in waits if wait.done()]
    for wait in waits:
        wait.cancel()
    await asyncio.gather(*waits, return_exceptions=True)
    return {
        "reads": reads - reads_before,
        "cpu": cpu,
        "seconds": seconds,
        "peak_rss": rss()[1],
        "ended_early": len(ended),
    }


def _log_like_the_trigger_runner(path: Path) -> None:
    """Configure logging as the trigger runner does (``supervisor._configure_logs_over_json_channel``)."""
    from airflow.sdk.log import configure_logging, reset_logging

    reset_logging()
    configure_logging(json_output=True, output=path.open("wb", buffering=0), sending_to_supervisor=True)


def main() -> int:
    """Measure, write the result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--conn-id", required=True)
    parser.add_argument("--poll-interval", type=float, required=True)
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True, help="where the triggers' JSON log lines go")
    parser.add_argument("--spread", action="store_true", help="start the triggers over one poll interval")
    parser.add_argument("--mode", choices=["per-task", "shared", "shared, no progress lines"], required=True)
    args = parser.parse_args()
    ids = json.loads(args.ids.read_text())
    _log_like_the_trigger_runner(args.log)
    if args.mode == "per-task":
        poller_module.MIN_SHARED_ASKS = len(ids) + 1
    if args.mode == "shared, no progress lines":  # what the wait's own log lines cost: they go nowhere
        silent = logging.getLogger("oms-bench-silent")
        silent.disabled = True
        MigrationTaskTrigger.log = silent  # type: ignore[assignment,misc]
    measured = asyncio.run(_measure(ids, args.conn_id, args.poll_interval, args.rounds, args.result, args.spread))
    with args.log.open("rb") as lines:
        measured["progress_lines"] = sum(b'"OMS task ' in line for line in lines)
    args.result.write_text(json.dumps(measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
