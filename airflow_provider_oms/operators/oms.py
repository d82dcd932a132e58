"""Operators for Huawei Cloud OMS migration tasks."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_oms.constants import (
    ERROR_TASK_ALREADY_STARTED,
    ERROR_TASK_NOT_IN_PROGRESS,
    TaskStatus,
    status_name,
)
from airflow_provider_oms.exceptions import OMSApiError, OMSError, OMSMigrationError, OMSValidationError
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.links.oms import OMSConsoleLink, console_url
from airflow_provider_oms.validation import check_path_value, coerce_bool
from airflow_provider_oms.version_compat import conf
from airflow_provider_oms.waiting import (
    Outcome,
    can_retry_failed_objects,
    classify,
    failure_message,
    progress_line,
    result,
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
    :param timeout: the longest wait (seconds or a timedelta); past it the OMS task is paused and the Airflow
        task fails. Default: no limit.
    :param deferrable: wait in the triggerer instead of a worker slot. Default: ``[operators]
        default_deferrable``.
    :param retry_failed_objects: when the task ends failed with failed objects that OMS can retry, restart it
        for those objects only, up to this many times, before failing. Default 0.
    :param cancel_on_kill: pause the OMS task when the Airflow task is killed while waiting. Default ``True``.
    :return: (XCom) a dict: ``migration_task_id``, ``status`` and ``status_name``, ``total_num``,
        ``successful_num``, ``failed_num``, ``skipped_num``, ``complete_size``, ``total_size``, ``progress``,
        ``elapsed_seconds``, ``error_reason``, ``failed_object_record``, ``restarts``. Without waiting, the
        status is the one read right after the start.
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

    def _start(self, task_id: str, *, failed_only: bool) -> None:
        body = self.hook.build_start_task_body(
            migrate_failed_object=failed_only,
            source_conn_id=self.source_conn_id or None,
            destination_conn_id=self.destination_conn_id or None,
        )
        self.log.info(
            "Starting OMS migration task %s (%s)", task_id, "failed objects only" if failed_only else "all objects"
        )
        self.hook.start_task(task_id, body)

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
        try:
            self._start(task_id, failed_only=failed_only)
        except OMSApiError as err:
            # An earlier try of this Airflow task may have started the OMS task and then died (a lost worker):
            # on a retry, a task that is already running is that start's work, so wait for it.
            try_number = getattr(context.get("ti"), "try_number", 1)
            if err.error_code != ERROR_TASK_ALREADY_STARTED or not isinstance(try_number, int) or try_number <= 1:
                raise
            self.log.warning(
                "OMS migration task %s is already running (started by an earlier try, %d); waiting for it",
                task_id,
                try_number - 1,
            )
        started_at = time.time()
        if not self.wait_for_completion:
            task = self.hook.get_task(task_id)
            self.log.info("OMS migration task %s started; status now %s", task_id, status_name(task.get("status")))
            return result(task_id, task, restarts=0, elapsed_seconds=time.time() - started_at)
        deadline = started_at + timeout if timeout else None
        self._waiting_for = task_id  # from here on, a kill pauses the task
        if self.deferrable:
            self._defer(task_id, poll_interval, deadline, restarts=0, started_at=started_at)
        return self._wait(task_id, poll_interval, deadline, started_at)

    # -- waiting in the worker --------------------------------------------------------------------

    def _wait(self, task_id: str, poll_interval: float, deadline: float | None, started_at: float) -> dict[str, Any]:
        restarts = 0
        try:
            while True:
                task = self.hook.get_task(task_id)
                self.log.info(progress_line(task_id, task))
                outcome = classify(task)
                if outcome is Outcome.WAITING:
                    if deadline is not None and time.time() >= deadline:
                        self._time_out(task_id, task)
                    time.sleep(
                        poll_interval if deadline is None else max(0.0, min(poll_interval, deadline - time.time()))
                    )
                    continue
                if self._restart_failed_objects(task_id, outcome, task, restarts):
                    restarts += 1
                    continue
                return self._finish(task_id, outcome, task, restarts, started_at)
        finally:
            self._waiting_for = None

    # -- waiting in the triggerer -----------------------------------------------------------------

    def _defer(
        self, task_id: str, poll_interval: float, deadline: float | None, *, restarts: int, started_at: float
    ) -> None:
        from airflow_provider_oms.triggers.oms import MigrationTaskTrigger

        self.defer(
            trigger=MigrationTaskTrigger(
                migration_task_id=task_id,
                oms_conn_id=self.oms_conn_id,
                poll_interval=poll_interval,
                deadline=deadline,
                restarts=restarts,
                started_at=started_at,
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
        if status == "timeout":
            self._time_out(task_id, task)
        outcome = Outcome(status)
        if self._restart_failed_objects(task_id, outcome, task, restarts):
            poll_interval, timeout = self._check_wait_arguments()
            deadline = started_at + timeout if timeout else None
            self._defer(task_id, poll_interval, deadline, restarts=restarts + 1, started_at=started_at)
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
        if outcome is Outcome.SUCCESS:
            self.log.info("OMS migration task %s succeeded after %d restart(s)", task_id, restarts)
            return result(task_id, task, restarts=restarts, elapsed_seconds=time.time() - started_at)
        summary = result(task_id, task, restarts=restarts, elapsed_seconds=time.time() - started_at)
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

    def _time_out(self, task_id: str, task: Mapping[str, Any]) -> None:
        self.log.warning("Timed out waiting for OMS migration task %s; pausing it", task_id)
        self._pause(task_id)
        raise OMSMigrationError(
            f"OMS migration task {task_id} did not finish within the timeout of {self.timeout}; it was paused",
            task=dict(task),
        )

    def _pause(self, task_id: str) -> None:
        try:
            self.hook.stop_task(task_id)
        except OMSApiError as err:
            if err.error_code != ERROR_TASK_NOT_IN_PROGRESS:
                raise
            self.log.info("OMS migration task %s was not in progress; nothing to pause", task_id)

    def on_kill(self) -> None:
        """Pause the OMS task if this operator was waiting for it and ``cancel_on_kill`` is set."""
        task_id = self._waiting_for
        if self.cancel_on_kill and task_id:
            self.log.info("Airflow task killed while waiting; pausing OMS migration task %s", task_id)
            self._pause(task_id)
