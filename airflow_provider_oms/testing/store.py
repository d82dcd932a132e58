"""
Task store and migration engine of the local OMS emulator.

No HTTP here (moto's split: this is the backend, :mod:`~airflow_provider_oms.testing.server` the HTTP layer).
Tasks live in memory under one lock. Every run of a task gets its own worker thread, which copies files
between bucket folders of the data directory and updates the task's counters as it goes. Errors are raised
as :class:`OMSEmulatorError`, carrying the HTTP status and OMS error code that the server answers with.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from airflow_provider_oms.constants import (
    BANDWIDTH_LIMITS,
    BANDWIDTH_MAX_WINDOWS,
    ERROR_INVALID_PARAMETER,
    ERROR_NOT_FOUND,
    ERROR_TASK_ALREADY_STARTED,
    ERROR_TASK_IN_PROGRESS,
    ERROR_TASK_NOT_IN_PROGRESS,
    START_TASK_BODY_LIMITS,
    START_TASK_REQUIRED,
    STARTABLE_STATUSES,
    TOKEN_MAX_LENGTH,
    TaskStatus,
)

logger = logging.getLogger("airflow_provider_oms.emulator")

#: No v2 code is documented for starting a completed task; the emulator answers with this one.
ERROR_TASK_COMPLETED = "OMS.0067"
#: A bug in the emulator itself, never a code of the real service.
ERROR_EMULATOR = "OMS.EMULATOR"
#: ``error_reason`` codes of failed runs (TRF.* like the real service's transfer errors).
ERROR_SOURCE_BUCKET_MISSING = "TRF.0015"
ERROR_OBJECTS_FAILED = "TRF.0001"

IN_PROGRESS_STATUSES = frozenset({TaskStatus.WAITING, TaskStatus.RUNNING, TaskStatus.RETRYING, TaskStatus.PAUSING})
TASK_TYPES = frozenset({"object", "prefix"})
#: Task types of the real service that the emulator refuses, rather than migrating something else.
UNSUPPORTED_TASK_TYPES = frozenset({"list", "url_list"})
OVERWRITE_SIZE_LAST_MODIFIED = "SIZE_LAST_MODIFIED_COMPARISON_OVERWRITE"
#: Local files carry no CRC64 metadata, so this mode compares size and time, as the real service falls back to.
OVERWRITE_CRC64 = "CRC64_COMPARISON_OVERWRITE"
OVERWRITE_NONE = "NO_OVERWRITE"
OVERWRITE_FULL = "FULL_OVERWRITE"
OVERWRITE_MODES = frozenset({OVERWRITE_SIZE_LAST_MODIFIED, OVERWRITE_CRC64, OVERWRITE_NONE, OVERWRITE_FULL})
DEFAULT_CLOUD_TYPE = "Aliyun"  # the SDK's documented default
DESCRIPTION_MAX_LENGTH = 255
DESCRIPTION_FORBIDDEN = frozenset("^<>()&\"'")
KEY_MAX_LENGTH = 1024
REGION_MAX_LENGTH = 100
LIST_LIMIT_DEFAULT = 10
LIST_LIMIT_MAX = 100
FAILED_LIST_KEY = "oms/failed_object_lists/{task_name}/{run}.txt"

_TIME_OF_DAY_RE = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
_MINUTES_PER_DAY = 24 * 60
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_TASK_ID_RE = re.compile(r"[0-9]{1,20}")


class OMSEmulatorError(Exception):
    """
    An error answer of the emulated API.

    :param status: the HTTP status.
    :param error_code: the OMS or API gateway error code, e.g. ``OMS.0064``.
    :param error_msg: the message.
    :param error_detail: which request parameter was refused (``OMS.0064``); never a value.
    """

    def __init__(self, status: int, error_code: str, error_msg: str, error_detail: str | None = None) -> None:
        super().__init__(f"HTTP {status} {error_code}: {error_msg}" + (f" ({error_detail})" if error_detail else ""))
        self.status = status
        self.error_code = error_code
        self.error_msg = error_msg
        self.error_detail = error_detail

    def to_json(self) -> dict[str, str]:
        """Return the JSON error body."""
        body = {"error_code": self.error_code, "error_msg": self.error_msg}
        if self.error_detail:
            body["error_detail"] = self.error_detail
        return body


def invalid_parameter(field_name: str, reason: str) -> OMSEmulatorError:
    """Return the ``OMS.0064`` error for one request parameter; ``reason`` must not quote its value."""
    return OMSEmulatorError(
        400,
        ERROR_INVALID_PARAMETER,
        "Invalid request parameters.",
        f"request parameter [{field_name}] invalid: {reason}",
    )


def check_bucket_name(bucket: object) -> str:
    """
    Return ``bucket`` if it follows the OBS bucket naming rules, else raise ``ValueError``.

    The rules also keep a bucket name from being a path outside the data directory.
    """
    if (
        not isinstance(bucket, str)
        or not _BUCKET_RE.fullmatch(bucket)
        or any(pair in bucket for pair in ("..", ".-", "-."))
    ):
        raise ValueError(
            "a bucket name has 3 to 63 characters: lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or a digit"
        )
    return bucket


def _check_key_path(field_name: str, value: str) -> str:
    # Keys become file paths under a bucket folder: refuse anything that could step out of it.
    segments = value.split("/")
    if value.startswith("/") or "\\" in value or "\x00" in value or {".", ".."} & set(segments):
        raise invalid_parameter(field_name, "must not start with '/' or contain '\\', NUL or '.'/'..' path segments")
    return value


def text_field(
    node: Mapping[str, Any],
    key: str,
    field_name: str,
    *,
    required: bool,
    maximum: int,
    minimum: int = 0,
    default: str = "",
) -> str:
    """Return the string ``node[key]`` (``default`` if absent and not required), checking its length."""
    value = node.get(key)
    if value is None:
        if required:
            raise invalid_parameter(field_name, "is required")
        return default
    if not isinstance(value, str):
        raise invalid_parameter(field_name, "must be a string")
    if not minimum <= len(value) <= maximum:
        raise invalid_parameter(field_name, f"must be {minimum} to {maximum} characters long")
    return value


def node_field(body: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """Return the required object ``body[key]``, such as ``src_node``."""
    value = body.get(key)
    if value is None:
        raise invalid_parameter(key, "is required")
    if not isinstance(value, Mapping):
        raise invalid_parameter(key, "must be an object")
    return value


def bucket_field(node: Mapping[str, Any], field_name: str, key: str = "bucket") -> str:
    """Return the required bucket name ``node[key]``, checked against the OBS naming rules."""
    try:
        return check_bucket_name(text_field(node, key, field_name, required=True, minimum=1, maximum=63))
    except ValueError as err:
        raise invalid_parameter(field_name, str(err)) from None


def check_node_credentials(node: Mapping[str, Any], side: str) -> None:
    """Check the ``ak``, ``sk`` and ``security_token`` of a ``src_node`` or ``dst_node``; they are never kept."""
    # Checked like the real service does (the same 1..100 characters as the start body's keys), then
    # dropped: the emulator needs no credentials to copy files.
    minimum, maximum = START_TASK_BODY_LIMITS["src_ak"]
    for key in ("ak", "sk"):
        text_field(node, key, f"{side}.{key}", required=True, minimum=minimum, maximum=maximum)
    text_field(node, "security_token", f"{side}.security_token", required=False, maximum=TOKEN_MAX_LENGTH)


@dataclass(frozen=True)
class TaskSpec:
    """What a CreateTaskReq asks for, without its credentials."""

    task_type: str
    description: str
    src_bucket: str
    src_region: str
    cloud_type: str
    object_keys: tuple[str, ...]
    dst_bucket: str
    dst_region: str
    save_prefix: str
    object_overwrite_mode: str
    #: CreateTaskReq ``migrate_since``: only source objects modified after this UNIX time (seconds) migrate.
    migrate_since: int | None = None

    def nodes_json(self) -> dict[str, Any]:
        """``src_node``, ``dst_node`` and ``object_overwrite_mode`` as show-task (and show-group) return them."""
        return {
            "src_node": {
                "bucket": self.src_bucket,
                "region": self.src_region,
                "cloud_type": self.cloud_type,
                "object_key": list(self.object_keys),
            },
            "dst_node": {"bucket": self.dst_bucket, "region": self.dst_region, "save_prefix": self.save_prefix},
            "object_overwrite_mode": self.object_overwrite_mode,
        }


def description_field(body: Mapping[str, Any]) -> str:
    """Return the optional ``description``: at most 255 characters, none of ``^<>()&"'``."""
    description = text_field(body, "description", "description", required=False, maximum=DESCRIPTION_MAX_LENGTH)
    if DESCRIPTION_FORBIDDEN & set(description):
        raise invalid_parameter("description", "must not contain any of ^<>()&\"'")
    return description


