"""
Task groups of the local OMS emulator: one migration task per source prefix, run by the task store's engine.

No HTTP here. A group keeps only what it was created with and the ids of its tasks; its status and counters
are worked out from its tasks each time it is read, so they can never drift from what the tasks do:

* 0 waiting: every task is waiting; 1 executing: some task is in progress; 7 pausing: some task is pausing;
* once no task is in progress: 5 migration failed if a task failed, else 3 paused if a task is paused, else
  6 completed.

Refusals, with the codes the emulator answers (the service documents none for groups):

* stop a group that is not waiting or executing: ``OMS.0066`` (as for a task that is not in progress);
* start a group that is in progress: ``OMS.0065``; one that is not paused otherwise (failed: retry it;
  completed): ``OMS.0067``;
* retry a group that is in progress: ``OMS.0065``; one that has not failed otherwise: ``OMS.0067``;
* delete a group in progress: ``OMS.0063``; an unknown group: ``OMS.1009`` (HTTP 404).
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from airflow_provider_oms.constants import (
    ERROR_NOT_FOUND,
    ERROR_TASK_ALREADY_STARTED,
    ERROR_TASK_IN_PROGRESS,
    ERROR_TASK_NOT_IN_PROGRESS,
    TaskStatus,
)
from airflow_provider_oms.testing.engine import ERROR_OBJECTS_FAILED
from airflow_provider_oms.testing.store import ERROR_TASK_COMPLETED, TaskStore
from airflow_provider_oms.testing.tasks import (
    LIST_LIMIT_DEFAULT,
    LIST_LIMIT_MAX,
    OMSEmulatorError,
    TaskSpec,
    invalid_parameter,
    now_ms,
    parse_bandwidth_policy,
    parse_create_body,
    parse_start_body,
)

#: The group task type the emulator runs; LIST and URL_LIST need lists it does not keep.
GROUP_TASK_TYPE = "PREFIX"
UNSUPPORTED_GROUP_TASK_TYPES = frozenset({"LIST", "URL_LIST"})
#: How often :meth:`TaskGroupStore.wait_for_status` looks again at most, when no task change wakes it first.
_WAIT_STEP = 0.05


class GroupStatus(IntEnum):
    """The task group statuses the emulator's groups take (``GROUP_STATUS_NAMES`` in constants has them all)."""

    WAITING = 0
    EXECUTING = 1
    PAUSED = 3
    MIGRATION_FAILED = 5
    COMPLETED = 6
    PAUSING = 7


GROUP_IN_PROGRESS = frozenset({GroupStatus.WAITING, GroupStatus.EXECUTING, GroupStatus.PAUSING})
_TASK_IN_PROGRESS = frozenset({TaskStatus.WAITING, TaskStatus.RUNNING, TaskStatus.RETRYING})
_TASK_EXECUTING = frozenset({TaskStatus.RUNNING, TaskStatus.RETRYING, TaskStatus.PAUSING})


def group_status(tasks: Sequence[Mapping[str, Any]]) -> GroupStatus:
    """Return the status of a group whose tasks are ``tasks`` (as the show-task API returns them)."""
    statuses = [task["status"] for task in tasks]
    if TaskStatus.PAUSING in statuses:
        return GroupStatus.PAUSING
    if any(status in _TASK_IN_PROGRESS for status in statuses):
        all_waiting = all(status == TaskStatus.WAITING for status in statuses)
        return GroupStatus.WAITING if all_waiting else GroupStatus.EXECUTING
    if TaskStatus.FAILED in statuses:
        return GroupStatus.MIGRATION_FAILED
    if TaskStatus.PAUSED in statuses:
        return GroupStatus.PAUSED
    return GroupStatus.COMPLETED


