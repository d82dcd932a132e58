"""
The ``obs`` URI scheme for Airflow Assets, registered in the provider info's ``asset-uris``.

Airflow loads these three functions through its ``ProvidersManager``: without them an ``obs://`` asset is
never normalised, the hook-lineage collector cannot build one from ``(bucket, key)``, and OpenLineage never
sees it. They follow the shapes of the ``s3`` and ``gs`` handlers of the Amazon and Google providers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult

from airflow.sdk import Asset

if TYPE_CHECKING:
    from openlineage.client.event_v2 import Dataset as OpenLineageDataset

#: The URI scheme of Huawei Cloud OBS, also the OpenLineage namespace's (``obs://{bucket}``).
OBS_SCHEME = "obs"


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """
    Check an ``obs://bucket/key`` URI: it must name a bucket.

    :param uri: the URI, split.
    :return: the URI unchanged.
    :raises ValueError: when the URI has no bucket.
    """
    if not uri.netloc:
        raise ValueError("URI format obs:// must contain a bucket name")
    return uri


def create_asset(*, bucket: str, key: str = "", extra: dict[str, Any] | None = None) -> Asset:
    """
    Build the Asset of an OBS bucket and key (or prefix): ``obs://{bucket}/{key}``, without a trailing slash.

    Airflow names an Asset after the URI as written and drops the URI's trailing slash, so ``landing/`` and
    ``landing`` would be two assets of one URI; the factory builds the one form the docs use (name = URI).

    :param bucket: the OBS bucket.
    :param key: the object key or prefix; empty for the whole bucket.
    :param extra: the asset's extra.
    """
    return Asset(uri=f"{OBS_SCHEME}://{bucket}/{key.strip('/')}", extra=extra)


def convert_asset_to_openlineage(asset: Asset, lineage_context: Any) -> OpenLineageDataset:
    """
    Turn an ``obs://`` Asset into an OpenLineage dataset: namespace ``obs://{bucket}``, name the key or ``/``.

    Called by the OpenLineage provider only, so its client is imported here.

    :param asset: the Asset.
    :param lineage_context: the OpenLineage context (unused).
    """
    from urllib.parse import urlsplit

    from openlineage.client.event_v2 import Dataset

    parsed = urlsplit(asset.uri)
    return Dataset(namespace=f"{OBS_SCHEME}://{parsed.netloc}", name=parsed.path.strip("/") or "/")
