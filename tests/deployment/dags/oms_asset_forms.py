"""
One destination prefix written in every form, for tests/deployment/test_asset_consumers.py.

For each OMS ``save_prefix`` form (``outlet-slash/`` with the trailing slash, ``outlet-plain`` without), the
producer DAG has a task declaring the destination as an ``Asset`` outlet, and one filling an ``AssetAlias`` (the
operator adds the destination it reads from OMS). Each destination has a consumer DAG scheduled on it, unpaused,
and a twin of that consumer, paused. One more task fills an alias with a destination that no DAG declares
(``alias-new/``): Airflow creates that asset.

The consumers write their URI in the form ``OMS_TEST_CONSUMER_FORM`` says: ``slash`` (``obs://dst/p/``) or
``plain`` (``obs://dst/p``). One URI has one active asset name in a deployment, so the test runs each form in an
Airflow home of its own; a producer's declared ``Asset`` is the consumer's, as the docs ask (one form everywhere).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, Asset, AssetAlias, Param, task

from airflow_provider_oms.operators.oms import StartMigrationTaskOperator

CONSUMER_FORM = os.environ.get("OMS_TEST_CONSUMER_FORM", "plain")
#: (producer kind, save_prefix form): one destination each, bucket ``dst``, prefix ``{kind}-{form}``.
COMBINATIONS = [(kind, form) for kind in ("outlet", "alias") for form in ("slash", "plain")]


def save_prefix(kind: str, form: str) -> str:
    """The OMS ``save_prefix`` of a combination's task."""
    return f"{kind}-{form}/" if form == "slash" else f"{kind}-{form}"


def consumer_asset(kind: str, form: str) -> Asset:
    """The destination as the consumers of this Airflow home write it."""
    return Asset(f"obs://dst/{kind}-{form}" + ("/" if CONSUMER_FORM == "slash" else ""))


with DAG(
    "oms_asset_forms_producer",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={task_id: Param("", type=["string", "integer"]) for task_id in [*map("_".join, COMBINATIONS), "alias_new"]},
):
    for kind, form in COMBINATIONS:
        StartMigrationTaskOperator(
            task_id=f"{kind}_{form}",
            migration_task_id=f"{{{{ params.{kind}_{form} }}}}",
            poll_interval=1,
            deferrable=True,
            outlets=[consumer_asset(kind, form) if kind == "outlet" else AssetAlias(f"oms-{kind}-{form}")],
        )
    StartMigrationTaskOperator(
        task_id="alias_new",
        migration_task_id="{{ params.alias_new }}",
        poll_interval=1,
        deferrable=True,
        outlets=[AssetAlias("oms-alias-new")],
    )

for kind, form in COMBINATIONS:
    for paused in (False, True):
        with DAG(
            f"oms_asset_forms_consumer_{kind}_{form}" + ("_paused" if paused else ""),
            schedule=[consumer_asset(kind, form)],
            start_date=datetime(2026, 1, 1),
            catchup=False,
            is_paused_upon_creation=paused,
        ):

            @task
            def read_figures(triggering_asset_events=None) -> list:
                """Return the figures of the migrations whose asset events triggered this run."""
                return [dict(event.extra) for events in triggering_asset_events.values() for event in events]

            read_figures()