def parse_bandwidth_policy(policy: Any, field_name: str = "bandwidth_policy") -> tuple[dict[str, Any], ...]:
    """
    Check a ``bandwidth_policy`` (absent: none) and return its windows.

    At most 5 windows ``{"start": "hh:mm", "end": "hh:mm", "max_bandwidth": bytes/s}``, 1048576 to 209715200
    bytes/s, that do not overlap (the SDK's documentation: "时段不能重叠"). A window whose end is before its start
    runs past midnight; the end minute is not part of it.
    """
    if policy is None:
        return ()
    if not isinstance(policy, list):
        raise invalid_parameter(field_name, "must be a list of windows")
    if len(policy) > BANDWIDTH_MAX_WINDOWS:
        raise invalid_parameter(field_name, f"must have at most {BANDWIDTH_MAX_WINDOWS} windows")
    low, high = BANDWIDTH_LIMITS
    windows = []
    taken: set[int] = set()
    for index, window in enumerate(policy):
        where = f"{field_name}[{index}]"
        if not isinstance(window, Mapping):
            raise invalid_parameter(where, "must be an object with start, end and max_bandwidth")
        minutes = []
        for key in ("start", "end"):
            value = window.get(key)
            if not isinstance(value, str) or not _TIME_OF_DAY_RE.fullmatch(value):
                raise invalid_parameter(f"{where}.{key}", "must be a time of day as hh:mm, 00:00 to 23:59")
            minutes.append(int(value[:2]) * 60 + int(value[3:]))
        speed = window.get("max_bandwidth")
        if isinstance(speed, bool) or not isinstance(speed, int) or not low <= speed <= high:
            raise invalid_parameter(f"{where}.max_bandwidth", f"must be a whole number of bytes/s, {low} to {high}")
        start, end = minutes
        span = {(start + offset) % _MINUTES_PER_DAY for offset in range((end - start) % _MINUTES_PER_DAY)}
        if span & taken:
            raise invalid_parameter(where, "must not overlap another window")
        taken |= span
        windows.append({"start": window["start"], "end": window["end"], "max_bandwidth": speed})
    return tuple(windows)


