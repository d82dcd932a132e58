"""
StartMigrationTaskOperator in a real distributed deployment (tests/distributed/cluster.py): CeleryExecutor,
PostgreSQL, Redis, two Celery workers, two triggerers, against the OMS emulator in this process.

Every scenario is judged on what happened: Airflow's own tables (task_instance.hostname, trigger and job rows),
the emulator's counters and request records (starts applied, starts refused, source keys sent), the migrated
files compared byte for byte; and, where only a log can tell which path the code took (an outage waited out,
a trigger run by the triggerer that took it over, an on_kill), the task's and trigger's own log files. The
tests run in file order and share the deployment; the last one stops it and checks that nothing is left.
`make test-distributed` runs them (docs/deployment.md).
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.testing import OMSEmulator
from tests.distributed import figures
from tests.distributed.cluster import TRIGGERERS, WORKERS, DistributedDeployment, processes_marked
from tests.distributed.conftest import CONN_ID, SOURCE_FIELDS
from tests.distributed.dags.oms_distributed_dags import DEADLINE_SECONDS
from tests.distributed.scan import SOURCE_SECRETS, Scan, leaks, scan

SRC, DST, SAVE_PREFIX = "src", "dst", "out/"
FANOUT = 20  # per mode: 40 mapped starts in one DAG run
FANOUT_FILES = 10
WORKER_LOSS_FILES = 75
TRIGGERER_LOSS_FILES = 35
DEADLINE_FILES = 300
OUTAGE_FILES = 95
OUTAGE_SECONDS = 60
#: Long enough that both mark-failed migrations still run when the person marks their Airflow tasks failed.
MARK_FAILED_FILES = 90
#: How long after the deadline the paused task may be seen: trigger event, scheduling, resumption on a worker.
DEADLINE_SLACK = 17


@pytest.fixture(scope="module")
def hook(emulator) -> OMSHook:
    """This process's hook on the emulator, through the same connection the components use."""
    return OMSHook(CONN_ID)


@pytest.fixture(autouse=True)
def outcome(request) -> Iterator[None]:
    """Note each scenario's outcome for the generated report."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None:
        figures.OUTCOMES[request.node.name] = "passed" if report.passed else f"FAILED: {_first_line(report)}"


def _first_line(report: Any) -> str:
    """The first line of a failure's message (its assertion), short enough for a table cell."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = str(crash.message if crash is not None else report.longrepr or "?")
    return text.splitlines()[0][:200].replace("|", "/")


# -- OMS side ---------------------------------------------------------------------------------------


def make_tasks(emulator: OMSEmulator, hook: OMSHook, name: str, count: int, files: int) -> list[str]:
    """Create ``count`` paused OMS tasks, each copying its own folder of ``files`` random files."""
    rng = random.Random(name)  # noqa: S311 - test data, reproducible per scenario
    task_ids = []
    for number in range(count):
        prefix = f"{name}/{number:02d}/"
        folder = emulator.bucket_path(SRC) / prefix
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(files):
            (folder / f"object-{index:03d}.bin").write_bytes(rng.randbytes(rng.randint(1, 64 * 1024)))
        emulator.bucket_path(DST)
        body = {
            "task_type": "prefix",
            "src_node": {"region": "local", "bucket": SRC, "object_key": [prefix], "ak": "SRC-AK", "sk": "SRC-SK"},
            "dst_node": {"region": "local", "bucket": DST, "save_prefix": SAVE_PREFIX, "ak": "DST-AK", "sk": "DST-SK"},
        }
        task_id = str(hook.create_task(body)["id"])
        hook.stop_task(task_id)
        task_ids.append(task_id)
    for task_id in task_ids:
        emulator.wait_for_status(task_id, {TaskStatus.PAUSED}, timeout=30)
    return task_ids


def prefix_of(emulator: OMSEmulator, task_id: str) -> str:
    return str(emulator.get_task(task_id)["src_node"]["object_key"][0])


