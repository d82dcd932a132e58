"""
Facts about the OMS v2 API, defined once: task statuses, field limits, error codes, endpoints.

No Airflow import: the hook, the trigger and the local emulator share these.
"""

from __future__ import annotations

from enum import IntEnum


class TaskStatus(IntEnum):
    """Status codes of an OMS migration task (``status`` in show/list task)."""

    WAITING = 1
    RUNNING = 2
    PAUSED = 3
    FAILED = 4
    SUCCEEDED = 5
    RETRYING = 6
    PAUSING = 7


def status_name(code: object) -> str:
    """Return a readable name for a task status code, ``"unknown (x)"`` for anything else."""
    try:
        return TaskStatus(int(code)).name.lower()  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return f"unknown ({code!r})"


#: Only tasks in these statuses can be started (seed API: "start a paused or failed migration task").
STARTABLE_STATUSES = frozenset({TaskStatus.PAUSED, TaskStatus.FAILED})
#: Statuses of a task that a start has set going (what a start whose answer was lost, or a retry, finds).
STARTED_STATUSES = frozenset({TaskStatus.WAITING, TaskStatus.RUNNING, TaskStatus.RETRYING})
#: Statuses in which a task moves on by itself (what cannot be deleted, what a wait waits through).
IN_PROGRESS_STATUSES = frozenset({TaskStatus.WAITING, TaskStatus.RUNNING, TaskStatus.RETRYING, TaskStatus.PAUSING})
#: After a stop whose answer was lost, a task in these statuses was stopped by it.
STOPPED_STATUSES = frozenset({TaskStatus.PAUSING, TaskStatus.PAUSED})
#: Default connection id of the hook, the operators and the sensors.
DEFAULT_CONN_ID = "huaweicloud_oms_default"

#: Length limits from the seed API page, ``field: (minimum, maximum)`` in characters.
PATH_LIMITS: dict[str, tuple[int, int]] = {
    "project_id": (1, 1024),
    "task_id": (1, 1024),
}
START_TASK_BODY_LIMITS: dict[str, tuple[int, int]] = {
    "src_ak": (1, 100),
    "src_sk": (1, 100),
    "json_auth_file": (0, 65535),
    "src_security_token": (0, 16384),
    "dst_ak": (1, 100),
    "dst_sk": (1, 100),
    "dst_security_token": (0, 16384),
    "source_cdn_authentication_key": (0, 255),
}
#: Fields of the start body that are required by the seed API.
START_TASK_REQUIRED = ("dst_ak", "dst_sk")
#: Bandwidth policy: at most this many windows, each limited to this range of bytes per second.
BANDWIDTH_MAX_WINDOWS = 5
BANDWIDTH_LIMITS = (1048576, 209715200)

#: Task group statuses (``status`` in show task group).
GROUP_STATUS_NAMES = {
    0: "waiting",
    1: "executing",
    2: "monitoring",
    3: "paused",
    4: "creation failed",
    5: "migration failed",
    6: "completed",
    7: "pausing",
    8: "waiting for deletion",
    9: "deleted",
}
GROUP_COMPLETED = 6
GROUP_PAUSED = 3
GROUP_PAUSING = 7
GROUP_FAILED_STATUSES = frozenset({4, 5})
GROUP_IN_PROGRESS_STATUSES = frozenset({0, 1, 2, 7})
#: After a group start or retry whose answer was lost, a group in these statuses was started by it.
GROUP_STARTED_STATUSES = frozenset({0, 1, 2})
#: After a group stop whose answer was lost, a group in these statuses was stopped by it.
GROUP_STOPPED_STATUSES = frozenset({GROUP_PAUSED, GROUP_PAUSING})

#: The ``X-Auth-Token`` / ``X-Security-Token`` header limit.
TOKEN_MAX_LENGTH = 16384

#: Regions the official SDK knows; ``https://oms.{region}.myhuaweicloud.com``.
KNOWN_REGIONS = frozenset(
    {
        "cn-north-4", "cn-north-1", "cn-east-2", "cn-east-3", "cn-south-1", "cn-south-4", "cn-southwest-2",
        "cn-north-9", "cn-east-4", "cn-north-12", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
        "ap-southeast-4", "ap-southeast-5", "la-south-2", "la-north-2", "sa-brazil-1", "tr-west-1",
        "me-east-1", "af-south-1",
    }
)  # fmt: skip
ENDPOINT_TEMPLATE = "https://oms.{region}.myhuaweicloud.com"

#: Clock skew the API gateway tolerates on ``X-Sdk-Date``.
MAX_CLOCK_SKEW_SECONDS = 15 * 60

# Error codes (HTTP status, code) seen from the service.
ERROR_INVALID_PARAMETER = "OMS.0064"
ERROR_TASK_ALREADY_STARTED = "OMS.0065"
ERROR_TASK_NOT_IN_PROGRESS = "OMS.0066"
ERROR_TASK_IN_PROGRESS = "OMS.0063"
ERROR_NOT_FOUND = "OMS.1009"
ERROR_AUTH = "APIGW.0301"
ERROR_THROTTLED = "APIGW.0308"
