"""
Faults of the emulated task backend: objects whose migration fails, and show-task reads that lag behind a start.

Tests turn them on through :class:`~airflow_provider_oms.testing.store.TaskStore` (``add_fail_rule``, and the
``start_lag_reads`` / ``start_lag_seconds`` arguments). Faults of the HTTP layer (error answers, slow or dropped
connections) are the server's :class:`~airflow_provider_oms.testing.server.FaultInjector`. Nothing here locks:
every call is made under the store's lock.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_oms.testing.tasks import TaskRecord


@dataclass
class FailRule:
    """Migrations of the objects that match ``pattern`` fail: every time, or the first ``times`` attempts."""

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


class FailRules:
    """The fail rules of a task store. Call every method under the store lock."""

    def __init__(self) -> None:
        self._rules: list[FailRule] = []

    def add(self, pattern: str, *, times: int | None, task_id: int | str | None) -> None:
        """Add a rule; see :meth:`~airflow_provider_oms.testing.store.TaskStore.add_fail_rule`."""
        if times is not None and times < 1:
            raise ValueError("times must be None (always fail) or at least 1")
        self._rules.append(FailRule(pattern=pattern, times=times, task_id=None if task_id is None else int(task_id)))

    def clear(self) -> None:
        """Remove every rule."""
        self._rules.clear()

    def fails(self, task_id: int, key: str) -> bool:
        """Whether this attempt to migrate ``key`` of task ``task_id`` fails."""
        # Every rule sees the attempt, so each one's counter of attempts stays right.
        injected = [rule.fails(task_id, key) for rule in self._rules]
        return any(injected)


@dataclass(frozen=True)
class StartLag:
    """
    Show-task reads that lag behind a start, as the real service's may for a moment.

    :param reads: after a start, this many show-task reads of the task still answer the task as it was before
        the start (paused or failed).
    :param seconds: the same, for this many seconds after the start; with both, the lag lasts until both have
        run out.
    """

    reads: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.reads < 0 or self.seconds < 0:
            raise ValueError("start_lag_reads and start_lag_seconds must not be negative")

    def hold(self, task: TaskRecord) -> None:
        """Keep the task's answer from before a start, for the reads of the lag. Call just before the start."""
        if self.reads or self.seconds:
            task.stale_view = task.to_json()
            task.stale_reads, task.stale_until = self.reads, time.monotonic() + self.seconds


def stale_read(task: TaskRecord) -> dict[str, Any] | None:
    """Count a show-task read and return the answer from before the start while it lags, else ``None``."""
    if task.stale_view is not None:
        if task.stale_reads > 0 or time.monotonic() < task.stale_until:
            task.stale_reads -= 1
            return dict(task.stale_view)
        task.stale_view = None
    return None
