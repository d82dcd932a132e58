"""
What the OMS operators and sensors share: the connection's hook, made on first use, and the lineage they keep.

Kept light on purpose: a DAG file imports the operators every time it is parsed and calls nothing, so the hook,
the HTTP client and the waiting logic are imported where they are first used, not here.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from airflow_provider_oms.hooks.oms import OMSHook


class OMSHookMixin:
    """Gives an operator or sensor with an ``oms_conn_id`` its :class:`~airflow_provider_oms.hooks.oms.OMSHook`."""

    oms_conn_id: str
    #: Whether this operator moves data (starts or creates a migration). Only then does it name datasets: to hook
    #: lineage (its hook reports the migration it creates or reads, once) and to OpenLineage. Sensors, stop and
    #: delete only watch or change a task: they are no producers.
    moves_data: ClassVar[bool] = False

    @cached_property
    def hook(self) -> OMSHook:
        """The OMS hook of this task's connection."""
        from airflow_provider_oms.hooks.oms import OMSHook

        return OMSHook(oms_conn_id=self.oms_conn_id, report_lineage=self.moves_data)


class MigrationLineageMixin(OMSHookMixin):
    """
    Keeps what OpenLineage asks for of the migration task an operator or sensor started or watched.

    The subclass sets ``_lineage_task_id`` once it knows the task, ``_lineage_task`` to a full read (source and
    destination) and ``_lineage_summary`` to the outcome's figures. An operator that moves data reports the
    source and the OBS destination; one that only watches (a sensor) reports the figures as a run facet only.
    """

    _lineage_task_id: str | None = None
    _lineage_task: dict[str, Any] | None = None
    _lineage_summary: dict[str, Any] | None = None

    def _task_with_nodes(self, task_id: str, *, timeout: float | None = None) -> dict[str, Any] | None:
        """
        Return the task's last full read (source and destination), reading it once if this run has none.

        After a deferral the trigger's event holds the figures only; the read happens only when an alias or
        OpenLineage needs the nodes, so a plain run makes no extra request.

        :param timeout: read with one attempt of at most this many seconds (for OpenLineage's listener); default
            the connection's timeout and retries.
        """
        from airflow_provider_oms.exceptions import OMSError
        from airflow_provider_oms.lineage import has_nodes

        if self._lineage_task is None or not has_nodes(self._lineage_task):
            try:
                self._lineage_task = self.hook.get_task(task_id, timeout=timeout)
            except OMSError as err:
                self.log.warning("Could not read OMS migration task %s for lineage: %s", task_id, err)  # type: ignore[attr-defined]
                return None
        return self._lineage_task

    def _source_account(self) -> str | None:
        """Return the Azure storage account of an Azure source (``wasbs://container@account``), from its connection."""
        from airflow_provider_oms import lineage

        task = self._lineage_task or {}
        source_conn_id = getattr(self, "source_conn_id", None)
        if lineage.scheme_of((task.get("src_node") or {}).get("cloud_type")) != "wasbs" or not source_conn_id:
            return None
        try:
            extra = self.hook.get_connection(source_conn_id).extra_dejson
        except Exception:  # lineage must never fail a task: without the account the namespace is wasbs://container
            return None
        return lineage.azure_account(extra.get("connection_string"))

    def _operator_lineage(self, *, failed: bool) -> Any:
        """
        Build the OpenLineage of this run from what the operator knows, or one short read of the task.

        OpenLineage's listener waits ``[openlineage] execution_timeout`` for extraction and emission together: a
        read with the hook's retries (up to two minutes during an outage) would lose the event.
        """
        from airflow_provider_oms import lineage

        task = None
        if self.moves_data and self._lineage_task_id:
            task = self._task_with_nodes(self._lineage_task_id, timeout=lineage.listener_read_timeout())
        account = self._source_account() if task else None
        return lineage.operator_lineage(task, self._lineage_summary, account=account, failed=failed)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Report the source and destination (if this operator moved data) and the migration's figures."""
        return self._operator_lineage(failed=False)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """Report what is known of a failed migration: its datasets, its figures and OMS's reason, if it ended."""
        return self._operator_lineage(failed=True)
