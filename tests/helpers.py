"""Helpers shared by the tests."""

from __future__ import annotations

from pathlib import Path


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
}
