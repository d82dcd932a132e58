"""
The migration engine of the local OMS emulator: the worker threads that copy files for the runs of tasks.

Buckets are the folders under the data directory, objects the files under them. Every run of a task gets its
own worker thread, which lists the source bucket, copies what the task selects into the destination bucket
(honouring the overwrite mode, the speed limits and the injected faults of
:mod:`~airflow_provider_oms.testing.faults`) and updates the task's record as it goes. The records and their
lock are :class:`~airflow_provider_oms.testing.store.TaskStore`'s; the file helpers here also serve the
sync tasks.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import uuid
from collections.abc import Iterable, Mapping
from enum import Enum
from pathlib import Path

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.testing.faults import FailRules
from airflow_provider_oms.testing.tasks import (
    ERROR_EMULATOR,
    OVERWRITE_FULL,
    OVERWRITE_NONE,
    TaskRecord,
    TaskRun,
    TaskSpec,
    now_ms,
)

logger = logging.getLogger("airflow_provider_oms.emulator")

#: ``error_reason`` codes of failed runs (TRF.* like the real service's transfer errors).
ERROR_SOURCE_BUCKET_MISSING = "TRF.0015"
ERROR_OBJECTS_FAILED = "TRF.0001"
FAILED_LIST_KEY = "oms/failed_object_lists/{task_name}/{run}.txt"


# -- objects as files -------------------------------------------------------------------------------


class _Outcome(Enum):
    COPIED = "copied"
    SKIPPED = "skipped"
    FAILED = "failed"


def object_path(root: Path, key: str) -> Path:
    """Return the file of object ``key`` in the bucket folder ``root``."""
    return root.joinpath(*key.split("/"))


def list_bucket(root: Path) -> dict[str, int]:
    """Return ``{key: size}`` for every file under a bucket folder."""
    objects: dict[str, int] = {}
    for directory, _subdirectories, files in os.walk(root):
        for name in files:
            path = Path(directory, name)
            try:
                objects[path.relative_to(root).as_posix()] = path.stat().st_size
            except OSError:
                continue  # removed while listing
    return objects


def _select_objects(listing: Mapping[str, int], spec: TaskSpec) -> list[str]:
    """
    Return the keys a run migrates, in order.

    Each ``object_key`` entry is an exact key if that object exists, else a prefix; no entry means the whole
    bucket. An object-task entry that names no object at all (and is not a ``/``-ended folder) is kept: its
    migration fails, as it does on the real service.
    """
    keys = sorted(listing)
    selected: dict[str, None] = {}  # an ordered set
    for entry in spec.object_keys or ("",):
        if entry in listing:
            selected[entry] = None
            continue
        matches = [key for key in keys if key.startswith(entry)]
        selected.update(dict.fromkeys(matches))
        if not matches and spec.task_type == "object" and entry and not entry.endswith("/"):
            selected[entry] = None
    return list(selected)


def should_skip(mode: str, source: os.stat_result, destination: Path) -> bool:
    """Whether an object with the ``source`` file's size and time is left alone, by overwrite ``mode``."""
    if mode == OVERWRITE_FULL:
        return False
    try:
        existing = destination.stat()
    except FileNotFoundError:
        return False
    if mode == OVERWRITE_NONE:
        return True
    # Whole seconds, like an object's Last-Modified: some file systems store coarser times than others.
    return existing.st_size == source.st_size and int(existing.st_mtime) >= int(source.st_mtime)


