"""Sensors for Huawei Cloud OMS migration tasks."""

from __future__ import annotations

import time
import warnings
from collections.abc import Collection, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_oms.constants import (
    DEFAULT_CONN_ID,
    GROUP_COMPLETED,
    GROUP_FAILED_STATUSES,
    GROUP_PAUSED,
    GROUP_STATUS_NAMES,
    TaskStatus,
)
from airflow_provider_oms.exceptions import (
    AirflowSkipException,
    OMSApiError,
    OMSError,
    OMSMigrationError,
    OMSSensorTimeout,
)
from airflow_provider_oms.operators.base import MigrationLineageMixin, OMSHookMixin
from airflow_provider_oms.version_compat import AIRFLOW_V_3_3_PLUS, conf

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_oms.waiting import Outage

# The hook, the validation and the waiting logic are imported where they are first used: a DAG file imports this
# module every time it is parsed, and calls nothing.


def _outcome_failed(sensor: BaseSensorOperator, error: OMSMigrationError) -> OMSMigrationError | AirflowSkipException:
    """Return the error to raise when what the sensor watches ended badly: a skip with ``soft_fail``."""
    if sensor.soft_fail:
        skip = AirflowSkipException(f"Skipping because soft_fail is set: {error}")
        skip.__cause__ = error
        return skip
    return error