def parse_create_body(body: Any) -> TaskSpec:
    """Check a CreateTaskReq body and return what it asks for, without its credentials."""
    if not isinstance(body, Mapping):
        raise invalid_parameter("body", "must be a JSON object")
    task_type = text_field(body, "task_type", "task_type", required=False, maximum=16, default="object")
    if task_type in UNSUPPORTED_TASK_TYPES:
        raise invalid_parameter("task_type", "list and url_list tasks are not supported by the emulator")
    if task_type not in TASK_TYPES:
        raise invalid_parameter("task_type", "must be one of object, prefix, list, url_list")
    description = description_field(body)
    overwrite_mode = text_field(
        body,
        "object_overwrite_mode",
        "object_overwrite_mode",
        required=False,
        maximum=64,
        default=OVERWRITE_SIZE_LAST_MODIFIED,
    )
    if overwrite_mode not in OVERWRITE_MODES:
        raise invalid_parameter("object_overwrite_mode", f"must be one of {', '.join(sorted(OVERWRITE_MODES))}")

    src = node_field(body, "src_node")
    check_node_credentials(src, "src_node")
    object_keys = src.get("object_key")
    if object_keys is None:
        object_keys = []
    if not isinstance(object_keys, list) or not all(isinstance(key, str) for key in object_keys):
        raise invalid_parameter("src_node.object_key", "must be a list of strings")
    for key in object_keys:
        if len(key) > KEY_MAX_LENGTH:
            raise invalid_parameter("src_node.object_key", f"keys must be at most {KEY_MAX_LENGTH} characters long")
        _check_key_path("src_node.object_key", key)

    migrate_since = body.get("migrate_since")
    if migrate_since is not None and (
        isinstance(migrate_since, bool) or not isinstance(migrate_since, int) or migrate_since < 0
    ):
        raise invalid_parameter("migrate_since", "must be a UNIX time in seconds (a whole number of 0 or more)")

    dst = node_field(body, "dst_node")
    check_node_credentials(dst, "dst_node")
    save_prefix = text_field(dst, "save_prefix", "dst_node.save_prefix", required=False, maximum=KEY_MAX_LENGTH)
    return TaskSpec(
        task_type=task_type,
        description=description,
        src_bucket=bucket_field(src, "src_node.bucket"),
        src_region=text_field(src, "region", "src_node.region", required=True, minimum=1, maximum=REGION_MAX_LENGTH),
        cloud_type=text_field(
            src, "cloud_type", "src_node.cloud_type", required=False, maximum=32, default=DEFAULT_CLOUD_TYPE
        ),
        object_keys=tuple(object_keys),
        dst_bucket=bucket_field(dst, "dst_node.bucket"),
        dst_region=text_field(dst, "region", "dst_node.region", required=True, minimum=1, maximum=REGION_MAX_LENGTH),
        save_prefix=_check_key_path("dst_node.save_prefix", save_prefix),
        object_overwrite_mode=overwrite_mode,
        migrate_since=migrate_since,
    )


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


