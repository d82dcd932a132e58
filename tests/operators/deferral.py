"""Drive a deferrable operator as Airflow does: execute, rebuild the trigger from its serialized form, run it in
an event loop, resume with its event, and again after every re-deferral."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any
from unittest import mock

from airflow.sdk.module_loading import import_string

try:
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 3.1
    from airflow.exceptions import TaskDeferred  # type: ignore[no-redef,attr-defined]

WAIT = 30.0


def rebuilt(deferred: TaskDeferred) -> Any:
    """The trigger as the triggerer rebuilds it from the metadata database."""
    classpath, kwargs = deferred.trigger.serialize()
    return import_string(classpath)(**kwargs)


def run_trigger(trigger: Any, timeout: float = WAIT) -> dict:
    """Run a trigger to its one event and return the event's payload."""

    async def collect() -> list:
        return [event async for event in trigger.run()]

    events = asyncio.run(asyncio.wait_for(collect(), timeout))
    assert len(events) == 1, events
    return events[0].payload


def run_operator(operator: Any, context: dict | None = None, timeout: float = WAIT) -> Any:
    """Execute an operator to its end, running each trigger it defers to; return what it returns."""
    context = context if context is not None else retry_context(try_number=1)
    try:
        return operator.execute(context=context)
    except TaskDeferred as err:
        deferred = err
    while True:
        payload = run_trigger(rebuilt(deferred), timeout)
        try:
            return getattr(operator, deferred.method_name)(context=context, event=payload)
        except TaskDeferred as err:
            deferred = err


def retry_context(
    *, try_number: int = 2, max_tries: int | None = None, dag_run_started: datetime | None = None
) -> dict:
    """A context for an Airflow try: a task instance that takes XComs, and the DAG run's start date."""
    ti = mock.Mock()
    ti.try_number = try_number
    ti.max_tries = max_tries if max_tries is not None else max(try_number - 1, 0)
    ti.dag_id, ti.run_id, ti.task_id, ti.map_index = "dag", "manual__1", "task", -1
    started = dag_run_started or datetime.now(timezone.utc) - timedelta(minutes=5)
    return {"ti": ti, "dag_run": SimpleNamespace(start_date=started)}
