"""
Task store of the local OMS emulator: the emulated tasks and the API calls on them.

No HTTP here (moto's split: this is the backend, :mod:`~airflow_provider_oms.testing.server` the HTTP layer).
Tasks live in memory under one lock, as :class:`~airflow_provider_oms.testing.tasks.TaskRecord` records;
:mod:`~airflow_provider_oms.testing.tasks` holds the API rules that check the request bodies,
:mod:`~airflow_provider_oms.testing.engine` the worker threads that run the tasks and
:mod:`~airflow_provider_oms.testing.faults` the faults tests inject. Errors are raised as
:class:`OMSEmulatorError`, carrying the HTTP status and OMS error code that the server answers with.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from airflow_provider_oms.constants import (
    ERROR_NOT_FOUND,
    ERROR_TASK_ALREADY_STARTED,
    ERROR_TASK_IN_PROGRESS,
    ERROR_TASK_NOT_IN_PROGRESS,
    IN_PROGRESS_STATUSES,
    STARTABLE_STATUSES,
    TaskStatus,
)
from airflow_provider_oms.testing.engine import MigrationEngine
from airflow_provider_oms.testing.faults import FailRules, StartLag, stale_read
from airflow_provider_oms.testing.tasks import (
    LIST_LIMIT_DEFAULT,
    LIST_LIMIT_MAX,
    OMSEmulatorError,
    TaskRecord,
    TaskSpec,
    check_bucket_name,
    invalid_parameter,
    now_ms,
    parse_bandwidth_policy,
    parse_create_body,
    parse_start_body,
)

__all__ = [
    "ERROR_TASK_COMPLETED",
    "IN_PROGRESS_STATUSES",
    # Re-exported from testing.tasks, its home: tokens.py and the package's lazy names import it from here.
    "OMSEmulatorError",
    "TaskStore",
]

#: No v2 code is documented for starting a completed task; the emulator answers with this one.
ERROR_TASK_COMPLETED = "OMS.0067"


_TASK_ID_RE = re.compile(r"[0-9]{1,20}")


class TaskStore:
    """
    The emulated OMS tasks and the API calls on them; thread-safe.

    A :class:`~airflow_provider_oms.testing.engine.MigrationEngine` runs them, under the same lock.

    :param data_dir: the folder whose sub-folders are the buckets.
    :param task_start_delay: seconds a started task stays waiting (status 1) before it runs.
    :param object_delay: seconds each object takes to migrate.
    :param bytes_per_second: migration speed limit; each object also takes its size divided by this.
    :param pausing_delay: seconds a stopped running task stays pausing (status 7) before it is paused;
        ``None``: one ``object_delay``.
    :param start_lag_reads: after a start, this many show-task reads of the task still answer the task as it
        was before the start (paused or failed), as the real service may for a moment.
    :param start_lag_seconds: the same, for this many seconds after the start; with both, the lag lasts until
        both have run out.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        task_start_delay: float = 0.0,
        object_delay: float = 0.0,
        bytes_per_second: float | None = None,
        pausing_delay: float | None = None,
        start_lag_reads: int = 0,
        start_lag_seconds: float = 0.0,
    ) -> None:
        self._start_lag = StartLag(reads=start_lag_reads, seconds=start_lag_seconds)
        self.data_dir = data_dir
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._tasks: dict[int, TaskRecord] = {}
        self._last_id = 0
        self._fail_rules = FailRules()
        self._engine = MigrationEngine(
            data_dir,
            lock=self._lock,
            changed=self._changed,
            fail_rules=self._fail_rules,
            task_start_delay=task_start_delay,
            object_delay=object_delay,
            bytes_per_second=bytes_per_second,
            pausing_delay=pausing_delay,
        )
        self._applied_creates = 0
        self._applied_starts = 0

    @property
    def applied_creates(self) -> int:
        """How many create calls created a task."""
        with self._lock:
            return self._applied_creates

    @property
    def applied_starts(self) -> int:
        """How many start calls started a task (refused starts do not count)."""
        with self._lock:
            return self._applied_starts

    def bucket_path(self, bucket: str) -> Path:
        """Return the folder of ``bucket`` (not created); raises ``ValueError`` for an invalid bucket name."""
        return self.data_dir / check_bucket_name(bucket)

    def add_fail_rule(self, pattern: str, *, times: int | None = None, task_id: int | str | None = None) -> None:
        """
        Make the migration of matching objects fail.

        :param pattern: a glob (``fnmatch``) on the whole source key; ``*`` also matches ``/``.
        :param times: ``None`` to fail every attempt, N to fail the first N attempts at each matching object
            (counted per task).
        :param task_id: only objects of this task; ``None`` for every task.
        """
        with self._lock:
            self._fail_rules.add(pattern, times=times, task_id=task_id)

    def clear_fail_rules(self) -> None:
        """Remove every fail rule."""
        with self._lock:
            self._fail_rules.clear()

    def create_task(self, body: Any) -> dict[str, Any]:
        """Create a task from a CreateTaskReq body and start it; return ``{"id", "name", "task_name"}``."""
        spec = parse_create_body(body)
        policy = parse_bandwidth_policy(body.get("bandwidth_policy"))
        with self._lock:
            task = self._add_task(spec, group_id=None, bandwidth_policy=policy)
            self._applied_creates += 1
        # The SDK's CreateTaskResponse reads ``task_name``; the API pages document ``name``.
        return {"id": task.id, "name": task.name, "task_name": task.name}

    def add_tasks(
        self, specs: Iterable[TaskSpec], *, group_id: str, bandwidth_policy: tuple[dict[str, Any], ...] = ()
    ) -> list[int]:
        """Create and start the tasks of a task group at once; return their ids (not counted as creates)."""
        with self._lock:
            return [self._add_task(spec, group_id=group_id, bandwidth_policy=bandwidth_policy).id for spec in specs]

    def list_tasks(
        self,
        *,
        limit: int = LIST_LIMIT_DEFAULT,
        offset: int = 0,
        status: int | None = None,
        task_name: str | None = None,
        group_id: str | None = None,
    ) -> dict[str, Any]:
        """
        Return ``{"tasks": [...], "count": n}``, newest first; ``task_name`` matches a substring.

        Right after a start the list lags as show-task does: it shows (and filters by) the task as it was before
        the start, and counts as one read of each task for the lag.
        """
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise invalid_parameter("limit", f"must be 1 to {LIST_LIMIT_MAX}")
        if offset < 0:
            raise invalid_parameter("offset", "must not be negative")
        with self._lock:
            records = [self._tasks[task_id] for task_id in sorted(self._tasks, reverse=True)]
            tasks = [stale_read(record) or record.to_json() for record in records]
        matching = [
            task
            for task in tasks
            if (status is None or task["status"] == status)
            and (task_name is None or task_name.lower() in task["name"].lower())
            and (group_id is None or task["group_id"] == group_id)
        ]
        return {"tasks": matching[offset : offset + limit], "count": len(matching)}

    def backdate_task(self, task_id: int | str, seconds: float) -> dict[str, Any]:
        """Move a task that is not in progress ``seconds`` into the past, as if it had run that much earlier."""
        with self._lock:
            task = self._lookup(task_id)
            if task.status in IN_PROGRESS_STATUSES:
                raise ValueError(f"task {task_id} is in progress: only a finished or paused task can be backdated")
            task.start_time = max(0, task.start_time - int(seconds * 1000))
            return task.to_json()

    def add_finished_tasks(self, body: Any, count: int = 1, *, status: int = TaskStatus.SUCCEEDED) -> list[int]:
        """
        Add ``count`` tasks from one CreateTaskReq body that ran earlier and ended, without running them.

        For tests of a long task list (thousands of tasks in a moment): the body is checked like a create's, the
        tasks are not counted as creates, their ``start_time`` is now and their counters are zero;
        :meth:`backdate_task` moves one into the past.

        :param status: succeeded (5), failed (4) or paused (3).
        :return: the ids, oldest first.
        """
        spec = parse_create_body(body)
        final = TaskStatus(status)
        if final not in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.PAUSED):
            raise ValueError(f"status must be succeeded (5), failed (4) or paused (3), got {status!r}")
        with self._lock:
            ids = []
            for _ in range(count):
                task_id = self._next_id()
                self._tasks[task_id] = TaskRecord(
                    id=task_id, name=f"oms-task-{task_id}", spec=spec, status=final, start_time=now_ms()
                )
                ids.append(task_id)
            self._changed.notify_all()
        return ids

    def get_task(self, task_id: int | str) -> dict[str, Any]:
        """Return the task as it is (for tests; not lagging behind a start)."""
        with self._lock:
            return self._lookup(task_id).to_json()

    def show_task(self, task_id: int | str) -> dict[str, Any]:
        """Return the task as the show-task API does: right after a start, maybe as it was before it."""
        with self._lock:
            task = self._lookup(task_id)
            stale = stale_read(task)
            return stale if stale is not None else task.to_json()

    def start_task(self, task_id: int | str, body: Any) -> None:
        """Start a paused or failed task from a StartTaskReq body."""
        migrate_failed_object = parse_start_body(body)
        with self._lock:
            task = self._lookup(task_id)
            if task.status == TaskStatus.SUCCEEDED:
                raise OMSEmulatorError(400, ERROR_TASK_COMPLETED, "The task has completed and cannot be started.")
            if task.status not in STARTABLE_STATUSES:
                raise OMSEmulatorError(400, ERROR_TASK_ALREADY_STARTED, "The task has already started.")
            self._start_lag.hold(task)
            self._restart(task, migrate_failed_object=migrate_failed_object)
            self._applied_starts += 1

    def stop_task(self, task_id: int | str) -> None:
        """Pause a task: a waiting task is paused at once, a running one goes to pausing (7), then paused (3)."""
        with self._lock:
            if not self._pause(self._lookup(task_id)):
                raise OMSEmulatorError(400, ERROR_TASK_NOT_IN_PROGRESS, "Pause failed: the task is not in progress.")

    def delete_task(self, task_id: int | str) -> None:
        """Delete a task that is not in progress."""
        with self._lock:
            self._delete([self._lookup(task_id)])

    def update_bandwidth_policy(self, task_id: int | str, body: Any) -> None:
        """Replace a task's bandwidth policy from an UpdateBandwidthPolicyReq body (an empty list removes it)."""
        if not isinstance(body, Mapping):
            raise invalid_parameter("body", "must be a JSON object")
        if body.get("bandwidth_policy") is None:
            raise invalid_parameter("bandwidth_policy", "is required")
        policy = parse_bandwidth_policy(body["bandwidth_policy"])
        with self._lock:
            self._lookup(task_id).bandwidth_policy = policy
            self._changed.notify_all()

    # -- for task groups: several tasks in one step, under one lock ----------------------------------

    def tasks_json(self, task_ids: Iterable[int]) -> list[dict[str, Any]]:
        """Return the tasks that still exist among ``task_ids``, as the show-task API does."""
        with self._lock:
            return [self._tasks[task_id].to_json() for task_id in task_ids if task_id in self._tasks]

    def pause_tasks(self, task_ids: Iterable[int]) -> int:
        """Pause those of the tasks that are in progress, as :meth:`stop_task` does; return how many."""
        with self._lock:
            return sum(self._pause(self._tasks[task_id]) for task_id in task_ids if task_id in self._tasks)

    def restart_tasks(
        self, task_ids: Iterable[int], *, statuses: Collection[TaskStatus], migrate_failed_object: bool
    ) -> int:
        """Start those of the tasks that have one of ``statuses``, as :meth:`start_task` does; return how many."""
        with self._lock:
            tasks = [self._tasks[task_id] for task_id in task_ids if task_id in self._tasks]
            restarted = [task for task in tasks if task.status in statuses]
            for task in restarted:
                self._restart(task, migrate_failed_object=migrate_failed_object)
            return len(restarted)

    def delete_tasks(self, task_ids: Iterable[int]) -> None:
        """Delete the tasks, none of which may be in progress (else nothing is deleted)."""
        with self._lock:
            self._delete([self._tasks[task_id] for task_id in task_ids if task_id in self._tasks])

    def wait_for_change(self, timeout: float) -> None:
        """Wait until any task changes, or ``timeout`` seconds pass."""
        with self._changed:
            self._changed.wait(timeout)

    def wait_for_status(self, task_id: int | str, statuses: Iterable[int], timeout: float = 10.0) -> dict[str, Any]:
        """
        Wait until the task has one of ``statuses`` and return it.

        :raises TimeoutError: if it does not within ``timeout`` seconds.
        """
        wanted = {int(status) for status in statuses}
        with self._changed:
            if not self._changed.wait_for(lambda: self._lookup(task_id).status in wanted, timeout):
                status = int(self._lookup(task_id).status)
                raise TimeoutError(
                    f"task {task_id} has status {status} after {timeout} s, expected one of {sorted(wanted)}"
                )
            return self._lookup(task_id).to_json()

    def close(self) -> None:
        """Stop every worker thread and wait for them; the tasks stay readable."""
        self._engine.close(self._tasks.values())

    def _lookup(self, task_id: int | str) -> TaskRecord:
        text = str(task_id)
        task = self._tasks.get(int(text)) if _TASK_ID_RE.fullmatch(text) else None
        if task is None:
            raise OMSEmulatorError(404, ERROR_NOT_FOUND, "The task does not exist or has been deleted.")
        return task

    def _add_task(
        self, spec: TaskSpec, *, group_id: str | None, bandwidth_policy: tuple[dict[str, Any], ...]
    ) -> TaskRecord:
        """Create a task and begin its first run. Call under the lock."""
        task_id = self._next_id()
        task = TaskRecord(
            id=task_id, name=f"oms-task-{task_id}", spec=spec, group_id=group_id, bandwidth_policy=bandwidth_policy
        )
        self._tasks[task_id] = task
        self._engine.begin_run(task, failed_only=False)
        return task

    def _next_id(self) -> int:
        """Return a new task id: ~15 digits that grow, like the real service's. Call under the lock."""
        self._last_id = max(self._last_id + 1, now_ms() * 100)
        return self._last_id

    def _restart(self, task: TaskRecord, *, migrate_failed_object: bool) -> None:
        """Begin a new run of a paused or failed task. Call under the lock."""
        # With no failed-object list (a task paused in a run of the whole task, or a run that failed before
        # copying) there is nothing to narrow the run to: the whole task runs, and what was already copied is
        # skipped. Refusing the flag here would be a rule the service does not document.
        self._engine.begin_run(task, failed_only=migrate_failed_object and task.failed_keys is not None)

    def _pause(self, task: TaskRecord) -> bool:
        """Pause a task if it is in progress; return whether it was. Call under the lock."""
        task.stale_view = None  # a later call: the service answers with its result
        if task.status == TaskStatus.WAITING:
            task.status = TaskStatus.PAUSED
        elif task.status in (TaskStatus.RUNNING, TaskStatus.RETRYING):
            task.status = TaskStatus.PAUSING
        else:
            return False
        if task.run is not None:
            task.run.stop.set()
        self._changed.notify_all()
        return True

    def _delete(self, tasks: list[TaskRecord]) -> None:
        """Delete tasks, refusing all of them if one is in progress. Call under the lock."""
        if any(task.status in IN_PROGRESS_STATUSES for task in tasks):
            raise OMSEmulatorError(
                400, ERROR_TASK_IN_PROGRESS, "The task is in progress and cannot be deleted; pause it first."
            )
        for task in tasks:
            del self._tasks[task.id]
        self._changed.notify_all()
