"""
What an emulated OMS task is: the API rules that check the requests creating and starting one, and its record.

No state and no threads here: :mod:`~airflow_provider_oms.testing.store` keeps the records under its lock and
answers the API, :mod:`~airflow_provider_oms.testing.engine` runs them. Requests that break a rule are refused
with :class:`OMSEmulatorError`, carrying the HTTP status and OMS error code that the server answers with; the
sync-task and task-group stores check their own bodies with the same field rules.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_oms.constants import (
    BANDWIDTH_LIMITS,
    BANDWIDTH_MAX_WINDOWS,
    ERROR_INVALID_PARAMETER,
    START_TASK_BODY_LIMITS,
    START_TASK_REQUIRED,
    TOKEN_MAX_LENGTH,
    TaskStatus,
)

#: A bug in the emulator itself, never a code of the real service.
ERROR_EMULATOR = "OMS.EMULATOR"

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

_TIME_OF_DAY_RE = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
_MINUTES_PER_DAY = 24 * 60
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


# -- API rules --------------------------------------------------------------------------------------


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


# -- records ----------------------------------------------------------------------------------------


@dataclass
class TaskRun:
    """One run of a task: from a create or a start until it is paused, fails or succeeds."""

    number: int
    failed_only: bool
    #: Set by a stop call (and when the emulator shuts down); the worker checks it between objects.
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass
class TaskRecord:
    """An emulated task as the store keeps it: what it asks for, its status and its counters."""

    id: int
    name: str
    spec: TaskSpec
    #: The task group that created this task, if any.
    group_id: str | None = None
    bandwidth_policy: tuple[dict[str, Any], ...] = ()
    status: TaskStatus = TaskStatus.WAITING
    run: TaskRun | None = None
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
        """Bring ``total_time`` and ``left_time`` up to now."""
        self.total_time = max(0, now_ms() - self.start_time)
        remaining = self.run_objects - self.run_processed
        self.left_time = self.total_time * remaining // self.run_processed if self.run_processed else 0

    def progress(self) -> float:
        """Return the share of the task done, 0.0 to 1.0."""
        if self.total_size:
            return min(1.0, self.complete_size / self.total_size)
        if self.total_num:
            return (self.successful_num + self.skipped_num) / self.total_num
        return 1.0 if self.status == TaskStatus.SUCCEEDED else 0.0

    def to_json(self) -> dict[str, Any]:
        """Return the task as the show-task API does."""
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


def now_ms() -> int:
    """Return this machine's time in Unix milliseconds, as the API's times are."""
    return time.time_ns() // 1_000_000
