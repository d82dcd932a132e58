"""
Lineage in-process against the emulator over real HTTP: the hook's report to Airflow's hook-lineage collector
(a real HookLineageCollector: the one Airflow hands out once a lineage reader such as OpenLineage is enabled),
and the operators' OpenLineage methods after a sync wait and after a deferral.
"""

from __future__ import annotations

import json

import pytest
from airflow.sdk.lineage import HookLineageCollector

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.operators.lifecycle import CreateMigrationTaskOperator
from airflow_provider_oms.operators.oms import StartMigrationTaskOperator
from airflow_provider_oms.testing import EMULATOR_AK, EMULATOR_SK
from tests.helpers import create_sample_task
from tests.lineage.conftest import require_openlineage
from tests.operators.deferral import retry_context, run_operator

DEFINITION = {
    "task_type": "prefix",
    "src_node": {"region": "local", "bucket": "src", "cloud_type": "Google", "object_key": ["data/"]},
    "dst_node": {"region": "local", "bucket": "dst", "save_prefix": "landing/"},
}


@pytest.fixture
def emulator(emulator_with_source):
    return emulator_with_source(["data/a.txt", "data/b.txt"], task_start_delay=0.2)


@pytest.fixture
def collector(monkeypatch):
    collector = HookLineageCollector()
    monkeypatch.setattr("airflow.sdk.lineage.get_hook_lineage_collector", lambda: collector)
    return collector


def test_the_create_operators_hook_reports_source_and_destination_a_reading_hook_nothing(emulator, oms_conn, collector):
    operator = CreateMigrationTaskOperator(
        task_id="create", task_definition=DEFINITION, source_conn_id="src", oms_conn_id=oms_conn
    )
    task_id = operator.execute(retry_context(try_number=1))["migration_task_id"]
    OMSHook(oms_conn).get_task(task_id)  # a hook that only reads is no producer

    lineage = collector.collected_assets
    # from the create body, by the operator's hook; its read of the task's name adds nothing
    assert [(i.asset.uri, i.count) for i in lineage.inputs] == [("gs://src/data", 1)]
    assert [(o.asset.uri, o.count) for o in lineage.outputs] == [("obs://dst/landing", 1)]
    assert all(i.context is operator.hook for i in lineage.inputs + lineage.outputs)
    assert "SOURCE-AK-0001" not in repr(lineage)


@pytest.mark.parametrize("deferrable", [False, True])
def test_create_waits_records_asset_events_and_reports_lineage(emulator, oms_conn, deferrable):
    from airflow.sdk import Asset, AssetAlias

    operator = CreateMigrationTaskOperator(
        task_id="create",
        task_definition=DEFINITION,
        source_conn_id="src",
        oms_conn_id=oms_conn,
        wait_for_completion=True,
        deferrable=deferrable,
        poll_interval=1,
        outlets=[Asset("obs://dst/landing/"), AssetAlias("landing")],
    )
    outlet_events = _OutletEvents()
    context = {**retry_context(try_number=1), "outlet_events": outlet_events}
    result = run_operator(operator, context)

    assert result["status"] == TaskStatus.SUCCEEDED and result["successful_num"] == 2
    assert outlet_events.extras[Asset("obs://dst/landing/")]["successful_num"] == 2
    assert outlet_events.added[AssetAlias("landing")] == [("obs://dst/landing", result["migration_task_id"])]

    require_openlineage()
    lineage = operator.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("gs://src", "data")]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("obs://dst", "landing")]
    facet = lineage.run_facets["oms_migration"]
    assert (facet.migrationTaskId, facet.status, facet.successfulNum) == (result["migration_task_id"], "succeeded", 2)
    text = json.dumps([repr(lineage), outlet_events.extras.popitem()[1]])
    for secret in (EMULATOR_AK, EMULATOR_SK, "SOURCE-AK-0001", "SOURCE-SK-0001"):
        assert secret not in text


def test_a_failed_migration_records_no_asset_event_and_reports_the_failed_list(emulator, oms_conn):
    from airflow.sdk import Asset

    from airflow_provider_oms.exceptions import OMSMigrationError

    emulator.add_fail_rule("data/b.txt")
    hook = OMSHook(oms_conn)
    task_id = create_sample_task(emulator, hook, files=0, names=["a.txt", "b.txt"])
    emulator.wait_for_status(task_id, {TaskStatus.FAILED}, timeout=20)
    operator = StartMigrationTaskOperator(
        task_id="start",
        migration_task_id=task_id,
        oms_conn_id=oms_conn,
        poll_interval=1,
        outlets=[Asset("obs://dst/in/")],
    )
    outlet_events = _OutletEvents()
    with pytest.raises(OMSMigrationError):
        run_operator(operator, {**retry_context(try_number=1), "outlet_events": outlet_events})
    assert outlet_events.extras == {} and outlet_events.added == {}
    require_openlineage()
    lineage = operator.get_openlineage_facets_on_failure(None)
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("obs://dst", "in")]
    facet = lineage.run_facets["oms_migration"]
    assert (facet.status, facet.failedNum) == ("failed", 1)
    assert facet.failedObjectListKey


@pytest.mark.parametrize("deferrable", [False, True])
def test_the_sensor_reports_the_watched_migrations_figures_and_no_dataset(emulator, oms_conn, deferrable):
    from airflow_provider_oms.sensors.oms import MigrationTaskSensor

    hook = OMSHook(oms_conn)
    task_id = str(
        hook.create_task(hook.build_create_task_body(DEFINITION, source_conn_id="src"))["id"]
    )  # OMS starts it by itself; the sensor only watches
    sensor = MigrationTaskSensor(
        task_id="watch", migration_task_id=task_id, oms_conn_id=oms_conn, poke_interval=0.2, deferrable=deferrable
    )
    if deferrable:
        value = run_operator(sensor, retry_context(try_number=1))
    else:
        emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED}, timeout=20)
        value = sensor.poke(context={}).xcom_value
    assert value["status"] == TaskStatus.SUCCEEDED

    require_openlineage()
    lineage = sensor.get_openlineage_facets_on_complete(None)
    assert (lineage.inputs, lineage.outputs) == ([], [])  # a sensor produces nothing: the create did
    facet = lineage.run_facets["oms_migration"]
    assert (facet.migrationTaskId, facet.status, facet.successfulNum) == (task_id, "succeeded", 2)
    for secret in (EMULATOR_AK, EMULATOR_SK, "SOURCE-AK-0001", "SOURCE-SK-0001"):
        assert secret not in repr(lineage)


class _OutletEvents:
    """Records what an operator does with ``context["outlet_events"]``, as the task runner's accessors do."""

    def __init__(self) -> None:
        self.extras: dict = {}
        self.added: dict = {}

    def __getitem__(self, key):
        events = self

        class Accessor:
            @property
            def extra(self):
                return events.extras.get(key, {})

            @extra.setter
            def extra(self, value):
                events.extras[key] = value

            def add(self, asset, extra=None):
                events.added.setdefault(key, []).append((asset.uri, (extra or {}).get("migration_task_id")))

        return Accessor()
