"""
A consumer scheduled on a migration's destination is queued whatever the forms (issue 19, requirement 3).

The consumer writes the URI with or without the trailing slash; the producer declares an ``Asset`` outlet or fills
an ``AssetAlias``; OMS's ``save_prefix`` ends in ``/`` or not. One URI has one active asset name in a deployment,
so each consumer form gets an Airflow home (SQLite metadata database) of its own, holding every combination of
the other two (tests/deployment/dags/oms_asset_forms.py).

The producer runs with ``airflow dags test`` against the emulator. Its tasks report success through Airflow's
execution API (in process here, the API server in a deployment), whose ``ti_update_state`` route records the
outlet events with ``TaskInstance.register_asset_changes_in_db`` -> ``AssetManager.register_asset_change``: the
code that fills ``asset_dag_run_queue`` for unpaused consumers in a deployment too, where the scheduler then
turns queued rows into runs. The test reads that queue, not only ``asset_event``: an event on another asset row
with the same URI queues nobody.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.testing import OMSEmulator
from airflow_provider_oms.testing.airflow_runner import AirflowTestEnvironment
from tests.helpers import paused_sample_task

pytestmark = pytest.mark.e2e

DAG_FILE = Path(__file__).resolve().parent / "dags" / "oms_asset_forms.py"
PRODUCER = "oms_asset_forms_producer"
CONN_ID = "huaweicloud_oms_default"
#: (producer kind, save_prefix form) -> the OMS save_prefix of its task (as in the DAG file).
SAVE_PREFIXES = {
    ("outlet", "slash"): "outlet-slash/",
    ("outlet", "plain"): "outlet-plain",
    ("alias", "slash"): "alias-slash/",
    ("alias", "plain"): "alias-plain",
}
#: The save_prefix of the task whose destination no DAG declares (task alias_new).
NEW_DESTINATION_PREFIX = "alias-new/"


class FormAirflow(AirflowTestEnvironment):
    """An Airflow home whose DAG files write the consumers' URIs in one form (``slash`` or ``plain``)."""

    def __init__(self, home: Path, dags_folder: Path, emulator: OMSEmulator, consumer_form: str) -> None:
        super().__init__(home, dags_folder, {CONN_ID: emulator.airflow_connection()})
        self.consumer_form = consumer_form

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env["OMS_TEST_CONSUMER_FORM"] = self.consumer_form
        return env

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of a query on the metadata database."""
        with closing(sqlite3.connect(self.home / "airflow.db")) as db:
            return db.execute(sql).fetchall()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OMSEmulator]:
    """A quick emulator; the connection in this process's environment points at it, for the hook here."""
    with (
        OMSEmulator(tmp_path_factory.mktemp("buckets"), task_start_delay=1.0, object_delay=0.1) as emu,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", emu.airflow_connection_uri_env())
        yield emu


@pytest.mark.parametrize("consumer_form", ["slash", "plain"])
def test_every_unpaused_consumer_is_queued_whatever_the_forms(
    tmp_path: Path, emulator: OMSEmulator, consumer_form: str
) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(DAG_FILE, dags)
    airflow = FormAirflow(tmp_path / "home", dags, emulator, consumer_form)
    hook = OMSHook(CONN_ID)
    conf = {
        f"{kind}_{form}": paused_sample_task(
            emulator, hook, files=2, prefix=f"{consumer_form}-{kind}-{form}/", save_prefix=save_prefix
        )
        for (kind, form), save_prefix in SAVE_PREFIXES.items()
    }
    conf["alias_new"] = paused_sample_task(
        emulator, hook, files=2, prefix=f"{consumer_form}-new/", save_prefix=NEW_DESTINATION_PREFIX
    )

    result = airflow.dags_test(PRODUCER, conf)

    assert result.succeeded, result.output[-6000:]
    slash = "/" if consumer_form == "slash" else ""
    consumers = {f"oms_asset_forms_consumer_{kind}_{form}": f"obs://dst/{kind}-{form}" for kind, form in SAVE_PREFIXES}
    # as set up: the consumers unpaused, their twins paused, each consumer's asset in the form of this home
    paused = dict(airflow.rows("SELECT dag_id, is_paused FROM dag WHERE dag_id LIKE 'oms_asset_forms_consumer_%'"))
    assert paused == {dag_id: 0 for dag_id in consumers} | {f"{dag_id}_paused": 1 for dag_id in consumers}
    events = airflow.rows(
        "SELECT asset_event.source_task_id, asset.name, asset.uri FROM asset_event "
        "JOIN asset ON asset.id = asset_event.asset_id ORDER BY asset_event.id"
    )
    context = f"asset events (task, asset name, uri): {events}"

    queued = {
        dag_id: (name, uri)
        for dag_id, name, uri in airflow.rows(
            "SELECT queue.target_dag_id, asset.name, asset.uri FROM asset_dag_run_queue AS queue "
            "JOIN asset ON asset.id = queue.asset_id"
        )
    }

    # every unpaused consumer is queued on its own asset (the name as it wrote it, the URI without the slash),
    # and no paused twin is
    assert queued == {dag_id: (uri + slash, uri) for dag_id, uri in consumers.items()}, context
    # one event per producer task, each on the consumer's asset, and no second name for any URI; a destination
    # that no DAG declares becomes an asset in the canonical form, name = URI, without the trailing slash
    assert sorted(events) == sorted(
        [
            *(
                (f"{kind}_{form}", f"obs://dst/{kind}-{form}{slash}", f"obs://dst/{kind}-{form}")
                for kind, form in SAVE_PREFIXES
            ),
            ("alias_new", "obs://dst/alias-new", "obs://dst/alias-new"),
        ]
    ), context
    # each event carries its own migration's figures
    extras = [json.loads(extra) for (extra,) in airflow.rows("SELECT extra FROM asset_event")]
    assert sorted(extra["migration_task_id"] for extra in extras) == sorted(conf.values()), extras