def parse_start_body(body: Any) -> bool:
    """Check a StartTaskReq body and return its ``migrate_failed_object``; the credentials are dropped."""
    if body is None:
        body = {}
    if not isinstance(body, Mapping):
        raise invalid_parameter("body", "must be a JSON object")
    for key in START_TASK_REQUIRED:
        if body.get(key) is None:
            raise invalid_parameter(key, "is required")
    for key, (minimum, maximum) in START_TASK_BODY_LIMITS.items():
        text_field(body, key, key, required=False, minimum=minimum, maximum=maximum)
    flag = body.get("migrate_failed_object")
    if flag is not None and not isinstance(flag, bool):
        raise invalid_parameter("migrate_failed_object", "must be a boolean")
    return bool(flag)


@dataclass
class _FailRule:
    pattern: str
    times: int | None
    task_id: int | None
    attempts: dict[tuple[int, str], int] = field(default_factory=dict)

    def fails(self, task_id: int, key: str) -> bool:
        """Whether this attempt to migrate ``key`` fails; counts the attempt. Call under the store lock."""
        if self.task_id not in (None, task_id) or not fnmatch.fnmatchcase(key, self.pattern):
            return False
        if self.times is None:
            return True
        done = self.attempts.get((task_id, key), 0)
        if done >= self.times:
            return False
        self.attempts[(task_id, key)] = done + 1
        return True


