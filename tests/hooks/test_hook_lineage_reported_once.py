"""
Hook-level lineage names producers only: a hook reports a migration's source and destination only when the operator
that moves the data asked it to (``report_lineage=True``), and then once, however often it reads the task.
Stop, delete and the sensors make their hooks without it. A real HookLineageCollector records what is reported.
"""

from __future__ import annotations

import pytest
from airflow.sdk.lineage import HookLineageCollector

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.hooks.oms import OMSHook
from tests.helpers import create_sample_task


@pytest.fixture
def collector(monkeypatch):
    """The collector Airflow hands out once a hook-lineage reader (the OpenLineage plugin) is enabled."""
    collector = HookLineageCollector()
    monkeypatch.setattr("airflow.sdk.lineage.get_hook_lineage_collector", lambda: collector)
    return collector


def test_a_hook_reports_nothing_unless_asked(oms_emulator, oms_conn, collector):
    hook = OMSHook(oms_conn)
    task_id = create_sample_task(oms_emulator, hook)
    oms_emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED}, timeout=20)
    hook.get_task(task_id)
    hook.delete_task(task_id)
    assert not collector.has_collected, collector.collected_assets


def test_a_reporting_hook_reports_a_migration_once_however_often_it_reads_it(oms_emulator, oms_conn, collector):
    hook = OMSHook(oms_conn, report_lineage=True)
    task_id = create_sample_task(oms_emulator, hook)  # the create body
    for _ in range(3):  # a wait's reads
        hook.get_task(task_id)
    lineage = collector.collected_assets
    assert [(i.asset.uri, i.count) for i in lineage.inputs] == [("oss://src/data", 1)]
    assert [(o.asset.uri, o.count) for o in lineage.outputs] == [("obs://dst/in", 1)]
    assert {id(i.context) for i in lineage.inputs + lineage.outputs} == {id(hook)}
