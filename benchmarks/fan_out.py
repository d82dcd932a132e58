"""
Fan-out: one DAG starts many migration tasks with dynamic task mapping, against the same DAG with a no-op.

Both DAGs map over the same task ids (read from a JSON file next to the DAG file) and run with
``airflow dags test`` in a temporary AIRFLOW_HOME (SQLite), which runs the mapped task instances one after
the other in one process. The difference per mapped task is what the provider adds to Airflow's own cost.
The emulator runs in this process; its tasks stay "waiting" once started (an hour's ``task_start_delay``).
"""

from __future__ import annotations

import json
import re
import statistics
import textwrap
import time
from datetime import datetime
from pathlib import Path

from support import Section, Sizes, Table, Target, sample_task_body, use_connection

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.testing import OMSEmulator
from airflow_provider_oms.testing.airflow_runner import AirflowTestEnvironment, DagRunResult

CONN_ID = "oms_bench_fan_out"
NOOP_DAG = "bench_fan_out_noop"
OMS_DAG = "bench_fan_out_start_migration"
IDS_FILE = "fan_out_task_ids.json"
LABELS = {NOOP_DAG: "no-op operator (Airflow's floor)", OMS_DAG: "StartMigrationTaskOperator"}

DAG_FILE = textwrap.dedent(
    f'''
    """Benchmark DAGs (written by benchmarks/fan_out.py): the same mapping, a no-op against the provider."""

    from __future__ import annotations

    import json
    from datetime import datetime
    from pathlib import Path

    from airflow.sdk import DAG, BaseOperator

    from airflow_provider_oms.operators.oms import StartMigrationTaskOperator

    TASK_IDS = json.loads((Path(__file__).parent / "{IDS_FILE}").read_text())


    class NoopMigrationOperator(BaseOperator):
        """Takes the same mapped argument and does nothing: Airflow's own cost of a mapped task."""

        template_fields = ("migration_task_id",)

        def __init__(self, *, migration_task_id, **kwargs):
            super().__init__(**kwargs)
            self.migration_task_id = migration_task_id

        def execute(self, context):
            return None


    with DAG("{NOOP_DAG}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
        NoopMigrationOperator.partial(task_id="noop").expand(migration_task_id=TASK_IDS)

    with DAG("{OMS_DAG}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
        StartMigrationTaskOperator.partial(
            task_id="start_migration", oms_conn_id="{CONN_ID}", wait_for_completion=False
        ).expand(migration_task_id=TASK_IDS)
    '''
).lstrip()

_RUN_DURATION_RE = re.compile(r"run_duration=(?P<seconds>[0-9.]+)")
_LINE_RE = re.compile(r"^(?P<at>\d{4}-\d\d-\d\dT\S+Z) ")
_START_RE = re.compile(r"\[DAG TEST\] starting task_id=\S+ map_index=(?P<index>-?\d+)")
_END_RE = re.compile(r"\[DAG TEST\] end task task_id=\S+ map_index=(?P<index>-?\d+)")
#: Phases of a task instance, each ending at the first line with this text after the instance started.
PHASES = {
    "before execute (start, connection, rendering)": "::endgroup::",
    "execute": "::group::Post Execute",
    "after execute (XCom, state)": None,
}


def _instances(output: str) -> list[dict[str, float]]:
    """Each mapped task instance's phases in seconds (see :data:`PHASES`), and ``total``."""
    instances = []
    current: dict[str, datetime] | None = None
    for line in output.splitlines():
        at_match = _LINE_RE.match(line)
        if not at_match:
            continue
        at = datetime.fromisoformat(at_match["at"].replace("Z", "+00:00"))
        if _START_RE.search(line):
            current = {"start": at}
        elif current is None:
            continue
        elif _END_RE.search(line):
            marks = [current["start"], *(current.get(marker) for marker in PHASES.values() if marker), at]
            if all(mark is not None for mark in marks):
                instance = {
                    phase: (marks[number + 1] - marks[number]).total_seconds()  # type: ignore[operator]
                    for number, phase in enumerate(PHASES)
                }
                instance["total"] = (at - current["start"]).total_seconds()
                instances.append(instance)
            current = None
        else:
            for marker in PHASES.values():
                if marker and marker in line and marker not in current:
                    current[marker] = at
                    break
    return instances


class Run:
    """One ``airflow dags test`` of a fan-out DAG."""

    def __init__(self, result: DagRunResult, wall: float) -> None:
        self.result = result
        self.wall = wall
        found = _RUN_DURATION_RE.findall(result.output)
        self.run_duration = float(found[-1]) if found else wall
        self.instances = _instances(result.output)


