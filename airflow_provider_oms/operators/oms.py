"""Operators for Huawei Cloud OMS migration tasks."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_oms.constants import (
    ERROR_NOT_FOUND,
    MAX_CLOCK_SKEW_SECONDS,
    STARTABLE_STATUSES,
    STARTED_STATUSES,
    TaskStatus,
    status_name,
)
from airflow_provider_oms.links.oms import OMSConsoleLink, console_url
from airflow_provider_oms.operators.migration_wait import MigrationWaitOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_oms.exceptions import OMSApiError, OMSRefusedError

# The hook, the validation and the waiting logic are imported where they are first used: a DAG file imports this
# module every time it is parsed, and calls nothing.


#: Where the docs explain the pipeline that runs on a schedule (named in the refusal of a finished task).
RECURRING_RECIPE_DOCS = "docs/operators.md, 'A pipeline that runs on a schedule'"


def _refused(refusal: OMSApiError, task_id: str, task: Mapping[str, Any], context: Context) -> OMSRefusedError:
    """Say why OMS refused to start a task, from the task read back, and what to do; Airflow will not retry."""
    from airflow_provider_oms.exceptions import OMSRefusedError

    status = task.get("status")
    if status == TaskStatus.SUCCEEDED:
        message = (
            f"OMS migration task {task_id} already succeeded (its last run began {_when(task.get('start_time'))}"
            f"{', before this DAG run' if not _finished_during_this_run(task, context) else ''}) and "
            "OMS cannot start a finished task again. For a pipeline that runs on a schedule, create a task per run: "
            "CreateMigrationTaskOperator with migrate_since (only what changed since the data interval began), "
            f"see {RECURRING_RECIPE_DOCS}. StartMigrationTaskOperator resumes or retries a paused or failed task"
        )
    elif status in STARTED_STATUSES:
        message = (
            f"OMS migration task {task_id} is already {status_name(status)}, started outside this Airflow task (the "
            "OMS console, another DAG run, another tool): wait for it with MigrationTaskSensor, or stop it first"
        )
    else:
        message = f"OMS refused to start migration task {task_id} ({status_name(status)}); a retry would be refused too"
    return OMSRefusedError.from_refusal(refusal, message)


def _when(milliseconds: Any) -> str:
    if not isinstance(milliseconds, (int, float)) or isinstance(milliseconds, bool) or not milliseconds:
        return "at an unknown time"
    return datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc).isoformat(timespec="seconds")


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


class StartMigrationTaskOperator(MigrationWaitOperator):
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

    Assets and lineage: on success, each ``Asset`` in ``outlets`` gets an event whose extra is the migration's
    figures, and each ``AssetAlias`` the destination asset ``obs://{bucket}/{save_prefix}`` with the same
    extra; nothing is recorded when the migration fails. With the OpenLineage provider installed, the source
    and the OBS destination are reported as input and output, the figures as the ``oms_migration`` run facet
    (see ``docs/lineage.md``).
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
        self, *, migration_task_id: str | int, migrate_failed_object: bool | str = False, **kwargs: Any
    ) -> None:
        # oms_conn_id, source_conn_id, destination_conn_id and the waiting arguments: MigrationWaitOperator's.
        super().__init__(**kwargs)
        self.migration_task_id = migration_task_id
        self.migrate_failed_object = migrate_failed_object

    # -- start ------------------------------------------------------------------------------------

    def _start_or_join(
        self, context: Context, task_id: str, *, failed_only: bool, poll_interval: float
    ) -> tuple[list[Any] | None, dict[str, Any] | None]:
        """
        Start the task; on a retry, take over what an earlier try started instead of starting it twice.

        A refusal is judged from the task read back, not from its error code (OMS's codes for "finished" differ
        between calls and are not all documented): what a retry cannot change fails the Airflow task once
        (:class:`~airflow_provider_oms.exceptions.OMSRefusedError`), what may change later is raised for
        Airflow to retry.

        :return: the fingerprint of the task before the start (``None`` when nothing was started), and the task
            when it has already succeeded (an earlier try's start ran it to the end), else ``None``.
        """
        from airflow_provider_oms.exceptions import OMSApiError, OMSRefusedError
        from airflow_provider_oms.waiting import WHOLE_TASK, attempt_figures, fingerprint

        body = self._start_body(failed_only=failed_only)  # every input is checked before the first request
        # What a stale read after the start would look like; not needed when nothing waits for the outcome.
        before = self._read_or_refuse(task_id) if self.wait_for_completion else None
        try:
            self._start(task_id, failed_only=failed_only, body=body)
            return None if before is None else fingerprint(before), None
        except OMSApiError as err:
            if not err.is_refusal:
                raise  # OMS could not answer, throttled, or refused the credentials: Airflow's retry may get through
            refusal = err
        try:
            task = self._read_or_refuse(task_id)
        except OMSRefusedError:
            raise
        except OMSApiError:
            raise refusal from None  # the read back failed too: Airflow's retry may see more
        retry = _try_number(context) > 1
        while retry and task.get("status") == TaskStatus.PAUSING:  # the earlier try's kill is pausing it
            time.sleep(min(poll_interval, 5.0))
            task = self.hook.get_task(task_id)
        status = task.get("status")
        earlier = f"started by an earlier try, {_try_number(context) - 1}"
        if retry and status in STARTED_STATUSES:
            # An earlier try of this Airflow task started it and then died (a lost worker).
            self.log.warning("OMS migration task %s is already running (%s); waiting for it", task_id, earlier)
            return None, None
        if retry and status == TaskStatus.SUCCEEDED and _finished_during_this_run(task, context):
            self.log.warning("OMS migration task %s has already succeeded (%s)", task_id, earlier)
            return None, task
        if retry and status in STARTABLE_STATUSES:  # paused meanwhile: resume it, as a start is asked to
            self._attempts = [attempt_figures(task, WHOLE_TASK)]  # what the earlier tries did, for the totals
            self._start(task_id, failed_only=failed_only, body=body)
            return fingerprint(task), None
        if status == TaskStatus.PAUSING:
            raise refusal  # it is being paused: a retry can start it once it is paused
        raise _refused(refusal, task_id, task, context)

    def _read_or_refuse(self, task_id: str) -> dict[str, Any]:
        """Read the task; one that does not exist fails the Airflow task once (a retry cannot create it)."""
        from airflow_provider_oms.exceptions import OMSApiError, OMSRefusedError

        try:
            return self.hook.get_task(task_id)
        except OMSApiError as err:
            if err.error_code != ERROR_NOT_FOUND:
                raise
            message = f"OMS migration task {task_id} does not exist in this project: check migration_task_id"
            raise OMSRefusedError.from_refusal(err, message) from None

    def execute(self, context: Context) -> dict[str, Any]:
        """Check the input, start the OMS task, then wait for it (here or in the triggerer) unless told not to."""
        from airflow_provider_oms import waiting
        from airflow_provider_oms.validation import check_path_value, coerce_bool

        failed_only = coerce_bool("migrate_failed_object", self.migrate_failed_object)
        task_id = check_path_value("migration_task_id", self.migration_task_id, "task_id")
        poll_interval, _ = self._check_wait_arguments()
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
            return self._finish(context, task_id, waiting.Outcome.SUCCESS, finished, 0, started_at)
        if not self.wait_for_completion:
            task = self.hook.get_task(task_id)
            self._lineage_task_id, self._lineage_task = task_id, task  # its datasets, for OpenLineage
            self.log.info("OMS migration task %s started; status now %s", task_id, status_name(task.get("status")))
            return waiting.result(task_id, task, restarts=0, elapsed_seconds=time.time() - started_at)
        grace_until = started_at + waiting.START_GRACE_SECONDS if before is not None else None
        return self._wait_for(context, task_id, started_at=started_at, before=before, grace_until=grace_until)
