"""
What a poll of a migration task means: keep waiting, done, or failed, and how to report it.

Pure functions over the task object that show-task returns, shared by the operator's sync wait, the async
trigger and the sensor, so all three judge and report a task the same way. No Airflow, no I/O.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from airflow_provider_oms.constants import IN_PROGRESS_STATUSES, TaskStatus, status_name

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


#: For this long after the provider's own start (or failed-object restart), a read that still shows the task
#: exactly as it was before the start is not taken as the outcome: OMS may answer with the old status (paused,
#: or the previous run's failure) for a moment after it accepted a start.
START_GRACE_SECONDS = 60.0
#: Fields that stay still while a task is paused or failed; a read equal to the read before a start on all of
#: them still shows the task from before the start. (Not the timing fields: they may move on every read.)
FINGERPRINT_FIELDS = (
    "status",
    "start_time",
    "total_num",
    "successful_num",
    "failed_num",
    "skipped_num",
    "complete_size",
)


def fingerprint(task: Mapping[str, Any]) -> list[Any]:
    """Return what a read right after a start is compared with to tell a stale answer (JSON-serializable)."""
    return [task.get(key) for key in FINGERPRINT_FIELDS]


def shows_start(
    task: Mapping[str, Any], before: Sequence[Any] | None, grace_until: float | None, now: float
) -> bool | None:
    """
    Whether a read shows the provider's own start: ``True`` yes, ``None`` not yet (within the grace window).

    :param task: the read.
    :param before: :func:`fingerprint` of the read before the start; ``None`` once a read has shown the start.
    :param grace_until: the end (UNIX time) of the window in which a stale read is waited out.
    :param now: the time of the read.
    :return: ``True`` when the task has moved since the read before the start (or nothing is being checked),
        ``None`` when it has not and the grace window is still open, ``False`` when it has not and the window
        has closed: OMS accepted the start but the task never showed it.
    """
    if before is None or fingerprint(task) != list(before):
        return True
    if grace_until is not None and now < grace_until:
        return None
    return False


#: How long a wait goes on while OMS cannot be reached, in seconds (connection extra ``outage_tolerance``): much
#: longer than one call's retry budget (``retry_max_seconds``, 120 s), so that a gateway outage of minutes does
#: not fail a migration of hours.
DEFAULT_OUTAGE_TOLERANCE = 900.0


@dataclass
class Outage:
    """
    How long the reads of one wait have failed in a row because OMS could not be reached.

    :param tolerance: the longest outage the wait goes on through, in seconds.
    """

    tolerance: float
    #: When the first failed read of the current outage began (UNIX time); ``None`` while OMS answers.
    since: float | None = None

    def failed(self, error: BaseException, read_began: float, now: float) -> str | None:
        """
        Record a read that failed for good (its retries spent) because OMS was unreachable.

        :return: ``None`` while the outage is tolerated, else the message to fail the wait with.
        """
        if self.since is None:
            self.since = read_began
        if now - self.since < self.tolerance:
            return None
        since = datetime.fromtimestamp(self.since, tz=timezone.utc).isoformat(timespec="seconds")
        return (
            f"OMS was unreachable since {since} ({_duration((now - self.since) * 1000)}), longer than the "
            f"connection's outage_tolerance of {self.tolerance:.0f} s; last error: {error}"
        )

    def log_line(self, migration_task_id: str, error: BaseException, now: float) -> str:
        """Say that a read failed and the wait goes on."""
        since = self.since if self.since is not None else now
        return (
            f"OMS unreachable while waiting for task {migration_task_id} for {_duration((now - since) * 1000)} "
            f"({error}); waiting on, up to the outage_tolerance of {self.tolerance:.0f} s"
        )

    def recovered(self, now: float) -> str | None:
        """Record a read that worked; return a line to log when it ends an outage."""
        if self.since is None:
            return None
        lasted, self.since = now - self.since, None
        return f"OMS answers again after {_duration(lasted * 1000)}"


def stale_start_message(migration_task_id: str, task: Mapping[str, Any], started_at: float | None) -> str:
    """Say that OMS accepted a start but still shows the task as it was before it, past the grace window."""
    since = f" {time.time() - started_at:.0f} s" if started_at else ""
    return (
        f"OMS accepted the start of migration task {migration_task_id}, but{since} later it still shows the task "
        f"as before the start ({status_name(task.get('status'))}, unchanged); check the task in the OMS console"
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
    left_ms = float(task.get("left_time") or 0)
    # OMS gives no estimate before the first objects and after the last: "~0s left" would mislead.
    left = f" | ~{_duration(left_ms)} left" if left_ms >= 1000 else ""
    return (
        f"OMS task {migration_task_id} {status_name(task.get('status'))}: {progress * 100:.1f}% | "
        f"objects {done}/{int(task.get('total_num') or 0)} (failed {int(task.get('failed_num') or 0)}) | "
        f"{_size(task.get('complete_size'))} of {_size(task.get('total_size'))} | "
        f"{_size(task.get('migrate_speed'))}/s{left}"
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


def not_awaited_message(migration_task_id: str, task: Mapping[str, Any], target_statuses: Collection[int]) -> str:
    """Describe a task that stopped in a status that is not awaited (paused, or succeeded when not awaited)."""
    awaited = ", ".join(status_name(s) for s in target_statuses)
    return (
        f"OMS migration task {migration_task_id} is {status_name(task.get('status'))} and will not become {awaited} "
        "by itself"
    )


#: The kinds of attempt (one run of a task in OMS): the whole task, or only the objects the run before failed.
WHOLE_TASK = "whole_task"
FAILED_OBJECTS = "failed_objects"
#: The counters OMS keeps for a task, in the order the figures are reported.
COUNTERS = ("total_num", "successful_num", "failed_num", "skipped_num", "complete_size", "total_size")


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else int(float(value or 0))


def attempt_figures(task: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """
    Return one attempt's figures: OMS's counters of the task when the attempt ended, and what the attempt ran.

    :param task: the task read at the attempt's end.
    :param kind: :data:`WHOLE_TASK` or :data:`FAILED_OBJECTS`.
    """
    return {"kind": kind, "status_name": status_name(task.get("status")), **{k: _count(task.get(k)) for k in COUNTERS}}


def run_totals(attempts: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """
    Add up the attempts of one run, counting each object once.

    OMS keeps one set of counters per task. A restart for the failed objects carries them on (the emulator does;
    it is the same task, and ``total_num`` stays the listing's): its own share is what it added. Should a
    deployment count such a restart on its own instead (``total_num`` is then the objects retried), its figures
    are added whole. A restart of the whole task begins the counters anew: the objects that earlier attempts of
    this run landed are then counted by OMS as skipped (already in place), and are taken out of the skipped.

    :param attempts: :func:`attempt_figures` of each attempt, in order; not empty.
    :return: the counters of :data:`COUNTERS` for the run: ``successful_num`` the objects it landed,
        ``skipped_num`` those already in place before it, ``failed_num`` and ``total_num`` the last attempt's.
    """
    first, *restarts = attempts
    totals = {key: _count(first.get(key)) for key in COUNTERS}
    previous = totals.copy()
    for attempt in restarts:
        current = {key: _count(attempt.get(key)) for key in COUNTERS}
        if attempt.get("kind") == FAILED_OBJECTS and current["total_num"] == previous["total_num"]:
            for key in ("successful_num", "skipped_num"):  # carried on: its share is what it added
                totals[key] += max(0, current[key] - previous[key])
            totals.update(complete_size=current["complete_size"], total_size=current["total_size"])
        elif attempt.get("kind") == FAILED_OBJECTS:  # counted on its own: only the objects retried
            totals["successful_num"] += current["successful_num"]
            totals["skipped_num"] += current["skipped_num"]
            totals["complete_size"] += current["complete_size"]
        else:  # the whole task again: what this run landed before is now "skipped"
            landed_before = totals["successful_num"]
            totals["successful_num"] = landed_before + current["successful_num"]
            totals["skipped_num"] = max(0, current["skipped_num"] - landed_before)
            totals.update(
                total_num=current["total_num"], complete_size=current["complete_size"], total_size=current["total_size"]
            )
        totals["failed_num"] = current["failed_num"]
        totals["total_num"] = max(totals["total_num"], current["total_num"])
        previous = current
    return totals


def result(
    migration_task_id: str,
    task: Mapping[str, Any],
    *,
    restarts: int,
    elapsed_seconds: float,
    attempts: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """
    Build the operator's return value (XCom): id, status code and name, counts, bytes, outcome, restarts.

    The counters are the run's totals (:func:`run_totals`) over its attempts, each object counted once;
    ``attempts`` in the result lists every attempt's own figures.

    :param task: the task read at the end: the figures of the current (last) attempt.
    :param attempts: the attempts of this run: :func:`attempt_figures` of those that ended, then the current
        one (at least its ``kind``); none: the task's one run, of the whole task.
    """
    status = _status(task)
    *ended, current = attempts or ({"kind": WHOLE_TASK},)
    every_attempt = [*ended, attempt_figures(task, current.get("kind", WHOLE_TASK))]
    return {
        "migration_task_id": migration_task_id,
        "status": status,
        "status_name": status_name(status),
        **run_totals(every_attempt),
        "progress": task.get("progress"),
        "elapsed_seconds": round(elapsed_seconds, 3),
        "error_reason": task.get("error_reason"),
        "failed_object_record": task.get("failed_object_record"),
        "restarts": restarts,
        "attempts": every_attempt,
    }
