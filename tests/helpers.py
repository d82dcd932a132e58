"""Helpers shared by the tests."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_oms.constants import TaskStatus

if TYPE_CHECKING:
    from airflow_provider_oms.operators.oms import StartMigrationTaskOperator
    from airflow_provider_oms.testing.airflow_runner import AirflowTestEnvironment

#: Runs a test with ``deferrable`` False and True: the operator's wait in the worker and in the triggerer.
DEFERRABLE_MODES = pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])


def write_objects(bucket: Path, keys: list[str]) -> dict[str, bytes]:
    """Write one small object per key into a bucket folder; return key -> content."""
    written = {}
    for key in keys:
        path = bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        content = f"content of {key}\n".encode() * 10
        path.write_bytes(content)
        written[key] = content
    return written


def create_sample_task(emulator, hook, *, files=3, prefix="data/", names=None, save_prefix="in/", **task):
    """Write objects under ``prefix`` in bucket ``src`` and create a prefix task copying them to bucket ``dst``."""
    keys = [f"{prefix}{name}" for name in (names or [f"f{n}.txt" for n in range(files)])]
    write_objects(emulator.bucket_path("src"), keys)
    emulator.bucket_path("dst")
    body = {
        "task_type": "prefix",
        "src_node": {"region": "local", "bucket": "src", "object_key": [prefix], "ak": "SRC-AK", "sk": "SRC-SK"},
        "dst_node": {"region": "local", "bucket": "dst", "save_prefix": save_prefix, "ak": "DST-AK", "sk": "DST-SK"},
        **task,
    }
    return str(hook.create_task(body)["id"])


def paused_sample_task(emulator, hook, **task) -> str:
    """A sample task (:func:`create_sample_task`), stopped through the hook and waited for until it is paused."""
    task_id = create_sample_task(emulator, hook, **task)
    hook.stop_task(task_id)
    emulator.wait_for_status(task_id, {TaskStatus.PAUSED}, timeout=20)
    return task_id


def running_sample_task(emulator, hook, **task) -> str:
    """A sample task (:func:`create_sample_task`), waited for until it runs (copies)."""
    task_id = create_sample_task(emulator, hook, **task)
    emulator.wait_for_status(task_id, {TaskStatus.RUNNING}, timeout=20)
    return task_id


def start_operator(task_id: str, **kwargs: Any) -> StartMigrationTaskOperator:
    """StartMigrationTaskOperator ``start`` for an OMS task, polling every second."""
    from airflow_provider_oms.operators.oms import StartMigrationTaskOperator

    return StartMigrationTaskOperator(task_id="start", migration_task_id=task_id, poll_interval=1, **kwargs)


def files_under(folder: Path) -> dict[str, bytes]:
    """Every file below a folder (a bucket's), by its path relative to the folder, with its content."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def migrated_airflow(
    home: Path, dags_folder: Path, connections: dict[str, Any] | None = None
) -> AirflowTestEnvironment:
    """A temporary Airflow installation for ``airflow dags test``, its metadata database created."""
    from airflow_provider_oms.testing.airflow_runner import AirflowTestEnvironment

    env = AirflowTestEnvironment(home, dags_folder, connections or {})
    env.migrate()
    return env


def task_context() -> dict:
    """A context for calling execute() outside a task runner: a stand-in task instance that takes XComs."""
    from unittest import mock

    return {"ti": mock.Mock()}


#: The keys StartMigrationTaskOperator documents for its XCom return value.
DOCUMENTED_RESULT_KEYS = {
    "migration_task_id",
    "status",
    "status_name",
    "total_num",
    "successful_num",
    "failed_num",
    "skipped_num",
    "complete_size",
    "total_size",
    "progress",
    "elapsed_seconds",
    "error_reason",
    "failed_object_record",
    "restarts",
    "attempts",
}
