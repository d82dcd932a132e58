"""
An event trigger for Airflow's ``AssetWatcher``: schedule a DAG when an OMS migration started outside Airflow ends.

A watcher fires on a change, never on a state: "the task is succeeded" stays true and would schedule the DAG on
every poll. So each outcome is remembered by a fingerprint (status, start time, total time) and fires once. A
task that is started again and ends again has a new start time, hence a new outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Iterable, Mapping
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_oms.constants import DEFAULT_CONN_ID, TaskStatus, status_name
from airflow_provider_oms.exceptions import AirflowException, OMSValidationError
from airflow_provider_oms.triggers.oms import connect
from airflow_provider_oms.triggers.poller import SharedPoller, shared_poller
from airflow_provider_oms.validation import check_path_value
from airflow_provider_oms.waiting import summarize

#: The statuses an outcome may be: a task that stopped moving by itself or was paused.
OUTCOME_STATUSES = frozenset({TaskStatus.PAUSED, TaskStatus.FAILED, TaskStatus.SUCCEEDED})
#: The key under which the fingerprints are kept in the asset's state store (Airflow 3.3+).
STATE_KEY = "oms_outcomes"
#: The shortest poll interval accepted: a watcher lists every interval, whether or not anything changed.
MIN_POLL_SECONDS = 1.0


def outcome_fingerprint(task: Mapping[str, Any]) -> list[Any]:
    """Return what tells one outcome of a task from the next: its status, start time and total time."""
    return [task.get("status"), task.get("start_time"), task.get("total_time")]


class MigrationTaskEventTrigger(BaseEventTrigger):
    """
    Fire one event each time a watched OMS migration task reaches a new outcome (for ``AssetWatcher``).

    Watch tasks by id (``migration_task_ids``), or every task whose name contains ``task_name`` and/or that belongs
    to the task group ``group_id``. Every ``poll_interval`` the trigger reads them (tasks by id through the
    triggerer's shared poller, filters with one list call per outcome status) and fires once per outcome it has not
    fired yet: ``{"migration_task_id", "task_name", "status", "status_name", "task": <figures>}``. Events of one
    round that land before the scheduler creates the DAG run are consumed by the same run.

    Fingerprints are kept in the asset's state store on Airflow 3.3+, so a triggerer restart fires nothing twice.
    Airflow 3.1 and 3.2 have no state store: after a triggerer restart (or when the trigger moves to another
    triggerer) the last outcome of every watched task fires again, once. The first time a watcher runs, it fires
    the outcome each watched task already has.

    OMS errors never end the watcher: it logs them and reads again at the next interval, so a broken connection is
    visible in the triggerer's log and heals when the connection is fixed.

    :param oms_conn_id: the ``huaweicloud_oms`` connection; read in the triggerer, never serialized.
    :param migration_task_ids: OMS task ids to watch.
    :param task_name: watch every task whose name contains this (OMS matches names fuzzily).
    :param group_id: watch every task of this task group.
    :param outcome_statuses: the statuses that are outcomes. Default: failed (4) and succeeded (5); paused (3)
        may be added.
    :param poll_interval: seconds between two reads.
    """

    def __init__(
        self,
        *,
        oms_conn_id: str = DEFAULT_CONN_ID,
        migration_task_ids: Iterable[str | int] = (),
        task_name: str | None = None,
        group_id: str | None = None,
        outcome_statuses: Collection[int] = (TaskStatus.FAILED, TaskStatus.SUCCEEDED),
        poll_interval: float = 60.0,
    ) -> None:
        super().__init__()
        # Sorted and deduplicated: the kwargs identify the watcher, so the same watcher must serialize the same.
        self.migration_task_ids = sorted(
            {check_path_value("migration_task_ids", i, "task_id") for i in migration_task_ids}
        )
        self.task_name = task_name or None
        self.group_id = check_path_value("group_id", group_id, "task_id") if group_id else None
        if not (self.migration_task_ids or self.task_name or self.group_id):
            raise OMSValidationError(
                "MigrationTaskEventTrigger needs migration_task_ids, task_name or group_id: it would watch every "
                "task of the project otherwise"
            )
        if self.migration_task_ids and (self.task_name or self.group_id):
            raise OMSValidationError(
                "MigrationTaskEventTrigger watches either migration_task_ids or a task_name/group_id filter, not both"
            )
        statuses = sorted({int(status) for status in outcome_statuses})
        if not statuses or not set(statuses) <= OUTCOME_STATUSES:
            raise OMSValidationError(
                f"outcome_statuses must be among {sorted(int(s) for s in OUTCOME_STATUSES)} (paused, failed, "
                f"succeeded), got {statuses}"
            )
        self.outcome_statuses = statuses
        if float(poll_interval) < MIN_POLL_SECONDS:
            raise OMSValidationError(f"poll_interval must be at least {MIN_POLL_SECONDS} s, got {poll_interval}")
        self.poll_interval = float(poll_interval)
        self.oms_conn_id = oms_conn_id
        #: task id -> the fingerprint of the last outcome fired.
        self._fired: dict[str, list[Any]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._watched()}, oms_conn_id={self.oms_conn_id!r})"

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the kwargs: ids, filters and numbers, always in the same order."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "oms_conn_id": self.oms_conn_id,
                "migration_task_ids": self.migration_task_ids,
                "task_name": self.task_name,
                "group_id": self.group_id,
                "outcome_statuses": self.outcome_statuses,
                "poll_interval": self.poll_interval,
            },
        )

    def _watched(self) -> str:
        if self.migration_task_ids:
            return f"tasks {', '.join(self.migration_task_ids)}"
        parts = [f"name containing {self.task_name!r}"] if self.task_name else []
        parts += [f"group {self.group_id}"] if self.group_id else []
        return "tasks with " + " in ".join(parts)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Read the watched tasks every poll interval and fire each new outcome; never returns."""
        store = getattr(self, "asset_state_store", None)  # Airflow 3.3+, set by the triggerer
        if store is not None:
            try:
                self._fired = dict(await store.aget(STATE_KEY, None) or {})
            except ValueError:  # one trigger serves several assets' watchers: no single place for the state
                self.log.info("This watcher serves several assets; its fingerprints are kept in memory only")
                store = None
        self.log.info(
            "Watching OMS %s for outcomes %s every %.0f s (%d already known)",
            self._watched(),
            ", ".join(status_name(s) for s in self.outcome_statuses),
            self.poll_interval,
            len(self._fired),
        )
        while True:
            try:
                builder, config = await connect(self.oms_conn_id)
                poller = shared_poller(builder, config)
                with poller.watching(len(self.migration_task_ids)):
                    tasks = await self._read(poller)
            except AirflowException as err:  # a refusal, an outage, a missing connection
                self.log.warning(
                    "Could not read OMS %s; trying again in %.0f s: %s", self._watched(), self.poll_interval, err
                )
            else:
                fired = False
                for task in tasks:
                    event = self._new_outcome(task)
                    if event is not None:
                        yield event
                        fired = True
                if fired and store is not None:
                    await store.aset(STATE_KEY, self._fired)
            await asyncio.sleep(self.poll_interval)

    async def _read(self, poller: SharedPoller) -> list[dict[str, Any]]:
        if self.migration_task_ids:
            reads = [
                poller.read(i, poll_interval=self.poll_interval, wait_log=self.log) for i in self.migration_task_ids
            ]
            answers = await asyncio.gather(*reads, return_exceptions=True)
            tasks: list[dict[str, Any]] = []
            for task_id, answer in zip(self.migration_task_ids, answers, strict=True):
                if isinstance(answer, AirflowException):  # e.g. a task deleted: the others go on
                    self.log.warning("Could not read OMS migration task %s: %s", task_id, answer)
                elif isinstance(answer, BaseException):
                    raise answer
                else:
                    tasks.append(answer)
            return tasks
        listed: list[dict[str, Any]] = []
        for status in self.outcome_statuses:
            listed += await poller.list_all(
                status=status, task_name=self.task_name, group_id=self.group_id, wait_log=self.log
            )
        return listed

    def _new_outcome(self, task: Mapping[str, Any]) -> TriggerEvent | None:
        """Return the event for the task's outcome if it has not fired yet (and remember it), else ``None``."""
        status = task.get("status")
        if status not in self.outcome_statuses:
            return None
        task_id = str(task.get("id"))
        fingerprint = outcome_fingerprint(task)
        if self._fired.get(task_id) == fingerprint:
            return None
        self._fired[task_id] = fingerprint
        self.log.info("OMS migration task %s (%s) ended %s", task_id, task.get("name"), status_name(status))
        return TriggerEvent(
            {
                "migration_task_id": task_id,
                "task_name": task.get("name"),
                "status": status,
                "status_name": status_name(status),
                "task": summarize(task),
            }
        )
