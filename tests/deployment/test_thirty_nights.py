"""
Thirty-one nights of the nightly example (`dags/example_oms_nightly_migration.py`) under a real scheduler.

The deployment of tests/deployment/airflow_deployment.py (api-server, scheduler, dag-processor, triggerer,
LocalExecutor on SQLite) catches up 31 consecutive nights, six at a time, against the OMS emulator in this
process. The world moves on as the nights come: a night's objects (one at midnight, one at noon, one in the last
second of the day) appear in the source bucket when the scheduler creates the run of that day, with that day's
modification times, so each night's ``migrate_since`` selects by day as it would in production; OMS tasks are
moved back to the night they belong to once they finished, so the housekeeping sees them as old as they would be.

Faults on some nights: objects that fail once (a failed-objects-only restart recovers them), the triggerer killed
while a night waits in it (a new one takes over), OMS answering 503 for a while, and one night whose task fails
for good (an object that never migrates). The test then checks that every object landed, that each successful
night's asset event reached the consumer DAG exactly once with the figures of what landed, that no OMS task was
created twice, that the OMS task list stayed short, and that the failed night failed once and clearly while the
later nights still ran.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.testing import OMSEmulator
from tests.deployment.airflow_deployment import AirflowDeployment, DeploymentError, running_deployment
from tests.helpers import create_sample_task

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "dags" / "example_oms_nightly_migration.py"
PRODUCER, CONSUMER = "example_oms_nightly_migration", "example_oms_nightly_consumer"
MIGRATE, HOUSEKEEPING = "migrate_changes", "delete_old_tasks"
CONN_ID = "huaweicloud_oms_default"
AK = "NIGHTSAK7Q2W9E4R1T6Y"
SK = "nights-SK-p4Lm8Xc2Vb6Nz1Qw5Er9"
SOURCE = {"conn_type": "aws", "login": "NIGHTS-SOURCE-AK-0001", "password": "NIGHTS-SOURCE-SK-0001"}
SOURCE_BUCKET, DESTINATION_BUCKET, SAVE_PREFIX = "legacy-exports", "warehouse", "landing/"

NIGHTS = 31
#: Nights running at once ([core] max_active_runs_per_dag: the example leaves it to the deployment).
PARALLEL = 6
#: The nights with a fault, 1-based: objects that fail once, the triggerer killed, OMS answering 503, a lost night.
FLAKY, TRIGGERER_KILLED, OUTAGE, DOOMED = 5, 11, 17, 24
OUTAGE_SECONDS = 10.0
#: The example's housekeeping keeps the finished tasks of the last 7 days.
RETENTION = timedelta(days=7)
#: The OMS tasks that may be listed at any moment: the nights of the last 7 days (8 of them when the test runs
#: after midnight), and up to PARALLEL nights that finished after the last housekeeping ran.
RETENTION_BOUND = 8 + PARALLEL
#: Seconds a created or restarted OMS task waits before it runs. Airflow 3.3.2's scheduler fails a task whose
#: trigger fires before the executor has reported the deferral (up to 5 s late, apache/airflow#66374): every wait
#: must last longer than that.
TASK_START_DELAY = 6.0
#: The whole run: the nights, and the consumer's runs after the last one.
RUN_TIMEOUT = 270.0
DOOMED_KEY_NAME = "corrupt.csv"


@dataclass
class Night:
    """One logical date of the nightly DAG: its data interval and the objects written for its day."""

    number: int
    start: datetime
    objects: dict[str, int] = field(default_factory=dict)  # key -> modification time (UNIX seconds)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=1)

    @property
    def ds(self) -> str:
        return self.start.strftime("%Y-%m-%d")

    def owns(self, mtime: int) -> bool:
        """Whether an object modified at ``mtime`` is this night's own (``migrate_since`` < mtime <= its end)."""
        return self.start.timestamp() < mtime <= self.end.timestamp()


