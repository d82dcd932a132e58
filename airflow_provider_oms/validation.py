"""
Checks that run before anything is sent. Each error names the field and the limit, never a secret value.

No Airflow import beyond the exception type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from airflow_provider_oms.constants import (
    BANDWIDTH_LIMITS,
    BANDWIDTH_MAX_WINDOWS,
    PATH_LIMITS,
    START_TASK_BODY_LIMITS,
    START_TASK_REQUIRED,
)
from airflow_provider_oms.exceptions import OMSValidationError

_TRUE = "true"
_FALSE = "false"
#: What a URL path segment value must not hold: path structure, "%" and control characters.
_PATH_REFUSED = re.compile(r"[/\\?#%\x00-\x1f\x7f]")


def _show(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


def check_length(field: str, value: object, minimum: int, maximum: int, *, secret: bool = False) -> str:
    """
    Return ``value`` if it is a string of ``minimum``..``maximum`` characters, else raise.

    :param field: the name shown in the error (for credentials, also say where the value came from).
    :param secret: never show the value itself, only its length.
    """
    if not isinstance(value, str):
        raise OMSValidationError(f"{field} must be a string, got {type(value).__name__}")
    if not minimum <= len(value) <= maximum:
        shown = "" if secret or not value else f" ({_show(value)})"
        raise OMSValidationError(f"{field} must be {minimum} to {maximum} characters long, got {len(value)}{shown}")
    return value


def check_credential(field: str, value: object, maximum: int) -> str:
    """
    Return a credential (AK, SK or security token) if it is 1..``maximum`` printable ASCII characters, no spaces.

    Credentials travel in headers and bodies; a stray newline, space or non-ASCII character is a paste error
    that would otherwise surface as a confusing signature or header error (which could quote the value). The
    error names the field and never the value.
    """
    text = check_length(field, value, 1, maximum, secret=True)
    if not all("!" <= ch <= "~" for ch in text):
        raise OMSValidationError(
            f"{field} must be printable ASCII without spaces, tabs or line breaks (check for a stray space or "
            "newline when it was pasted)"
        )
    return text


def check_path_value(field: str, value: object, limit_key: str) -> str:
    """
    Check a value that becomes one URL path segment (a project or task id) and return it as a string.

    Integers are accepted (OMS task ids are numbers). The value is percent-encoded as one segment when sent;
    characters that could still be read as path structure are refused outright.

    :param field: the name shown in the error, e.g. ``migration_task_id``.
    :param limit_key: the key in :data:`PATH_LIMITS` (``task_id`` or ``project_id``).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    minimum, maximum = PATH_LIMITS[limit_key]
    text = check_length(field, value, minimum, maximum)
    if text.strip() != text:
        raise OMSValidationError(f"{field} must not start or end with white space, got {_show(text)}")
    if text in {".", ".."} or _PATH_REFUSED.search(text):
        raise OMSValidationError(
            f"{field} must not contain '/', '\\', '?', '#', '%', control characters or be '.' or '..', "
            f"got {_show(text)}"
        )
    return text


def check_page(limit: int, offset: int) -> None:
    """Check a list call's page: ``limit`` 1 to 100, ``offset`` 0 or more."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
        raise OMSValidationError(f"limit must be a whole number from 1 to 100, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise OMSValidationError(f"offset must be a whole number of 0 or more, got {offset!r}")


def coerce_bool(field: str, value: object) -> bool:
    """
    Return ``value`` as a bool: a bool, or the strings ``"true"``/``"false"`` in any case.

    A Jinja template renders ``False`` to the string ``"False"``, which Python would take as true; anything
    that is not clearly one of the two is refused rather than guessed.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered == _TRUE:
            return True
        if lowered == _FALSE:
            return False
    raise OMSValidationError(
        f"{field} must be a boolean or the string 'true' or 'false' (any case), got {_show(str(value))} "
        f"of type {type(value).__name__}"
    )


def check_start_task_body(body: Mapping[str, Any], sources: Mapping[str, str] | None = None) -> None:
    """
    Check a StartTaskReq body against the seed API's limits.

    :param body: the body about to be sent.
    :param sources: for each credential field, where it came from (e.g. "password of connection 'oms'"),
        so that the error tells the user what to fix.
    """
    sources = sources or {}
    for field in START_TASK_REQUIRED:
        if not body.get(field):
            where = f" ({sources[field]})" if field in sources else ""
            raise OMSValidationError(f"{field}{where} is required and must not be empty")
    for field, (minimum, maximum) in START_TASK_BODY_LIMITS.items():
        if field in body and body[field] is not None:
            where = f" ({sources[field]})" if field in sources else ""
            check_length(f"{field}{where}", body[field], minimum, maximum, secret=True)
    flag = body.get("migrate_failed_object")
    if flag is not None and not isinstance(flag, bool):
        raise OMSValidationError("migrate_failed_object must be a boolean")


_TIME_OF_DAY = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


def check_bandwidth_policy(policies: object) -> list[dict[str, Any]]:
    """
    Check bandwidth windows: at most 5, ``start``/``end`` as ``hh:mm``, ``max_bandwidth`` in bytes/s within limits.

    :return: the windows as plain dicts, ready to send.
    """
    if not isinstance(policies, (list, tuple)):
        raise OMSValidationError(f"bandwidth_policy must be a list of windows, got {type(policies).__name__}")
    if len(policies) > BANDWIDTH_MAX_WINDOWS:
        raise OMSValidationError(f"bandwidth_policy has {len(policies)} windows; at most {BANDWIDTH_MAX_WINDOWS}")
    windows = []
    for number, window in enumerate(policies, 1):
        if not isinstance(window, Mapping):
            raise OMSValidationError(
                f"bandwidth_policy window {number} must be a mapping with start, end, max_bandwidth"
            )
        for key in ("start", "end"):
            if not isinstance(window.get(key), str) or not _TIME_OF_DAY.fullmatch(window[key]):
                raise OMSValidationError(
                    f"bandwidth_policy window {number}: {key} must be a time of day as hh:mm, got {window.get(key)!r}"
                )
        speed = window.get("max_bandwidth")
        low, high = BANDWIDTH_LIMITS
        if isinstance(speed, bool) or not isinstance(speed, int) or not low <= speed <= high:
            raise OMSValidationError(
                f"bandwidth_policy window {number}: max_bandwidth must be a whole number of bytes/s from {low} to "
                f"{high}, got {speed!r}"
            )
        windows.append({"start": window["start"], "end": window["end"], "max_bandwidth": speed})
    taken: dict[int, int] = {}
    for number, window in enumerate(windows, 1):
        for minute in _minutes(window["start"], window["end"]):
            if minute in taken:
                raise OMSValidationError(
                    f"bandwidth_policy window {number} overlaps window {taken[minute]} (at {minute // 60:02d}:"
                    f"{minute % 60:02d}); windows must not overlap"
                )
            taken[minute] = number
    return windows


def _minutes(start: str, end: str) -> list[int]:
    """Return the minutes of the day a window covers; it may run past midnight."""
    first = int(start[:2]) * 60 + int(start[3:])
    last = int(end[:2]) * 60 + int(end[3:])
    return [(first + step) % 1440 for step in range((last - first) % 1440)]
