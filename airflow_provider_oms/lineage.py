"""
What a migration reports as lineage: its source and destination datasets, asset events and their figures.

The operators call these after a migration has an outcome; the hook of an operator that moves data (start,
create) calls :func:`report_hook_lineage` once, when it first creates or reads the task. Sensors, stop and delete
name no dataset: lineage names producers only. Naming follows the OpenLineage spec where it has an entry (``s3://bucket``,
``gs://bucket``, ``wasbs://container@account``) and ``{scheme}://bucket`` for the other clouds OMS migrates
from; see ``docs/lineage.md``. Nothing here holds a credential: the task objects that show-task returns carry
none, and an Azure account name is read from a connection string without its key.

The OpenLineage provider is optional: it is imported only inside :func:`operator_lineage`, which only the
OpenLineage listener calls.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_oms.assets import OBS_SCHEME

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

#: OMS ``cloud_type`` -> the URI scheme of its object storage (the OpenLineage namespace's scheme).
CLOUD_TYPE_SCHEMES: dict[str, str] = {
    "AWS": "s3",
    "Google": "gs",
    "Azure": "wasbs",
    "Aliyun": "oss",
    "Tencent": "cos",
    "HuaweiCloud": OBS_SCHEME,
    "QingCloud": "qingstor",
    "KingsoftCloud": "ks3",
    "Baidu": "bos",
    "Qiniu": "kodo",
    "UCloud": "ufile",
}
#: OMS's own default ``cloud_type`` (the SDK's documentation).
DEFAULT_CLOUD_TYPE = "Aliyun"
#: A task that migrates the URLs listed in a file in OBS: its input is that list file.
URL_LIST_TASK = "url_list"
#: The fields of a task that lineage needs besides the figures; show-task returns them, trigger events do not.
NODE_FIELDS = ("task_type", "src_node", "dst_node")

#: (namespace, name) of an OpenLineage dataset.
DatasetRef = tuple[str, str]
#: The longest a lineage method waits for OMS, in seconds (see :func:`listener_read_timeout`).
LINEAGE_READ_SECONDS = 2.5


def _name(key: Any) -> str:
    """
    Return a dataset name for a key or prefix: without the slashes around it, ``/`` for the whole bucket.

    Airflow drops an Asset URI's trailing slashes, so ``obs://warehouse/landing/`` is the asset
    ``obs://warehouse/landing``; names follow, so that the operator's datasets and the assets' are the same.
    """
    return str(key or "").strip("/") or "/"


def has_nodes(task: Mapping[str, Any]) -> bool:
    """Whether a task object holds its source and destination (a show-task answer, not a trigger's summary)."""
    return isinstance(task.get("src_node"), Mapping) and isinstance(task.get("dst_node"), Mapping)


def scheme_of(cloud_type: str | None) -> str:
    """Return the URI scheme of an OMS ``cloud_type`` (unknown ones: the cloud type in lower case)."""
    cloud_type = cloud_type or DEFAULT_CLOUD_TYPE
    return CLOUD_TYPE_SCHEMES.get(cloud_type, cloud_type.lower())


def azure_account(connection_string: str | None) -> str | None:
    """
    Return the ``AccountName`` of an Azure connection string, never any other part of it (the key is secret).

    :param connection_string: ``DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...``.
    """
    for part in (connection_string or "").split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "accountname" and value.strip():
            return value.strip()
    return None


def source_datasets(task: Mapping[str, Any], *, account: str | None = None) -> list[DatasetRef]:
    """
    Return the input datasets of a migration task: one per ``object_key`` entry (or the whole bucket).

    :param task: a show-task answer.
    :param account: the Azure storage account (``wasbs://container@account``), when the source is Azure.
    """
    src = task.get("src_node") or {}
    if task.get("task_type") == URL_LIST_TASK:
        list_file = src.get("list_file") or {}
        if not list_file.get("obs_bucket"):
            return []
        return [(f"{OBS_SCHEME}://{list_file['obs_bucket']}", _name(list_file.get("list_file_key")))]
    bucket = src.get("bucket")
    if not bucket:
        return []
    scheme = scheme_of(src.get("cloud_type"))
    authority = f"{bucket}@{account}" if scheme == "wasbs" and account else str(bucket)
    keys = [_name(key) for key in src.get("object_key") or [] if key] or ["/"]
    return [(f"{scheme}://{authority}", key) for key in keys]


def destination_dataset(task: Mapping[str, Any]) -> DatasetRef | None:
    """Return the output dataset of a migration task: ``obs://{bucket}`` and the save prefix (or ``/``)."""
    dst = task.get("dst_node") or {}
    if not dst.get("bucket"):
        return None
    return f"{OBS_SCHEME}://{dst['bucket']}", _name(dst.get("save_prefix"))


def destination_uri(task: Mapping[str, Any]) -> str | None:
    """Return the Asset URI of a migration's destination, ``obs://{bucket}/{save_prefix}``."""
    dst = task.get("dst_node") or {}
    if not dst.get("bucket"):
        return None
    return f"{OBS_SCHEME}://{dst['bucket']}/{str(dst.get('save_prefix') or '').lstrip('/')}"


def figures(summary: Mapping[str, Any]) -> dict[str, Any]:
    """
    Return the figures of a migration for an asset event's extra (JSON, no credential).

    The counters are the run's totals, each object counted once across its restarts; ``attempts`` holds each
    attempt's own counters as OMS showed them when it ended (docs/lineage.md, "What the figures count").

    :param summary: the operator's result (:func:`airflow_provider_oms.waiting.result`).
    """
    return {
        "migration_task_id": summary.get("migration_task_id"),
        "status": summary.get("status_name"),
        "total_num": summary.get("total_num"),
        "successful_num": summary.get("successful_num"),
        "failed_num": summary.get("failed_num"),
        "skipped_num": summary.get("skipped_num"),
        "complete_size": summary.get("complete_size"),
        "total_size": summary.get("total_size"),
        "elapsed_seconds": summary.get("elapsed_seconds"),
        "restarts": summary.get("restarts"),
        "attempts": [dict(attempt) for attempt in summary.get("attempts") or ()],
    }


def failed_object_list_key(summary: Mapping[str, Any]) -> str | None:
    """Return the key of the failed-object list in the destination bucket, if OMS wrote one."""
    record = summary.get("failed_object_record") or {}
    key = record.get("list_file_key") if isinstance(record, Mapping) else None
    return str(key) if key else None


def emit_asset_events(
    context: Context, outlets: Iterable[Any], task: Mapping[str, Any] | None, summary: Mapping[str, Any]
) -> None:
    """
    Set the extra of each declared Asset outlet's event, and add the destination to each AssetAlias outlet.

    :param context: the task's context (its ``outlet_events``).
    :param outlets: the operator's outlets.
    :param task: a show-task answer (for the destination); ``None`` when no alias needs it.
    :param summary: the operator's result.
    """
    from airflow.sdk import Asset, AssetAlias

    outlets = list(outlets or [])
    if not outlets:
        return
    extra = figures(summary)
    outlet_events = context["outlet_events"]
    for outlet in outlets:
        if isinstance(outlet, AssetAlias):
            uri = destination_uri(task or {})
            if uri is None:
                log.warning("No destination known for asset alias %r; no asset event added", outlet.name)
                continue
            _add_destination(outlet_events[outlet], uri, dict(extra))
        elif isinstance(outlet, Asset):
            outlet_events[outlet].extra = dict(extra)


def _add_destination(alias_events: Any, uri: str, extra: dict[str, Any]) -> None:
    """
    Add the destination to an AssetAlias outlet's events as the asset that exists for its URI.

    Airflow keys an asset by name *and* URI: ``Asset("obs://b/p/")`` (named ``obs://b/p/``) and
    ``Asset("obs://b/p")`` share the URI ``obs://b/p`` but are two assets, and an event on one queues no consumer
    scheduled on the other. So the destination is added as ``Asset.ref(uri=...)``, which the task SDK resolves
    (at ``add()``, through the execution API) to the active asset of that URI, in whatever form the DAGs declared
    it; only when there is none yet (``ASSET_NOT_FOUND``) is it added in the canonical form: name = URI, without
    the trailing slash. Airflow 3.1.3 and later resolve a ref in ``add()`` alike.

    :param alias_events: ``context["outlet_events"][alias]``.
    :param uri: the destination, ``obs://{bucket}/{save_prefix}``, its trailing slash or not.
    :param extra: the asset event's extra.
    """
    from airflow.sdk import Asset
    from airflow.sdk.exceptions import AirflowRuntimeError, ErrorType

    canonical = Asset(uri).uri  # normalised (no trailing slash): a ref by a URI ending in "/" matches no asset
    try:
        alias_events.add(Asset.ref(uri=canonical), extra=extra)
    except AirflowRuntimeError as err:
        if err.error.error != ErrorType.ASSET_NOT_FOUND:
            raise
        # The task supervisor has logged "Asset not found" for the lookup (its process, out of this one's reach).
        log.info("No DAG declares an asset of %s: adding it to the alias as Asset(%r)", canonical, canonical)
        alias_events.add(Asset(name=canonical, uri=canonical), extra=extra)


def report_hook_lineage(hook: Any, task: Mapping[str, Any], *, account: str | None = None) -> None:
    """
    Report a task's source as input and destination as output to Airflow's hook-lineage collector.

    A no-op collector unless a hook-lineage reader (the OpenLineage plugin) is enabled.

    :param hook: the hook reporting (the lineage context).
    :param task: a show-task answer or a create body (``src_node``, ``dst_node``, ``task_type``).
    :param account: the Azure storage account, when the source is Azure.
    """
    try:
        from airflow.sdk.lineage import get_hook_lineage_collector
    except ImportError:  # Airflow 3.1
        from airflow.lineage.hook import get_hook_lineage_collector  # type: ignore[no-redef]

    collector = get_hook_lineage_collector()
    for namespace, name in source_datasets(task, account=account):
        collector.add_input_asset(hook, uri=f"{namespace}/{name.lstrip('/')}")
    dst = task.get("dst_node") or {}
    if dst.get("bucket"):
        # Through the factory this provider registers for obs (``assets.create_asset``), as S3Hook does for s3.
        key = str(dst.get("save_prefix") or "").lstrip("/")
        collector.add_output_asset(hook, scheme=OBS_SCHEME, asset_kwargs={"bucket": dst["bucket"], "key": key})


def listener_read_timeout() -> float:
    """
    Return the timeout of the one read of OMS that a lineage method may make.

    OpenLineage's listener gives extraction and emission together ``[openlineage] execution_timeout`` (10 s by
    default in apache-airflow-providers-openlineage 2.x), then abandons the event: the read takes at most a quarter
    of it, and never more than :data:`LINEAGE_READ_SECONDS`.
    """
    from airflow_provider_oms.version_compat import conf

    return min(LINEAGE_READ_SECONDS, conf.getfloat("openlineage", "execution_timeout", fallback=10.0) / 4)


def output_statistics(summary: Mapping[str, Any], task: Mapping[str, Any]) -> dict[str, Any]:
    """
    Return what a migration wrote to its destination: ``fileCount`` and ``size`` of OpenLineage's output statistics.

    ``fileCount`` is OMS's ``successful_num`` (objects migrated: skipped ones were in place already), ``size`` its
    ``real_size`` (bytes migrated, skipped objects left out), from the outcome or else the task's last full read.

    :param summary: the operator's result.
    :param task: a show-task answer.
    """
    return {"fileCount": summary.get("successful_num"), "size": summary.get("real_size", task.get("real_size"))}


def operator_lineage(
    task: Mapping[str, Any] | None,
    summary: Mapping[str, Any] | None,
    *,
    account: str | None = None,
    failed: bool = False,
) -> Any:
    """
    Build the ``OperatorLineage`` of a migration: inputs, the OBS output and the OMS run facet.

    The output carries the standard ``outputStatistics`` facet and a failed migration the standard
    ``errorMessage`` run facet (OMS's reason), where the figures exist. Imports the OpenLineage provider: call it
    only from ``get_openlineage_facets_on_*``.

    :param task: a show-task answer (source and destination); ``None`` when the task was never read, or when the
        operator moved no data (a sensor): then no dataset is reported.
    :param summary: the operator's result; ``None`` when the migration has no outcome.
    :param account: the Azure storage account, when the source is Azure.
    :param failed: the lineage of a failed Airflow task.
    """
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import Dataset, OutputDataset
    from openlineage.client.facet_v2 import error_message_run, output_statistics_output_dataset

    from airflow_provider_oms.constants import TaskStatus
    from airflow_provider_oms.lineage_facets import PRODUCER, OMSMigrationRunFacet
    from airflow_provider_oms.waiting import failure_message

    task = task or {}
    inputs = [Dataset(namespace=namespace, name=name) for namespace, name in source_datasets(task, account=account)]
    destination = destination_dataset(task)
    output_facets: dict[str, Any] = {}
    if destination and summary:
        statistics = output_statistics(summary, task)
        output_facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
            size=statistics["size"], fileCount=statistics["fileCount"], producer=PRODUCER
        )
    outputs = [OutputDataset(*destination, outputFacets=output_facets)] if destination else []
    run_facets: dict[str, Any] = {}
    if summary:
        run_facets["oms_migration"] = OMSMigrationRunFacet.from_summary(summary, failed_object_list_key(summary))
        if failed and summary.get("status") == TaskStatus.FAILED:
            # The listener replaces it with the Airflow task's exception when it has one, which says the same.
            message = failure_message(str(summary.get("migration_task_id")), summary)
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message, programmingLanguage="python", producer=PRODUCER
            )
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets=run_facets)