@dataclass
class _Run:
    number: int
    failed_only: bool
    #: Set by a stop call (and when the emulator shuts down); the worker checks it between objects.
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Task:
    id: int
    name: str
    spec: TaskSpec
    #: The task group that created this task, if any.
    group_id: str | None = None
    bandwidth_policy: tuple[dict[str, Any], ...] = ()
    status: TaskStatus = TaskStatus.WAITING
    run: _Run | None = None
    #: What a start with ``migrate_failed_object`` migrates: the objects that failed in the run that ended
    #: failed, or the ones a paused failed-only run had not migrated yet. ``None`` when such a start runs the
    #: whole task: no failed-object list, or a run of the whole task began since.
    failed_keys: tuple[str, ...] | None = None
    total_num: int = 0
    successful_num: int = 0
    failed_num: int = 0
    skipped_num: int = 0
    total_size: int = 0
    complete_size: int = 0
    real_size: int = 0
    start_time: int = 0
    total_time: int = 0
    left_time: int = 0
    is_query_over: bool = False
    error_reason: dict[str, str] | None = None
    failed_object_record: dict[str, Any] | None = None
    # Per run, for migrate_speed and left_time.
    run_objects: int = 0
    run_processed: int = 0
    run_written: int = 0
    #: After a start with a start lag: the answer from before the start, shown instead of the task until
    #: ``stale_reads`` more reads have been made and the monotonic time ``stale_until`` has passed.
    stale_view: dict[str, Any] | None = None
    stale_reads: int = 0
    stale_until: float = 0.0

    def tick(self) -> None:
        self.total_time = max(0, now_ms() - self.start_time)
        remaining = self.run_objects - self.run_processed
        self.left_time = self.total_time * remaining // self.run_processed if self.run_processed else 0

    def progress(self) -> float:
        if self.total_size:
            return min(1.0, self.complete_size / self.total_size)
        if self.total_num:
            return (self.successful_num + self.skipped_num) / self.total_num
        return 1.0 if self.status == TaskStatus.SUCCEEDED else 0.0

    def to_json(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "id": self.id,
            "name": self.name,
            "task_type": spec.task_type,
            "description": spec.description,
            "group_id": self.group_id,
            **spec.nodes_json(),
            "bandwidth_policy": [dict(window) for window in self.bandwidth_policy],
            "status": int(self.status),
            "total_num": self.total_num,
            "successful_num": self.successful_num,
            "failed_num": self.failed_num,
            "skipped_num": self.skipped_num,
            "total_size": self.total_size,
            "complete_size": self.complete_size,
            "real_size": self.real_size,
            "progress": self.progress(),
            "migrate_speed": self.run_written * 1000 // self.total_time if self.total_time else 0,
            "start_time": self.start_time,
            "total_time": self.total_time,
            "left_time": self.left_time,
            "is_query_over": self.is_query_over,
            "error_reason": dict(self.error_reason) if self.error_reason else None,
            "failed_object_record": dict(self.failed_object_record) if self.failed_object_record else None,
        }


class _Outcome(Enum):
    COPIED = "copied"
    SKIPPED = "skipped"
    FAILED = "failed"


def now_ms() -> int:
    """Return this machine's time in Unix milliseconds, as the API's times are."""
    return time.time_ns() // 1_000_000


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


