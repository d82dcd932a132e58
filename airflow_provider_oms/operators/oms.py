"""Operators for Huawei Cloud OMS migration tasks."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_oms import waiting
from airflow_provider_oms.constants import (
    ERROR_TASK_NOT_IN_PROGRESS,
    MAX_CLOCK_SKEW_SECONDS,
    STARTABLE_STATUSES,
    TaskStatus,
    status_name,
)
from airflow_provider_oms.exceptions import (
    AirflowTaskTimeout,
    OMSApiError,
    OMSError,
    OMSMigrationError,
    OMSValidationError,
)
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.links.oms import OMSConsoleLink, console_url
from airflow_provider_oms.validation import check_path_value, coerce_bool
from airflow_provider_oms.version_compat import conf
from airflow_provider_oms.waiting import (
    Outage,
    Outcome,
    can_retry_failed_objects,
    classify,
    failure_message,
    fingerprint,
    progress_line,
    result,
    shows_start,
    stale_start_message,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


def _seconds(field: str, value: float | timedelta | None, *, minimum: float) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < minimum:
        raise OMSValidationError(
            f"{field} must be a number of seconds (or a timedelta) of at least {minimum}, got {value!r}"
        )
    return float(seconds)


#: Statuses of a task that a start has set going (what a retry finds when its earlier try's start took).
_STARTED_STATUSES = frozenset({TaskStatus.WAITING, TaskStatus.RUNNING, TaskStatus.RETRYING})


def _try_number(context: Context) -> int:
    try_number = getattr(context.get("ti"), "try_number", 1)
    return try_number if isinstance(try_number, int) and not isinstance(try_number, bool) else 1


def _finished_during_this_run(task: Mapping[str, Any], context: Context) -> bool:
    """
    Whether a succeeded task's last run began after this DAG run did, i.e. an earlier try's start ran it.

    Compared with the task's ``start_time``, allowing for the clock skew the API gateway allows; when either
    time is unknown the task read back is taken at its word.
    """
    began = getattr(context.get("dag_run"), "start_date", None)
    start_ms = task.get("start_time")
    if began is None or not isinstance(start_ms, (int, float)) or not start_ms:
        return True
    return bool(start_ms / 1000 >= began.timestamp() - MAX_CLOCK_SKEW_SECONDS)


class StartMigrationTaskOperator(BaseOperator):
    """
    Start (resume) a paused or failed OMS migration task and, by default, wait until it has finished.

    Credentials come only from Airflow connections: the destination AK/SK from ``destination_conn_id``
    (default: the OMS connection itself), the source AK/SK from ``source_conn_id``. Everything is checked
    before the start request is sent; a bad value fails the task naming the field and the limit.

    :param migration_task_id: the OMS migration task id (not Airflow's ``task_id``). Templated.
    :param migrate_failed_object: ``True`` restarts only the objects that failed; ``False`` migrates the whole
        task again. A bool, or the string ``"true"``/``"false"`` in any case, which is what a Jinja template
        renders to. Templated.
    :param oms_conn_id: connection of type ``huaweicloud_oms`` (AK/SK, project, region or endpoint). Templated.
    :param source_conn_id: connection with the source cloud's AK/SK in login/password and optional extras
        ``security_token``, ``json_auth_file``, ``cdn_authentication_key``. Leave unset for a URL-list task.
        Templated.
    :param destination_conn_id: connection with the destination OBS AK/SK (and ``security_token`` extra), if
        not the OMS connection's. Templated.
    :param wait_for_completion: wait until the task has succeeded (or fail when it fails). Default ``True``.
    :param poll_interval: seconds between two reads of the task while waiting, at least 1. Default 30.
    :param timeout: the longest wait (seconds or a timedelta) from the start; past it the Airflow task fails,
        and the OMS task is paused if ``cancel_on_kill``. Default: no limit. Airflow's ``execution_timeout``
        acts the same way, also while deferred (this operator hands it to the trigger as a deadline).
    :param deferrable: wait in the triggerer instead of a worker slot. Default: ``[operators]
        default_deferrable``.
    :param retry_failed_objects: when the task ends failed with failed objects that OMS can retry, restart it
        for those objects only, up to this many times, before failing. Default 0.
    :param cancel_on_kill: pause the OMS task when Airflow stops waiting for it before it has finished: the task
        is killed (marked failed or success, cleared, SIGTERM), ``execution_timeout`` or ``timeout`` passes, in
        the worker and while deferred (Airflow 3.3+). ``False`` leaves the migration running. Default ``True``.
        See the kill and timeout table in ``docs/operators.md``.
    :return: (XCom) a dict: ``migration_task_id``, ``status`` and ``status_name``, ``total_num``,
        ``successful_num``, ``failed_num``, ``skipped_num``, ``complete_size``, ``total_size``, ``progress``,
        ``elapsed_seconds``, ``error_reason``, ``failed_object_record``, ``restarts``. Without waiting, the
        status is the one read right after the start (which OMS may still show as before it).

    Right after its own start (and each failed-object restart), a read that still shows the task exactly as
    it was before the start is not taken as the outcome for ``waiting.START_GRACE_SECONDS`` (60 s): OMS may
    answer with the old status for a moment. On a retry of the Airflow task, a task that the earlier try
    started is waited for (running), resumed (paused), started again (failed), or taken as the outcome
    (succeeded since this DAG run began) -- never started twice.
    """

    template_fields: Sequence[str] = (
        "migration_task_id",
        "migrate_failed_object",
        "oms_conn_id",
        "source_conn_id",
        "destination_conn_id",
    )
    operator_extra_links = (OMSConsoleLink(),)
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        migration_task_id: str | int,
        migrate_failed_object: bool | str = False,
        oms_conn_id: str = OMSHook.default_conn_name,
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
        self.migration_task_id = migration_task_id
        self.migrate_failed_object = migrate_failed_object
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

    @cached_property
    def hook(self) -> OMSHook:
        """The OMS hook of this operator's connection."""
        return OMSHook(oms_conn_id=self.oms_conn_id)

    # -- start ------------------------------------------------------------------------------------

    def _check_wait_arguments(self) -> tuple[float, float | None]:
        poll_interval = _seconds("poll_interval", self.poll_interval, minimum=1)
        timeout = _seconds("timeout", self.timeout, minimum=1)
        retries = self.retry_failed_objects
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise OMSValidationError(f"retry_failed_objects must be a whole number of 0 or more, got {retries!r}")
        assert poll_interval is not None
        return poll_interval, timeout

    def _start_body(self, *, failed_only: bool) -> dict[str, Any]:
        return self.hook.build_start_task_body(
            migrate_failed_object=failed_only,
            source_conn_id=self.source_conn_id or None,
            destination_conn_id=self.destination_conn_id or None,
        )

    def _start(self, task_id: str, *, failed_only: bool, body: Mapping[str, Any] | None = None) -> None:
        body = self._start_body(failed_only=failed_only) if body is None else body
        self.log.info(
            "Starting OMS migration task %s (%s)", task_id, "failed objects only" if failed_only else "all objects"
        )
        self.hook.start_task(task_id, body)

    def _start_or_join(
        self, context: Context, task_id: str, *, failed_only: bool, poll_interval: float
    ) -> tuple[list[Any] | None, dict[str, Any] | None]:
        """
        Start the task; on a retry, take over what an earlier try started instead of starting it twice.

        :return: the fingerprint of the task before the start (``None`` when nothing was started), and the task
            when it has already succeeded (an earlier try's start ran it to the end), else ``None``.
        """
        body = self._start_body(failed_only=failed_only)  # every input is checked before the first request
        # What a stale read after the start would look like; not needed when nothing waits for the outcome.
        before = self.hook.get_task(task_id) if self.wait_for_completion else None
        try:
            self._start(task_id, failed_only=failed_only, body=body)
            return None if before is None else fingerprint(before), None
        except OMSApiError as err:
            # An earlier try of this Airflow task may have started the OMS task and then died (a lost worker).
            # The refusal's error code is not documented for every case: judge from the task read back.
            if _try_number(context) <= 1 or err.http_status is None or err.transient:
                raise
            task = self.hook.get_task(task_id)
            while task.get("status") == TaskStatus.PAUSING:  # the earlier try's kill is pausing it
                time.sleep(min(poll_interval, 5.0))
                task = self.hook.get_task(task_id)
            status = task.get("status")
            earlier = f"started by an earlier try, {_try_number(context) - 1}"
            if status in _STARTED_STATUSES:
                self.log.warning("OMS migration task %s is already running (%s); waiting for it", task_id, earlier)
                return None, None
            if status == TaskStatus.SUCCEEDED and _finished_during_this_run(task, context):
                self.log.warning("OMS migration task %s has already succeeded (%s)", task_id, earlier)
                return None, task
            if status in STARTABLE_STATUSES:  # paused meanwhile: resume it, as a start is asked to
                self._start(task_id, failed_only=failed_only, body=body)
                return fingerprint(task), None
            raise

    def execute(self, context: Context) -> dict[str, Any]:
        """Check the input, start the OMS task, then wait for it (here or in the triggerer) unless told not to."""
        failed_only = coerce_bool("migrate_failed_object", self.migrate_failed_object)
        task_id = check_path_value("migration_task_id", self.migration_task_id, "task_id")
        poll_interval, timeout = self._check_wait_arguments()
        config = self.hook.config
        OMSConsoleLink.persist(
            context,
            console_url(
                config.console_url, region=config.region, project_id=config.project_id, migration_task_id=task_id
            ),
        )
        started_at = time.time()
        before, finished = self._start_or_join(context, task_id, failed_only=failed_only, poll_interval=poll_interval)
        if finished is not None:
            return self._finish(task_id, Outcome.SUCCESS, finished, 0, started_at)
        if not self.wait_for_completion:
            task = self.hook.get_task(task_id)
            self.log.info("OMS migration task %s started; status now %s", task_id, status_name(task.get("status")))
            return result(task_id, task, restarts=0, elapsed_seconds=time.time() - started_at)
        grace_until = started_at + waiting.START_GRACE_SECONDS if before is not None else None
        self._waiting_for = task_id  # from here on, a kill pauses the task (if cancel_on_kill)
        if self.deferrable:
            self._defer(task_id, poll_interval, started_at, restarts=0, before=before, grace_until=grace_until)
        deadline = started_at + timeout if timeout else None
        return self._wait(task_id, poll_interval, deadline, started_at, before, grace_until)

    # -- waiting in the worker --------------------------------------------------------------------

    def _wait(
        self,
        task_id: str,
        poll_interval: float,
        deadline: float | None,
        started_at: float,
        before: list[Any] | None,
        grace_until: float | None,
    ) -> dict[str, Any]:
        # Airflow's execution_timeout (or a kill) interrupts this loop with an exception: _waiting_for stays set
        # for on_kill, which Airflow calls next. It is cleared only once the wait has an outcome.
        restarts = 0
        outage = Outage(self.hook.config.outage_tolerance)
        while True:
            read_began = time.time()
            try:
                task = self.hook.get_task(task_id)
            except OMSApiError as err:
                if not err.transient:
                    raise
                self._wait_through_outage(task_id, err, outage, read_began, deadline, poll_interval)
                continue
            recovered = outage.recovered(time.time())
            if recovered:
                self.log.info(recovered)
            self.log.info(progress_line(task_id, task))
            outcome = classify(task)
            shown = shows_start(task, before, grace_until, time.time())
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
                    stale_start_message(task_id, task, started_at),
                    task=result(task_id, task, restarts=restarts, elapsed_seconds=time.time() - started_at),
                )
            if self._restart_failed_objects(task_id, outcome, task, restarts):
                restarts += 1
                before, grace_until = fingerprint(task), time.time() + waiting.START_GRACE_SECONDS
                continue
            return self._finish(task_id, outcome, task, restarts, started_at)

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
                cancel_on_kill=self.cancel_on_kill,
                stale_fingerprint=before,
                grace_until=grace_until,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any]) -> dict[str, Any]:
        """Resume after the trigger's event: succeed, restart the failed objects and defer again, or fail."""
        task_id = str(event["migration_task_id"])
        status = event["status"]
        task = dict(event.get("task") or {})
        restarts = int(event.get("restarts") or 0)
        started_at = event.get("started_at") or time.time()
        self._waiting_for = task_id
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
            summary = result(task_id, task, restarts=restarts, elapsed_seconds=time.time() - started_at)
            raise OMSMigrationError(str(event["message"]), task=summary)
        if self._restart_failed_objects(task_id, outcome, task, restarts):
            self._defer(
                task_id,
                poll_interval,
                started_at,
                restarts=restarts + 1,
                before=fingerprint(task),
                grace_until=time.time() + waiting.START_GRACE_SECONDS,
            )
        return self._finish(task_id, outcome, task, restarts, started_at)

    # -- shared outcome handling ------------------------------------------------------------------

    def _restart_failed_objects(self, task_id: str, outcome: Outcome, task: Mapping[str, Any], restarts: int) -> bool:
        """Restart a failed task for its failed objects if retries remain; return whether it was restarted."""
        if outcome is not Outcome.FAILED or restarts >= self.retry_failed_objects:
            return False
        if not can_retry_failed_objects(task):
            self.log.info("OMS migration task %s failed without a retryable failed-object list", task_id)
            return False
        self.log.warning(
            "%s; restarting it for the failed objects only (retry %d of %d)",
            failure_message(task_id, task),
            restarts + 1,
            self.retry_failed_objects,
        )
        self._start(task_id, failed_only=True)
        return True

    def _finish(
        self, task_id: str, outcome: Outcome, task: Mapping[str, Any], restarts: int, started_at: float
    ) -> dict[str, Any]:
        self._waiting_for = None  # the wait has its outcome: a kill from now on has nothing to pause
        summary = result(task_id, task, restarts=restarts, elapsed_seconds=time.time() - started_at)
        if outcome is Outcome.SUCCESS:
            self.log.info("OMS migration task %s succeeded after %d restart(s)", task_id, restarts)
            return summary
        if outcome is Outcome.FAILED:
            message = failure_message(task_id, task)
            if restarts:
                message += f" (after {restarts} restart(s) of the failed objects)"
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
        self._pause(task_id)