def plan_nights(today: datetime) -> list[Night]:
    """The 31 nights before ``today`` (midnight UTC), with three objects a day and the faults' extra objects."""
    nights = []
    for number in range(1, NIGHTS + 1):
        night = Night(number, today - timedelta(days=NIGHTS - number + 1))
        start, day = int(night.start.timestamp()), f"exports/{night.ds}"
        if number > 1:  # the first night's window begins after its midnight: that object was an earlier night's
            night.objects[f"{day}/midnight.csv"] = start
        night.objects[f"{day}/noon.csv"] = start + 12 * 3600
        night.objects[f"{day}/last-second.csv"] = start + 86_400 - 1
        if number == FLAKY:
            night.objects.update({f"{day}/flaky-1.csv": start + 3600, f"{day}/flaky-2.csv": start + 7200})
        if number == DOOMED:
            night.objects[f"{day}/{DOOMED_KEY_NAME}"] = start + 6 * 3600
        nights.append(night)
    return nights


def nightly_dag_for_the_test(folder: Path, first: Night) -> Path:
    """
    A copy of the example with the two knobs a test turns: the first night (and catch-up on), and a poll every
    second instead of every minute. Everything else runs as users read it in the README.
    """
    text = EXAMPLE.read_text()
    substitutions = {
        (
            '    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),\n'
            "    start_date=datetime(2026, 1, 1),\n"
            "    catchup=False,\n"
        ): (
            '    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),\n'
            f"    start_date=datetime({first.start.year}, {first.start.month}, {first.start.day}),\n"
            "    catchup=True,\n"
        ),
        "        poll_interval=60,\n": "        poll_interval=1,\n",
    }
    for old, new in substitutions.items():
        assert text.count(old) == 1, f"the example no longer has {old!r}: update this test's substitutions"
        text = text.replace(old, new)
    path = folder / EXAMPLE.name
    path.write_text(text)
    return path


class MetadataDB:
    """Read-only queries on the deployment's SQLite database, retried while Airflow holds its write lock."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        for _ in range(50):
            try:
                with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)) as db:
                    return db.execute(sql, params).fetchall()
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) and "no such table" not in str(err):
                    raise
                time.sleep(0.1)
        raise DeploymentError(f"the metadata database stayed locked: {sql}")

    def runs(self) -> dict[str, dict[str, Any]]:
        """The producer's runs by the date of their data interval's start: run id, state, interval end."""
        found = {}
        for run_id, state, start, end in self.rows(
            "SELECT run_id, state, data_interval_start, data_interval_end FROM dag_run WHERE dag_id = ?", PRODUCER
        ):
            found[str(start)[:10]] = {"run_id": run_id, "state": state, "end": _utc(end)}
        return found

    def task_instances(self, task_id: str) -> dict[str, tuple[str | None, int]]:
        """The producer's task instances of ``task_id``: run id -> (state, try number)."""
        return {
            run_id: (state, try_number)
            for run_id, state, try_number in self.rows(
                "SELECT run_id, state, try_number FROM task_instance WHERE dag_id = ? AND task_id = ?",
                PRODUCER,
                task_id,
            )
        }


