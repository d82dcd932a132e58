"""Operators for Huawei Cloud OMS migration tasks."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_oms.constants import status_name
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.validation import check_path_value, coerce_bool

if TYPE_CHECKING:
    from airflow.sdk import Context


class StartMigrationTaskOperator(BaseOperator):
    """
    Start (resume) a paused or failed OMS migration task.

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
    :return: (XCom) ``{"migration_task_id", "migrate_failed_object", "status", "status_name"}``, the status
        read back right after the start.
    """

    template_fields: Sequence[str] = (
        "migration_task_id",
        "migrate_failed_object",
        "oms_conn_id",
        "source_conn_id",
        "destination_conn_id",
    )
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        migration_task_id: str | int,
        migrate_failed_object: bool | str = False,
        oms_conn_id: str = OMSHook.default_conn_name,
        source_conn_id: str | None = None,
        destination_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.migration_task_id = migration_task_id
        self.migrate_failed_object = migrate_failed_object
        self.oms_conn_id = oms_conn_id
        self.source_conn_id = source_conn_id
        self.destination_conn_id = destination_conn_id

    @cached_property
    def hook(self) -> OMSHook:
        """The OMS hook of this operator's connection."""
        return OMSHook(oms_conn_id=self.oms_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        """Check the input, start the OMS task and return its id and status."""
        failed_only = coerce_bool("migrate_failed_object", self.migrate_failed_object)
        task_id = check_path_value("migration_task_id", self.migration_task_id, "task_id")
        body = self.hook.build_start_task_body(
            migrate_failed_object=failed_only,
            source_conn_id=self.source_conn_id or None,
            destination_conn_id=self.destination_conn_id or None,
        )
        self.log.info(
            "Starting OMS migration task %s (%s)",
            task_id,
            "failed objects only" if failed_only else "all objects",
        )
        self.hook.start_task(task_id, body)
        task = self.hook.get_task(task_id)
        status = task.get("status")
        self.log.info("OMS migration task %s started; status now %s (%s)", task_id, status, status_name(status))
        return {
            "migration_task_id": task_id,
            "migrate_failed_object": failed_only,
            "status": status,
            "status_name": status_name(status),
        }
