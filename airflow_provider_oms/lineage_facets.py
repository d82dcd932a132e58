"""
The OpenLineage run facet of an OMS migration, ``oms_migration``.

Its JSON schema ships in the package, ``schemas/OMSMigrationRunFacet.json``, as the Airflow providers ship theirs
(the Google provider's ``BigQueryJobRunFacet.json``); ``_schemaURL`` names it at this release, and ``_producer`` is
this provider, not the OpenLineage provider that emits the event.

Imported only by :func:`airflow_provider_oms.lineage.operator_lineage`, that is only when the OpenLineage
provider is installed and its listener asks an operator for lineage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import define, field
from openlineage.client.facet_v2 import RunFacet

from airflow_provider_oms import __version__

#: This provider at this release: the ``_producer`` of its facets (OpenLineage asks for a URI naming the producer
#: and its version). The project publishes the distribution ``airflow-provider-oms``.
PRODUCER = f"https://pypi.org/project/airflow-provider-oms/{__version__}/"
#: The facet's schema, relative to the package, and the ``_schemaURL`` that names it in this release.
SCHEMA_PATH = "schemas/OMSMigrationRunFacet.json"
SCHEMA_URL = f"{PRODUCER}airflow_provider_oms/{SCHEMA_PATH}#/$defs/OMSMigrationRunFacet"


@define
class OMSMigrationRunFacet(RunFacet):
    """
    The outcome of one OMS migration: task id, status and figures, and where the failed-object list is.

    The counters are the run's totals over its attempts, each object counted once (``waiting.run_totals``).

    :param migrationTaskId: the OMS task id.
    :param status: the OMS status name (``succeeded``, ``failed``...).
    :param totalNum: objects listed.
    :param successfulNum: objects migrated.
    :param failedNum: objects that failed.
    :param skippedNum: objects skipped (already in place).
    :param completeSize: bytes done.
    :param totalSize: bytes listed.
    :param elapsedSeconds: how long the operator waited.
    :param restarts: restarts for the failed objects.
    :param failedObjectListKey: the key of the failed-object list in the destination bucket, if any.
    :param attempts: each attempt's own figures, as OMS counted them when it ended: ``kind`` (``whole_task``,
        ``failed_objects``), ``statusName`` and the counters above.
    """

    # camelCase, as OpenLineage facets name their fields
    migrationTaskId: str
    status: str | None = None
    totalNum: int | None = None
    successfulNum: int | None = None
    failedNum: int | None = None
    skippedNum: int | None = None
    completeSize: int | None = None
    totalSize: int | None = None
    elapsedSeconds: float | None = None
    restarts: int | None = None
    failedObjectListKey: str | None = None
    attempts: list[dict[str, Any]] | None = None
    # This provider, where the base facet's default is the OpenLineage provider that emits the event.
    _producer: str = field(default=PRODUCER, kw_only=True)

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA_URL

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any], failed_object_list_key: str | None) -> OMSMigrationRunFacet:
        """Build the facet from the operator's result."""
        attempts = [{_camel(key): value for key, value in attempt.items()} for attempt in summary.get("attempts") or []]
        return cls(
            migrationTaskId=str(summary.get("migration_task_id")),
            status=summary.get("status_name"),
            totalNum=summary.get("total_num"),
            successfulNum=summary.get("successful_num"),
            failedNum=summary.get("failed_num"),
            skippedNum=summary.get("skipped_num"),
            completeSize=summary.get("complete_size"),
            totalSize=summary.get("total_size"),
            elapsedSeconds=summary.get("elapsed_seconds"),
            restarts=summary.get("restarts"),
            failedObjectListKey=failed_object_list_key,
            attempts=attempts or None,
        )


def _camel(key: str) -> str:
    """``successful_num`` -> ``successfulNum``, as OpenLineage facets name their fields."""
    first, *rest = key.split("_")
    return first + "".join(part.capitalize() for part in rest)
