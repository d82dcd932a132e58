"""
What a poll of a migration task means: keep waiting, done, or failed, and how to report it.

Pure functions over the task object that show-task returns, shared by the operator's sync wait, the async
trigger and the sensor, so all three judge and report a task the same way. No Airflow, no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import Enum
from typing import Any

from airflow_provider_oms.constants import TaskStatus, status_name

#: Statuses in which a task moves on by itself.
IN_PROGRESS_STATUSES = frozenset({TaskStatus.WAITING, TaskStatus.RUNNING, TaskStatus.RETRYING, TaskStatus.PAUSING})
#: Fields of the task object kept in trigger events and in the operator's result: progress and outcome.
SUMMARY_FIELDS = (
    "status",
    "total_num",
    "successful_num",
    "failed_num",
    "skipped_num",
    "complete_size",
    "total_size",
    "progress",
    "migrate_speed",
    "left_time",
    "total_time",
    "start_time",
    "error_reason",
    "failed_object_record",
)


class Outcome(str, Enum):
    """What one poll says about a task, given the statuses the caller waits for."""

    WAITING = "waiting"
    SUCCESS = "success"
    FAILED = "failed"
    #: Paused, or succeeded when something else was awaited: it will not move on by itself.
    STUCK = "stuck"
    UNKNOWN = "unknown"


def _status(task: Mapping[str, Any]) -> int | None:
    try:
        return int(task.get("status"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def classify(
    task: Mapping[str, Any],
    target_statuses: Collection[int] = (TaskStatus.SUCCEEDED,),
    failure_statuses: Collection[int] = (TaskStatus.FAILED,),
) -> Outcome:
    """
    Judge a task object against the statuses awaited.

    :param task: the show-task answer (or a :func:`summarize` of it).
    :param target_statuses: statuses that end the wait successfully.
    :param failure_statuses: statuses that end the wait with a failure.
    """
    status = _status(task)
    if status is None or status not in set(TaskStatus):
        return Outcome.UNKNOWN
    if status in target_statuses:
        return Outcome.SUCCESS
    if status in failure_statuses:
        return Outcome.FAILED
    if status in IN_PROGRESS_STATUSES:
        return Outcome.WAITING
    return Outcome.STUCK


def summarize(task: Mapping[str, Any]) -> dict[str, Any]:
    """Keep the progress and outcome fields of a task object (small and JSON-serializable)."""
    return {key: task.get(key) for key in SUMMARY_FIELDS}


def can_retry_failed_objects(task: Mapping[str, Any]) -> bool:
    """Whether a failed task can be restarted for its failed objects only."""
    record = task.get("failed_object_record") or {}
    return _status(task) == TaskStatus.FAILED and int(task.get("failed_num") or 0) > 0 and bool(record.get("result"))


def _size(num_bytes: Any) -> str:
    value = float(num_bytes or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _duration(milliseconds: Any) -> str:
    seconds = int(float(milliseconds or 0) / 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


def progress_line(migration_task_id: str, task: Mapping[str, Any]) -> str:
    """One log line per poll: status, percent, objects, bytes, speed and estimated time left."""
    progress = float(task.get("progress") or 0)
    done = int(task.get("successful_num") or 0) + int(task.get("skipped_num") or 0)
    return (
        f"OMS task {migration_task_id} {status_name(task.get('status'))}: {progress * 100:.1f}% | "
        f"objects {done}/{int(task.get('total_num') or 0)} (failed {int(task.get('failed_num') or 0)}) | "
        f"{_size(task.get('complete_size'))} of {_size(task.get('total_size'))} | "
        f"{_size(task.get('migrate_speed'))}/s | ~{_duration(task.get('left_time'))} left"
    )


def failure_message(migration_task_id: str, task: Mapping[str, Any]) -> str:
    """Describe a task that ended failed, with the OMS reason and the failed-object list."""
    reason = task.get("error_reason") or {}
    record = task.get("failed_object_record") or {}
    parts = [f"OMS migration task {migration_task_id} failed"]
    why = " ".join(str(part) for part in (reason.get("error_code"), reason.get("error_msg")) if part)
    if why:
        parts.append(f": {why}")
    failed = int(task.get("failed_num") or 0)
    if failed:
        parts.append(f"; {failed} objects failed")
    if record.get("list_file_key"):
        parts.append(f"; the failed-object list is {record['list_file_key']!r} in the destination bucket")
    return "".join(parts)


def result(migration_task_id: str, task: Mapping[str, Any], *, restarts: int, elapsed_seconds: float) -> dict[str, Any]:
    """Build the operator's return value (XCom): id, status code and name, counts, bytes, outcome, restarts."""
    status = _status(task)
    return {
        "migration_task_id": migration_task_id,
        "status": status,
        "status_name": status_name(status),
        "total_num": task.get("total_num"),
        "successful_num": task.get("successful_num"),
        "failed_num": task.get("failed_num"),
        "skipped_num": task.get("skipped_num"),
        "complete_size": task.get("complete_size"),
        "total_size": task.get("total_size"),
        "progress": task.get("progress"),
        "elapsed_seconds": round(elapsed_seconds, 3),
        "error_reason": task.get("error_reason"),
        "failed_object_record": task.get("failed_object_record"),
        "restarts": restarts,
    }
