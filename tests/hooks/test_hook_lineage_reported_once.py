"""A wait reads one task many times: the hook reports its source and destination to hook lineage once."""

from __future__ import annotations

from airflow_provider_oms import lineage
from airflow_provider_oms.hooks.oms import OMSHook
from tests.helpers import create_sample_task


def test_a_task_read_again_and_again_is_reported_once_per_hook(oms_emulator, oms_conn, monkeypatch):
    hook = OMSHook(oms_conn)
    reported: list[tuple[int, object]] = []
    monkeypatch.setattr(lineage, "report_hook_lineage", lambda h, task, **kw: reported.append((id(h), task.get("id"))))
    task_id = create_sample_task(oms_emulator, hook)
    assert reported == [(id(hook), None)]  # the create body: it has no id yet
    for _ in range(3):
        hook.get_task(task_id)
    other = OMSHook(oms_conn)
    other.get_task(task_id)
    assert [entry for entry in reported if entry[1] is not None] == [
        (id(hook), int(task_id)),
        (id(other), int(task_id)),
    ]