def _utc(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class World:
    """
    What happens outside Airflow while the nights run, in a thread: the day's objects appear when the scheduler
    creates the night of that day, and the OMS task list is watched (every task seen, the longest list).

    The doomed night's object fails for its own OMS task only (a fail rule on that task, added while the task
    waits to start): other nights that select it too, as overlapping windows do, migrate it.
    """

    def __init__(self, nights: list[Night], emulator: OMSEmulator, staging: Path, db: MetadataDB) -> None:
        self.nights, self.emulator, self.staging, self.db = nights, emulator, staging, db
        self.source = emulator.bucket_path(SOURCE_BUCKET)
        self.pending = sorted((mtime, key) for night in nights for key, mtime in night.objects.items())
        self.written: dict[str, float] = {}  # key -> when it appeared (time.time())
        self.tasks: dict[str, dict[str, Any]] = {}  # every OMS task seen: id -> its latest listing
        self.first_seen: dict[str, float] = {}  # id -> when this thread first listed it (time.time())
        self.longest_gap = 0.0  # the longest time between two looks at the list, in seconds
        self.longest_list = 0
        self.doomed_task: str | None = None
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="thirty-nights-world", daemon=True)

    def __enter__(self) -> World:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        doomed_ds = self.nights[DOOMED - 1].ds
        looked = time.time()
        while not self._stop.is_set():
            try:
                ends = [run["end"] for run in self.db.runs().values()]
                if ends:
                    self._write_until(max(ends).timestamp())
                listed = self.emulator.list_tasks()
                now = time.time()
                self.longest_gap, looked = max(self.longest_gap, now - looked), now
                self.longest_list = max(self.longest_list, len(listed))
                for task in listed:
                    task_id = str(task["id"])
                    self.tasks[task_id] = task
                    self.first_seen.setdefault(task_id, now)
                    if self.doomed_task is None and f"nightly migration of {doomed_ds} " in task["description"]:
                        self.doomed_task = task_id
                        pattern = f"exports/{doomed_ds}/{DOOMED_KEY_NAME}"
                        self.emulator.add_fail_rule(pattern, task_id=task_id)
            except Exception as err:  # reported by the test, which fails on it
                self.errors.append(err)
                return
            self._stop.wait(0.1)

    def _write_until(self, moment: float) -> None:
        """Write every object modified up to ``moment``: staged with its mtime, then moved into the bucket."""
        while self.pending and self.pending[0][0] <= moment:
            mtime, key = self.pending.pop(0)
            staged = self.staging / key.replace("/", "_")
            staged.write_text(f"{key}\n")
            os.utime(staged, (mtime, mtime))
            target = self.source / key
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)  # appears whole, with its modification time
            self.written[key] = time.time()


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OMSEmulator]:
    """The emulator, every task waiting TASK_START_DELAY before it runs; ``CONN_ID`` here points at it."""
    with OMSEmulator(tmp_path / "buckets", access_key=AK, secret_key=SK, task_start_delay=TASK_START_DELAY) as emu:
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", emu.airflow_connection_uri_env())
        yield emu


def test_thirty_one_nights_of_the_nightly_example(tmp_path: Path, emulator: OMSEmulator) -> None:
    began = time.monotonic()
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    nights = plan_nights(today)
    emulator.bucket_path(DESTINATION_BUCKET)
    # Another DAG's finished task, a month old: the housekeeping must leave it alone.
    hook = OMSHook(CONN_ID)
    foreign = create_sample_task(emulator, hook, files=1, prefix="other-team/", save_prefix="other-team/")
    emulator.wait_for_status(foreign, {TaskStatus.SUCCEEDED}, timeout=30)
    emulator.backdate_task(foreign, timedelta(days=30).total_seconds())
    (tmp_path / "dag").mkdir()
    (tmp_path / "staging").mkdir()
    (tmp_path / "home").mkdir()
    dag_file = nightly_dag_for_the_test(tmp_path / "dag", nights[0])
    # The flaky night's extra objects fail at each task's first attempt: a failed-objects-only restart recovers them.
    emulator.add_fail_rule(f"exports/{nights[FLAKY - 1].ds}/flaky-*", times=1)
    connections = {CONN_ID: emulator.airflow_connection(), "oms_source": SOURCE}

    config = {
        "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": str(PARALLEL),
        # A killed triggerer's triggers go to a live one once its heartbeat is this old (default 30 s).
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
        # Keep every night's rendered fields (default: the last 30 runs' only), whose migrate_since is checked.
        "AIRFLOW__CORE__MAX_NUM_RENDERED_TI_FIELDS_PER_TASK": "0",
    }
    with running_deployment(tmp_path / "home", [dag_file], connections, config=config) as airflow:
        db = MetadataDB(airflow.home / "airflow.db")
        with World(nights, emulator, tmp_path / "staging", db) as world:
            settled = run_the_nights(airflow, emulator, db, nights, world)
            consumed = wait_for_the_consumer(airflow, db)
        print(f"31 nights settled and consumed {time.monotonic() - began:.0f} s after the test began")
        print(timeline(db))
        assert not world.errors, world.errors
        check_the_nights(Outcome(airflow, emulator, db, nights, world, settled, consumed, foreign))
    print(f"thirty-one nights: {time.monotonic() - began:.0f} s in all")


# -- driving the nights ------------------------------------------------------------------------------------------


