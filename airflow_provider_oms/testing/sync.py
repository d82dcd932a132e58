"""
Sync tasks of the local OMS emulator: keep a destination bucket up to date with a source bucket.

No HTTP here. A sync task is created synchronizing: the SDK documents that it starts by itself once created.
While it is ``SYNCHRONIZING``, a worker thread goes over the source bucket every ``interval`` seconds and copies
each object that is new or changed (by size and modification time) to the same key in the destination bucket;
a ``STOPPED`` task copies nothing. The ``monthly_*`` counters count since creation.

Refusals, with the codes the emulator answers: start a synchronizing task: ``OMS.0065`` (as for a task that has
already started); stop a stopped one: ``OMS.0066`` (not in progress); delete a synchronizing one: ``OMS.0063``;
an unknown id: ``OMS.1009`` (HTTP 404); a bad body: ``OMS.0064``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_oms.constants import (
    ERROR_NOT_FOUND,
    ERROR_TASK_ALREADY_STARTED,
    ERROR_TASK_IN_PROGRESS,
    ERROR_TASK_NOT_IN_PROGRESS,
    START_TASK_BODY_LIMITS,
)
from airflow_provider_oms.testing.engine import copy_object, list_bucket, object_path, should_skip
from airflow_provider_oms.testing.tasks import (
    DEFAULT_CLOUD_TYPE,
    LIST_LIMIT_DEFAULT,
    LIST_LIMIT_MAX,
    OVERWRITE_SIZE_LAST_MODIFIED,
    REGION_MAX_LENGTH,
    OMSEmulatorError,
    bucket_field,
    description_field,
    invalid_parameter,
    now_ms,
    text_field,
)

logger = logging.getLogger("airflow_provider_oms.emulator")

SYNCHRONIZING = "SYNCHRONIZING"
STOPPED = "STOPPED"
SYNC_STATUSES = frozenset({SYNCHRONIZING, STOPPED})
#: StartSyncTaskReq: all four keys are required.
START_SYNC_REQUIRED = ("src_ak", "src_sk", "dst_ak", "dst_sk")
DEFAULT_SYNC_INTERVAL = 0.2


def _check_keys(body: Mapping[str, Any], required: tuple[str, ...]) -> None:
    """Check the credential fields of a sync body by the start body's limits; they are never kept."""
    for key in required:
        minimum, maximum = START_TASK_BODY_LIMITS[key]
        text_field(body, key, key, required=True, minimum=minimum, maximum=maximum)
    minimum, maximum = START_TASK_BODY_LIMITS["source_cdn_authentication_key"]
    text_field(
        body,
        "source_cdn_authentication_key",
        "source_cdn_authentication_key",
        required=False,
        minimum=minimum,
        maximum=maximum,
    )


@dataclass(frozen=True)
class _SyncSpec:
    """What a CreateSyncTaskReq asks for, without its credentials."""

    src_cloud_type: str
    src_region: str
    src_bucket: str
    dst_region: str
    dst_bucket: str
    description: str


def parse_create_sync_body(body: Any) -> _SyncSpec:
    """Check a CreateSyncTaskReq body and return what it asks for, without its credentials."""
    if not isinstance(body, Mapping):
        raise invalid_parameter("body", "must be a JSON object")
    _check_keys(body, START_SYNC_REQUIRED)
    spec = _SyncSpec(
        src_cloud_type=text_field(
            body, "src_cloud_type", "src_cloud_type", required=False, maximum=32, default=DEFAULT_CLOUD_TYPE
        ),
        src_region=text_field(body, "src_region", "src_region", required=True, minimum=1, maximum=REGION_MAX_LENGTH),
        src_bucket=bucket_field(body, "src_bucket", "src_bucket"),
        dst_region=text_field(body, "dst_region", "dst_region", required=True, minimum=1, maximum=REGION_MAX_LENGTH),
        dst_bucket=bucket_field(body, "dst_bucket", "dst_bucket"),
        description=description_field(body),
    )
    if spec.dst_bucket == spec.src_bucket:
        # Both are folders of the same data directory here: a bucket would sync onto itself.
        raise invalid_parameter("dst_bucket", "must not be the source bucket")
    return spec


