"""
Housekeeping for recurring pipelines: delete a DAG's own finished OMS migration tasks once they are old.

A nightly DAG that creates a task per run (``CreateMigrationTaskOperator`` with ``migrate_since``) leaves one
task in OMS per night; OMS caps the tasks waiting at 1,500. The operator here keeps that list bounded. It knows a
DAG's own tasks by the marker its create operators write into their descriptions
(:mod:`~airflow_provider_oms.operators.markers`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_oms.constants import DEFAULT_CONN_ID, ERROR_NOT_FOUND, ERROR_TASK_IN_PROGRESS, TaskStatus
from airflow_provider_oms.exceptions import OMSApiError, OMSValidationError
from airflow_provider_oms.operators.base import OMSHookMixin
from airflow_provider_oms.operators.markers import MARKER_RE, dag_marker

if TYPE_CHECKING:
    from airflow.sdk import Context

#: The shortest ``older_than`` taken.
MIN_OLDER_THAN_SECONDS = 1.0
#: The statuses of a finished task: the only ones deleted.
FINISHED_STATUSES = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED})
_PAGE = 100


def older_than_seconds(older_than: Any) -> float:
    """
    Return ``older_than`` (a ``timedelta`` or a number of seconds) in seconds, checked.

    :raises OMSValidationError: if it is neither, not finite, or under :data:`MIN_OLDER_THAN_SECONDS`.
    """
    if isinstance(older_than, timedelta):
        seconds = older_than.total_seconds()
    elif isinstance(older_than, (int, float)) and not isinstance(older_than, bool):
        seconds = float(older_than)
    else:
        raise OMSValidationError(
            f"older_than must be a timedelta or a number of seconds, got {type(older_than).__name__}"
        )
    if not math.isfinite(seconds):
        raise OMSValidationError(f"older_than must be a finite number of seconds, got {seconds!r}")
    if seconds < MIN_OLDER_THAN_SECONDS:
        raise OMSValidationError(f"older_than must be at least {MIN_OLDER_THAN_SECONDS:g} second, got {seconds!r} s")
    return seconds


def finished_at_ms(task: Mapping[str, Any]) -> int | None:
    """
    Return when (Unix ms) a finished task ended: its last run's ``start_time`` plus its ``total_time``.

    OMS's list has no creation or end time. Should ``total_time`` count every run, the sum lies later than
    the real end: the task looks younger, and is deleted later, never sooner. ``None`` if it never started.
    """
    start, took = task.get("start_time"), task.get("total_time")
    if isinstance(start, bool) or not isinstance(start, int) or start <= 0:
        return None
    return start + (took if isinstance(took, int) and not isinstance(took, bool) and took > 0 else 0)


class DeleteFinishedMigrationTasksOperator(OMSHookMixin, BaseOperator):
    """
    Delete this DAG's own finished OMS migration tasks that ended more than ``older_than`` ago.

    A task is this DAG's when its description holds the marker this DAG's ``CreateMigrationTaskOperator`` wrote
    (``airflow-<12 hex digits of the DAG id's SHA-256>-<16 more>``). Deleted: such tasks that succeeded or failed,
    ended (``start_time + total_time``, by this machine's clock) more than ``older_than`` ago. Never deleted:
    another DAG's task, a task without this DAG's marker (created by hand, by a task group, or with a marker
    from before the DAG part), a task in progress (waiting, running, retrying, pausing), a paused task
    (someone stopped it to resume it later, or a killed Airflow task left it for its retry: a start resumes it,
    a delete would lose its progress and failed-object record), and a task of a task group.

    The whole list is read, 100 tasks a page, before anything is deleted.

    :param older_than: how long ago a task must have ended, as a ``timedelta`` or seconds; at least 1 s.
    :param oms_conn_id: the ``huaweicloud_oms`` connection. Templated.
    :return: (XCom) ``{"deleted": [ids], "kept_in_progress": [ids], "kept_paused": [ids], "kept_recent": [ids],
        "kept_undated": [ids], "older_than_seconds": float}``, ids as strings, this DAG's tasks only.
        ``kept_recent``: finished less than ``older_than`` ago; ``kept_undated``: finished without a
        ``start_time`` to judge by. A task that was gone by the time of its delete counts as deleted; one that
        was started again meanwhile is kept in progress.
    """

    template_fields: Sequence[str] = ("oms_conn_id",)
    ui_color = "#e8f1fb"

    def __init__(self, *, older_than: timedelta | float, oms_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.older_than = older_than
        self.oms_conn_id = oms_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        """List the tasks, pick this DAG's old finished ones, delete them and report what was kept."""
        seconds = older_than_seconds(self.older_than)
        own = dag_marker(context["ti"].dag_id)
        result: dict[str, Any] = {
            "deleted": [],
            "kept_in_progress": [],
            "kept_paused": [],
            "kept_recent": [],
            "kept_undated": [],
        }
        due = []
        cutoff_ms = time.time() * 1000 - seconds * 1000
        for task in self._own_tasks(own):
            task_id, status = str(task["id"]), task.get("status")
            if status == TaskStatus.PAUSED:
                result["kept_paused"].append(task_id)
            elif status not in FINISHED_STATUSES:
                result["kept_in_progress"].append(task_id)  # unknown statuses too: never delete what may run
            elif (ended := finished_at_ms(task)) is None:
                result["kept_undated"].append(task_id)
            elif ended < cutoff_ms:
                due.append(task_id)
            else:
                result["kept_recent"].append(task_id)
        for task_id in due:
            result["deleted" if self._delete(task_id) else "kept_in_progress"].append(task_id)
        self.log.info(
            "Deleted %d finished OMS migration task(s) of DAG %s that ended over %g s ago: %s; kept %d in progress, "
            "%d paused, %d recent, %d without a start time",
            len(result["deleted"]),
            context["ti"].dag_id,
            seconds,
            ", ".join(result["deleted"]) or "none",
            len(result["kept_in_progress"]),
            len(result["kept_paused"]),
            len(result["kept_recent"]),
            len(result["kept_undated"]),
        )
        return {**result, "older_than_seconds": seconds}

    def _own_tasks(self, own: str) -> list[dict[str, Any]]:
        """Return this DAG's tasks (marker's DAG part ``own``, no task group), reading the whole list."""
        found: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            tasks = self.hook.list_tasks(limit=_PAGE, offset=offset).get("tasks") or []
            for task in tasks:
                if task.get("group_id") or own not in MARKER_RE.findall(str(task.get("description") or "")):
                    continue
                found.setdefault(str(task["id"]), task)  # a task created meanwhile shifts the list: seen twice
            if len(tasks) < _PAGE:
                return list(found.values())
            offset += len(tasks)

    def _delete(self, task_id: str) -> bool:
        """Delete one task; return ``False`` if OMS refuses because it is in progress again."""
        try:
            self.hook.delete_task(task_id)
        except OMSApiError as err:
            if err.error_code == ERROR_NOT_FOUND:
                self.log.info("OMS migration task %s was already gone", task_id)
                return True
            if err.error_code == ERROR_TASK_IN_PROGRESS:
                self.log.info("OMS migration task %s was started again meanwhile: kept", task_id)
                return False
            raise
        return True