def run_the_nights(
    airflow: AirflowDeployment, emulator: OMSEmulator, db: MetadataDB, nights: list[Night], world: World
) -> dict[str, Any]:
    """
    Unpause both DAGs and watch the nights until every one has ended, injecting the faults on their nights and
    moving each finished night's OMS task back to its night; return what was seen.
    """
    deadline = time.monotonic() + RUN_TIMEOUT
    airflow.wait_for("both DAGs to be parsed", lambda: len(db.rows("SELECT dag_id FROM dag")) >= 2, 90)
    for dag_id in (CONSUMER, PRODUCER):  # the consumer first: a paused DAG is not queued by asset events
        airflow.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
    seen: dict[str, Any] = {"snapshots": {}, "killed_at": None, "outage_at": None, "max_running": 0}
    kill_ds, outage_ds = nights[TRIGGERER_KILLED - 1].ds, nights[OUTAGE - 1].ds
    while True:
        runs = db.runs()
        migrate = db.task_instances(MIGRATE)
        seen["max_running"] = max(seen["max_running"], sum(run["state"] == "running" for run in runs.values()))

        def state_of(ds: str, runs: dict[str, dict[str, Any]] = runs, migrate: dict[str, Any] = migrate) -> Any:
            return migrate.get(runs[ds]["run_id"], (None, 0))[0] if ds in runs else None

        if seen["killed_at"] is None and state_of(kill_ds) == "deferred":
            airflow.crash_and_restart("triggerer")
            seen["killed_at"] = time.time()
        if seen["outage_at"] is None and state_of(outage_ds) == "deferred":
            emulator.inject_fault("error", status=503, seconds=OUTAGE_SECONDS)
            seen["outage_at"] = time.time()
        for ds, run in runs.items():
            state = state_of(ds)
            if state in ("success", "failed") and ds not in seen["snapshots"]:
                seen["snapshots"][ds] = backdate_the_nights_task(emulator, world, ds, run["end"])
        # A night waiting for an Airflow retry (5 minutes away) has its outcome for the checks: it was retried.
        planned = [night.ds for night in nights]
        if all(
            ds in runs and (runs[ds]["state"] in ("success", "failed") or state_of(ds) == "up_for_retry")
            for ds in planned
        ):
            seen["runs"], seen["migrate"] = runs, migrate
            return seen
        if world.errors or time.monotonic() > deadline:
            summary = {ds: (run["state"], state_of(ds)) for ds, run in sorted(runs.items())}
            raise DeploymentError(
                f"nights not done after {RUN_TIMEOUT:.0f} s: {summary} {world.errors}{airflow.tails()}"
            )
        airflow.check_running()
        time.sleep(0.5)


def backdate_the_nights_task(emulator: OMSEmulator, world: World, ds: str, end: datetime) -> dict[str, Any] | None:
    """Keep the finished OMS task of night ``ds`` as it ended, then move it back to that night."""
    for task_id, task in world.tasks.items():
        if f"nightly migration of {ds} " in task["description"]:
            final = emulator.get_task(task_id)
            if final["status"] in (TaskStatus.SUCCEEDED, TaskStatus.FAILED):
                emulator.backdate_task(task_id, time.time() - end.timestamp())
            return final
    return None


def wait_for_the_consumer(airflow: AirflowDeployment, db: MetadataDB) -> dict[int, int]:
    """
    Wait until the consumer DAG has consumed every asset event of the nights; return event id -> times consumed.

    On Airflow 3.3.2 (SQLite), an event that lands while the consumer's queue row exists does not move the row's
    time, so the consumer's run takes only the events up to that time and the later one waits for the next event
    (apache/airflow#56050): in production, the next night's. Here the next night is tomorrow, so once the
    consumer is idle, an event posted through the REST API plays its part.
    """

    def unconsumed() -> list[int]:
        consumed = {row[0] for row in db.rows("SELECT event_id FROM dagrun_asset_event")}
        events = [row[0] for row in db.rows("SELECT id FROM asset_event WHERE source_dag_id = ?", PRODUCER)]
        return [event_id for event_id in events if event_id not in consumed]

    def consumer_idle() -> bool:
        busy = db.rows("SELECT 1 FROM dag_run WHERE dag_id = ? AND state NOT IN ('success', 'failed')", CONSUMER)
        queued = db.rows("SELECT 1 FROM asset_dag_run_queue WHERE target_dag_id = ?", CONSUMER)
        return not busy and not queued

    try:
        airflow.wait_for("the consumer DAG to be idle", consumer_idle, 60, interval=1)
        waiting = unconsumed()
        print(f"{len(waiting)} asset event(s) wait for the next event (apache/airflow#56050): {waiting}")
        if waiting:
            (asset_id,) = db.rows("SELECT id FROM asset WHERE uri = ?", "obs://warehouse/landing")[0]
            next_night = {"migration_task_id": None, "successful_num": 0, "note": "stands in for the next night"}
            airflow.request("POST", "/api/v2/assets/events", json={"asset_id": asset_id, "extra": next_night})
            airflow.wait_for("every event to be consumed", lambda: not unconsumed() and consumer_idle(), 60)
    except DeploymentError as err:  # the check of the events says what is missing
        print(f"the consumer did not consume every event: {str(err)[:300]}")
    counts: dict[int, int] = {}
    for (event_id,) in db.rows("SELECT event_id FROM dagrun_asset_event"):
        counts[event_id] = counts.get(event_id, 0) + 1
    return counts