class MigrationTaskSensor(MigrationLineageMixin, BaseSensorOperator):
    """
    Wait until an OMS migration task reaches one of the target statuses; fail when it fails.

    Works in ``poke`` and ``reschedule`` mode, and deferrable (the wait then runs in the triggerer). A sensor
    only reads: it never starts, pauses or changes the task, whatever happens to it (timeouts, kills).

    ``soft_fail`` behaves the same in every mode: the sensor is skipped when the task ends in a status that is
    not awaited (failed, paused...) or the sensor times out, and fails when OMS cannot be asked (a connection or
    API error), so a broken connection is never hidden as a skip (``never_fail`` skips that too).

    Lineage: a sensor produces nothing, so it names no dataset (the operator that moved the data does); its
    OpenLineage events carry the watched migration's figures as the ``oms_migration`` run facet.

    :param migration_task_id: the OMS migration task id. Templated.
    :param oms_conn_id: connection of type ``huaweicloud_oms``. Templated.
    :param target_statuses: statuses that end the wait successfully. Default: succeeded (5).
    :param failure_statuses: statuses that fail the sensor. Default: failed (4). A task that is paused or
        succeeded, when neither is awaited, also fails it: it would not move on by itself.
    :param deferrable: wait in the triggerer. Default: ``[operators] default_deferrable``.
    :param start_from_trigger: with ``deferrable``, start in the triggerer and end there too, so no worker slot
        is taken at all (Airflow 3.3+; the task's log is the trigger's). The trigger's kwargs are fixed when the
        DAG is parsed: ``migration_task_id`` and ``oms_conn_id`` are rendered in the triggerer, the sensor's
        ``timeout`` (and ``execution_timeout``) bound the wait, and success pushes the same XCom. If the trigger's
        time runs out, a worker runs briefly to fail (or, with ``soft_fail``, skip) the task. Airflow 3.1 and 3.2
        ignore it: the sensor defers from a worker as without it (a warning says so when the id is templated).
    :return: (XCom) the task's final progress and outcome, as StartMigrationTaskOperator returns it.
    """

    template_fields: Sequence[str] = ("migration_task_id", "oms_conn_id")
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        migration_task_id: str | int,
        oms_conn_id: str = DEFAULT_CONN_ID,
        target_statuses: Collection[int] = (TaskStatus.SUCCEEDED,),
        failure_statuses: Collection[int] = (TaskStatus.FAILED,),
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        start_from_trigger: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.migration_task_id = migration_task_id
        self.oms_conn_id = oms_conn_id
        self.target_statuses = [int(s) for s in target_statuses]
        self.failure_statuses = [int(s) for s in failure_statuses]
        self.deferrable = deferrable
        #: Failed reads in a row while OMS was unreachable (poke mode keeps it between pokes).
        self._outage: Outage | None = None
        if start_from_trigger:
            self._start_from_trigger()

    def _start_from_trigger(self) -> None:
        """Set ``start_trigger_args`` on Airflow 3.3+, where the scheduler starts the task in the triggerer."""
        if not self.deferrable:
            raise ValueError(f"{self.task_id}: start_from_trigger=True waits in the triggerer; set deferrable=True")
        if not isinstance(self.migration_task_id, (str, int)):
            raise ValueError(
                f"{self.task_id}: start_from_trigger=True needs migration_task_id as an id or a Jinja template, "
                f"got {type(self.migration_task_id).__name__}"
            )
        if not AIRFLOW_V_3_3_PLUS:
            templated = [
                name
                for name in self.template_fields
                if any(mark in str(getattr(self, name)) for mark in ("{{", "{%", "{#"))
            ]
            if templated:
                warnings.warn(
                    f"start_from_trigger=True with a templated {' and '.join(templated)} requires Airflow >= 3.3. "
                    "Disabling start_from_trigger, the task will defer from the worker instead.",
                    UserWarning,
                    stacklevel=3,
                )
            return  # Airflow 3.1 and 3.2 ignore start_from_trigger: the task defers from a worker
        from airflow.triggers.base import StartTriggerArgs

        self.start_from_trigger = True
        self.start_trigger_args = StartTriggerArgs(
            trigger_cls="airflow_provider_oms.triggers.oms.MigrationTaskTrigger",
            # Ids and numbers only. Airflow 3.3 renders the template fields that are also trigger kwargs.
            trigger_kwargs={
                "migration_task_id": self.migration_task_id,
                "oms_conn_id": self.oms_conn_id,
                "poll_interval": float(self.poke_interval),
                "target_statuses": self.target_statuses,
                "failure_statuses": self.failure_statuses,
                "cancel_on_kill": False,  # a sensor never changes what it watches
                "end_from_trigger": True,
                "soft_fail": self.soft_fail,
            },
            next_method="execute_complete",
            next_kwargs=None,
            # Counted from when the scheduler defers the task; Airflow also applies execution_timeout.
            timeout=timedelta(seconds=float(self.timeout)),
        )

    def _judge(self, task_id: str, task: Mapping[str, Any]) -> bool:
        from airflow_provider_oms.waiting import Outcome, classify, failure_message, not_awaited_message, result

        outcome = classify(task, self.target_statuses, self.failure_statuses)
        if outcome is Outcome.SUCCESS:
            return True
        if outcome is Outcome.WAITING:
            return False
        summary = result(task_id, task, restarts=0, elapsed_seconds=0.0)
        if outcome is Outcome.FAILED:
            raise _outcome_failed(self, OMSMigrationError(failure_message(task_id, task), task=summary))
        message = not_awaited_message(task_id, task, self.target_statuses)
        raise _outcome_failed(self, OMSMigrationError(message, task=summary))

    def poke(self, context: Context) -> PokeReturnValue:
        """
        Read the task once and say whether the wait is over.

        Once a poke has reached OMS, a read that fails because OMS is unreachable does not fail the sensor until
        the outage has lasted the connection's ``outage_tolerance``, counted from the first failed read; the
        sensor's ``timeout`` still bounds the wait. In poke mode the failed poke counts as "not yet". In reschedule
        mode the poke waits the outage out in place, reading every ``poke_interval`` (the worker slot is held for
        the outage only), because nothing a poke keeps survives a reschedule. A first poke that cannot reach OMS
        fails in both modes (most likely a wrong endpoint).
        """
        from airflow_provider_oms.validation import check_path_value
        from airflow_provider_oms.waiting import Outage, progress_line, result

        task_id = check_path_value("migration_task_id", self.migration_task_id, "task_id")
        read_began = time.time()
        try:
            task = self.hook.get_task(task_id)
        except OMSApiError as err:
            if not err.transient:
                raise
            if self.reschedule:
                read = self._wait_out_in_place(context, task_id, err, read_began)
                if read is None:
                    return PokeReturnValue(is_done=False)  # the sensor's timeout is near: Airflow's check fails it
                task = read
            else:
                if self._outage is None:
                    raise
                self._outage_goes_on(task_id, err, read_began)
                return PokeReturnValue(is_done=False)
        if self._outage is None:  # OMS was reached: from now on an outage is waited out
            self._outage = Outage(self.hook.config.outage_tolerance)
        recovered = self._outage.recovered(time.time())
        if recovered:
            self.log.info(recovered)
        # For OpenLineage: the figures of what the sensor watches (a run facet), never a dataset: it produces none.
        self._lineage_task_id = task_id
        self._lineage_summary = result(task_id, task, restarts=0, elapsed_seconds=0.0)
        self.log.info(progress_line(task_id, task))
        done = self._judge(task_id, task)
        return PokeReturnValue(is_done=done, xcom_value=result(task_id, task, restarts=0, elapsed_seconds=0.0))

    def _outage_goes_on(self, task_id: str, error: OMSApiError, read_began: float) -> None:
        """Record a read that failed because OMS was unreachable; raise past the ``outage_tolerance``."""
        assert self._outage is not None
        give_up = self._outage.failed(error, read_began, time.time())
        if give_up:
            raise OMSApiError(give_up, http_status=error.http_status, error_code=error.error_code) from None
        self.log.warning(self._outage.log_line(task_id, error, time.time()))

    def _wait_out_in_place(
        self, context: Context, task_id: str, error: OMSApiError, read_began: float
    ) -> dict[str, Any] | None:
        """
        Reschedule mode: wait an outage out inside this poke; return the task read once OMS answers again.

        Each reschedule is a new process and nothing it keeps survives to the next one on Airflow 3.1 and 3.3:
        the execution API clears a task instance's XComs at every start but a deferral's (``ti_run``'s
        ``xcom_keys_to_clear``), and only the first reschedule's date can be read back. So the outage is waited
        out here, where its first failed read is known, and the sensor is never rescheduled in the middle of one.

        :return: ``None`` when the sensor's ``timeout`` comes first (the caller answers "not yet" and Airflow's
            own check fails the sensor with its timeout).
        """
        from airflow_provider_oms.waiting import Outage

        if not context.get("task_reschedule_count"):
            raise error  # no earlier poke reached OMS: most likely a wrong endpoint, as in poke mode
        first = context["ti"].get_first_reschedule_date(context)
        deadline = first.timestamp() + float(self.timeout) if first is not None else None
        self._outage = Outage(self.hook.config.outage_tolerance)
        while True:
            self._outage_goes_on(task_id, error, read_began)
            now = time.time()
            if deadline is not None and now >= deadline:
                return None
            time.sleep(max(0.0, min(float(self.poke_interval), deadline - now if deadline is not None else 1e9)))
            read_began = time.time()
            try:
                return self.hook.get_task(task_id)
            except OMSApiError as err:
                if not err.transient:
                    raise
                error = err

    def execute(self, context: Context) -> Any:
        """Poke (or reschedule) as any sensor, or defer to the triggerer when ``deferrable``."""
        if not self.deferrable:
            return super().execute(context)
        from airflow_provider_oms.validation import check_path_value
        from airflow_provider_oms.waiting import result

        task_id = check_path_value("migration_task_id", self.migration_task_id, "task_id")
        task = self.hook.get_task(task_id)
        self._lineage_task_id = task_id
        self._lineage_summary = result(task_id, task, restarts=0, elapsed_seconds=0.0)
        if self._judge(task_id, task):
            return result(task_id, task, restarts=0, elapsed_seconds=0.0)
        from airflow_provider_oms.triggers.oms import MigrationTaskTrigger

        # Airflow does not enforce execution_timeout while the task is deferred: it is a deadline too.
        limits = [self.timeout, self.execution_timeout.total_seconds() if self.execution_timeout else None]
        seconds = [float(limit) for limit in limits if limit is not None]
        self.defer(
            trigger=MigrationTaskTrigger(
                migration_task_id=task_id,
                oms_conn_id=self.oms_conn_id,
                poll_interval=self.poke_interval,
                deadline=time.time() + min(seconds) if seconds else None,
                target_statuses=self.target_statuses,
                failure_statuses=self.failure_statuses,
                cancel_on_kill=False,  # a sensor never changes what it watches
            ),
            method_name="execute_complete",
        )

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Resume after the deferral; an error reaching OMS fails the task even with ``soft_fail``, as in poke mode."""
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSkipException as skip:
            cause = skip.__cause__
            if self.soft_fail and isinstance(cause, OMSError) and not isinstance(cause, OMSMigrationError):
                raise cause from None
            raise

    def execute_complete(self, context: Context, event: Mapping[str, Any]) -> dict[str, Any]:
        """Finish after the trigger's event."""
        from airflow_provider_oms.waiting import result, summarize

        task_id = str(event["migration_task_id"])
        status = event["status"]
        self._lineage_task_id = task_id
        if status == "error":
            raise OMSError(f"Waiting for OMS migration task {task_id} failed: {event.get('message')}")
        task = dict(event.get("task") or {})
        if task:
            self._lineage_summary = result(task_id, task, restarts=0, elapsed_seconds=0.0)
        if status == "timeout":
            raise OMSSensorTimeout(
                f"OMS migration task {task_id} did not reach the awaited status within the sensor's timeout",
                task=summarize(task),
            )
        self._judge(task_id, task)
        return result(task_id, task, restarts=0, elapsed_seconds=0.0)


