"""
The OMS emulator in a process of its own, for benchmarks that measure the CPU time of a client.

Prints one JSON line, ``{"connection": <Airflow connection>}``, then answers commands read from stdin, one
JSON line each: ``stats`` (requests by kind, error answers, TCP connections opened) and ``reset``. It stops
at the end of its input.

Its listen backlog is raised from socketserver's default of 5: a hundred clients connecting at once would
otherwise have most of their SYNs dropped and wait 1, 2, 4, 8... seconds to try again, which measures the
emulator's accept queue rather than the client.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from pathlib import Path

from airflow_provider_oms.testing.emulator import OMSEmulator
from airflow_provider_oms.testing.server import OMSHTTPServer


def _kind(method: str, path: str) -> str:
    tail = path.rstrip("/").rsplit("/", 2)
    if tail[-1] in {"start", "stop"}:
        return f"{method} {tail[-1]}"
    if tail[-1] == "tasks":
        return f"{method} {'create' if method == 'POST' else 'list'}"
    return f"{method} {'show' if method == 'GET' else 'task'}"


def main() -> int:
    """Serve until stdin ends."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--task-start-delay", type=float, default=0.0)
    parser.add_argument("--object-delay", type=float, default=0.0)
    parser.add_argument("--listen-backlog", type=int, default=1024)
    args = parser.parse_args()
    OMSHTTPServer.request_queue_size = args.listen_backlog
    # The emulator logs every request at INFO; that would cost this process CPU and fill the log.
    logging.basicConfig(level=logging.WARNING)
    with OMSEmulator(args.data_dir, task_start_delay=args.task_start_delay, object_delay=args.object_delay) as emulator:
        print(json.dumps({"connection": emulator.airflow_connection()}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "reset":
                emulator.reset_requests()
                answer: dict[str, object] = {"ok": True}
            elif command == "stats":
                records = emulator.requests
                answer = {
                    "requests": len(records),
                    "by_kind": dict(Counter(_kind(record.method, record.path) for record in records)),
                    "errors": dict(Counter(str(record.error_code) for record in records if record.status >= 400)),
                    "connections_opened": emulator.connections_opened,
                }
            else:
                answer = {"error": f"unknown command {command!r}"}
            print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
