"""
The provider in a real Airflow deployment: api-server, scheduler, dag-processor and triggerer as separate
processes on 127.0.0.1 (see :mod:`tests.deployment.airflow_deployment`), against the OMS emulator running in
this process. DAG runs are triggered and watched through Airflow's REST API, deferred tasks wait in the real
triggerer, task logs are read back through the API and from the files, and credentials are looked for
everywhere the deployment writes. Nothing is mocked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.testing import OMSEmulator
from tests.deployment.airflow_deployment import (
    AirflowDeployment,
    DeploymentError,
    running_deployment,
    slow_emulator,
)
from tests.helpers import create_sample_task

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = (
    REPO / "dags" / "example_oms_start_migration.py",
    REPO / "tests" / "e2e" / "dags" / "oms_test_dags.py",
    REPO / "tests" / "deployment" / "dags" / "oms_asset_dags.py",
    REPO / "dags" / "example_oms_migration_watcher.py",
    REPO / "tests" / "deployment" / "dags" / "oms_sensor_dags.py",
)
CONN_ID = "huaweicloud_oms_default"
TASK = "start_migration"
TRIGGER = "airflow_provider_oms.triggers.oms.MigrationTaskTrigger"
# Credentials of the emulator for this test only: distinctive, so that finding them anywhere means a leak.
AK = "DEPLOYAK5QZ8W2XK7N4M"
SK = "deploy-SK-h7Rq2Zt9Lw4Vx8Pk3Ns6Jd1"
FILES = 10
#: Seconds for the DAGs to show up in the API and both runs to end (they take about 25 s on an idle machine).
RUN_TIMEOUT = 150
WATCHER_DAG = "example_oms_migration_watcher"
#: How often the example's watcher reads its task in this deployment (60 s in the example).
WATCH_POLL = 2


@pytest.fixture(scope="module")
def emulator(tmp_path_factory) -> Iterator[OMSEmulator]:
    """The emulator, slow enough (about 20 s a task) that the waits take several polls (see slow_emulator)."""
    with slow_emulator(tmp_path_factory.mktemp("buckets"), access_key=AK, secret_key=SK, conn_id=CONN_ID) as emu:
        yield emu


@pytest.fixture(scope="module")
def watched_task(emulator) -> str:
    """
    The OMS task the example watcher DAG watches, created outside Airflow before the deployment starts (its id
    goes into the DAG file through the environment) and paused at once: no outcome yet. Each of its objects fails
    its first attempt, so the task fails once, then succeeds when restarted for its failed objects.
    """
    hook = OMSHook(CONN_ID)
    emulator.add_fail_rule("watched/*", times=1)
    task_id = create_sample_task(emulator, hook, files=2, prefix="watched/", save_prefix="watched/")
    hook.stop_task(task_id)
    emulator.wait_for_status(task_id, {TaskStatus.PAUSED}, timeout=30)
    return task_id


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, emulator, watched_task) -> Iterator[AirflowDeployment]:
    """The deployment: the example DAGs and the test DAGs, operators deferrable by default, the Test button on."""
    connections = {CONN_ID: emulator.airflow_connection()}
    watcher = {
        "OMS_WATCHED_TASK_IDS": watched_task,
        "OMS_WATCH_POLL_SECONDS": str(WATCH_POLL),
        # A killed triggerer's watcher moves to the new one after this many seconds without a heartbeat.
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "6",
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
        # A start_from_trigger sensor's timeout is seen within 2 s (15 s by default).
        "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "2",
    }
    home = tmp_path_factory.mktemp("airflow-home")
    with running_deployment(home, DAG_FILES, connections, config=watcher) as deployment:
        yield deployment


def test_api_serves_the_connection_type_with_its_fields(airflow):
    hook_meta = airflow.get("/ui/connections/hook_meta")  # what the UI's connection form is built from

    entry = next((meta for meta in hook_meta if meta["connection_type"] == "huaweicloud_oms"), None)
    assert entry is not None, sorted(str(meta["connection_type"]) for meta in hook_meta)
    assert entry["hook_class_name"] == "airflow_provider_oms.hooks.oms.OMSHook"
    assert entry["hook_name"] == "Huawei Cloud OMS"
    # Airflow 3.1 builds the form from OMSHook.get_connection_form_widgets() / get_ui_field_behaviour(),
    # 3.2+ from get_provider_info(): the same fields either way (`make test-matrix` runs this on both).
    extra = entry["extra_fields"]
    plain = {"project_id", "region", "endpoint", "auth_type", "domain", "iam_endpoint", "verify", "timeout"}
    assert set(extra) == plain | {"security_token", "proxy"}
    assert extra["project_id"]["schema"]["title"] == "Project ID"
    assert extra["auth_type"]["schema"]["title"] == "Authentication"
    assert extra["timeout"]["schema"]["title"] == "Timeout (seconds)"
    assert extra["region"]["schema"]["title"] == "Region"
    assert extra["endpoint"]["schema"]["title"] == "Endpoint"
    assert extra["security_token"]["schema"]["format"] == "password"
    assert extra["proxy"]["schema"]["format"] == "password"  # the proxy URL may hold a password
    assert all("format" not in extra[name]["schema"] for name in ("project_id", "region", "endpoint"))
    fields = entry["standard_fields"]
    assert all(fields[name]["hidden"] for name in ("host", "url_schema", "port"))
    assert (fields["login"]["title"], fields["login"]["hidden"]) == ("Access Key ID (AK), or IAM user name", False)
    assert (fields["password"]["title"], fields["password"]["hidden"]) == (
        "Secret Access Key (SK), or IAM password",
        False,
    )
    assert fields["login"]["placeholder"] and fields["password"]["placeholder"]


def test_connection_test_button_uses_the_hook(airflow, emulator):
    conn = emulator.airflow_connection()
    body = {
        "connection_id": "oms_form",
        "conn_type": "huaweicloud_oms",
        "login": conn["login"],
        "password": conn["password"],
        "extra": json.dumps(conn["extra"]),
    }

    works = airflow.request("POST", "/api/v2/connections/test", json=body)
    wrong_sk = airflow.request("POST", "/api/v2/connections/test", json={**body, "password": "not-the-secret-key"})

    assert works["status"] is True, works
    assert emulator.project_id in works["message"]
    assert wrong_sk["status"] is False, wrong_sk
    assert "AK" in wrong_sk["message"]
    assert SK not in json.dumps([works, wrong_sk])


def wait_for_dag(airflow: AirflowDeployment, dag_id: str, timeout: float) -> None:
    def parsed() -> bool:
        return airflow.find(f"/api/v2/dags/{dag_id}") is not None

    try:
        airflow.wait_for(f"DAG {dag_id} to be parsed", parsed, timeout)
    except DeploymentError as err:
        errors = airflow.get("/api/v2/importErrors")
        raise DeploymentError(f"{err}\n----- import errors -----\n{json.dumps(errors, indent=1)}") from None


def trigger(airflow: AirflowDeployment, dag_id: str, conf: dict[str, Any]) -> str:
    """Unpause a DAG and trigger a run through the REST API; return the run id."""
    airflow.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
    run = airflow.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
    return str(run["dag_run_id"])


def task_log(airflow: AirflowDeployment, dag_id: str, run_id: str, try_number: int = 1, task: str = TASK) -> str:
    """The task's log as the UI shows it (its worker part and its triggerer part), one line per event."""
    answer = airflow.get(
        f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task}/logs/{try_number}",
        params={"full_content": "true"},
        headers={"Accept": "application/json"},
    )
    return "\n".join(json.dumps(line) if not isinstance(line, str) else line for line in answer["content"])