def copy_object(source: Path, destination: Path) -> None:
    """Copy a file with its times, creating folders; readers of ``destination`` never see half of it."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.{uuid.uuid4().hex[:8]}.oms-partial")
    try:
        shutil.copy2(source, partial)
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)


def modified_since(root: Path, keys: Iterable[str], since: int | None) -> list[str]:
    """Keep the keys whose source object was modified after ``since`` (UNIX seconds; ``None`` keeps all)."""
    if since is None:
        return list(keys)
    kept = []
    for key in keys:
        try:
            # Whole seconds, like an object's Last-Modified.
            if int(object_path(root, key).stat().st_mtime) > since:
                kept.append(key)
        except OSError:
            kept.append(key)  # gone since the listing: its migration fails, as it would on the service
    return kept


# -- the engine -------------------------------------------------------------------------------------


class MigrationEngine:
    """
    Runs the tasks of a task store, one worker thread a run.

    It shares the store's lock: it changes a task's record only under it, and wakes the store's waiters after
    each change.

    :param data_dir: the folder whose sub-folders are the buckets.
    :param lock: the store's lock.
    :param changed: the store's condition on ``lock``, notified after each change.
    :param fail_rules: the objects whose migration fails, asked under ``lock``.
    :param task_start_delay: seconds a started task stays waiting (status 1) before it runs.
    :param object_delay: seconds each object takes to migrate.
    :param bytes_per_second: migration speed limit; each object also takes its size divided by this.
    :param pausing_delay: seconds a stopped running task stays pausing (status 7) before it is paused;
        ``None``: one ``object_delay``.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        lock: threading.Lock,
        changed: threading.Condition,
        fail_rules: FailRules,
        task_start_delay: float = 0.0,
        object_delay: float = 0.0,
        bytes_per_second: float | None = None,
        pausing_delay: float | None = None,
    ) -> None:
        if pausing_delay is None:
            pausing_delay = object_delay
        if task_start_delay < 0 or object_delay < 0 or pausing_delay < 0:
            raise ValueError("task_start_delay, object_delay and pausing_delay must not be negative")
        if bytes_per_second is not None and bytes_per_second <= 0:
            raise ValueError("bytes_per_second must be more than 0")
        self._bytes_per_second = bytes_per_second
        self.data_dir = data_dir
        self._task_start_delay = task_start_delay
        self._object_delay = object_delay
        self._pausing_delay = pausing_delay
        self._lock = lock
        self._changed = changed
        self._fail_rules = fail_rules
        self._workers: set[threading.Thread] = set()
        #: Set by close(): cuts short the pausing hold of every run.
        self._closing = threading.Event()

    def begin_run(self, task: TaskRecord, *, failed_only: bool) -> None:
        """Put the task in the waiting status and start a worker for a new run. Call under the lock."""
        run = TaskRun(number=task.run.number + 1 if task.run else 1, failed_only=failed_only)
        task.run = run
        task.status = TaskStatus.WAITING
        if not failed_only:
            # This run decides what is left to retry: an older failed-object list no longer applies.
            task.failed_keys = None
            task.failed_object_record = None
        worker = threading.Thread(
            target=self._work, args=(task, run), name=f"oms-emulator-task-{task.id}-run-{run.number}", daemon=True
        )
        self._workers.add(worker)
        worker.start()
        self._changed.notify_all()

    def close(self, tasks: Iterable[TaskRecord]) -> None:
        """Stop every worker thread and wait for them; ``tasks`` are the store's, read under the lock."""
        with self._lock:
            self._closing.set()
            runs = [task.run for task in tasks if task.run is not None]
            workers = list(self._workers)
        for run in runs:
            run.stop.set()
        for worker in workers:
            worker.join(timeout=5)

    def _work(self, task: TaskRecord, run: TaskRun) -> None:
        try:
            self._migrate(task, run)
        except Exception as err:
            logger.exception("OMS emulator: run %s of task %s crashed", run.number, task.id)
            with self._lock:
                if task.run is run:
                    task.status = TaskStatus.FAILED
                    # Nothing tells which objects this run copied: a retry runs the whole task again.
                    task.failed_keys = None
                    task.error_reason = {
                        "error_code": ERROR_EMULATOR,
                        "error_msg": f"emulator error: {type(err).__name__}",
                    }
                    self._changed.notify_all()
        finally:
            with self._lock:
                self._workers.discard(threading.current_thread())

    def _migrate(self, task: TaskRecord, run: TaskRun) -> None:
        if run.stop.wait(self._task_start_delay):
            return  # paused while waiting: stop_task already set the status
        with self._lock:
            if run.stop.is_set():
                return
            task.status = TaskStatus.RETRYING if run.failed_only else TaskStatus.RUNNING
            task.start_time = now_ms()
            task.total_time = task.left_time = 0
            task.run_processed = task.run_written = 0
            task.failed_num = 0
            task.error_reason = task.failed_object_record = None
            if not run.failed_only:
                # A retry of the failed objects completes the same task: the other counters carry on.
                task.total_num = task.successful_num = task.skipped_num = 0
                task.total_size = task.complete_size = task.real_size = 0
                task.is_query_over = False
            retry_keys = task.failed_keys or ()
            spec = task.spec
            self._changed.notify_all()

        source_root = self.data_dir / spec.src_bucket
        if not source_root.is_dir():
            self._finish(
                task,
                run,
                failed=[],
                not_migrated=list(retry_keys),
                error_reason={
                    "error_code": ERROR_SOURCE_BUCKET_MISSING,
                    "error_msg": f"The source bucket {spec.src_bucket} does not exist.",
                },
            )
            return
        if run.failed_only:
            keys, total_size = list(retry_keys), None
        else:
            listing = list_bucket(source_root)
            keys = modified_since(source_root, _select_objects(listing, spec), spec.migrate_since)
            total_size = sum(listing.get(key, 0) for key in keys)
        with self._lock:
            task.run_objects = len(keys)
            if total_size is not None:
                task.total_num = len(keys)
                task.total_size = total_size
                task.is_query_over = True
            self._changed.notify_all()

        destination_root = self.data_dir / spec.dst_bucket
        failed: list[str] = []
        processed = 0
        for key in keys:
            if run.stop.wait(self._object_delay):
                break
            outcome, size = self._migrate_object(task.id, spec, source_root, destination_root, key)
            if self._bytes_per_second and outcome is _Outcome.COPIED:
                # A stop cuts the wait short; the object is in place already, so it still counts as copied.
                run.stop.wait(size / self._bytes_per_second)
            with self._lock:
                processed += 1
                task.run_processed = processed
                if outcome is _Outcome.COPIED:
                    task.successful_num += 1
                    task.complete_size += size
                    task.real_size += size
                    task.run_written += size
                elif outcome is _Outcome.SKIPPED:
                    task.skipped_num += 1
                    task.complete_size += size
                else:
                    task.failed_num += 1
                    failed.append(key)
                # An object that grew after the listing (or appeared, for a retried key) counts at its new size.
                task.total_size = max(task.total_size, task.complete_size)
                task.tick()
                self._changed.notify_all()
        self._finish(task, run, failed=failed, not_migrated=failed + keys[processed:])

    def _migrate_object(
        self, task_id: int, spec: TaskSpec, source_root: Path, destination_root: Path, key: str
    ) -> tuple[_Outcome, int]:
        """Migrate one object; return what happened and the object's size."""
        with self._lock:
            injected = self._fail_rules.fails(task_id, key)
        source = object_path(source_root, key)
        try:
            source_stat = source.stat()
        except OSError:
            return _Outcome.FAILED, 0
        if injected:
            return _Outcome.FAILED, source_stat.st_size
        destination = object_path(destination_root, spec.save_prefix + key)
        try:
            if should_skip(spec.object_overwrite_mode, source_stat, destination):
                return _Outcome.SKIPPED, source_stat.st_size
            copy_object(source, destination)
        except OSError as err:
            logger.warning("OMS emulator: task %s could not copy %s: %s", task_id, key, err)
            return _Outcome.FAILED, source_stat.st_size
        return _Outcome.COPIED, source_stat.st_size

    def _finish(
        self,
        task: TaskRecord,
        run: TaskRun,
        *,
        failed: list[str],
        not_migrated: list[str],
        error_reason: dict[str, str] | None = None,
    ) -> None:
        """
        End a run: paused if it was stopped, else failed or succeeded. Call without the lock.

        :param failed: the objects that failed in this run.
        :param not_migrated: the objects of this run that were not migrated: failed or, if paused, not tried
            yet. A paused failed-only run leaves them to the next failed-only start.
        :param error_reason: why the run failed as a whole (no objects were listed).
        """
        if run.stop.is_set():
            # Pausing takes a while on the real service; holding status 7 lets callers (and tests) see it.
            self._closing.wait(self._pausing_delay)
        record = None
        if failed and not run.stop.is_set():
            # Like the real service: the failed-object list goes into the destination bucket.
            list_key = FAILED_LIST_KEY.format(task_name=task.name, run=run.number)
            list_path = object_path(self.data_dir / task.spec.dst_bucket, list_key)
            list_path.parent.mkdir(parents=True, exist_ok=True)
            list_path.write_text("".join(f"{key}\n" for key in failed), encoding="utf-8")
            record = {"result": True, "list_file_key": list_key, "error_code": ""}
        with self._lock:
            if task.run is not run:
                return
            task.tick()
            if run.stop.is_set():
                task.status = TaskStatus.PAUSED
                if run.failed_only:
                    task.failed_keys = tuple(not_migrated)
            elif error_reason is not None:
                task.status = TaskStatus.FAILED
                task.error_reason = error_reason
                task.failed_keys = None
            elif failed:
                task.status = TaskStatus.FAILED
                task.error_reason = {
                    "error_code": ERROR_OBJECTS_FAILED,
                    "error_msg": f"{len(failed)} objects failed to migrate.",
                }
                task.failed_object_record = record
                task.failed_keys = tuple(failed)
            else:
                task.status = TaskStatus.SUCCEEDED
                task.failed_keys = None
                task.left_time = 0
            self._changed.notify_all()