def assert_copied(emulator: OMSEmulator, task_ids: list[str]) -> None:
    """Every task's destination folder holds exactly its source folder's files, byte for byte."""
    for task_id in task_ids:
        prefix = prefix_of(emulator, task_id)
        source = emulator.bucket_path(SRC) / prefix
        copy = emulator.bucket_path(DST) / SAVE_PREFIX / prefix
        names = sorted(p.relative_to(source) for p in source.rglob("*") if p.is_file())
        copied = sorted(p.relative_to(copy) for p in copy.rglob("*") if p.is_file()) if copy.is_dir() else []
        assert copied == names, f"OMS task {task_id}: {copy} holds {len(copied)} files, {source} {len(names)}"
        for name in names:
            assert (copy / name).read_bytes() == (source / name).read_bytes(), f"{copy / name} differs"


def start_answers(emulator: OMSEmulator, task_id: str) -> list[tuple[int, str | None]]:
    """The (status, error code) of every start request the emulator got for a task, in order."""
    return [
        (record.status, record.error_code)
        for record in emulator.requests
        if record.method == "POST" and record.path.endswith(f"/tasks/{task_id}/start")
    ]


def reads_during(requests: list[Any], worker_ids: list[str], deferred_ids: list[str]) -> dict[str, int]:
    """Count the reads of a fan-out: list calls, and shows of the tasks waited for in workers and in triggerers."""

    def shows(task_ids: list[str]) -> int:
        paths = {f"/tasks/{task_id}" for task_id in task_ids}
        return sum(
            record.method == "GET" and record.path[record.path.rfind("/tasks/") :] in paths for record in requests
        )

    return {
        "lists": sum(record.method == "GET" and record.path.endswith("/tasks") for record in requests),
        "worker_shows": shows(worker_ids),
        "deferred_shows": shows(deferred_ids),
    }


def assert_started_once(emulator: OMSEmulator, task_ids: list[str], applied_before: int) -> None:
    assert emulator.applied_starts - applied_before == len(task_ids), (
        f"{emulator.applied_starts - applied_before} starts applied for {len(task_ids)} OMS tasks"
    )
    for task_id in task_ids:
        applied = [answer for answer in start_answers(emulator, task_id) if answer[0] == 200]
        assert len(applied) == 1, f"OMS task {task_id}: start answers {start_answers(emulator, task_id)}"


# -- Airflow side -----------------------------------------------------------------------------------


def by_task(rows: list[dict[str, Any]], task_id: str) -> list[dict[str, Any]]:
    return [row for row in rows if row["task_id"] == task_id]


def wait_until(deployment: DistributedDeployment, what: str, condition: Any, timeout: float) -> Any:
    return deployment.wait_for(what, condition, timeout, interval=0.5)


def ti_log_folder(deployment: DistributedDeployment, dag_id: str, run_id: str, task_id: str, map_index: int) -> Path:
    """Where the task's and its triggers' logs of one task instance lie (Airflow's default log file template)."""
    folder = deployment.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    return folder / f"map_index={map_index}" if map_index >= 0 else folder