class MigrationTaskGroupSensor(OMSHookMixin, BaseSensorOperator):
    """
    Wait until a task group has completed (status 6); fail when its creation or migration failed (4, 5).

    :param group_id: the OMS task group id. Templated.
    :param oms_conn_id: the ``huaweicloud_oms`` connection. Templated.
    :return: (XCom) the group's status, name and task counts.
    """

    template_fields: Sequence[str] = ("group_id", "oms_conn_id")

    def __init__(self, *, group_id: str, oms_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.group_id = group_id
        self.oms_conn_id = oms_conn_id

    def poke(self, context: Context) -> Any:
        """Read the group once and say whether it has completed."""
        from airflow_provider_oms.validation import check_path_value

        group_id = check_path_value("group_id", self.group_id, "task_id")
        group = self.hook.get_task_group(group_id)
        status = group.get("status")
        name = GROUP_STATUS_NAMES.get(status, f"unknown ({status!r})")  # type: ignore[arg-type]
        summary = {
            "group_id": group_id,
            "status": status,
            "status_name": name,
            **{
                key: group.get(key)
                for key in ("total_task_num", "complete_task_num", "failed_task_num", "paused_task_num")
            },
        }
        self.log.info(
            "OMS task group %s %s: %s of %s tasks complete, %s failed",
            group_id,
            name,
            group.get("complete_task_num"),
            group.get("total_task_num"),
            group.get("failed_task_num"),
        )
        if status == GROUP_PAUSED:
            message = f"OMS task group {group_id} is paused and will not complete by itself"
            raise _outcome_failed(self, OMSMigrationError(message, task=summary))
        if status in GROUP_FAILED_STATUSES:
            reason = group.get("error_reason") or {}
            why = " ".join(str(part) for part in (reason.get("error_code"), reason.get("error_msg")) if part)
            message = f"OMS task group {group_id} is {name}" + (f": {why}" if why else "")
            raise _outcome_failed(self, OMSMigrationError(message, task=summary))
        return PokeReturnValue(is_done=status == GROUP_COMPLETED, xcom_value=summary)