# -- what must hold ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """Everything the checks read: the deployment, the emulator, the nights and what was seen while they ran."""

    airflow: AirflowDeployment
    emulator: OMSEmulator
    db: MetadataDB
    nights: list[Night]
    world: World
    settled: dict[str, Any]
    consumed: dict[int, int]
    foreign: str

    @property
    def runs(self) -> dict[str, dict[str, Any]]:
        return dict(self.settled["runs"])

    def try_of(self, night: Night) -> tuple[str | None, int]:
        """The migrate task instance of a night: (state, try number)."""
        state, try_number = self.settled["migrate"][self.runs[night.ds]["run_id"]]
        return state, try_number

    def own_tasks(self) -> dict[str, dict[str, Any]]:
        """Every OMS task the nights created, as last listed."""
        return {key: task for key, task in self.world.tasks.items() if "nightly migration of " in task["description"]}


def check_the_later_nights_ran(outcome: Outcome) -> None:
    doomed = outcome.nights[DOOMED - 1]
    states = {ds: run["state"] for ds, run in sorted(outcome.runs.items()) if ds != doomed.ds}
    errors = {
        ds: error_lines(task_log(outcome.airflow, outcome.runs[ds]["run_id"], MIGRATE, 1))
        for ds, state in states.items()
        if state != "success"
    }
    assert states == {night.ds: "success" for night in outcome.nights if night is not doomed}, (states, errors)
    print(f"at most {outcome.settled['max_running']} nights ran at once")
    assert outcome.settled["max_running"] > 1, "the nights ran one at a time"


def check_the_doomed_night_failed_once_clearly(outcome: Outcome) -> None:
    doomed = outcome.nights[DOOMED - 1]
    run = outcome.runs[doomed.ds]
    assert outcome.world.doomed_task is not None, "the doomed night created no OMS task"
    log = task_log(outcome.airflow, run["run_id"], MIGRATE, 1)
    assert f"OMS migration task {outcome.world.doomed_task} failed" in log, log[-4000:]
    assert "1 objects failed" in log and "after 2 restart(s) of the failed objects" in log, log[-4000:]
    # Failed for good: one try, no Airflow retry of a night whose objects keep failing after the restarts.
    assert (run["state"], outcome.try_of(doomed)) == ("failed", ("failed", 1)), (
        f"{doomed.ds}: DAG run {run['state']}, {MIGRATE} (state, try) {outcome.try_of(doomed)}; want one failed try"
    )


def check_one_oms_task_a_night(outcome: Outcome) -> None:
    per_night: dict[str, list[str]] = {}
    for task_id, task in outcome.own_tasks().items():
        ds = task["description"].split("nightly migration of ")[1].split()[0]
        per_night.setdefault(ds, []).append(task_id)
    assert {ds: len(ids) for ds, ids in per_night.items()} == {night.ds: 1 for night in outcome.nights}, per_night
    markers = [task["description"].split()[-1] for task in outcome.own_tasks().values()]
    assert len(set(markers)) == NIGHTS and all(marker.startswith("airflow-") for marker in markers), markers
    assert outcome.emulator.applied_creates == NIGHTS + 1, outcome.emulator.applied_creates  # + the other DAG's