def task_log(deployment: DistributedDeployment, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """What the task's first try logged in its worker."""
    path = ti_log_folder(deployment, dag_id, run_id, task_id, map_index) / "attempt=1.log"
    return path.read_text(errors="replace") if path.exists() else ""


def trigger_logs(
    deployment: DistributedDeployment, dag_id: str, run_id: str, task_id: str, map_index: int = -1
) -> dict[str, str]:
    """Triggerer (component name) -> what the triggers of the task's first try logged there."""
    hosts = dict(deployment.query("SELECT id, hostname FROM job WHERE job_type = 'TriggererJob'"))
    logs: dict[str, str] = {}
    for path in ti_log_folder(deployment, dag_id, run_id, task_id, map_index).glob("attempt=1.log.trigger.*.log"):
        job_id = int(path.name.removesuffix(".log").rpartition(".")[2])
        host = hosts.get(job_id, f"job {job_id}")
        logs[host] = logs.get(host, "") + path.read_text(errors="replace")
    return logs


def assert_nothing_leaked(found: Scan, when: str) -> None:
    """No credential anywhere but Fernet-encrypted in the connection table, where the source connection lives."""
    assert not found.leaks, f"credentials {when}: {found.leaks}"
    # The scan reads what Fernet encrypted: the source connection's keys are there, and only decrypted.
    assert found.found.get("connection (decrypted)") == SOURCE_SECRETS, f"{when}: {found.found}, {found.decrypted}"


def assert_source_keys_sent(sent: dict[str, list[str]], task_ids: list[str]) -> None:
    """Every start of these OMS tasks carried the source connection's AK, SK and session token."""
    missing = {task_id: sent.get(task_id) for task_id in task_ids if sent.get(task_id) != sorted(SOURCE_FIELDS)}
    assert not missing, f"starts without the source keys (fields sent with them, by OMS task): {missing}"


# -- scenarios --------------------------------------------------------------------------------------


def test_deployment_listens_on_loopback_only(deployment: DistributedDeployment) -> None:
    listening = deployment.listening()
    assert {address for address, _ in listening} == {"127.0.0.1"}, listening
    assert {port for _, port in listening} == {deployment.pg_port, deployment.redis_port, deployment.api_port}


def test_fan_out_over_two_workers_and_two_triggerers(deployment, emulator, hook, source_keys_sent):
    worker_ids = make_tasks(emulator, hook, "fanout-worker", FANOUT, FANOUT_FILES)
    deferred_ids = make_tasks(emulator, hook, "fanout-deferred", FANOUT, FANOUT_FILES)
    applied = emulator.applied_starts
    first_request = len(emulator.requests)
    started = time.monotonic()
    run_id = deployment.trigger("oms_dist_fanout", {"worker_tasks": worker_ids, "deferred_tasks": deferred_ids})

    held: dict[int, set[str]] = {}  # map index of a deferred wait -> the triggerers seen holding it
    peak: dict[str, dict[str, int]] = {}
    sampled = 0.0
    in_flight: Scan | None = None
    while deployment.run_state("oms_dist_fanout", run_id) not in ("success", "failed"):
        rows = deployment.task_instances("oms_dist_fanout", run_id)
        for row in by_task(rows, "wait_in_triggerer"):
            if row["triggerer"]:
                held.setdefault(row["map_index"], set()).add(row["triggerer"])
        waiting_in_workers = [row for row in by_task(rows, "wait_in_worker") if row["state"] in ("queued", "running")]
        if in_flight is None and waiting_in_workers and held:
            # Celery messages of tasks in flight in Redis, triggers assigned: the moment keys could be in transit.
            mark = time.monotonic()
            in_flight = scan(deployment)
            figures.record("in_flight_scan_seconds", time.monotonic() - mark)
        if time.monotonic() - sampled > 5:
            sampled = time.monotonic()
            memory = deployment.memory()
            if memory["total"]["pss"] > peak.get("total", {}).get("pss", 0):
                peak = memory
        assert time.monotonic() - started < 400, f"fan-out not done after 400 s{deployment.tails()}"
        deployment.check_running()
        time.sleep(0.5)
    figures.record("fanout_tasks", 2 * FANOUT)
    figures.record("fanout_seconds", time.monotonic() - started)
    figures.record("memory", peak)
    reads = reads_during(emulator.requests[first_request:], worker_ids, deferred_ids)
    figures.record("fanout_reads", reads)

    rows = deployment.task_instances("oms_dist_fanout", run_id)
    context = f"{rows}{deployment.tails()}"
    assert deployment.run_state("oms_dist_fanout", run_id) == "success", context
    assert in_flight is not None, "the run ended before a scan found waits in workers and triggers assigned"
    assert_nothing_leaked(in_flight, "in Redis or PostgreSQL during the fan-out")
    assert in_flight.redis_keys_holding("oms_dist_fanout"), "no Celery message of the run in Redis during it"
    triggers = in_flight.tables.get("trigger", b"")
    assert any(task_id.encode() in triggers for task_id in deferred_ids), "no trigger row of the run was scanned"
    assert_source_keys_sent(source_keys_sent, worker_ids + deferred_ids)
    for task_id in ("wait_in_worker", "wait_in_triggerer"):
        mapped = by_task(rows, task_id)
        assert len(mapped) == FANOUT, context
        assert {row["state"] for row in mapped} == {"success"}, context
    # Airflow's own records: both workers ran starts, both triggerers held deferred waits.
    waits = by_task(rows, "wait_in_worker") + by_task(rows, "wait_in_triggerer")
    assert {row["hostname"] for row in waits} == set(WORKERS), context
    assert {row["hostname"] for row in by_task(rows, "wait_in_worker")} == set(WORKERS), context
    assert set().union(*held.values()) == set(TRIGGERERS), f"triggerers seen: {held}"
    assert_started_once(emulator, worker_ids + deferred_ids, applied)
    for task_id in worker_ids + deferred_ids:
        assert emulator.get_task(task_id)["status"] == TaskStatus.SUCCEEDED
    assert_copied(emulator, worker_ids + deferred_ids)
    # The waits in the triggerers read their tasks through each triggerer's shared poller: a list page a round when
    # 4 or more of them ask within one gather window (a tenth of the 2-s interval here), shows otherwise. How many
    # do depends on when the workers deferred them: 5 lists and 115 shows for 20 waits in one run, 0 and 135 in
    # another (BENCHMARKS.md's "Shared polling" measures the rounds where it can be controlled). The same number
    # of waits in workers read one show each per poll (8 a task here); the deferred side reads less either way (no
    # read while a wait is handed over, a round's gather window added to each interval).
    assert reads["lists"] + reads["deferred_shows"] < reads["worker_shows"], reads


def test_worker_lost_mid_wait_retries_on_the_other_worker(deployment, emulator, hook):
    (task_id,) = make_tasks(emulator, hook, "worker-loss", 1, WORKER_LOSS_FILES)
    applied = emulator.applied_starts
    run_id = deployment.trigger("oms_dist_worker_loss", {"migration_task_id": task_id})

    def waiting_in_a_worker() -> dict[str, Any] | None:
        (row,) = deployment.task_instances("oms_dist_worker_loss", run_id) or [None]
        task = emulator.get_task(task_id)
        mid_wait = task["status"] == TaskStatus.RUNNING and int(task.get("successful_num") or 0) >= 3
        return row if row and row["state"] == "running" and row["hostname"] in WORKERS and mid_wait else None

    first = wait_until(deployment, "the start task to wait in a worker", waiting_in_a_worker, 120)
    victim = first["hostname"]
    (survivor,) = set(WORKERS) - {victim}
    killed = deployment.kill(victim)
    killed_at = time.monotonic()
    print(f"killed {victim}: {len(killed)} processes")

    def noticed() -> str | None:
        (row,) = deployment.task_instances("oms_dist_worker_loss", run_id)
        return row["state"] if row["try_number"] > 1 or row["state"] != "running" else None

    wait_until(deployment, "Airflow to notice the lost worker", noticed, 3 * 60)
    figures.record("worker_loss_detection_seconds", time.monotonic() - killed_at)

    def retry_running() -> bool:
        (row,) = deployment.task_instances("oms_dist_worker_loss", run_id)
        return row["try_number"] == 2 and row["state"] in ("running", "success")

    wait_until(deployment, "the retry to run", retry_running, 3 * 60)
    figures.record("worker_loss_retry_running_seconds", time.monotonic() - killed_at)
    state = deployment.wait_for_run("oms_dist_worker_loss", run_id, 4 * 60)

    (row,) = deployment.task_instances("oms_dist_worker_loss", run_id)
    history = deployment.query(
        "SELECT try_number, state, hostname FROM task_instance_history WHERE dag_id = %s AND run_id = %s",
        ("oms_dist_worker_loss", run_id),
    )
    context = f"{row}\nhistory: {history}\nstarts: {start_answers(emulator, task_id)}{deployment.tails()}"
    assert state == "success", context
    assert (row["try_number"], row["state"], row["hostname"]) == (2, "success", survivor), context
    assert [(h[0], h[2]) for h in history] == [(1, victim)], context
    # The retry asked OMS to start the task, was told it already runs (OMS.0065), and waited for it.
    assert_started_once(emulator, [task_id], applied)
    assert [code for _, code in start_answers(emulator, task_id)] == [None, "OMS.0065"], context
    assert emulator.get_task(task_id)["status"] == TaskStatus.SUCCEEDED
    assert_copied(emulator, [task_id])


def test_triggerer_lost_mid_wait_hands_over_with_the_same_deadline(deployment, emulator, hook):
    assert deployment.live_triggerers() == set(TRIGGERERS)
    wait_ids = make_tasks(emulator, hook, "triggerer-loss", 4, TRIGGERER_LOSS_FILES)
    (deadline_id,) = make_tasks(emulator, hook, "deadline", 1, DEADLINE_FILES)
    applied = emulator.applied_starts
    dag_id = "oms_dist_triggerer_loss"
    # Every wait and the deadline on one triggerer, the one killed: the other is frozen (SIGSTOP) until it holds
    # them all, then thawed, well within the health threshold.
    victim, survivor = TRIGGERERS

    # When the operator started the deadline task (its deadline counts from then): seen on the emulator.
    def deadline_task_started() -> float | None:
        status = emulator.get_task(deadline_id)["status"]
        return time.monotonic() if status != TaskStatus.PAUSED else None

    def all_on_victim() -> bool:
        rows = deployment.task_instances(dag_id, run_id)
        rows = by_task(rows, "wait_in_triggerer") + by_task(rows, "deadline")
        return len(rows) == len(wait_ids) + 1 and all(row["triggerer"] == victim for row in rows)

    deployment.signal_component(survivor, signal.SIGSTOP)
    try:
        run_id = deployment.trigger(dag_id, {"deferred_tasks": wait_ids, "deadline_task": deadline_id})
        started_at = wait_until(deployment, "the deadline task to be started", deadline_task_started, 120)
        wait_until(deployment, f"{victim} to hold every wait", all_on_victim, 90)
    finally:
        deployment.signal_component(survivor, signal.SIGCONT)
    wait_until(deployment, f"{survivor} to heartbeat again", lambda: survivor in deployment.live_triggerers(), 30)

    def deadline_held() -> dict[str, Any] | None:
        rows = by_task(deployment.task_instances(dag_id, run_id), "deadline")
        return rows[0] if rows and rows[0]["state"] == "deferred" and rows[0]["triggerer"] else None

    assert wait_until(deployment, "a triggerer to hold the deadline wait", deadline_held, 60)["triggerer"] == victim
    # Kill late enough that a deadline counted again from the hand-over would end far past the original one.
    time.sleep(max(0.0, started_at + 20 - time.monotonic()))
    on_victim = [row["map_index"] for row in deployment.task_instances(dag_id, run_id) if row["triggerer"] == victim]
    waits_on_victim = [
        row["map_index"]
        for row in by_task(deployment.task_instances(dag_id, run_id), "wait_in_triggerer")
        if row["triggerer"] == victim
    ]
    deployment.kill(victim)
    killed_at = time.monotonic()
    print(f"killed {victim} holding {on_victim} at {killed_at - started_at:.1f} s into the deadline wait")

    def moved() -> str | None:
        rows = by_task(deployment.task_instances(dag_id, run_id), "deadline")
        holder = rows[0]["triggerer"] if rows else None
        return holder if holder and holder != victim else None

    taken_by = wait_until(deployment, "the other triggerer to take the deadline wait", moved, 90)
    figures.record("triggerer_failover_seconds", time.monotonic() - killed_at)

    def paused() -> float | None:
        status = emulator.get_task(deadline_id)["status"]
        return time.monotonic() if status in (TaskStatus.PAUSING, TaskStatus.PAUSED) else None

    paused_at = wait_until(deployment, "the deadline task to be paused", paused, DEADLINE_SECONDS + 90)
    figures.record("deadline_timeout", DEADLINE_SECONDS)
    figures.record("deadline_paused_after_seconds", paused_at - started_at)
    deployment.wait_for_run(dag_id, run_id, 3 * 60)

    rows = deployment.task_instances(dag_id, run_id)
    context = f"victim {victim} held {on_victim}; taken by {taken_by}\n{rows}{deployment.tails()}"
    waits = by_task(rows, "wait_in_triggerer")
    assert {row["state"] for row in waits} == {"success"}, context
    (deadline_row,) = by_task(rows, "deadline")
    assert (deadline_row["state"], deadline_row["try_number"]) == ("failed", 1), context
    # Paused at the deadline set when the task was started, not one counted again from the hand-over.
    elapsed = paused_at - started_at
    assert DEADLINE_SECONDS - 1 <= elapsed <= DEADLINE_SECONDS + DEADLINE_SLACK, f"paused after {elapsed:.1f} s"
    assert emulator.wait_for_status(deadline_id, {TaskStatus.PAUSED}, timeout=60)["status"] == TaskStatus.PAUSED
    assert_started_once(emulator, [*wait_ids, deadline_id], applied)
    assert_copied(emulator, wait_ids)
    # Every wait the killed triggerer held moved too: each one's trigger logged on the victim, then on the
    # triggerer that took it over, up to the migration's success there.
    assert waits_on_victim, f"{victim} held no wait when it was killed, only {on_victim}: nothing to prove{context}"
    for map_index in waits_on_victim:
        logs = trigger_logs(deployment, dag_id, run_id, "wait_in_triggerer", map_index)
        task_id = wait_ids[map_index]
        ran_on = sorted(logs)
        assert victim in logs and survivor in logs, f"wait {map_index}: trigger logs from {ran_on}, not both{context}"
        assert f"OMS task {task_id} succeeded" in logs[survivor], f"wait {map_index}: {logs[survivor][-2000:]}"


def test_oms_outage_mid_wait_is_waited_out(deployment, emulator, hook):
    worker_ids = make_tasks(emulator, hook, "outage-worker", 2, OUTAGE_FILES)
    deferred_ids = make_tasks(emulator, hook, "outage-deferred", 2, OUTAGE_FILES)
    applied = emulator.applied_starts
    run_id = deployment.trigger("oms_dist_fanout", {"worker_tasks": worker_ids, "deferred_tasks": deferred_ids})

    def all_waiting() -> bool:
        rows = deployment.task_instances("oms_dist_fanout", run_id)
        in_worker = [row for row in by_task(rows, "wait_in_worker") if row["state"] == "running"]
        in_triggerer = [row for row in by_task(rows, "wait_in_triggerer") if row["triggerer"]]
        running = all(
            emulator.get_task(task_id)["status"] == TaskStatus.RUNNING for task_id in worker_ids + deferred_ids
        )
        return len(in_worker) == 2 and len(in_triggerer) == 2 and running

    wait_until(deployment, "all four migrations to be waited for", all_waiting, 120)
    emulator.reset_requests()
    emulator.inject_fault("error", status=503, count=10**9)  # every call, until cleared
    outage_started = time.monotonic()
    try:
        while time.monotonic() - outage_started < OUTAGE_SECONDS:
            deployment.check_running()
            time.sleep(1)
    finally:
        emulator.clear_faults()
    figures.record("outage_seconds", time.monotonic() - outage_started)
    refused = sum(record.fault == "error" for record in emulator.requests)
    state = deployment.wait_for_run("oms_dist_fanout", run_id, 4 * 60)

    rows = deployment.task_instances("oms_dist_fanout", run_id)
    context = f"{refused} calls answered 503 during the outage\n{rows}{deployment.tails()}"
    assert refused > 0, context
    assert state == "success", context
    waits = by_task(rows, "wait_in_worker") + by_task(rows, "wait_in_triggerer")
    assert {(row["state"], row["try_number"]) for row in waits} == {("success", 1)}, context
    assert emulator.applied_starts - applied == 4
    assert_copied(emulator, worker_ids + deferred_ids)
    # Waited out by the outage tolerance, not by one read's retries: each wait logged that OMS was unreachable
    # and that it went on, then that OMS answered again.
    waits = [("wait_in_worker", index, task_id) for index, task_id in enumerate(worker_ids)]
    waits += [("wait_in_triggerer", index, task_id) for index, task_id in enumerate(deferred_ids)]
    for task, map_index, task_id in waits:
        logged = task_log(deployment, "oms_dist_fanout", run_id, task, map_index)
        logged += "".join(trigger_logs(deployment, "oms_dist_fanout", run_id, task, map_index).values())
        where = f"{task}[{map_index}] (OMS task {task_id})"
        assert f"OMS unreachable while waiting for task {task_id} for " in logged, f"{where}: no tolerance line"
        assert "waiting on, up to the outage_tolerance" in logged, f"{where}: no tolerance line"
        assert "OMS answers again after" in logged, f"{where}: no recovery line"


def test_marked_failed_while_deferred_pauses_in_the_triggerer(deployment, emulator, hook, source_keys_sent):
    pause_id, leave_id = make_tasks(emulator, hook, "mark-failed", 2, MARK_FAILED_FILES)
    dag_id = "oms_dist_mark_failed"
    run_id = deployment.trigger(dag_id, {"pause_task": pause_id, "leave_task": leave_id})

    def held() -> list[dict[str, Any]] | None:
        rows = deployment.task_instances(dag_id, run_id)
        deferred = len(rows) == 2 and all(row["state"] == "deferred" and row["triggerer"] for row in rows)
        running = all(emulator.get_task(task_id)["status"] == TaskStatus.RUNNING for task_id in (pause_id, leave_id))
        return rows if deferred and running else None

    rows = wait_until(deployment, "both migrations to be waited for in a triggerer", held, 120)
    # Deferred waits held, their triggers assigned, the source keys just sent: scan everything now.
    in_flight = scan(deployment)
    assert_nothing_leaked(in_flight, "in Redis or PostgreSQL while deferred waits were held")
    triggers = in_flight.tables.get("trigger", b"")
    assert pause_id.encode() in triggers and leave_id.encode() in triggers, "the held triggers were not scanned"
    assert_source_keys_sent(source_keys_sent, [pause_id, leave_id])

    # A person marks both deferred tasks failed through the REST API; the triggerer holding each runs on_kill.
    marked_at = time.monotonic()
    for task in ("pause_on_kill", "leave_on_kill"):
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task}"
        deployment.request("PATCH", path, json={"new_state": "failed"})

    def on_kill_ran() -> dict[str, str] | None:
        # What each trigger's on_kill logged: it paused, left the task alone, or could not pause.
        said = {}
        for task, task_id in (("pause_on_kill", pause_id), ("leave_on_kill", leave_id)):
            logged = "".join(trigger_logs(deployment, dag_id, run_id, task).values())
            for line in (
                f"Paused OMS migration task {task_id}",
                f"OMS migration task {task_id} is left as it is",
                f"Could not pause OMS migration task {task_id}",
                f"OMS migration task {task_id} was not in progress",
            ):
                if line in logged:
                    said[task] = line
        return said if len(said) == 2 else None

    said = wait_until(deployment, "both triggers' on_kill to have run", on_kill_ran, 60)
    figures.record("mark_failed_to_on_kill_seconds", time.monotonic() - marked_at)
    pause_status = emulator.get_task(pause_id)["status"]
    leave_status = emulator.get_task(leave_id)["status"]
    states = {row["task_id"]: row["state"] for row in deployment.task_instances(dag_id, run_id)}
    if leave_status == TaskStatus.RUNNING:
        hook.stop_task(leave_id)  # the test's own clean-up: the migration would otherwise run on for a minute
    context = f"held by {[(row['task_id'], row['triggerer']) for row in rows]}; now {states}; on_kill: {said}"
    context += deployment.tails()
    assert pause_status in (TaskStatus.PAUSING, TaskStatus.PAUSED), f"on_kill left the OMS task {pause_status}{context}"
    assert leave_status == TaskStatus.RUNNING, f"cancel_on_kill=False, yet the OMS task is {leave_status}{context}"
    assert states == {"pause_on_kill": "failed", "leave_on_kill": "failed"}, context
    assert emulator.wait_for_status(pause_id, {TaskStatus.PAUSED}, timeout=30)["status"] == TaskStatus.PAUSED
    assert start_answers(emulator, pause_id) == [(200, None)], start_answers(emulator, pause_id)


def test_no_secret_at_rest(deployment):
    after = scan(deployment)
    assert after.tables.get("dag_run") and b"oms_dist_fanout" in after.tables["task_instance"]  # a real dump
    assert_nothing_leaked(after, "at rest in Redis or PostgreSQL after every run")
    assert after.redis, "Redis held no key at all: the broker scan would prove nothing"
    files = [path for path in deployment.home.rglob("*") if path.is_file() and path.suffix not in (".py", ".pyc")]
    task_logs = [path for path in files if "dag_id=" in str(path)]
    assert len(task_logs) >= 40, f"only {len(task_logs)} task and trigger logs under {deployment.home}"
    for path in files:
        found = leaks(path.read_bytes())
        assert not found, f"{found} in {path}"


def test_teardown_leaves_nothing(deployment):
    deployment.stop()
    figures.record("teardown_seconds", deployment.stop_seconds)
    print(f"stopped in {deployment.stop_seconds:.1f} s; killed after the grace time: {deployment.killed_at_stop}")
    assert not deployment.leftovers(), deployment.leftovers()
    assert not processes_marked(deployment.marker), processes_marked(deployment.marker)
    assert not deployment.ports_open(), deployment.ports_open()
    assert not deployment.listening()
