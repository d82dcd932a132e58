"""
The figures a run of the distributed test measured, written into the generated section of docs/deployment.md.

Each scenario records what it measured with :func:`record`; at the end of the session :func:`write_report`
replaces the text between the two markers of docs/deployment.md (appending them if missing) and writes the raw
numbers as JSON beside the test's AIRFLOW_HOME. `make test-distributed` thus keeps the document's figures those
of the last run on this machine.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "deployment.md"
BEGIN = "<!-- measured:begin (written by `make test-distributed`, tests/distributed/figures.py; do not edit) -->"
END = "<!-- measured:end -->"
#: Where the Makefile leaves how long creating .venv-distributed took (only when it created it).
INSTALL_SECONDS_FILE = REPO / ".venv-distributed" / "install-seconds"

FIGURES: dict[str, Any] = {}
OUTCOMES: dict[str, str] = {}


def record(key: str, value: Any) -> None:
    """Keep one measured figure (seconds, bytes, counts) for the report."""
    FIGURES[key] = value


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:,.0f} MiB"


def _s(key: str) -> str:
    value = FIGURES.get(key)
    return "not measured (the scenario did not get that far)" if value is None else f"{value:.1f} s"


def _reads(key: str) -> str:
    value = (FIGURES.get("fanout_reads") or {}).get(key)
    return "not measured" if value is None else f"{value:,}"


def render() -> str:
    """The generated section: timings, memory, outcomes."""
    install = None
    if INSTALL_SECONDS_FILE.exists():
        install = float(INSTALL_SECONDS_FILE.read_text().strip() or 0)
    lines = [
        BEGIN,
        "",
        f"Last run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}, as {'root' if os.geteuid() == 0 else 'an ordinary user'}.",
        "",
        "| what | measured |",
        "|---|---|",
        f"| install of `.venv-distributed` (the last time make ran pip; warm cache) | "
        f"{'n/a (already installed)' if install is None else f'{install:.0f} s'} |",
        f"| PostgreSQL + Redis up | {_s('servers_seconds')} |",
        f"| `airflow db migrate` on PostgreSQL | {_s('db_migrate_seconds')} |",
        f"| 7 Airflow components up and ready | {_s('components_seconds')} |",
        f"| start-up, total | {_s('startup_seconds')} |",
        f"| fan-out: {FIGURES.get('fanout_tasks', '?')} mapped starts, trigger to run end | {_s('fanout_seconds')} |",
        f"| fan-out: OMS reads of the waits in workers (one show each per poll) | {_reads('worker_shows')} |",
        f"| fan-out: OMS reads of the waits in triggerers (shared poller: list pages, then shows) | "
        f"{_reads('lists')} lists + {_reads('deferred_shows')} shows |",
        f"| worker `kill -9` to the task leaving `running` (heartbeat timeout "
        f"{FIGURES.get('heartbeat_timeout', '?')} s) | {_s('worker_loss_detection_seconds')} |",
        f"| worker `kill -9` to the retry running on the other worker | {_s('worker_loss_retry_running_seconds')} |",
        f"| triggerer `kill -9` to its trigger held by the other one (threshold "
        f"{FIGURES.get('triggerer_threshold', '?')} s, heartbeat {FIGURES.get('triggerer_heartbeat', '?')} s) | "
        f"{_s('triggerer_failover_seconds')} |",
        f"| deadline task: operator timeout {FIGURES.get('deadline_timeout', '?')} s, paused after | "
        f"{_s('deadline_paused_after_seconds')} |",
        f"| OMS outage (HTTP 503 to every call) | {_s('outage_seconds')} |",
        f"| deferred tasks marked failed (REST API) to both triggers' `on_kill` done (one paused its OMS task) | "
        f"{_s('mark_failed_to_on_kill_seconds')} |",
        f"| one credential scan of PostgreSQL (`pg_dump`, Fernet tokens decrypted) and Redis, mid-run | "
        f"{_s('in_flight_scan_seconds')} |",
        f"| teardown | {_s('teardown_seconds')} |",
        f"| the pytest session | {_s('session_seconds')} |",
        "",
    ]
    memory = FIGURES.get("memory") or {}
    if memory:
        lines += [
            f"Memory at the fan-out's peak ({memory.get('total', {}).get('processes', '?')} processes; RSS counts "
            "shared pages once per process, PSS shares them out):",
            "",
            "| component | processes | RSS | PSS |",
            "|---|---|---|---|",
        ]
        for name, entry in memory.items():
            lines.append(f"| {name} | {entry['processes']} | {_mib(entry['rss'])} | {_mib(entry['pss'])} |")
        lines.append("")
    if OUTCOMES:
        lines += ["| scenario | outcome |", "|---|---|"]
        lines += [f"| {name} | {outcome} |" for name, outcome in OUTCOMES.items()]
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def write_report(raw_path: Path | None) -> None:
    """Rewrite the generated section of docs/deployment.md and, if given, the raw figures as JSON."""
    if raw_path is not None:
        raw_path.write_text(json.dumps({"figures": FIGURES, "outcomes": OUTCOMES}, indent=1, default=str))
    section = render()
    text = DOC.read_text() if DOC.exists() else "# Deployment\n"
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text)