@dataclass
class _SyncTask:
    id: str
    spec: _SyncSpec
    create_time: int
    status: str = STOPPED
    last_start_time: int = 0
    #: Set to end the current worker (a stop, or the emulator shutting down).
    stop: threading.Event = field(default_factory=threading.Event)
    passes_started: int = 0
    passes_done: int = 0
    acceptance: int = 0
    success: int = 0
    failure: int = 0
    size: int = 0

    def to_json(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "sync_task_id": self.id,
            "src_cloud_type": spec.src_cloud_type,
            "src_region": spec.src_region,
            "src_bucket": spec.src_bucket,
            "dst_region": spec.dst_region,
            "dst_bucket": spec.dst_bucket,
            "description": spec.description,
            "status": self.status,
            "create_time": self.create_time,
            "last_start_time": self.last_start_time,
            "enable_metadata_migration": False,
            "enable_restore": False,
            "object_overwrite_mode": OVERWRITE_SIZE_LAST_MODIFIED,
            "monthly_acceptance_request": self.acceptance,
            "monthly_success_object": self.success,
            "monthly_failure_object": self.failure,
            # Unchanged objects are not looked at again, so none is counted as skipped.
            "monthly_skip_object": 0,
            "monthly_size": self.size,
        }


class SyncTaskStore:
    """
    The emulated sync tasks and their copy workers; thread-safe.

    :param data_dir: the folder whose sub-folders are the buckets.
    :param interval: seconds between two passes over the source bucket of a synchronizing task.
    """

    def __init__(self, data_dir: Path, *, interval: float = DEFAULT_SYNC_INTERVAL) -> None:
        if not interval > 0:
            raise ValueError("the sync interval must be more than 0 seconds")
        self.data_dir = data_dir
        self._interval = interval
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._tasks: dict[str, _SyncTask] = {}
        self._order: list[str] = []
        self._workers: set[threading.Thread] = set()
        self._closing = False

    def create(self, body: Any) -> dict[str, str]:
        """Create a sync task from a CreateSyncTaskReq body; it starts synchronizing. Return ``{"sync_task_id"}``."""
        spec = parse_create_sync_body(body)
        with self._lock:
            task = _SyncTask(id=str(uuid.uuid4()), spec=spec, create_time=now_ms())
            self._tasks[task.id] = task
            self._order.append(task.id)
            self._begin(task)
        return {"sync_task_id": task.id}

    def get(self, sync_task_id: str) -> dict[str, Any]:
        """Return a sync task as the show-sync-task API does."""
        with self._lock:
            return self._lookup(sync_task_id).to_json()

    def list(self, *, limit: int = LIST_LIMIT_DEFAULT, offset: int = 0, status: str | None = None) -> dict[str, Any]:
        """Return ``{"tasks": [...], "count": n}``, newest first."""
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise invalid_parameter("limit", f"must be 1 to {LIST_LIMIT_MAX}")
        if offset < 0:
            raise invalid_parameter("offset", "must not be negative")
        if status is not None and status not in SYNC_STATUSES:
            raise invalid_parameter("status", "must be SYNCHRONIZING or STOPPED")
        with self._lock:
            tasks = [self._tasks[task_id].to_json() for task_id in reversed(self._order)]
        matching = [task for task in tasks if status is None or task["status"] == status]
        return {"tasks": matching[offset : offset + limit], "count": len(matching)}

    def start(self, sync_task_id: str, body: Any) -> None:
        """Start a stopped sync task from a StartSyncTaskReq body (src_ak, src_sk, dst_ak, dst_sk required)."""
        if body is None:
            body = {}
        if not isinstance(body, Mapping):
            raise invalid_parameter("body", "must be a JSON object")
        _check_keys(body, START_SYNC_REQUIRED)
        with self._lock:
            task = self._lookup(sync_task_id)
            if task.status == SYNCHRONIZING:
                raise OMSEmulatorError(400, ERROR_TASK_ALREADY_STARTED, "The sync task is already synchronizing.")
            self._begin(task)

    def stop(self, sync_task_id: str) -> None:
        """Stop a synchronizing sync task; a pass under way ends after the object it is copying."""
        with self._lock:
            task = self._lookup(sync_task_id)
            if task.status != SYNCHRONIZING:
                raise OMSEmulatorError(400, ERROR_TASK_NOT_IN_PROGRESS, "Stop failed: the sync task is not running.")
            task.status = STOPPED
            task.stop.set()
            self._changed.notify_all()

    def delete(self, sync_task_id: str) -> None:
        """Delete a stopped sync task."""
        with self._lock:
            task = self._lookup(sync_task_id)
            if task.status == SYNCHRONIZING:
                raise OMSEmulatorError(
                    400, ERROR_TASK_IN_PROGRESS, "The sync task is synchronizing and cannot be deleted; stop it first."
                )
            del self._tasks[task.id]
            self._order.remove(task.id)
            self._changed.notify_all()

    def wait_for_pass(self, sync_task_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """
        Wait until a pass over the source bucket that began after this call has ended; return the task.

        :raises TimeoutError: if none does within ``timeout`` seconds (a stopped task makes no passes).
        """
        with self._changed:
            task = self._lookup(sync_task_id)
            wanted = task.passes_started + 1
            if not self._changed.wait_for(lambda: task.passes_done >= wanted, timeout):
                raise TimeoutError(
                    f"sync task {sync_task_id} ({task.status}) made no whole pass over its source in {timeout} s"
                )
            return task.to_json()

    def close(self) -> None:
        """Stop every worker and wait for them; the sync tasks stay readable."""
        with self._lock:
            self._closing = True
            for task in self._tasks.values():
                task.stop.set()
            workers = list(self._workers)
        for worker in workers:
            worker.join(timeout=5)

    def _lookup(self, sync_task_id: str) -> _SyncTask:
        task = self._tasks.get(sync_task_id)
        if task is None:
            raise OMSEmulatorError(404, ERROR_NOT_FOUND, "The sync task does not exist or has been deleted.")
        return task

    def _begin(self, task: _SyncTask) -> None:
        """Make the task synchronizing, with a new worker. Call under the lock."""
        task.status = SYNCHRONIZING
        task.last_start_time = now_ms()
        # A fresh event: the worker of an earlier start may still be finishing its object.
        task.stop = threading.Event()
        if self._closing:
            task.stop.set()
        worker = threading.Thread(
            target=self._work, args=(task, task.stop), name=f"oms-emulator-sync-{task.id}", daemon=True
        )
        self._workers.add(worker)
        worker.start()
        self._changed.notify_all()

    def _work(self, task: _SyncTask, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self._sync_pass(task, stop)
                stop.wait(self._interval)
        except Exception:
            logger.exception("OMS emulator: sync task %s crashed", task.id)
        finally:
            with self._lock:
                self._workers.discard(threading.current_thread())

    def _sync_pass(self, task: _SyncTask, stop: threading.Event) -> None:
        """Copy what is new or changed in the source bucket, then count the pass as done."""
        with self._lock:
            task.passes_started += 1
            number = task.passes_started
        spec = task.spec
        source_root = self.data_dir / spec.src_bucket
        destination_root = self.data_dir / spec.dst_bucket
        for key in list_bucket(source_root) if source_root.is_dir() else {}:
            if stop.is_set():
                return
            source = object_path(source_root, key)
            destination = object_path(destination_root, key)
            try:
                source_stat = source.stat()
            except FileNotFoundError:
                continue  # deleted since the listing
            if should_skip(OVERWRITE_SIZE_LAST_MODIFIED, source_stat, destination):
                continue
            try:
                copy_object(source, destination)
                copied = True
            except OSError as err:
                logger.warning("OMS emulator: sync task %s could not copy %s: %s", task.id, key, err)
                copied = False
            with self._lock:
                task.acceptance += 1
                if copied:
                    task.success += 1
                    task.size += source_stat.st_size
                else:
                    task.failure += 1
        with self._lock:
            task.passes_done = number
            self._changed.notify_all()