class TaskStore:
    """
    The emulated OMS tasks and the engine that runs them; thread-safe.

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
        if start_lag_reads < 0 or start_lag_seconds < 0:
            raise ValueError("start_lag_reads and start_lag_seconds must not be negative")
        self._start_lag = (start_lag_reads, start_lag_seconds)
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
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._tasks: dict[int, _Task] = {}
        self._last_id = 0
        self._rules: list[_FailRule] = []
        self._workers: set[threading.Thread] = set()
        #: Set by close(): cuts short the pausing hold of every run.
        self._closing = threading.Event()
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
        if times is not None and times < 1:
            raise ValueError("times must be None (always fail) or at least 1")
        with self._lock:
            self._rules.append(
                _FailRule(pattern=pattern, times=times, task_id=None if task_id is None else int(task_id))
            )

    def clear_fail_rules(self) -> None:
        """Remove every fail rule."""
        with self._lock:
            self._rules.clear()

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
        """Return ``{"tasks": [...], "count": n}``, newest first; ``task_name`` matches a substring."""
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise invalid_parameter("limit", f"must be 1 to {LIST_LIMIT_MAX}")
        if offset < 0:
            raise invalid_parameter("offset", "must not be negative")
        with self._lock:
            tasks = [self._tasks[task_id].to_json() for task_id in sorted(self._tasks, reverse=True)]
        matching = [
            task
            for task in tasks
            if (status is None or task["status"] == status)
            and (task_name is None or task_name.lower() in task["name"].lower())
            and (group_id is None or task["group_id"] == group_id)
        ]
        return {"tasks": matching[offset : offset + limit], "count": len(matching)}

    def get_task(self, task_id: int | str) -> dict[str, Any]:
        """Return the task as it is (for tests; not lagging behind a start)."""
        with self._lock:
            return self._lookup(task_id).to_json()

    def show_task(self, task_id: int | str) -> dict[str, Any]:
        """Return the task as the show-task API does: right after a start, maybe as it was before it."""
        with self._lock:
            task = self._lookup(task_id)
            if task.stale_view is not None:
                if task.stale_reads > 0 or time.monotonic() < task.stale_until:
                    task.stale_reads -= 1
                    return dict(task.stale_view)
                task.stale_view = None
            return task.to_json()

    def start_task(self, task_id: int | str, body: Any) -> None:
        """Start a paused or failed task from a StartTaskReq body."""
        migrate_failed_object = parse_start_body(body)
        with self._lock:
            task = self._lookup(task_id)
            if task.status == TaskStatus.SUCCEEDED:
                raise OMSEmulatorError(400, ERROR_TASK_COMPLETED, "The task has completed and cannot be started.")
            if task.status not in STARTABLE_STATUSES:
                raise OMSEmulatorError(400, ERROR_TASK_ALREADY_STARTED, "The task has already started.")
            lag_reads, lag_seconds = self._start_lag
            if lag_reads or lag_seconds:
                task.stale_view = task.to_json()
                task.stale_reads, task.stale_until = lag_reads, time.monotonic() + lag_seconds
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
        with self._lock:
            self._closing.set()
            runs = [task.run for task in self._tasks.values() if task.run is not None]
            workers = list(self._workers)
        for run in runs:
            run.stop.set()
        for worker in workers:
            worker.join(timeout=5)

    def _lookup(self, task_id: int | str) -> _Task:
        text = str(task_id)
        task = self._tasks.get(int(text)) if _TASK_ID_RE.fullmatch(text) else None
        if task is None:
            raise OMSEmulatorError(404, ERROR_NOT_FOUND, "The task does not exist or has been deleted.")
        return task

    def _add_task(self, spec: TaskSpec, *, group_id: str | None, bandwidth_policy: tuple[dict[str, Any], ...]) -> _Task:
        """Create a task and begin its first run. Call under the lock."""
        # ~15-digit ids that grow, like the real service's.
        task_id = max(self._last_id + 1, now_ms() * 100)
        self._last_id = task_id
        task = _Task(
            id=task_id, name=f"oms-task-{task_id}", spec=spec, group_id=group_id, bandwidth_policy=bandwidth_policy
        )
        self._tasks[task_id] = task
        self._begin_run(task, failed_only=False)
        return task

    def _restart(self, task: _Task, *, migrate_failed_object: bool) -> None:
        """Begin a new run of a paused or failed task. Call under the lock."""
        # With no failed-object list (a task paused in a run of the whole task, or a run that failed before
        # copying) there is nothing to narrow the run to: the whole task runs, and what was already copied is
        # skipped. Refusing the flag here would be a rule the service does not document.
        self._begin_run(task, failed_only=migrate_failed_object and task.failed_keys is not None)

    def _pause(self, task: _Task) -> bool:
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

    def _delete(self, tasks: list[_Task]) -> None:
        """Delete tasks, refusing all of them if one is in progress. Call under the lock."""
        if any(task.status in IN_PROGRESS_STATUSES for task in tasks):
            raise OMSEmulatorError(
                400, ERROR_TASK_IN_PROGRESS, "The task is in progress and cannot be deleted; pause it first."
            )
        for task in tasks:
            del self._tasks[task.id]
        self._changed.notify_all()

    def _begin_run(self, task: _Task, *, failed_only: bool) -> None:
        """Put the task in the waiting status and start a worker for a new run. Call under the lock."""
        run = _Run(number=task.run.number + 1 if task.run else 1, failed_only=failed_only)
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

    def _work(self, task: _Task, run: _Run) -> None:
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

    def _migrate(self, task: _Task, run: _Run) -> None:
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
            # Every rule sees the attempt, so each one's counter of attempts stays right.
            injected = [rule.fails(task_id, key) for rule in self._rules]
        source = object_path(source_root, key)
        try:
            source_stat = source.stat()
        except OSError:
            return _Outcome.FAILED, 0
        if any(injected):
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
        task: _Task,
        run: _Run,
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
