"""
The marker the creating operators write into a description, to find their work again.

A retry finds what its earlier try created by it, and housekeeping finds its DAG's own tasks. A marker is
``airflow-<DAG part>-<instance part>``: 12 hex digits of the DAG id's SHA-256, then 16 of the run, task, map
index and clear's; 37 characters, appended to the description (OMS allows 255).

Kept light on purpose: a DAG file imports the operators, and with them this module, every time it is parsed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_oms.constants import MAX_CLOCK_SKEW_SECONDS

if TYPE_CHECKING:
    from airflow.sdk import Context

DESCRIPTION_MAX = 255
_DAG_PART_DIGITS = 12
_INSTANCE_PART_DIGITS = 16
#: A marker as a word of a description; the group is the DAG part.
MARKER_RE = re.compile(rf"(?<!\S)airflow-([0-9a-f]{{{_DAG_PART_DIGITS}}})-[0-9a-f]{{{_INSTANCE_PART_DIGITS}}}(?!\S)")


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def first_try_of_this_clear(context: Context, retries: int | None) -> int:
    """
    Return the try number this task instance started from since it was last cleared (1 if never cleared).

    Clearing a task instance that is not running sets ``max_tries`` to the try number plus the task's retries, so
    the tries since then begin at ``max_tries - retries + 1`` (Airflow's own sensors count reschedules from there
    too). Clearing a *running* one leaves ``max_tries`` as it is unless the executor reports the killed try as a
    success; :func:`run_marker` tells that clear apart by the DAG run's ``clear_number``.

    :param context: the task's context.
    :param retries: the task's ``retries``.
    """
    ti = context["ti"]
    try_number = _int(getattr(ti, "try_number", 1), 1)
    max_tries = getattr(ti, "max_tries", None)
    if not isinstance(max_tries, int) or isinstance(max_tries, bool):
        return 1  # not known here: as if never cleared
    return min(max(max_tries - _int(retries, 0) + 1, 1), try_number)


def is_retry(context: Context, retries: int | None) -> bool:
    """
    Whether this try comes after another try since the task instance was last cleared.

    :param context: the task's context.
    :param retries: the task's ``retries``.
    """
    return _int(getattr(context["ti"], "try_number", 1), 1) > first_try_of_this_clear(context, retries)


def dag_marker(dag_id: str) -> str:
    """
    Return the DAG part of the markers a DAG's tasks write: ``airflow-<this>-...``.

    :param dag_id: the DAG's id.
    """
    return hashlib.sha256(dag_id.encode()).hexdigest()[:_DAG_PART_DIGITS]


def _instance_key(context: Context, retries: int | None) -> str:
    ti = context["ti"]
    key = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{getattr(ti, 'map_index', -1)}"
    first_try = first_try_of_this_clear(context, retries)
    return key + f"/cleared-at-try-{first_try}" if first_try > 1 else key


def run_marker(context: Context, retries: int | None = 0) -> str:
    """
    Return the marker this task instance writes into what it creates: ``airflow-<DAG part>-<instance part>``.

    The DAG part (:func:`dag_marker`) lets housekeeping find the DAG's own tasks. The instance part hashes the
    run, task, map index and clear: retries of one try share it, so a retry finds what its earlier try created; a
    clear starts a new one, so a cleared task creates anew instead of passing at once on an earlier try's work. A
    clear shows in ``max_tries`` (raised by the clear of a task instance that is not running, and after a cleared
    running try the executor reports as a success) and in the DAG run's ``clear_number``. Airflow 3.3 raises that
    on every clear that resets the run, also the clear of a running task instance whose try then ends as failed
    (a lost worker), which Airflow retries without raising ``max_tries``; 3.1 only when it resets a finished run.

    :param context: the task's context.
    :param retries: the task's ``retries``.
    """
    key = _instance_key(context, retries)
    clears = _int(getattr(context.get("dag_run"), "clear_number", 0), 0)
    if clears > 0:
        key += f"/clear-number-{clears}"
    instance = hashlib.sha256(key.encode()).hexdigest()[:_INSTANCE_PART_DIGITS]
    return f"airflow-{dag_marker(str(context['ti'].dag_id))}-{instance}"


def lookup_markers(context: Context, retries: int | None) -> frozenset[str]:
    """
    Return the markers an earlier try of this clear may have written.

    This version's, and the one of earlier versions (``airflow-<16 hex digits>``, without the DAG part and the
    clear number), so a retry after an upgrade still finds its earlier try's task.
    """
    legacy = hashlib.sha256(_instance_key(context, retries).encode()).hexdigest()[:_INSTANCE_PART_DIGITS]
    return frozenset({run_marker(context, retries), f"airflow-{legacy}"})


def with_marker(description: Any, marker: str) -> str:
    """Return the description with the marker appended, cut to leave room for it within OMS's 255 characters."""
    text = str(description or "").strip()
    room = DESCRIPTION_MAX - len(marker) - 1
    return f"{text[:room]} {marker}".strip()


def not_before_ms(context: Context) -> float | None:
    """
    Return the earliest time (Unix ms) the first try of this clear may have started, if known.

    The DAG run's start less the clock skew the API gateway allows: clearing a finished run resets its start,
    and every try of the run comes after it.
    """
    began = getattr(context.get("dag_run"), "start_date", None)
    if not isinstance(began, datetime):
        return None
    return (began.timestamp() - MAX_CLOCK_SKEW_SECONDS) * 1000


def started_before(item: Mapping[str, Any], moment_ms: float) -> bool:
    """Whether a listed task (or group) has a ``start_time`` and it is before ``moment_ms``."""
    start_ms = item.get("start_time")
    return isinstance(start_ms, (int, float)) and not isinstance(start_ms, bool) and 0 < start_ms < moment_ms


def find_by_marker(
    list_page: Callable[..., dict[str, Any]],
    items_key: str,
    id_key: str,
    markers: Collection[str],
    since_ms: float | None,
) -> str | None:
    """
    Return the id of the first listed item whose description holds one of ``markers``, reading pages of 100.

    OMS names tasks itself and its name filter is fuzzy, so the list is read page by page (newest first) until
    it ends, or until a whole page started before ``since_ms``: what started before this clear's first try
    cannot be its work.

    :param list_page: the hook's list call, taking ``limit`` and ``offset``.
    :param items_key: the list's key in the answer (``tasks``, ``taskgroups``).
    :param id_key: the id's key in an item.
    :param markers: the markers to look for (:func:`lookup_markers`).
    :param since_ms: :func:`not_before_ms`, or ``None`` to read the whole list.
    """
    wanted = set(markers)
    offset = 0
    while True:
        items = list_page(limit=100, offset=offset).get(items_key) or []
        for item in items:
            if wanted & set(str(item.get("description") or "").split()):
                return str(item[id_key])
        if len(items) < 100 or (since_ms is not None and all(started_before(item, since_ms) for item in items)):
            return None
        offset += len(items)