def test_deferrable_runs_succeed_through_the_real_triggerer(airflow, emulator):
    hook = OMSHook(CONN_ID)
    runs: dict[str, dict[str, Any]] = {}
    for dag_id in ("example_oms_start_migration", "oms_test_wait_deferrable"):
        oms_task = create_sample_task(emulator, hook, files=FILES, prefix=f"{dag_id}/", save_prefix=f"{dag_id}/")
        hook.stop_task(oms_task)
        emulator.wait_for_status(oms_task, {TaskStatus.PAUSED}, timeout=30)
        runs[dag_id] = {"oms_task": oms_task, "states": [], "triggers": []}
    deadline = time.monotonic() + RUN_TIMEOUT
    for dag_id, run in runs.items():
        wait_for_dag(airflow, dag_id, deadline - time.monotonic())
        run["run_id"] = trigger(airflow, dag_id, {"migration_task_id": run["oms_task"]})

    # Watch both runs through the API until they end; note every state of the task and the trigger it waits on.
    while True:
        for dag_id, run in runs.items():
            base = f"/api/v2/dags/{dag_id}/dagRuns/{run['run_id']}"
            run["state"] = airflow.get(base)["state"]
            ti = airflow.find(f"{base}/taskInstances/{TASK}")
            if ti is None:  # not created yet
                continue
            if not run["states"] or run["states"][-1] != ti["state"]:
                run["states"].append(ti["state"])
            row = ti["trigger"] and ti["trigger"] | {"triggerer_job": ti["triggerer_job"]}
            if ti["state"] == "deferred" and row and row not in run["triggers"]:
                run["triggers"].append(row)
        if all(run["state"] in ("success", "failed") for run in runs.values()):
            break
        if time.monotonic() > deadline:
            raise DeploymentError(f"DAG runs not done after {RUN_TIMEOUT} s: {runs}{airflow.tails()}")
        airflow.check_running()
        time.sleep(0.5)

    for dag_id, run in runs.items():
        log = task_log(airflow, dag_id, run["run_id"])
        run_id, oms_task = run["run_id"], run["oms_task"]
        context = f"{dag_id}: {run}\n----- task log -----\n{log[-6000:]}{airflow.tails()}{known_race(airflow)}"
        assert run["state"] == "success", context
        assert emulator.get_task(oms_task)["status"] == TaskStatus.SUCCEEDED, context
        # The task deferred, and a triggerer took the provider's trigger.
        assert "deferred" in run["states"], context
        assert run["triggers"], context
        assert {row["classpath"] for row in run["triggers"]} == {TRIGGER}, context
        job = next((row["triggerer_job"] for row in run["triggers"] if row["triggerer_job"]), None)
        assert job is not None and job["job_type"] == "TriggererJob", context
        # The log holds the worker's part (the start) and the triggerer's (the polls), so the scan below is real.
        assert f"Starting OMS migration task {oms_task}" in log, context
        assert "Pausing task as DEFERRED" in log, context
        assert f"OMS task {oms_task} succeeded: 100.0% | objects {FILES}/{FILES}" in log, context
        assert f"OMS migration task {oms_task} succeeded after 0 restart(s)" in log, context
        no_credential_in(f"the task log of {dag_id} {run_id}", log)
        # The triggerer process wrote the trigger's own log file: the trigger's polls, its event, its end.
        trigger_log = trigger_log_of(airflow, dag_id, run_id, job["id"])
        polls = [line for line in trigger_log if line["event"].startswith(f"OMS task {oms_task} ")]
        assert len(polls) >= 2, f"{trigger_log}\n{context}"
        assert all(line.get("logger", TRIGGER) == TRIGGER for line in polls), context  # (no logger name in 3.1)
        assert f"OMS task {oms_task} succeeded: 100.0%" in polls[-1]["event"], context
        fired = [line for line in trigger_log if line["event"] == "Trigger fired event"]
        assert len(fired) == 1 and "'status': 'success'" in fired[0]["result"], context
        assert any(line["event"] == "trigger completed" for line in trigger_log), context

    # Nothing of the deployment listens anywhere but on the API's loopback port.
    assert airflow.listening() == {("127.0.0.1", airflow.port)}, airflow.tails()
    # Every file the deployment wrote: task and trigger logs, the processes' output, the metadata database.
    scanned = sorted(p for p in airflow.home.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc"))
    assert sum(".log.trigger." in path.name for path in scanned) == len(runs)
    for path in scanned:
        no_credential_in(str(path), path.read_bytes().decode("utf-8", errors="replace"))


def test_the_consumer_dag_runs_after_the_migrations_asset_event(airflow, emulator):
    hook = OMSHook(CONN_ID)
    oms_task = create_sample_task(emulator, hook, files=3, prefix="asset-producer/", save_prefix="asset-producer/")
    hook.stop_task(oms_task)
    emulator.wait_for_status(oms_task, {TaskStatus.PAUSED}, timeout=30)
    deadline = time.monotonic() + RUN_TIMEOUT
    for dag_id in ("oms_asset_producer", "oms_asset_consumer"):
        wait_for_dag(airflow, dag_id, deadline - time.monotonic())
    airflow.request("PATCH", "/api/v2/dags/oms_asset_consumer", json={"is_paused": False})
    assert airflow.get("/api/v2/dags/oms_asset_consumer/dagRuns")["dag_runs"] == []
    producer_run = trigger(airflow, "oms_asset_producer", {"migration_task_id": oms_task})

    def consumer_done() -> dict[str, Any] | None:
        runs = airflow.get("/api/v2/dags/oms_asset_consumer/dagRuns")["dag_runs"]
        return runs[0] if runs and runs[0]["state"] in ("success", "failed") else None

    consumer = airflow.wait_for("the consumer DAG run", consumer_done, deadline - time.monotonic())
    producer = airflow.get(f"/api/v2/dags/oms_asset_producer/dagRuns/{producer_run}")
    context = f"producer {producer}\nconsumer {consumer}{airflow.tails()}{known_race(airflow)}"
    assert producer["state"] == "success", context
    assert consumer["state"] == "success", context
    assert consumer["run_type"] == "asset_triggered", context
    # The consumer runs after the migration: after the producer's task ended and its asset event was recorded
    # (the producer's DAG run itself may be marked done a moment after the consumer starts).
    producer_ti = airflow.get(f"/api/v2/dags/oms_asset_producer/dagRuns/{producer_run}/taskInstances/{TASK}")
    (event,) = airflow.get("/api/v2/assets/events", params={"source_dag_id": "oms_asset_producer"})["asset_events"]
    assert consumer["start_date"] >= producer_ti["end_date"], f"{producer_ti}\n{context}"
    assert consumer["run_after"] >= event["timestamp"], f"{event}\n{context}"
    assert event["uri"] == "obs://dst/asset-producer", context
    assert (event["extra"]["migration_task_id"], event["extra"]["successful_num"]) == (oms_task, 3), context
    figures = airflow.get(
        f"/api/v2/dags/oms_asset_consumer/dagRuns/{consumer['dag_run_id']}/taskInstances/read_figures/xcomEntries/"
        "return_value"
    )["value"]
    assert figures["migration_task_id"] == oms_task, context
    no_credential_in("the asset event", json.dumps(event))


def test_a_sensor_started_in_the_triggerer_runs_on_no_worker(airflow, emulator):
    dag_id, sensor = "oms_test_sensor_from_trigger", "wait_for_migration"
    oms_task = create_sample_task(emulator, OMSHook(CONN_ID), files=3, prefix=f"{dag_id}/", save_prefix=f"{dag_id}/")
    deadline = time.monotonic() + RUN_TIMEOUT
    wait_for_dag(airflow, dag_id, deadline - time.monotonic())
    run_id = trigger(airflow, dag_id, {"migration_task_id": oms_task})
    base = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"
    states: list[str | None] = []
    while (run := airflow.get(base))["state"] not in ("success", "failed"):
        ti = airflow.find(f"{base}/taskInstances/{sensor}")
        if ti is not None and (not states or states[-1] != ti["state"]):
            states.append(ti["state"])
        if time.monotonic() > deadline:
            raise DeploymentError(f"DAG run not done after {RUN_TIMEOUT} s: {run} {states}{airflow.tails()}")
        airflow.check_running()
        time.sleep(0.5)

    ti = airflow.get(f"{base}/taskInstances/{sensor}")
    log = task_log(airflow, dag_id, run_id, task=sensor)
    context = f"{run}\n{ti}\nstates {states}\n----- task log -----\n{log[-6000:]}{airflow.tails()}"
    assert run["state"] == "success" and ti["state"] == "success", context
    # No worker ran it: the scheduler deferred it straight away, no executor queued it, no process took it.
    assert "queued" not in states and "running" not in states, context
    assert "deferred" in states, context
    assert (ti["queued_when"], ti["pid"], ti["hostname"] or None) == (None, None, None), context
    assert "Pausing task as DEFERRED" not in log, context  # the worker's line when it defers
    # The triggerer rendered the templated id, and the trigger ended the task with the sensor's XCom.
    assert f"OMS migration task {oms_task} is succeeded: the sensor succeeds" in log, context
    # A downstream task pulls it as the worker path pushes it: a dict (not the JSON string of a TaskSuccessEvent's
    # xcoms, which Airflow 3.3.2 stores encoded twice).
    pulled = airflow.get(f"{base}/taskInstances/read_figures/xcomEntries/return_value")["value"]
    assert pulled["type"] == "dict", f"{pulled}\n{context}"
    xcom = pulled["figures"]
    assert (xcom["migration_task_id"], xcom["status"], xcom["successful_num"]) == (oms_task, 5, 3), context
    no_credential_in(f"the task log of {dag_id} {run_id}", log)


def test_mapped_sensors_defer_from_workers_and_a_trigger_out_of_time_fails_the_sensor(airflow, emulator):
    dag_id = "oms_test_sensor_from_trigger_edges"
    hook = OMSHook(CONN_ID)
    # About 20 s each: the mapped sensors defer from workers well before their tasks end (see slow_emulator).
    watched = [
        create_sample_task(emulator, hook, files=FILES, prefix=f"{dag_id}/m{n}/", save_prefix=f"{dag_id}/m{n}/")
        for n in range(2)
    ]
    # About 40 s of objects: the 3 s timeout of its sensor runs out long before.
    long = create_sample_task(emulator, hook, files=20, prefix=f"{dag_id}/long/", save_prefix=f"{dag_id}/long/")
    deadline = time.monotonic() + RUN_TIMEOUT
    wait_for_dag(airflow, dag_id, deadline - time.monotonic())
    run_id = trigger(airflow, dag_id, {"migration_task_ids": watched, "long_migration_task_id": long})
    base = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"
    timed_out: list[str | None] = []
    while (run := airflow.get(base))["state"] not in ("success", "failed"):
        ti = airflow.find(f"{base}/taskInstances/wait_times_out")
        if ti is not None and ti["state"] and (not timed_out or timed_out[-1] != ti["state"]):
            timed_out.append(ti["state"])
        if time.monotonic() > deadline:
            raise DeploymentError(f"DAG run not done after {RUN_TIMEOUT} s: {run} {timed_out}{airflow.tails()}")
        airflow.check_running()
        time.sleep(0.5)

    mapped = airflow.get(f"{base}/taskInstances/wait_mapped/listMapped")["task_instances"]
    out_of_time = airflow.get(f"{base}/taskInstances/wait_times_out")
    log = task_log(airflow, dag_id, run_id, task="wait_times_out")
    context = f"{run}\n{mapped}\n{out_of_time}\nstates {timed_out}\n----- log -----\n{log[-6000:]}{airflow.tails()}"
    # Each map index waited for its own task and succeeded with its figures; Airflow 3.3 starts no mapped task in
    # the triggerer, so each deferred from a worker (it has a pid and a host).
    assert sorted(ti["map_index"] for ti in mapped) == [0, 1], context
    assert [ti["state"] for ti in mapped] == ["success", "success"], context
    assert all(ti["hostname"] for ti in mapped), context
    for ti in mapped:
        xcom = airflow.get(
            f"{base}/taskInstances/wait_mapped/xcomEntries/return_value", params={"map_index": ti["map_index"]}
        )["value"]
        assert (xcom["migration_task_id"], xcom["status"]) == (watched[ti["map_index"]], 5), f"{xcom}\n{context}"
    # The other sensor started in the triggerer; its StartTriggerArgs.timeout ran out, and a worker failed it.
    assert run["state"] == "failed" and out_of_time["state"] == "failed", context
    assert timed_out[0] == "deferred", context  # straight from the scheduler, no worker before
    assert "AirflowSensorTimeout" in log, context
    # A sensor never changes what it watches: the migration goes on.
    assert emulator.get_task(long)["status"] in (TaskStatus.RUNNING, TaskStatus.SUCCEEDED), context
    no_credential_in(f"the task log of {dag_id} {run_id}", log)


def test_a_migration_outside_airflow_schedules_the_watcher_dag_once_per_outcome(airflow, emulator, watched_task):
    hook = OMSHook(CONN_ID)
    wait_for_dag(airflow, WATCHER_DAG, RUN_TIMEOUT)
    airflow.request("PATCH", f"/api/v2/dags/{WATCHER_DAG}", json={"is_paused": False})  # its watcher starts now

    def watching() -> bool:
        return f"Watching OMS tasks {watched_task} " in airflow.output("triggerer")

    airflow.wait_for("the watcher to run in the triggerer", watching, 60)
    assert airflow.get(f"/api/v2/dags/{WATCHER_DAG}/dagRuns")["dag_runs"] == []  # paused: not an outcome

    def runs() -> list[dict[str, Any]]:
        return airflow.get(f"/api/v2/dags/{WATCHER_DAG}/dagRuns", params={"order_by": "run_after"})["dag_runs"]

    def outcomes() -> list[dict[str, Any]]:
        events = airflow.get("/api/v2/assets/events", params={"name_pattern": "oms_migration_outcomes"})
        return [event["extra"]["payload"] for event in events["asset_events"]]

    def run_and_outcomes(count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        done = [run for run in runs() if run["state"] in ("success", "failed")]
        return (done, outcomes()) if len(done) >= count else None

    # Someone starts the task in the console; its objects fail: one outcome, one run.
    hook.start_task(watched_task, hook.build_start_task_body())
    emulator.wait_for_status(watched_task, {TaskStatus.FAILED}, timeout=60)
    airflow.wait_for("the run for the failure", lambda: run_and_outcomes(1), RUN_TIMEOUT)
    # The failure stays; the triggerer is killed and started again: Airflow 3.3's state store remembers the outcome.
    airflow.crash_and_restart("triggerer")
    again = f"Watching OMS tasks {watched_task} for outcomes failed, succeeded every {WATCH_POLL} s (1 already known)"
    airflow.wait_for("the watcher to run again, knowing the failure", lambda: again in airflow.output("triggerer"), 90)
    time.sleep(2 * WATCH_POLL)
    # Restarted for its failed objects, the task succeeds: a second outcome, a second run.
    hook.start_task(watched_task, hook.build_start_task_body(migrate_failed_object=True))
    emulator.wait_for_status(watched_task, {TaskStatus.SUCCEEDED}, timeout=60)
    done, events = airflow.wait_for("the run for the success", lambda: run_and_outcomes(2), RUN_TIMEOUT)
    time.sleep(2 * WATCH_POLL)  # the success stays: nothing more fires

    context = f"runs {runs()}\nevents {outcomes()}{airflow.tails()}"
    assert [(e["migration_task_id"], e["status_name"]) for e in outcomes()] == [
        (watched_task, "failed"),
        (watched_task, "succeeded"),
    ], context
    assert len(runs()) == 2, context
    assert [run["run_type"] for run in done] == ["asset_triggered"] * 2, context
    assert [run["state"] for run in done] == ["success"] * 2, context
    reported = [
        airflow.get(
            f"/api/v2/dags/{WATCHER_DAG}/dagRuns/{run['dag_run_id']}/taskInstances/report_outcomes/xcomEntries/"
            "return_value"
        )["value"]
        for run in done
    ]
    assert [[(o["status_name"], o["task"]["successful_num"]) for o in r] for r in reported] == [
        [("failed", 0)],
        [("succeeded", 2)],
    ], context
    no_credential_in("the asset events", json.dumps(events))


def known_race(airflow: AirflowDeployment) -> str:
    """Point at Airflow's defer/resume race if the scheduler hit it (not a provider bug)."""
    if "finished with state success, but the task instance's state attribute is" not in airflow.output("scheduler"):
        return ""
    return (
        "\nNOTE: the scheduler failed a task on a stale executor success of its deferring try (the trigger fired "
        "before the executor reported the deferral): Airflow's race apache/airflow#66374 / #67287 / #72716."
    )


def trigger_log_of(airflow: AirflowDeployment, dag_id: str, run_id: str, triggerer_job_id: int) -> list[dict]:
    """The log file a triggerer wrote for the trigger of a task's first try: its JSON lines."""
    task_logs = airflow.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={TASK}"
    path = task_logs / f"attempt=1.log.trigger.{triggerer_job_id}.log"
    assert path.is_file(), f"no trigger log {path}; there are {sorted(p.name for p in task_logs.iterdir())}"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def no_credential_in(where: str, text: str) -> None:
    for name, secret in (("AK", AK), ("SK", SK)):
        assert secret not in text, f"the emulator's {name} appears in {where}"