def run(sizes: Sizes, scratch: Path) -> Section:
    """Measure with ``sizes.mapped`` mapped task instances per DAG."""
    count = sizes.mapped
    section = Section(
        title="Fan-out: dynamic task mapping",
        method=(
            f"Two DAGs map over the same {count} OMS task ids with `.partial(...).expand(migration_task_id=...)`: "
            "`StartMigrationTaskOperator(wait_for_completion=False)` and a no-op operator taking the same argument. "
            "Each runs with `airflow dags test` in a temporary AIRFLOW_HOME (SQLite; the mapped instances run "
            "one after the other in one process). "
            + ("The two DAGs" if sizes.quick else "After one untimed warm-up run of the no-op DAG, the two DAGs")
            + f" alternate, {sizes.fan_out_runs} run(s) each; the OMS tasks are paused again before each run of the "
            "provider's DAG. Per mapped task: the shortest DAG run duration (Airflow's `run_duration`) divided by "
            "the number of instances, and the median of every instance's start-to-end time from the `[DAG TEST]` "
            "log lines. The emulator runs in the benchmark process."
        ),
    )
    dags = scratch / "fan-out-dags"
    dags.mkdir(parents=True, exist_ok=True)
    with OMSEmulator(scratch / "fan-out-data", task_start_delay=3600) as emulator:
        use_connection(CONN_ID, emulator.airflow_connection())
        hook = OMSHook(oms_conn_id=CONN_ID)
        ids = []
        for _ in range(count):
            task_id = str(hook.create_task(sample_task_body())["id"])
            hook.stop_task(task_id)
            ids.append(task_id)
        hook.close()
        (dags / IDS_FILE).write_text(json.dumps(ids))
        (dags / "bench_fan_out.py").write_text(DAG_FILE)
        airflow = AirflowTestEnvironment(scratch / "fan-out-airflow", dags, {CONN_ID: emulator.airflow_connection()})
        started = time.monotonic()
        airflow.migrate()
        migrate_seconds = time.monotonic() - started

        timeout = 120 + 10 * count
        if not sizes.quick:
            airflow.dags_test(NOOP_DAG, timeout=timeout)  # warm-up: the first run of a fresh AIRFLOW_HOME is slower
        runs: dict[str, list[Run]] = {NOOP_DAG: [], OMS_DAG: []}
        for number in range(sizes.fan_out_runs):
            for dag_id in (NOOP_DAG, OMS_DAG):
                if dag_id == OMS_DAG:
                    for task_id in ids:
                        if emulator.get_task(task_id)["status"] != TaskStatus.PAUSED:
                            emulator.pause_task(task_id)
                emulator.reset_requests()
                started = time.monotonic()
                result = airflow.dags_test(dag_id, timeout=timeout)
                runs[dag_id].append(Run(result, time.monotonic() - started))
                (scratch / f"fan-out-{dag_id}-{number + 1}.log").write_text(result.output)
            requests = emulator.requests
            connections = emulator.connections_opened
            statuses = [emulator.get_task(task_id)["status"] for task_id in ids]

    rows = []
    best: dict[str, Run] = {}
    medians: dict[str, dict[str, float]] = {}
    for dag_id, dag_runs in runs.items():
        best[dag_id] = min(dag_runs, key=lambda one: one.run_duration)
        instances = [instance for one in dag_runs for instance in one.instances]
        medians[dag_id] = {
            phase: statistics.median(instance[phase] for instance in instances) if instances else float("nan")
            for phase in [*PHASES, "total"]
        }
        states = sorted({one.result.state or f"exit code {one.result.returncode}" for one in dag_runs})
        rows.append(
            [
                LABELS[dag_id],
                ", ".join(states),
                ", ".join(f"{one.wall:.1f} s" for one in dag_runs),
                ", ".join(f"{one.run_duration:.1f} s" for one in dag_runs),
                f"{best[dag_id].run_duration / count * 1000:,.0f} ms",
                f"{medians[dag_id]['total'] * 1000:,.0f} ms",
                f"{len(instances) // len(dag_runs)}",
            ]
        )
    section.tables.append(
        Table(
            [
                "DAG",
                "state",
                "`airflow dags test` wall",
                "DAG run duration",
                "per mapped task (shortest run / n)",
                "median mapped task",
                "instances per run",
            ],
            rows,
        )
    )
    section.tables.append(
        Table(
            ["phase of a mapped task instance (median)", LABELS[NOOP_DAG], LABELS[OMS_DAG], "difference"],
            [
                [
                    phase,
                    f"{medians[NOOP_DAG][phase] * 1000:,.1f} ms",
                    f"{medians[OMS_DAG][phase] * 1000:,.1f} ms",
                    f"{(medians[OMS_DAG][phase] - medians[NOOP_DAG][phase]) * 1000:+,.1f} ms",
                ]
                for phase in [*PHASES, "total"]
            ],
            title="Where a mapped task's time goes, from the timestamps of the task runner's log lines",
        )
    )
    noop, oms = best[NOOP_DAG], best[OMS_DAG]
    starts = sum(record.path.endswith("/start") for record in requests)
    reads = sum(record.method == "GET" for record in requests)
    started_count = sum(status == TaskStatus.WAITING for status in statuses)
    section.notes.append(
        f"The provider's DAG (last run) sent {starts} starts and {reads} reads over {connections} TCP connections for "
        f"{count} mapped tasks (one hook, so one connection, per task instance); {started_count} of {count} OMS "
        f"tasks were started. `airflow db migrate` took {migrate_seconds:.1f} s beforehand (not counted)."
    )
    if not all(one.result.succeeded for dag_runs in runs.values() for one in dag_runs):
        section.notes.append("A DAG run did not succeed: run with `--keep` and see its log in the scratch folder.")
    extra_per_task = (oms.run_duration - noop.run_duration) / count
    median_extra = medians[OMS_DAG]["total"] - medians[NOOP_DAG]["total"]
    section.targets.append(
        Target(
            "wall time the provider adds per mapped task (no target: reported)",
            f"{median_extra * 1000:+,.0f} ms by median instance, {extra_per_task * 1000:+,.0f} ms by shortest run "
            f"({oms.run_duration / noop.run_duration:.2f}x Airflow's floor)",
            "reported against Airflow's own cost",
            None,
            "By phase (medians): "
            + ", ".join(
                f"{phase} {(medians[OMS_DAG][phase] - medians[NOOP_DAG][phase]) * 1000:+,.0f} ms" for phase in PHASES
            )
            + ". The execute phase is the provider's own work (reading the connection, the console link, the start "
            "and the read); the others are Airflow's, for the operator's five template fields and its returned XCom.",
        )
    )
    return section