def check_each_window_begins_with_its_day(outcome: Outcome) -> None:
    """Each night asked OMS for what changed since its day began, and its day's objects were there to be listed."""
    rendered = {
        run_id: json.loads(fields)["task_definition"]["migrate_since"]
        for run_id, fields in outcome.db.rows(
            "SELECT run_id, rendered_fields FROM rendered_task_instance_fields WHERE dag_id = ? AND task_id = ?",
            PRODUCER,
            MIGRATE,
        )
    }
    since = {night.ds: rendered.get(outcome.runs[night.ds]["run_id"]) for night in outcome.nights}
    assert since == {night.ds: str(int(night.start.timestamp())) for night in outcome.nights}, since
    # A task lists its source TASK_START_DELAY after its create, which this test saw at most longest_gap late.
    world = outcome.world
    assert world.longest_gap < TASK_START_DELAY / 2, f"the test looked at OMS every {world.longest_gap:.1f} s only"
    created = {
        task["description"].split("nightly migration of ")[1].split()[0]: world.first_seen[task_id]
        for task_id, task in outcome.own_tasks().items()
    }
    assert set(created) == {night.ds for night in outcome.nights}, sorted(created)
    late = {
        key: (night.ds, round(world.written[key] - created[night.ds], 1))
        for night in outcome.nights
        for key, mtime in night.objects.items()
        if night.owns(mtime) and world.written[key] >= created[night.ds] - world.longest_gap + TASK_START_DELAY
    }
    # Written after the night listed its source: its window missed its own day (a later window may have caught them
    # when other nights ran ahead).
    assert not late, f"objects of a night's own day that were not there when it listed its source: {late}"


def check_every_object_landed(outcome: Outcome) -> None:
    destination = outcome.emulator.bucket_path(DESTINATION_BUCKET) / SAVE_PREFIX
    doomed_key = f"exports/{outcome.nights[DOOMED - 1].ds}/{DOOMED_KEY_NAME}"
    written = {key for night in outcome.nights for key in night.objects}
    assert set(outcome.world.written) == written, sorted(written - set(outcome.world.written))
    missing = sorted(
        key
        for key in written - {doomed_key}
        if not (destination / key).is_file() or (destination / key).read_text() != f"{key}\n"
    )
    assert not missing, f"{len(missing)} objects never landed: {missing}"
    boundary = [key for key in written if key.endswith("/midnight.csv")]
    print(f"{len(written)} objects written, {len(boundary)} of them at midnight; all landed")


def check_each_event_consumed_once_with_its_figures(outcome: Outcome) -> None:
    db, doomed = outcome.db, outcome.nights[DOOMED - 1]
    events = db.rows("SELECT id, source_run_id, extra FROM asset_event WHERE source_dag_id = ?", PRODUCER)
    night_of = {run["run_id"]: ds for ds, run in outcome.runs.items()}
    by_ds = {night.ds: night for night in outcome.nights}
    event_nights = sorted(night_of[source_run] for _, source_run, _ in events)
    assert event_nights == sorted(ds for ds in by_ds if ds != doomed.ds), event_nights
    consumed = {event_id: outcome.consumed.get(event_id, 0) for event_id, _, _ in events}
    assert consumed == {event_id: 1 for event_id, _, _ in events}, consumed
    consumer_runs = db.rows("SELECT state FROM dag_run WHERE dag_id = ?", CONSUMER)
    assert consumer_runs and all(state == "success" for (state,) in consumer_runs), consumer_runs
    print(f"{len(events)} asset events, consumed by {len(consumer_runs)} runs of the consumer")
    overlaps, restarted = 0, {}
    for _, source_run, extra_text in events:
        ds = night_of[source_run]
        night, extra, task = by_ds[ds], json.loads(extra_text), outcome.settled["snapshots"][ds]
        assert extra["migration_task_id"] == str(task["id"]), (ds, extra, task)
        own = [key for key, mtime in night.objects.items() if night.owns(mtime)]
        selected = task["total_num"]
        # Its own day's objects were all in its window; anything more is the overlap with the next nights.
        assert selected >= len(own), (ds, own, task)
        assert figures(extra) == (selected, selected, 0), (ds, extra, task)
        overlaps += selected - len(own)
        restarted[ds] = extra.get("restarts")
    assert restarted[outcome.nights[FLAKY - 1].ds] >= 1, restarted
    print(f"{overlaps} objects migrated again by a later window (overlaps, allowed)")


