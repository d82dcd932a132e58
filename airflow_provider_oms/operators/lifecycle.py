"""
Operators for the rest of an OMS task's life, task groups and sync tasks.

Each one makes its call through :class:`~airflow_provider_oms.hooks.oms.OMSHook`; credentials come only from
connections. Creating is safe to retry: a re-run of the same Airflow task instance finds the task (or group)
its earlier try created instead of creating another (OMS caps creations per day).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_oms.constants import (
    DEFAULT_CONN_ID,
    ERROR_NOT_FOUND,
    ERROR_TASK_NOT_IN_PROGRESS,
    GROUP_PAUSED,
    GROUP_PAUSING,
    IN_PROGRESS_STATUSES,
    STARTABLE_STATUSES,
    TaskStatus,
    status_name,
)
from airflow_provider_oms.exceptions import OMSApiError, OMSRefusedError, OMSValidationError
from airflow_provider_oms.operators.base import OMSHookMixin
from airflow_provider_oms.operators.markers import (
    find_by_marker,
    is_retry,
    lookup_markers,
    not_before_ms,
    run_marker,
    with_marker,
)
from airflow_provider_oms.operators.migration_wait import MigrationWaitOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

# The hook, the validation and the waiting logic are imported where they are first used: a DAG file imports this
# module every time it is parsed, and calls nothing.


class _OMSOperator(OMSHookMixin, BaseOperator):
    """Holds the OMS connection and hook of the operators below."""

    ui_color = "#e8f1fb"

    def __init__(self, *, oms_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.oms_conn_id = oms_conn_id

    def _create_once(
        self,
        context: Context,
        definition: Mapping[str, Any],
        *,
        kind: str,
        create: Callable[[dict[str, Any]], dict[str, Any]],
        find: Callable[[Collection[str], float | None], str | None],
        id_key: str,
        tokenless_call: str | None = None,
    ) -> tuple[str, bool]:
        """Create unless an earlier try since the last clear already did; return the id and whether reused."""
        marker = run_marker(context, self.retries)
        if is_retry(context, self.retries):
            found = find(lookup_markers(context, self.retries), not_before_ms(context))
            if found is not None:
                self.log.info("Reusing OMS %s %s created by an earlier try (marker %s)", kind, found, marker)
                return found, True
        body = self.hook.build_create_task_body(
            {**definition, "description": with_marker(definition.get("description"), marker)},
            source_conn_id=self.source_conn_id,  # type: ignore[attr-defined]
            destination_conn_id=self.destination_conn_id,  # type: ignore[attr-defined]
            tokenless_call=tokenless_call,
        )
        try:
            created = create(body)
        except OMSApiError as err:
            if not err.is_refusal:
                raise
            # Nothing was created: the same definition would be refused again.
            raise OMSRefusedError.from_refusal(err, f"OMS refused to create the {kind}; fix its definition") from None
        created_id = str(created[id_key])
        self.log.info("Created OMS %s %s", kind, created_id)
        return created_id, False


def _migrate_since(definition: Mapping[str, Any]) -> dict[str, Any]:
    """
    Return the definition with ``migrate_since`` as a whole number of seconds, as OMS takes it.

    A Jinja template (``{{ data_interval_start.int_timestamp }}``) renders to a string of digits.
    """
    definition = dict(definition)
    since = definition.get("migrate_since")
    if since is None or since == "":
        definition.pop("migrate_since", None)
        return definition
    if isinstance(since, str) and since.strip().isdigit():
        since = int(since.strip())
    elif isinstance(since, float) and since >= 0 and since.is_integer():
        since = int(since)
    if isinstance(since, bool) or not isinstance(since, int) or since < 0:
        raise OMSValidationError(f"migrate_since must be a UNIX time in whole seconds, got {since!r}")
    definition["migrate_since"] = since
    return definition


class CreateMigrationTaskOperator(MigrationWaitOperator, _OMSOperator):
    """
    Create an OMS migration task; OMS starts it by itself. Optionally wait until it has finished.

    :param task_definition: the task definition without credentials (a CreateTaskReq without ``ak``/``sk``):
        ``task_type``, ``src_node`` (``cloud_type``, ``region``, ``bucket``, ``object_key``...), ``dst_node``
        (``region``, ``bucket``, ``save_prefix``), ``migrate_since`` (UNIX seconds; only objects modified
        after it; a templated string of digits is taken), ``description``... Templated.
    :param source_conn_id: connection with the source credentials (AWS, Google Cloud, Azure Blob or AK/SK).
    :param destination_conn_id: connection with the destination OBS credentials; default the OMS connection.
    :param oms_conn_id: the ``huaweicloud_oms`` connection.
    :param wait_for_completion: wait until the task has finished, as ``StartMigrationTaskOperator`` does.
        Default ``False``: return right after the create.
    :param poll_interval: seconds between two reads of the task while waiting, at least 1. Default 30.
    :param timeout: the longest wait (seconds or a timedelta) from the create; past it the Airflow task fails
        and the OMS task is paused if ``cancel_on_kill``. Default: no limit.
    :param deferrable: wait in the triggerer instead of a worker slot. Default: ``[operators]
        default_deferrable``.
    :param retry_failed_objects: restart a failed task for its failed objects only, up to this many times.
    :param cancel_on_kill: pause the OMS task when Airflow stops waiting before it has finished. Default ``True``.
    :return: (XCom) without waiting, ``{"migration_task_id", "task_name", "reused"}`` -- ``reused`` when a retry
        found the task an earlier try had created; with ``wait_for_completion``, the outcome as
        ``StartMigrationTaskOperator`` returns it.

    With ``wait_for_completion``, the task records asset events and OpenLineage lineage on its outcome as
    ``StartMigrationTaskOperator`` does. A retry that finds the task its earlier try created paused (by that
    try's kill or timeout) or failed starts it again and waits for it.
    """

    template_fields: Sequence[str] = ("task_definition", "source_conn_id", "destination_conn_id", "oms_conn_id")
    template_fields_renderers = {"task_definition": "json"}

    def __init__(self, *, task_definition: Mapping[str, Any], wait_for_completion: bool = False, **kwargs: Any) -> None:
        # oms_conn_id, source_conn_id, destination_conn_id and the other waiting arguments: MigrationWaitOperator's.
        super().__init__(wait_for_completion=wait_for_completion, **kwargs)
        self.task_definition = task_definition

    def execute(self, context: Context) -> dict[str, Any]:
        """Create the task (or find the one an earlier try created); return its id, or wait for its outcome."""
        if not isinstance(self.task_definition, Mapping):
            raise OMSValidationError(f"task_definition must be a mapping, got {type(self.task_definition).__name__}")
        self._check_wait_arguments()  # every input is checked before the create
        started_at = time.time()
        task_id, reused = self._create_once(
            context,
            _migrate_since(self.task_definition),
            kind="migration task",
            create=self.hook.create_task,
            find=lambda markers, since: find_by_marker(self.hook.list_tasks, "tasks", "id", markers, since),
            id_key="id",
        )
        if not self.wait_for_completion:
            task = self.hook.get_task(task_id)
            self._lineage_task_id, self._lineage_task = task_id, task  # its datasets, for OpenLineage
            return {"migration_task_id": task_id, "task_name": task.get("name"), "reused": reused}
        before, grace_until = self._take_over(task_id) if reused else (None, None)
        return self._wait_for(context, task_id, started_at=started_at, before=before, grace_until=grace_until)

    def _take_over(self, task_id: str) -> tuple[list[Any] | None, float | None]:
        """
        On a retry, start again the task an earlier try created if it is paused or failed; else just wait.

        :return: the stale-start fingerprint and grace window when it was started, else ``(None, None)``.
        """
        from airflow_provider_oms import waiting

        task = self.hook.get_task(task_id)
        while task.get("status") == TaskStatus.PAUSING:  # the earlier try's kill or timeout is pausing it
            time.sleep(min(float(self.poll_interval), 5.0))
            task = self.hook.get_task(task_id)
        if task.get("status") not in STARTABLE_STATUSES:
            return None, None
        self._attempts = [waiting.attempt_figures(task, waiting.WHOLE_TASK)]  # the earlier tries', for the totals
        self._start(task_id, failed_only=False)
        return waiting.fingerprint(task), time.time() + waiting.START_GRACE_SECONDS


class _TaskOperator(_OMSOperator):
    template_fields: Sequence[str] = ("migration_task_id", "oms_conn_id")

    def __init__(self, *, migration_task_id: str | int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.migration_task_id = migration_task_id

    def _task(self) -> str:
        from airflow_provider_oms.validation import check_path_value

        return check_path_value("migration_task_id", self.migration_task_id, "task_id")

    def _status_after_refusal(self, task_id: str, refusal: OMSApiError) -> Any:
        """Read the task's status after OMS refused a call on it; a task that does not exist fails once."""
        try:
            return self.hook.get_task(task_id).get("status")
        except OMSApiError as err:
            if err.error_code != ERROR_NOT_FOUND:
                raise refusal from None
            raise OMSRefusedError.from_refusal(err, f"OMS migration task {task_id} does not exist") from None


class StopMigrationTaskOperator(_TaskOperator):
    """
    Pause a migration task. A task that is already paused (or pausing) is left as it is.

    :param migration_task_id: the OMS task id. Templated.
    """

    def execute(self, context: Context) -> None:
        """Stop (pause) the task."""
        task_id = self._task()
        try:
            self.hook.stop_task(task_id)
        except OMSApiError as err:
            if not err.is_refusal:
                raise
            status = self._status_after_refusal(task_id, err)
            if status in (TaskStatus.PAUSED, TaskStatus.PAUSING):
                self.log.info("OMS migration task %s is already paused", task_id)
                return
            if status in IN_PROGRESS_STATUSES:
                raise  # it may be stoppable in a moment: Airflow's retry will see
            raise OMSRefusedError.from_refusal(
                err, f"OMS migration task {task_id} has {status_name(status)} and cannot be paused any more"
            ) from None


class DeleteMigrationTaskOperator(_TaskOperator):
    """
    Delete a migration task that is not in progress. A task that no longer exists counts as deleted.

    :param migration_task_id: the OMS task id. Templated.
    """

    def execute(self, context: Context) -> None:
        """Delete the task."""
        task_id = self._task()
        try:
            self.hook.delete_task(task_id)
        except OMSApiError as err:
            if err.error_code == ERROR_NOT_FOUND:
                self.log.info("OMS migration task %s does not exist (any more): nothing to delete", task_id)
                return
            if not err.is_refusal or self._status_after_refusal(task_id, err) in IN_PROGRESS_STATUSES:
                raise  # in progress (OMS.0063): deletable once it has ended, which Airflow's retry may see
            raise OMSRefusedError.from_refusal(err, f"OMS refused to delete migration task {task_id}") from None


class UpdateBandwidthPolicyOperator(_TaskOperator):
    """
    Set a migration task's bandwidth limits by time of day.

    :param migration_task_id: the OMS task id. Templated.
    :param bandwidth_policy: up to 5 windows ``{"start": "hh:mm", "end": "hh:mm", "max_bandwidth": bytes/s}``
        (1048576 to 209715200); an empty list removes the limits. Templated.
    """

    template_fields: Sequence[str] = ("migration_task_id", "bandwidth_policy", "oms_conn_id")

    def __init__(self, *, bandwidth_policy: list[Mapping[str, Any]], **kwargs: Any):
        super().__init__(**kwargs)
        self.bandwidth_policy = bandwidth_policy

    def execute(self, context: Context) -> None:
        """Update the policy."""
        self.hook.update_bandwidth_policy(self._task(), list(self.bandwidth_policy))


class CreateMigrationTaskGroupOperator(_OMSOperator):
    """
    Create an OMS migration task group (many tasks from one definition); it starts by itself.

    :param group_definition: the definition without credentials (a CreateTaskGroupReq without ``ak``/``sk``). Templated.
    :param source_conn_id: connection with the source credentials.
    :param destination_conn_id: connection with the destination credentials; default the OMS connection.
    :return: (XCom) ``{"group_id", "reused"}``.
    """

    template_fields: Sequence[str] = ("group_definition", "source_conn_id", "destination_conn_id", "oms_conn_id")
    template_fields_renderers = {"group_definition": "json"}

    def __init__(
        self,
        *,
        group_definition: Mapping[str, Any],
        source_conn_id: str | None = None,
        destination_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.group_definition = group_definition
        self.source_conn_id = source_conn_id
        self.destination_conn_id = destination_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        """Create the group (or find the one an earlier try created) and return its id."""
        if not isinstance(self.group_definition, Mapping):
            raise OMSValidationError(f"group_definition must be a mapping, got {type(self.group_definition).__name__}")
        group_id, reused = self._create_once(
            context,
            self.group_definition,
            kind="task group",
            create=self.hook.create_task_group,
            find=lambda markers, since: find_by_marker(
                self.hook.list_task_groups, "taskgroups", "group_id", markers, since
            ),
            id_key="group_id",
            tokenless_call="create task group",  # its nodes have no security_token
        )
        return {"group_id": group_id, "reused": reused}


class _GroupOperator(_OMSOperator):
    template_fields: Sequence[str] = ("group_id", "oms_conn_id")

    def __init__(self, *, group_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.group_id = group_id

    def _group(self) -> str:
        from airflow_provider_oms.validation import check_path_value

        return check_path_value("group_id", self.group_id, "task_id")


class StartMigrationTaskGroupOperator(_GroupOperator):
    """
    Start a paused task group.

    :param group_id: the OMS task group id. Templated.
    :param source_conn_id: connection with the source credentials.
    :param destination_conn_id: connection with the destination credentials; default the OMS connection.
    """

    template_fields: Sequence[str] = ("group_id", "source_conn_id", "destination_conn_id", "oms_conn_id")

    def __init__(self, *, source_conn_id: str | None = None, destination_conn_id: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.source_conn_id = source_conn_id
        self.destination_conn_id = destination_conn_id

    def execute(self, context: Context) -> None:
        """Start the group."""
        group = self._group()
        body, _ = self.hook.credentials_body(
            source_conn_id=self.source_conn_id,
            destination_conn_id=self.destination_conn_id,
            tokenless_call="start task group",
        )
        self.hook.start_task_group(group, body)


class RetryMigrationTaskGroupOperator(StartMigrationTaskGroupOperator):
    """
    Retry a failed task group.

    :param migrate_failed_object: retry only the failed objects (a bool, or "true"/"false"). Templated.
    """

    template_fields: Sequence[str] = (
        "group_id",
        "migrate_failed_object",
        "source_conn_id",
        "destination_conn_id",
        "oms_conn_id",
    )

    def __init__(self, *, migrate_failed_object: bool | str = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.migrate_failed_object = migrate_failed_object

    def execute(self, context: Context) -> None:
        """Retry the group."""
        from airflow_provider_oms.validation import coerce_bool

        failed_only = coerce_bool("migrate_failed_object", self.migrate_failed_object)
        group = self._group()
        body, _ = self.hook.credentials_body(
            source_conn_id=self.source_conn_id,
            destination_conn_id=self.destination_conn_id,
            tokenless_call="retry task group",
        )
        self.hook.retry_task_group(group, {**body, "migrate_failed_object": failed_only})


class StopMigrationTaskGroupOperator(_GroupOperator):
    """
    Pause a running task group.

    :param group_id: the OMS task group id. Templated.
    """

    def execute(self, context: Context) -> None:
        """Stop the group; a group that is already paused (or pausing) is left as it is."""
        group = self._group()
        try:
            self.hook.stop_task_group(group)
        except OMSApiError as err:
            status = (
                self.hook.get_task_group(group).get("status") if err.error_code == ERROR_TASK_NOT_IN_PROGRESS else None
            )
            if status not in (GROUP_PAUSED, GROUP_PAUSING):
                raise
            self.log.info("OMS task group %s is already paused", group)


class _SyncOperator(_OMSOperator):
    template_fields: Sequence[str] = ("sync_task_id", "oms_conn_id")

    def __init__(self, *, sync_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sync_task_id = sync_task_id

    def _sync(self) -> str:
        from airflow_provider_oms.validation import check_path_value

        return check_path_value("sync_task_id", self.sync_task_id, "task_id")


class StartSyncTaskOperator(_SyncOperator):
    """
    Start a sync task (continuous synchronisation from the source bucket).

    :param sync_task_id: the OMS sync task id. Templated.
    :param source_conn_id: connection with the source AK/SK (required: sync tasks need them).
    :param destination_conn_id: connection with the destination credentials; default the OMS connection.
    :return: (XCom) the sync task's id and status after the start.
    """

    template_fields: Sequence[str] = ("sync_task_id", "source_conn_id", "destination_conn_id", "oms_conn_id")

    def __init__(self, *, source_conn_id: str, destination_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source_conn_id = source_conn_id
        self.destination_conn_id = destination_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        """Start the sync task and read back its status."""
        sync = self._sync()
        fields, _ = self.hook.credentials_body(
            source_conn_id=self.source_conn_id,
            destination_conn_id=self.destination_conn_id,
            tokenless_call="start sync task",
        )
        if "src_ak" not in fields:
            raise OMSValidationError(f"a sync task needs the source AK/SK: connection {self.source_conn_id!r} has none")
        keys = ("src_ak", "src_sk", "dst_ak", "dst_sk", "source_cdn_authentication_key")
        self.hook.start_sync_task(sync, {key: fields[key] for key in keys if key in fields})
        return {"sync_task_id": sync, "status": self.hook.get_sync_task(sync).get("status")}


class StopSyncTaskOperator(_SyncOperator):
    """
    Stop a sync task.

    :param sync_task_id: the OMS sync task id. Templated.
    """

    def execute(self, context: Context) -> dict[str, Any]:
        """Stop the sync task and read back its status."""
        sync = self._sync()
        self.hook.stop_sync_task(sync)
        return {"sync_task_id": sync, "status": self.hook.get_sync_task(sync).get("status")}
