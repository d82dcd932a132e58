"""
Waiting for an OMS migration task, shared by the operators that start or create one.

:class:`MigrationWaitOperator` waits in the worker (``_wait``) or in the triggerer (``_defer`` +
``execute_complete``), restarts failed objects, honours ``timeout``, ``execution_timeout`` and
``cancel_on_kill``, waits through OMS outages, and on the outcome records asset events and keeps what
OpenLineage asks for. :class:`~airflow_provider_oms.operators.oms.StartMigrationTaskOperator` starts a task and
then waits; :class:`~airflow_provider_oms.operators.lifecycle.CreateMigrationTaskOperator` creates one (OMS
starts it by itself) and waits without a start.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_oms.constants import DEFAULT_CONN_ID, ERROR_TASK_NOT_IN_PROGRESS, TaskStatus, status_name
from airflow_provider_oms.exceptions import (
    AirflowTaskTimeout,
    OMSApiError,
    OMSError,
    OMSMigrationError,
    OMSMigrationFailed,
    OMSValidationError,
)
from airflow_provider_oms.operators.base import MigrationLineageMixin
from airflow_provider_oms.version_compat import conf

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_oms.waiting import Outage, Outcome

# The waiting logic (airflow_provider_oms.waiting) and the hook are imported where they are first used: a DAG file
# imports this module every time it is parsed, and calls nothing.


def _seconds(field: str, value: float | timedelta | None, *, minimum: float) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < minimum:
        raise OMSValidationError(
            f"{field} must be a number of seconds (or a timedelta) of at least {minimum}, got {value!r}"
        )
    return float(seconds)


#: Seconds the worker's ``on_kill`` may spend pausing: under the 5 s Airflow's supervisor waits after SIGTERM.
ON_KILL_BUDGET = 4.0


class MigrationWaitOperator(MigrationLineageMixin, BaseOperator):
    """
    Base of the operators that wait for an OMS migration task to finish; not used in DAGs itself.

    :param oms_conn_id: connection of type ``huaweicloud_oms``. Templated in the subclasses.
    :param source_conn_id: connection with the source credentials (for failed-object restarts).
    :param destination_conn_id: connection with the destination OBS credentials, if not the OMS connection's.
    :param wait_for_completion: wait until the task has succeeded (or fail when it fails).
    :param poll_interval: seconds between two reads of the task while waiting, at least 1. Default 30.
    :param timeout: the longest wait (seconds or a timedelta); past it the Airflow task fails, and the OMS task
        is paused if ``cancel_on_kill``. Default: no limit.
    :param deferrable: wait in the triggerer instead of a worker slot. Default: ``[operators]
        default_deferrable``.
    :param retry_failed_objects: when the task ends failed with failed objects that OMS can retry, restart it
        for those objects only, up to this many times, before failing. Default 0.
    :param cancel_on_kill: pause the OMS task when Airflow stops waiting for it before it has finished.
        Default ``True``.

    On success, each declared ``Asset`` outlet's event gets the migration's figures as its extra, and each
    ``AssetAlias`` outlet gets the destination asset ``obs://{bucket}/{save_prefix}`` with the same extra; a
    failed migration records nothing. ``get_openlineage_facets_on_complete``/``_on_failure`` report the source
    and the destination, and the figures as the ``oms_migration`` run facet.
    """

    moves_data = True  # a producer: its hook reports the migration to hook lineage, its lineage names datasets

    def __init__(
        self,
        *,
        oms_conn_id: str = DEFAULT_CONN_ID,
        source_conn_id: str | None = None,
        destination_conn_id: str | None = None,
        wait_for_completion: bool = True,
        poll_interval: float = 30,
        timeout: float | timedelta | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        retry_failed_objects: int = 0,
        cancel_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.oms_conn_id = oms_conn_id
        self.source_conn_id = source_conn_id
        self.destination_conn_id = destination_conn_id
        self.wait_for_completion = wait_for_completion
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.deferrable = deferrable
        self.retry_failed_objects = retry_failed_objects
        self.cancel_on_kill = cancel_on_kill
        #: The OMS task this operator is waiting for (what on_kill pauses).
        self._waiting_for: str | None = None
        #: The figures of the attempts of this run that have ended (the first run, restarts for failed objects).
        self._attempts: list[dict[str, Any]] = []

    # -- starts (and failed-object restarts) ----------------------------------------------------

    def _check_wait_arguments(self) -> tuple[float, float | None]:
        poll_interval = _seconds("poll_interval", self.poll_interval, minimum=1)
        timeout = _seconds("timeout", self.timeout, minimum=1)
        retries = self.retry_failed_objects
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise OMSValidationError(f"retry_failed_objects must be a whole number of 0 or more, got {retries!r}")
        assert poll_interval is not None
        return poll_interval, timeout

    def _begin_attempt(self, kind: str) -> None:
        """Note that an attempt of this run begins (a start, or the create): ``waiting.WHOLE_TASK`` or not."""
        self._attempts.append({"kind": kind})

    def _end_attempt(self, task: Mapping[str, Any]) -> None:
        """Keep the figures of the attempt that ended with ``task`` (read at its end)."""
        from airflow_provider_oms import waiting

        self._attempts[-1] = waiting.attempt_figures(task, self._attempts[-1]["kind"])

    def _summary(self, task_id: str, task: Mapping[str, Any], restarts: int, started_at: float) -> dict[str, Any]:
        """Return the run's result so far: totals over its attempts, and each attempt's figures (``waiting.result``)."""
        from airflow_provider_oms import waiting

        elapsed = time.time() - started_at
        return waiting.result(task_id, task, restarts=restarts, elapsed_seconds=elapsed, attempts=self._attempts)

    def _start_body(self, *, failed_only: bool) -> dict[str, Any]:
        return self.hook.build_start_task_body(
            migrate_failed_object=failed_only,
            source_conn_id=self.source_conn_id or None,
            destination_conn_id=self.destination_conn_id or None,
        )

    def _start(self, task_id: str, *, failed_only: bool, body: Mapping[str, Any] | None = None) -> None:
        body = self._start_body(failed_only=failed_only) if body is None else body
        from airflow_provider_oms.waiting import FAILED_OBJECTS, WHOLE_TASK

        self.log.info(
            "Starting OMS migration task %s (%s)", task_id, "failed objects only" if failed_only else "all objects"
        )
        self.hook.start_task(task_id, body)
        self._begin_attempt(FAILED_OBJECTS if failed_only else WHOLE_TASK)

    def _wait_for(
        self,
        context: Context,
        task_id: str,
        *,
        started_at: float,
        before: list[Any] | None,
        grace_until: float | None,
    ) -> dict[str, Any]:
        """Wait for a task that has been started (or created): here, or deferred to the triggerer."""
        from airflow_provider_oms.waiting import WHOLE_TASK

        poll_interval, timeout = self._check_wait_arguments()  # checked before the start; read again here
        self._lineage_task_id = task_id
        self._waiting_for = task_id  # from here on, a kill pauses the task (if cancel_on_kill)
        if not self._attempts:  # created (OMS starts it by itself), or joined: its run is one attempt so far
            self._begin_attempt(WHOLE_TASK)
        if self.deferrable:
            self._defer(task_id, poll_interval, started_at, restarts=0, before=before, grace_until=grace_until)
        deadline = started_at + timeout if timeout else None
        return self._wait(context, task_id, poll_interval, deadline, started_at, before, grace_until)

    # -- waiting in the worker --------------------------------------------------------------------

    def _wait(
        self,
        context: Context,
        task_id: str,
        poll_interval: float,
        deadline: float | None,
        started_at: float,
        before: list[Any] | None,
        grace_until: float | None,
    ) -> dict[str, Any]:
        # Airflow's execution_timeout (or a kill) interrupts this loop with an exception: _waiting_for stays set
        # for on_kill, which Airflow calls next. It is cleared only once the wait has an outcome.
        from airflow_provider_oms import waiting
        from airflow_provider_oms.waiting import Outcome

        restarts = 0
        outage = waiting.Outage(self.hook.config.outage_tolerance)
        while True:
            read_began = time.time()
            try:
                task = self.hook.get_task(task_id)
            except OMSApiError as err:
                if not err.transient:
                    raise
                self._wait_through_outage(task_id, err, outage, read_began, deadline, poll_interval)
                continue
            self._lineage_task = task
            recovered = outage.recovered(time.time())
            if recovered:
                self.log.info(recovered)
            self.log.info(waiting.progress_line(task_id, task))
            outcome = waiting.classify(task)
            shown = waiting.shows_start(task, before, grace_until, time.time())
            if shown is None:
                self.log.info("OMS does not show the start of task %s yet; waiting", task_id)
                outcome = Outcome.WAITING
            elif shown:
                before = None  # the task has moved on: from now on every status is its own
            if outcome is Outcome.WAITING:
                if deadline is not None and time.time() >= deadline:
                    self._time_out(task_id, task, execution_timeout=False)
                time.sleep(poll_interval if deadline is None else max(0.0, min(poll_interval, deadline - time.time())))
                continue
            if shown is False:
                self._waiting_for = None
                raise OMSMigrationError(
                    waiting.stale_start_message(task_id, task, started_at),
                    task=self._summary(task_id, task, restarts, started_at),
                )
            if self._restart_failed_objects(task_id, outcome, task, restarts):
                restarts += 1
                before, grace_until = waiting.fingerprint(task), time.time() + waiting.START_GRACE_SECONDS
                continue
            return self._finish(context, task_id, outcome, task, restarts, started_at)

    def _wait_through_outage(
        self,
        task_id: str,
        error: OMSApiError,
        outage: Outage,
        read_began: float,
        deadline: float | None,
        poll_interval: float,
    ) -> None:
        """After a read that failed for good because OMS was unreachable: sleep and read again, or fail."""
        now = time.time()
        give_up = outage.failed(error, read_began, now)
        if give_up:
            self._waiting_for = None  # nothing can be paused while OMS cannot be reached
            raise OMSApiError(give_up, http_status=error.http_status, error_code=error.error_code) from None
        self.log.warning(outage.log_line(task_id, error, now))
        if deadline is not None and now >= deadline:
            self._time_out(task_id, {}, execution_timeout=False)
        time.sleep(poll_interval if deadline is None else max(0.0, min(poll_interval, deadline - now)))

    # -- waiting in the triggerer -----------------------------------------------------------------

    def _deadline(self, started_at: float, timeout: float | None) -> float | None:
        """Return the trigger's deadline: ``timeout`` or ``execution_timeout``, whichever comes first.

        Airflow does not enforce ``execution_timeout`` while a task is deferred: the trigger does.
        """
        deadlines = [started_at + seconds for seconds in (timeout, self._execution_timeout_seconds()) if seconds]
        return min(deadlines) if deadlines else None

    def _execution_timeout_seconds(self) -> float | None:
        execution_timeout = self.execution_timeout
        return execution_timeout.total_seconds() if execution_timeout else None

    def _defer(
        self,
        task_id: str,
        poll_interval: float,
        started_at: float,
        *,
        restarts: int,
        before: list[Any] | None,
        grace_until: float | None,
    ) -> None:
        from airflow_provider_oms.triggers.oms import MigrationTaskTrigger

        _, timeout = self._check_wait_arguments()
        self.defer(
            trigger=MigrationTaskTrigger(
                migration_task_id=task_id,
                oms_conn_id=self.oms_conn_id,
                poll_interval=poll_interval,
                deadline=self._deadline(started_at, timeout),
                restarts=restarts,
                started_at=started_at,
                attempts=self._attempts,
                cancel_on_kill=self.cancel_on_kill,
                stale_fingerprint=before,
                grace_until=grace_until,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any]) -> dict[str, Any]:
        """Resume after the trigger's event: succeed, restart the failed objects and defer again, or fail."""
        from airflow_provider_oms import waiting
        from airflow_provider_oms.waiting import Outcome

        task_id = str(event["migration_task_id"])
        status = event["status"]
        task = dict(event.get("task") or {})
        restarts = int(event.get("restarts") or 0)
        started_at = event.get("started_at") or time.time()
        self._attempts = [dict(attempt) for attempt in event.get("attempts") or ()]
        self._waiting_for = self._lineage_task_id = task_id
        if status == "error":
            raise OMSError(f"Waiting for OMS migration task {task_id} failed: {event.get('message')}")
        poll_interval, timeout = self._check_wait_arguments()
        if status == "timeout":
            # Which deadline the trigger met: both count from the start, so the shorter one.
            execution_seconds = self._execution_timeout_seconds()
            by_airflow = execution_seconds is not None and (not timeout or execution_seconds < timeout)
            self._time_out(task_id, task, execution_timeout=by_airflow)
        outcome = Outcome(status)
        if event.get("message") and outcome is not Outcome.SUCCESS:  # the start never showed in OMS
            self._waiting_for = None
            raise OMSMigrationError(str(event["message"]), task=self._summary(task_id, task, restarts, started_at))
        if self._restart_failed_objects(task_id, outcome, task, restarts):
            self._defer(
                task_id,
                poll_interval,
                started_at,
                restarts=restarts + 1,
                before=waiting.fingerprint(task),
                grace_until=time.time() + waiting.START_GRACE_SECONDS,
            )
        return self._finish(context, task_id, outcome, task, restarts, started_at)

    # -- shared outcome handling ------------------------------------------------------------------

    def _restart_failed_objects(self, task_id: str, outcome: Outcome, task: Mapping[str, Any], restarts: int) -> bool:
        """Restart a failed task for its failed objects if retries remain; return whether it was restarted."""
        from airflow_provider_oms import waiting
        from airflow_provider_oms.waiting import Outcome

        if outcome is not Outcome.FAILED or restarts >= self.retry_failed_objects:
            return False
        if not waiting.can_retry_failed_objects(task):
            self.log.info("OMS migration task %s failed without a retryable failed-object list", task_id)
            return False
        self.log.warning(
            "%s; restarting it for the failed objects only (retry %d of %d)",
            waiting.failure_message(task_id, task),
            restarts + 1,
            self.retry_failed_objects,
        )
        self._end_attempt(task)
        self._start(task_id, failed_only=True)
        return True

    def _finish(
        self,
        context: Context,
        task_id: str,
        outcome: Outcome,
        task: Mapping[str, Any],
        restarts: int,
        started_at: float,
    ) -> dict[str, Any]:
        from airflow_provider_oms import waiting
        from airflow_provider_oms.waiting import Outcome

        self._waiting_for = None  # the wait has its outcome: a kill from now on has nothing to pause
        summary = self._summary(task_id, task, restarts, started_at)
        self._lineage_task_id, self._lineage_summary = task_id, summary
        if isinstance(task.get("src_node"), Mapping) and isinstance(task.get("dst_node"), Mapping):
            self._lineage_task = dict(task)
        if outcome is Outcome.SUCCESS:
            self.log.info("OMS migration task %s succeeded after %d restart(s)", task_id, restarts)
            self._record_asset_events(context, task_id, summary)
            return summary
        if outcome is Outcome.FAILED:
            message = waiting.failure_message(task_id, task)
            if restarts:
                message += f" (after {restarts} restart(s) of the failed objects)"
            if self.retry_failed_objects:
                # The restarts for failed objects were this wait's retries: an Airflow retry would only repeat
                # the migration. Without them, Airflow's retries start the task again (see docs/operators.md).
                raise OMSMigrationFailed(
                    f"{message}. Not retried by Airflow: retry_failed_objects ({self.retry_failed_objects}) is spent; "
                    "fix the cause, then clear this task",
                    task=summary,
                )
        elif task.get("status") == TaskStatus.PAUSED:
            message = f"OMS migration task {task_id} was paused while Airflow waited for it (paused from outside?)"
        elif outcome is Outcome.STUCK:
            message = f"OMS migration task {task_id} is {status_name(task.get('status'))} and will not finish by itself"
        else:
            message = f"OMS migration task {task_id} has a status this provider does not know: {task.get('status')!r}"
        raise OMSMigrationError(message, task=summary)

    def _time_out(self, task_id: str, task: Mapping[str, Any], *, execution_timeout: bool) -> None:
        """Fail because a deadline passed; pause the OMS task first if ``cancel_on_kill``."""
        self._waiting_for = None
        limit = (
            f"Airflow's execution_timeout of {self.execution_timeout}"
            if execution_timeout
            else f"the timeout of {self.timeout}"
        )
        if self.cancel_on_kill:
            self.log.warning("Timed out waiting for OMS migration task %s; pausing it", task_id)
            try:
                self._pause(task_id)
                what = "it was paused"
            except OMSApiError as err:  # e.g. OMS unreachable: the timeout is still the outcome
                what = f"pausing it failed ({err}); it may still be running"
        else:
            what = "it is left running in OMS (cancel_on_kill is off)"
        message = f"OMS migration task {task_id} did not finish within {limit}; {what}"
        if execution_timeout:
            raise AirflowTaskTimeout(message)
        raise OMSMigrationError(message, task=dict(task))

    def _pause(self, task_id: str) -> None:
        try:
            self.hook.stop_task(task_id)
        except OMSApiError as err:
            if err.error_code != ERROR_TASK_NOT_IN_PROGRESS:
                raise
            self.log.info("OMS migration task %s was not in progress; nothing to pause", task_id)

    def on_kill(self) -> None:
        """
        Pause the OMS task if this operator was waiting for it and ``cancel_on_kill`` is set.

        Airflow calls it when the task is killed in the worker (SIGTERM: marked failed or success, cleared) and
        after ``execution_timeout`` interrupted the wait.
        """
        task_id = self._waiting_for
        if not task_id:
            return
        if not self.cancel_on_kill:
            self.log.info("Airflow task killed while waiting; OMS migration task %s is left running", task_id)
            return
        self._waiting_for = None
        self.log.info("Airflow task killed while waiting; pausing OMS migration task %s", task_id)
        self._pause_on_kill(task_id)

    def _pause_on_kill(self, task_id: str) -> None:
        """
        Pause within :data:`ON_KILL_BUDGET`: one short stop, one short read back, no retries.

        Airflow's task supervisor follows SIGTERM with SIGKILL ``escalation_delay`` (5 s) later
        (``airflow.sdk.execution_time.supervisor.WatchedSubprocess.kill``): the connection's retry policy (up to
        ``retry_max_seconds``) would be cut short without a word. What could not be done is logged plainly.
        """
        import dataclasses

        from airflow_provider_oms.constants import STOPPED_STATUSES
        from airflow_provider_oms.hooks.oms import OMSHook
        from airflow_provider_oms.retries import RetryPolicy

        began = time.monotonic()
        hook = OMSHook(self.oms_conn_id)
        why = ""
        try:
            config = self.hook.config
            per_request = min(config.timeout, ON_KILL_BUDGET / 2)
            hook.config = dataclasses.replace(  # a cached_property: this copy gets its own settings
                config, timeout=per_request, retry_policy=RetryPolicy(max_attempts=1, max_seconds=per_request)
            )
            try:
                hook.stop_task(task_id)
            except OMSApiError as err:
                if err.error_code == ERROR_TASK_NOT_IN_PROGRESS:
                    self.log.info("OMS migration task %s was not in progress; nothing to pause", task_id)
                    return
                why = str(err)
            if not why:
                self.log.info("Paused OMS migration task %s because the Airflow task was killed", task_id)
                return
            if time.monotonic() - began < ON_KILL_BUDGET - per_request:  # room for one read back
                status = hook.get_task(task_id).get("status")
                if status in STOPPED_STATUSES:
                    self.log.info("OMS migration task %s is %s", task_id, status_name(status))
                    return
        except (OMSApiError, OMSValidationError) as err:
            why = why or str(err)
        finally:
            hook.close()
        self.log.warning(
            "Could not pause OMS migration task %s within %.0f s of being killed (%s): the migration is left "
            "running; pause it in the OMS console if it should not run",
            task_id,
            ON_KILL_BUDGET,
            why or "no answer",
        )

    # -- assets and lineage -----------------------------------------------------------------------

    def _record_asset_events(self, context: Context, task_id: str, summary: Mapping[str, Any]) -> None:
        """Give the declared Asset outlets the figures, and the AssetAlias outlets the destination asset."""
        from airflow.sdk import AssetAlias

        from airflow_provider_oms import lineage

        outlets = list(self.outlets or [])
        if not outlets:
            return
        needs_destination = any(isinstance(outlet, AssetAlias) for outlet in outlets)
        task = self._task_with_nodes(task_id) if needs_destination else None
        lineage.emit_asset_events(context, outlets, task, summary)
