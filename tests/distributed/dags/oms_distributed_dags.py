"""
DAGs of the distributed deployment test (tests/distributed): StartMigrationTaskOperator under the CeleryExecutor.

Each run gets the OMS task ids in its conf; a small task turns them into the list the mapped operators expand
over, so that one DAG run holds as many starts as the test asks for. The fan-out's starts (the outage's too) and
the mark-failed ones read the source keys from an `aws` connection kept in the metadata database.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, get_current_context, task

from airflow_provider_oms.operators.oms import StartMigrationTaskOperator

CONN_ID = "oms_distributed"
SOURCE_CONN_ID = "oms_dist_source"
#: Seconds between two reads of a task while waiting: a few polls per migration, and a quick end.
POLL = 2
#: The operator timeout of the triggerer-loss scenario's deadline task (the test knows it too).
DEADLINE_SECONDS = 45


@task
def task_ids(param: str) -> list[str]:
    """The OMS task ids in the run's conf under ``param``."""
    return [str(value) for value in get_current_context()["params"][param]]


def _dag(dag_id: str, **params: Param) -> DAG:
    return DAG(
        dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, params=params, max_active_tasks=64
    )


with _dag("oms_dist_fanout", worker_tasks=Param([], type="array"), deferred_tasks=Param([], type="array")) as fanout:
    # Half the waits hold a Celery worker slot, half are handed to a triggerer; retries=0: a failure shows.
    StartMigrationTaskOperator.partial(
        task_id="wait_in_worker",
        oms_conn_id=CONN_ID,
        source_conn_id=SOURCE_CONN_ID,
        poll_interval=POLL,
        deferrable=False,
    ).expand(migration_task_id=task_ids.override(task_id="worker_task_ids")("worker_tasks"))
    StartMigrationTaskOperator.partial(
        task_id="wait_in_triggerer",
        oms_conn_id=CONN_ID,
        source_conn_id=SOURCE_CONN_ID,
        poll_interval=POLL,
        deferrable=True,
    ).expand(migration_task_id=task_ids.override(task_id="deferred_task_ids")("deferred_tasks"))


with _dag("oms_dist_worker_loss", migration_task_id=Param("", type="string")) as worker_loss:
    # One retry, soon: the retry must find the OMS task still running and wait for it, not start it again.
    StartMigrationTaskOperator(
        task_id="wait_in_worker",
        oms_conn_id=CONN_ID,
        migration_task_id="{{ params.migration_task_id }}",
        poll_interval=POLL,
        deferrable=False,
        retries=1,
        retry_delay=timedelta(seconds=3),
    )


with _dag(
    "oms_dist_triggerer_loss", deferred_tasks=Param([], type="array"), deadline_task=Param("", type="string")
) as triggerer_loss:
    StartMigrationTaskOperator.partial(
        task_id="wait_in_triggerer", oms_conn_id=CONN_ID, poll_interval=POLL, deferrable=True
    ).expand(migration_task_id=task_ids.override(task_id="deferred_task_ids")("deferred_tasks"))
    # A migration far longer than its timeout: the trigger must fire at the deadline set when it was started,
    # even after it moved to another triggerer.
    StartMigrationTaskOperator(
        task_id="deadline",
        oms_conn_id=CONN_ID,
        migration_task_id="{{ params.deadline_task }}",
        poll_interval=POLL,
        deferrable=True,
        timeout=DEADLINE_SECONDS,
    )


with _dag(
    "oms_dist_mark_failed", pause_task=Param("", type="string"), leave_task=Param("", type="string")
) as mark_failed:
    # Long migrations, deferred until a person marks the tasks failed: the triggerer's on_kill then pauses the
    # first OMS task and leaves the second running.
    StartMigrationTaskOperator(
        task_id="pause_on_kill",
        oms_conn_id=CONN_ID,
        source_conn_id=SOURCE_CONN_ID,
        migration_task_id="{{ params.pause_task }}",
        poll_interval=POLL,
        deferrable=True,
        cancel_on_kill=True,
    )
    StartMigrationTaskOperator(
        task_id="leave_on_kill",
        oms_conn_id=CONN_ID,
        source_conn_id=SOURCE_CONN_ID,
        migration_task_id="{{ params.leave_task }}",
        poll_interval=POLL,
        deferrable=True,
        cancel_on_kill=False,
    )
