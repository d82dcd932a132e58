"""
Lineage names producers only (issue 19): stop, delete and the sensors report no dataset, to hook lineage or to
OpenLineage; start and create report theirs once; the lineage methods read OMS at most once, briefly, so that the
OpenLineage listener has its event in time; the output carries OpenLineage's standard statistics and a failure
OMS's reason. Against the emulator over real HTTP, with a real HookLineageCollector.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from airflow.sdk.lineage import HookLineageCollector

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.exceptions import OMSApiError, OMSMigrationError
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.lineage import LINEAGE_READ_SECONDS, listener_read_timeout
from airflow_provider_oms.operators.lifecycle import (
    CreateMigrationTaskOperator,
    DeleteMigrationTaskOperator,
    StopMigrationTaskOperator,
)
from airflow_provider_oms.sensors.oms import MigrationTaskSensor
from tests.helpers import create_sample_task, start_operator
from tests.lineage.conftest import check_oms_migration_facet, require_openlineage
from tests.operators.deferral import retry_context, run_operator

DEFINITION = {
    "task_type": "prefix",
    "src_node": {"region": "local", "bucket": "src", "cloud_type": "AWS", "object_key": ["data/"]},
    "dst_node": {"region": "local", "bucket": "dst", "save_prefix": "landing/"},
}
FILES = {"data/a.txt": b"a" * 100, "data/b.txt": b"b" * 250}
SHOW_TASK = re.compile(r"/tasks/\d+$")


@pytest.fixture
def emulator(emulator_with_source):
    emulator = emulator_with_source(list(FILES), task_start_delay=0.2)
    for key, content in FILES.items():
        (emulator.bucket_path("src") / key).write_bytes(content)
    return emulator


@pytest.fixture
def collector(monkeypatch):
    """The collector Airflow hands out once a hook-lineage reader (the OpenLineage plugin) is enabled."""
    collector = HookLineageCollector()
    monkeypatch.setattr("airflow.sdk.lineage.get_hook_lineage_collector", lambda: collector)
    return collector


def show_requests(emulator) -> int:
    return sum(1 for record in emulator.requests if record.method == "GET" and SHOW_TASK.search(record.path))


@pytest.mark.parametrize("deferrable", [False, True])
def test_stop_the_sensor_and_delete_name_no_dataset(emulator, oms_conn, collector, deferrable):
    task_id = create_sample_task(emulator, OMSHook(oms_conn), files=0, names=[])  # objects: the fixture's
    emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED}, timeout=20)
    stop = StopMigrationTaskOperator(task_id="stop", migration_task_id=task_id, oms_conn_id=oms_conn)
    with pytest.raises(OMSApiError):  # a succeeded task cannot be paused; the operator read it to tell
        stop.execute(context={})
    sensor = MigrationTaskSensor(
        task_id="watch", migration_task_id=task_id, oms_conn_id=oms_conn, poke_interval=0.2, deferrable=deferrable
    )
    value = run_operator(sensor) if deferrable else sensor.poke(context={}).xcom_value
    assert value["status"] == TaskStatus.SUCCEEDED
    DeleteMigrationTaskOperator(task_id="delete", migration_task_id=task_id, oms_conn_id=oms_conn).execute({})

    assert not collector.has_collected, collector.collected_assets
    require_openlineage()
    lineage = sensor.get_openlineage_facets_on_complete(None)
    assert (lineage.inputs, lineage.outputs) == ([], [])
    facet = lineage.run_facets["oms_migration"]  # what it watched, as a run facet
    assert (facet.migrationTaskId, facet.status, facet.successfulNum) == (task_id, "succeeded", 2)


def test_start_and_create_report_hook_lineage_once_each(emulator, oms_conn, collector):
    create = CreateMigrationTaskOperator(
        task_id="create",
        task_definition=DEFINITION,
        source_conn_id="src",
        oms_conn_id=oms_conn,
        wait_for_completion=True,
        poll_interval=1,
    )
    create.execute(retry_context(try_number=1))  # the create body, then the wait's reads
    emulator.add_fail_rule("data/b.txt", times=1)
    task_id = create_sample_task(emulator, OMSHook(oms_conn), files=0, names=[])
    emulator.wait_for_status(task_id, {TaskStatus.FAILED}, timeout=20)
    start = start_operator(task_id, oms_conn_id=oms_conn)
    start.execute(retry_context(try_number=1))  # a read before the start, then the wait's reads

    lineage = collector.collected_assets
    by_operator = {id(create.hook): "create", id(start.hook): "start"}
    inputs = sorted((by_operator.get(id(i.context), "other"), i.asset.uri, i.count) for i in lineage.inputs)
    outputs = sorted((by_operator.get(id(o.context), "other"), o.asset.uri, o.count) for o in lineage.outputs)
    assert inputs == [("create", "s3://src/data", 1), ("start", "oss://src/data", 1)]
    assert outputs == [("create", "obs://dst/landing", 1), ("start", "obs://dst/in", 1)]


def test_a_lineage_read_is_one_attempt_within_its_timeout(emulator, oms_conn):
    hook = OMSHook(oms_conn)
    task_id = create_sample_task(emulator, hook, files=0, names=[])
    emulator.reset_requests()
    emulator.inject_fault("delay", path=SHOW_TASK.pattern, delay=5)
    began = time.monotonic()
    with pytest.raises(OMSApiError):
        hook.get_task(task_id, timeout=0.5)
    assert time.monotonic() - began < 2
    emulator.inject_fault("error", status=503, path=SHOW_TASK.pattern, count=5)
    with pytest.raises(OMSApiError, match="503"):
        hook.get_task(task_id, timeout=0.5)
    assert show_requests(emulator) == 2  # no retry
    assert listener_read_timeout() == LINEAGE_READ_SECONDS  # [openlineage] execution_timeout's 10 s / 4 > 2.5 s


def test_failure_lineage_reads_oms_once_and_in_time_during_an_outage(emulator, oms_conn):
    require_openlineage()
    from airflow_provider_oms.lineage_facets import PRODUCER

    emulator.add_fail_rule("data/b.txt")
    task_id = create_sample_task(emulator, OMSHook(oms_conn), files=0, names=[])
    emulator.wait_for_status(task_id, {TaskStatus.FAILED}, timeout=20)
    operator = start_operator(task_id, oms_conn_id=oms_conn, deferrable=True)
    with pytest.raises(OMSMigrationError):  # deferred: the resumed method knows the figures, not the datasets
        run_operator(operator, retry_context(try_number=1))

    emulator.reset_requests()
    emulator.inject_fault("error", status=503, path=SHOW_TASK.pattern, seconds=120)
    began = time.monotonic()
    lineage = operator.get_openlineage_facets_on_failure(None)
    elapsed = time.monotonic() - began

    # The listener waits [openlineage] execution_timeout (10 s by default) for extraction and emission together.
    assert elapsed < listener_read_timeout() + 1, elapsed
    assert show_requests(emulator) == 1
    assert (lineage.inputs, lineage.outputs) == ([], [])  # unknown without the read: nothing is guessed
    assert lineage.run_facets["oms_migration"].status == "failed"
    error = lineage.run_facets["errorMessage"]
    assert f"OMS migration task {task_id} failed" in error.message and "1 objects failed" in error.message
    assert (error.programmingLanguage, error._producer) == ("python", PRODUCER)


def test_complete_lineage_carries_output_statistics_and_a_facet_valid_against_its_schema(emulator, oms_conn):
    require_openlineage()
    from openlineage.client.serde import Serde

    from airflow_provider_oms.lineage_facets import PRODUCER

    operator = CreateMigrationTaskOperator(
        task_id="create",
        task_definition=DEFINITION,
        source_conn_id="src",
        oms_conn_id=oms_conn,
        wait_for_completion=True,
        poll_interval=1,
    )
    run_operator(operator, retry_context(try_number=1))
    lineage = operator.get_openlineage_facets_on_complete(None)

    (output,) = lineage.outputs
    assert (output.namespace, output.name) == ("obs://dst", "landing")
    statistics = output.outputFacets["outputStatistics"]
    assert (statistics.fileCount, statistics.size) == (2, sum(len(content) for content in FILES.values()))
    assert statistics._producer == PRODUCER  # facets this provider builds name it, standard ones too
    assert "errorMessage" not in lineage.run_facets
    facet = json.loads(Serde.to_json(lineage.run_facets["oms_migration"]))
    assert facet["_producer"] == PRODUCER
    check_oms_migration_facet(facet)


def test_the_facet_carries_the_runs_totals_and_each_attempts_figures(emulator, oms_conn):
    require_openlineage()
    from openlineage.client.serde import Serde

    emulator.add_fail_rule("data/b.txt", times=1)
    operator = CreateMigrationTaskOperator(
        task_id="create",
        task_definition=DEFINITION,
        source_conn_id="src",
        oms_conn_id=oms_conn,
        wait_for_completion=True,
        poll_interval=1,
        retry_failed_objects=1,
    )
    result = run_operator(operator, retry_context(try_number=1))
    facet = json.loads(Serde.to_json(operator.get_openlineage_facets_on_complete(None).run_facets["oms_migration"]))

    assert (facet["successfulNum"], facet["failedNum"], facet["restarts"]) == (2, 0, 1)
    attempts = [(a["kind"], a["statusName"], a["successfulNum"], a["failedNum"]) for a in facet["attempts"]]
    expected = [(a["kind"], a["status_name"], a["successful_num"], a["failed_num"]) for a in result["attempts"]]
    assert attempts == expected == [("whole_task", "failed", 1, 1), ("failed_objects", "succeeded", 2, 0)]
    check_oms_migration_facet(facet)