def check_the_faults_happened(outcome: Outcome) -> None:
    killed = outcome.nights[TRIGGERER_KILLED - 1]
    assert outcome.settled["killed_at"] is not None, "the triggerer was never killed"
    assert outcome.try_of(killed) == ("success", 1), outcome.try_of(killed)
    assert outcome.settled["outage_at"] is not None, "no outage was injected"
    answered_503 = [r for r in outcome.emulator.requests if r.status == 503]
    assert answered_503, "OMS never answered 503"
    print(f"OMS answered 503 to {len(answered_503)} requests; the triggerer was killed once")


def check_the_task_list_stayed_short(outcome: Outcome) -> None:
    left = {str(task["id"]): task for task in outcome.emulator.list_tasks()}
    assert outcome.foreign in left, "the housekeeping deleted another DAG's task"
    kept = [task_id for task_id in left if task_id in outcome.own_tasks()]
    print(f"OMS listed at most {outcome.world.longest_list} tasks; {len(kept)} of the nights' are left")
    assert outcome.world.longest_list <= RETENTION_BOUND + 1, outcome.world.longest_list  # + the other DAG's
    assert len(kept) <= RETENTION_BOUND, (len(kept), kept)


#: What must hold after the nights, each checked on its own so that one failure does not hide another.
CHECKS = (
    check_the_later_nights_ran,
    check_the_doomed_night_failed_once_clearly,
    check_one_oms_task_a_night,
    check_each_window_begins_with_its_day,
    check_every_object_landed,
    check_each_event_consumed_once_with_its_figures,
    check_the_faults_happened,
    check_the_task_list_stayed_short,
)


def check_the_nights(outcome: Outcome) -> None:
    """Run every check; fail with each one that failed."""
    failed = {}
    for check in CHECKS:
        try:
            check(outcome)
        except Exception as err:  # an assertion, or what a broken night left behind
            failed[check.__name__] = f"{type(err).__name__}: {str(err)[:3000]}"
    print(f"checks passed: {[c.__name__ for c in CHECKS if c.__name__ not in failed]}")
    assert not failed, "".join(f"\n----- {name} -----\n{message}" for name, message in failed.items())


def figures(extra: dict[str, Any]) -> tuple[Any, Any, Any]:
    """A night's figures from its event: objects selected, objects that landed (copied or already there), failed."""
    total = extra.get("total_num")
    landed = (extra.get("successful_num") or 0) + (extra.get("skipped_num") or 0)
    return total, landed, extra.get("failed_num")


def timeline(db: MetadataDB) -> str:
    """When the nights ran: the first queued, the last ended, and how long a night took."""
    spans = [
        (_utc(queued), _utc(start), _utc(end))
        for queued, start, end in db.rows(
            "SELECT queued_at, start_date, end_date FROM dag_run WHERE dag_id = ? AND end_date IS NOT NULL", PRODUCER
        )
    ]
    if not spans:
        return "no night ended"
    first, last = min(span[0] for span in spans), max(span[2] for span in spans)
    took = sorted((end - start).total_seconds() for _, start, end in spans)
    return (
        f"nights from the first queued to the last ended: {(last - first).total_seconds():.0f} s; a night took "
        f"{took[0]:.0f} to {took[-1]:.0f} s (median {took[len(took) // 2]:.0f} s)"
    )


def error_lines(log: str) -> list[str]:
    """The warnings and errors of a task log (JSON lines), with the exception's message."""
    found = []
    for line in log.splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if event.get("level") in ("warning", "error", "critical"):
                detail = event.get("error_detail") or [{}]
                found.append(f"{event.get('event')} {detail[0].get('exc_type', '')} {detail[0].get('exc_value', '')}")
    return found


def task_log(airflow: AirflowDeployment, run_id: str, task_id: str, attempt: int) -> str:
    """A task try's log file (its worker part), as written by the task runner."""
    path = airflow.home / "logs" / f"dag_id={PRODUCER}" / f"run_id={run_id}" / f"task_id={task_id}"
    found = path / f"attempt={attempt}.log"
    assert found.is_file(), f"no {found}; there are {sorted(p.name for p in path.iterdir()) if path.is_dir() else []}"
    return found.read_text(errors="replace")