@dataclass(frozen=True)
class _Group:
    id: str
    #: The CreateTaskGroupReq without credentials; each task gets one of its prefixes.
    spec: TaskSpec
    bandwidth_policy: tuple[dict[str, Any], ...]
    task_ids: tuple[int, ...]
    created: int
    #: Creation order, for newest-first lists.
    number: int

    def to_json(self, tasks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        status = group_status(tasks)
        spec = self.spec

        def count(*statuses: int) -> int:
            return sum(task["status"] in statuses for task in tasks)

        def total(key: str) -> int:
            return sum(int(task[key]) for task in tasks)

        failed = [task for task in tasks if task["status"] == TaskStatus.FAILED]
        error_reason = None
        if status == GroupStatus.MIGRATION_FAILED:
            first = failed[0].get("error_reason") or {}
            error_reason = {
                "error_code": first.get("error_code") or ERROR_OBJECTS_FAILED,
                "error_msg": f"{len(failed)} of {len(tasks)} migration tasks failed; task {failed[0]['id']}: "
                + str(first.get("error_msg") or "failed"),
            }
        started = [task["start_time"] for task in tasks if task["start_time"]]
        return {
            "group_id": self.id,
            "status": int(status),
            "error_reason": error_reason,
            "description": spec.description,
            "task_type": GROUP_TASK_TYPE,
            **spec.nodes_json(),
            "bandwidth_policy": [dict(window) for window in self.bandwidth_policy],
            "start_time": min(started) if started else 0,
            "total_time": max((task["total_time"] for task in tasks), default=0),
            "migrate_speed": total("migrate_speed"),
            # The emulator creates every task of a group at once.
            "total_task_num": len(self.task_ids),
            "create_task_num": len(self.task_ids),
            "complete_task_num": count(TaskStatus.SUCCEEDED),
            "failed_task_num": len(failed),
            "paused_task_num": count(TaskStatus.PAUSED),
            "executing_task_num": count(*_TASK_EXECUTING),
            "waiting_task_num": count(TaskStatus.WAITING),
            "total_num": total("total_num"),
            "create_complete_num": total("total_num"),
            "success_num": total("successful_num"),
            "fail_num": total("failed_num"),
            "skip_num": total("skipped_num"),
            "total_size": total("total_size"),
            "create_complete_size": total("total_size"),
            "complete_size": total("complete_size"),
        }


def parse_create_group_body(body: Any) -> tuple[TaskSpec, tuple[dict[str, Any], ...]]:
    """
    Check a CreateTaskGroupReq body; return what it asks for (without credentials) and its bandwidth policy.

    ``src_node.object_key`` lists the prefixes, one task each; absent or empty: the whole bucket (``[""]``).
    """
    if not isinstance(body, Mapping):
        raise invalid_parameter("body", "must be a JSON object")
    task_type = body.get("task_type", GROUP_TASK_TYPE)
    if not isinstance(task_type, str):
        raise invalid_parameter("task_type", "must be a string")
    if task_type.upper() in UNSUPPORTED_GROUP_TASK_TYPES:
        raise invalid_parameter("task_type", "LIST and URL_LIST task groups are not supported by the emulator")
    if task_type.upper() != GROUP_TASK_TYPE:
        raise invalid_parameter("task_type", "must be one of PREFIX, LIST, URL_LIST")
    # The nodes, credentials, description and overwrite mode follow the rules of a prefix task's.
    spec = parse_create_body({**body, "task_type": "prefix"})
    prefixes = spec.object_keys or ("",)
    if len(set(prefixes)) != len(prefixes):
        raise invalid_parameter("src_node.object_key", "must not list a prefix twice")
    return dataclasses.replace(spec, object_keys=prefixes), parse_bandwidth_policy(body.get("bandwidth_policy"))


class TaskGroupStore:
    """
    The emulated task groups, whose tasks live in a :class:`TaskStore`; thread-safe.

    :param tasks: the task store that runs the groups' tasks.
    """

    def __init__(self, tasks: TaskStore) -> None:
        self._tasks = tasks
        # Held across a group's whole operation (read its tasks, then act on them); the task store's own lock
        # is only ever taken inside it, never the other way round.
        self._lock = threading.Lock()
        self._groups: dict[str, _Group] = {}
        self._created = 0

    @property
    def applied_creates(self) -> int:
        """How many create calls created a group."""
        with self._lock:
            return self._created

    def create(self, body: Any) -> dict[str, str]:
        """Create a group from a CreateTaskGroupReq body: one started task per prefix. Return ``{"group_id"}``."""
        spec, policy = parse_create_group_body(body)
        # The tasks of a group carry no description of their own: the group's is the one that describes it.
        task_specs = [dataclasses.replace(spec, object_keys=(prefix,), description="") for prefix in spec.object_keys]
        with self._lock:
            group_id = str(uuid.uuid4())
            task_ids = self._tasks.add_tasks(task_specs, group_id=group_id, bandwidth_policy=policy)
            self._created += 1
            self._groups[group_id] = _Group(
                id=group_id,
                spec=spec,
                bandwidth_policy=policy,
                task_ids=tuple(task_ids),
                created=now_ms(),
                number=self._created,
            )
        return {"group_id": group_id}

    def get(self, group_id: str) -> dict[str, Any]:
        """Return a group as the show-task-group API does."""
        with self._lock:
            group = self._lookup(group_id)
            return group.to_json(self._tasks.tasks_json(group.task_ids))

    def list(self, *, limit: int = LIST_LIMIT_DEFAULT, offset: int = 0, status: int | None = None) -> dict[str, Any]:
        """Return ``{"taskgroups": [...], "count": n}``, newest first."""
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise invalid_parameter("limit", f"must be 1 to {LIST_LIMIT_MAX}")
        if offset < 0:
            raise invalid_parameter("offset", "must not be negative")
        with self._lock:
            groups = sorted(self._groups.values(), key=lambda group: group.number, reverse=True)
            shown = [group.to_json(self._tasks.tasks_json(group.task_ids)) for group in groups]
        matching = [group for group in shown if status is None or group["status"] == status]
        return {"taskgroups": matching[offset : offset + limit], "count": len(matching)}

    def stop(self, group_id: str) -> None:
        """Pause a waiting or executing group: its waiting tasks at once, its running ones through pausing."""
        with self._lock:
            group = self._lookup(group_id)
            if self._status(group) not in (GroupStatus.WAITING, GroupStatus.EXECUTING) or not self._tasks.pause_tasks(
                group.task_ids
            ):
                raise OMSEmulatorError(
                    400, ERROR_TASK_NOT_IN_PROGRESS, "Pause failed: the task group is not in progress."
                )

    def start(self, group_id: str, body: Any) -> None:
        """Start a paused group from a StartTaskGroupReq body; each paused task resumes the run it was in."""
        parse_start_body(body)
        with self._lock:
            group = self._lookup(group_id)
            self._check_status(group, GroupStatus.PAUSED, "start", "Only a paused task group can be started.")
            # As a task's start with migrate_failed_object: a run of the failed objects stays one.
            self._tasks.restart_tasks(group.task_ids, statuses={TaskStatus.PAUSED}, migrate_failed_object=True)

    def retry(self, group_id: str, body: Any) -> None:
        """Restart the failed tasks of a failed group from a RetryTaskGroupReq body (``migrate_failed_object``)."""
        migrate_failed_object = parse_start_body(body)
        with self._lock:
            group = self._lookup(group_id)
            self._check_status(
                group, GroupStatus.MIGRATION_FAILED, "retry", "Only a task group whose migration failed can be retried."
            )
            self._tasks.restart_tasks(
                group.task_ids, statuses={TaskStatus.FAILED}, migrate_failed_object=migrate_failed_object
            )

    def delete(self, group_id: str) -> None:
        """Delete a group that is not in progress, with its tasks."""
        with self._lock:
            group = self._lookup(group_id)
            if self._status(group) in GROUP_IN_PROGRESS:
                raise OMSEmulatorError(
                    400, ERROR_TASK_IN_PROGRESS, "The task group is in progress and cannot be deleted; pause it first."
                )
            self._tasks.delete_tasks(group.task_ids)
            del self._groups[group.id]

    def wait_for_status(self, group_id: str, statuses: Iterable[int], timeout: float = 10.0) -> dict[str, Any]:
        """
        Wait until the group has one of ``statuses`` and return it.

        :raises TimeoutError: if it does not within ``timeout`` seconds.
        """
        wanted = {int(status) for status in statuses}
        deadline = time.monotonic() + timeout
        while True:
            group = self.get(group_id)
            if group["status"] in wanted:
                return group
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"task group {group_id} has status {group['status']} after {timeout} s, "
                    f"expected one of {sorted(wanted)}"
                )
            # A task change wakes this at once; the step bounds the wait for a change between get() and here.
            self._tasks.wait_for_change(min(remaining, _WAIT_STEP))

    def _lookup(self, group_id: str) -> _Group:
        group = self._groups.get(group_id)
        if group is None:
            raise OMSEmulatorError(404, ERROR_NOT_FOUND, "The task group does not exist or has been deleted.")
        return group

    def _status(self, group: _Group) -> GroupStatus:
        return group_status(self._tasks.tasks_json(group.task_ids))

    def _check_status(self, group: _Group, wanted: GroupStatus, action: str, message: str) -> None:
        status = self._status(group)
        if status in GROUP_IN_PROGRESS:
            raise OMSEmulatorError(400, ERROR_TASK_ALREADY_STARTED, f"The task group is in progress: {message}")
        if status != wanted:
            raise OMSEmulatorError(400, ERROR_TASK_COMPLETED, f"The task group cannot {action} now: {message}")
