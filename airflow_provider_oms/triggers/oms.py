"""
Deferrable waiting: a trigger that polls an OMS migration task from the triggerer, over ``httpx``.

Requests are built and signed by the same :class:`~airflow_provider_oms.client.OMSRequestBuilder` as the sync
hook's, and answers are parsed by the same :func:`~airflow_provider_oms.client.parse_response`; only the
transport differs. Every trigger of an event loop shares one ``httpx.AsyncClient`` (one connection pool): a
triggerer runs up to a thousand triggers at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import time
import weakref
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Any

import httpx
from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret
from airflow.triggers.base import BaseTrigger, TaskFailedEvent, TaskSkippedEvent, TaskSuccessEvent, TriggerEvent

from airflow_provider_oms.client import (
    MAX_RESPONSE_BYTES,
    OMSRequestBuilder,
    PreparedCall,
    body_too_large,
    parse_response,
    transport_error,
)
from airflow_provider_oms.connections import OMSConnectionConfig, config_from_connection
from airflow_provider_oms.constants import ERROR_TASK_NOT_IN_PROGRESS, TaskStatus, status_name
from airflow_provider_oms.exceptions import AirflowException, OMSApiError
from airflow_provider_oms.iam import get_token
from airflow_provider_oms.proxies import proxy_for
from airflow_provider_oms.triggers.poller import SharedPoller, shared_poller
from airflow_provider_oms.validation import check_path_value
from airflow_provider_oms.version_compat import conf
from airflow_provider_oms.waiting import (
    Outage,
    Outcome,
    classify,
    failure_message,
    not_awaited_message,
    progress_line,
    result,
    shows_start,
    stale_start_message,
    summarize,
)

# A small pool, and no more requests in flight than connections: httpcore re-scans every connection, and every
# connection per queued request, each time a request joins or leaves, which grows with the square of the pool
# and of the queue (measured in benchmarks/: 11 s of CPU per 1,000 reads with a pool of 100, about 1 s with 10).
_POOL_SIZE = 10
_POOL_LIMITS = httpx.Limits(max_connections=_POOL_SIZE, max_keepalive_connections=_POOL_SIZE, keepalive_expiry=60)
_in_flight: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()
_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[bool | str, str | None], httpx.AsyncClient]
] = weakref.WeakKeyDictionary()


def shared_async_client(verify: bool | str, proxy: str | None = None) -> httpx.AsyncClient:
    """
    Return the ``httpx.AsyncClient`` of the running event loop for this TLS setting and proxy, creating it once.

    :param verify: TLS verification: a bool, or the path of a CA bundle.
    :param proxy: the proxy URL :func:`~airflow_provider_oms.proxies.proxy_for` chose, or ``None`` (direct).
    """
    loop = asyncio.get_running_loop()
    # A client's kept-alive connections refer to their loop, so an entry would outlive a closed loop.
    for stale in [other for other in _clients if other.is_closed()]:
        del _clients[stale]
    clients = _clients.setdefault(loop, {})
    client = clients.get((verify, proxy))
    if client is None or client.is_closed:
        tls: bool | ssl.SSLContext = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        client = httpx.AsyncClient(
            verify=tls, trust_env=False, follow_redirects=False, limits=_POOL_LIMITS, proxy=proxy
        )
        clients[(verify, proxy)] = client
    return client


async def async_send(call: PreparedCall, config: OMSConnectionConfig) -> Any:
    """Send a prepared call with the loop's shared client and parse the answer like the sync hook does."""
    client = shared_async_client(config.verify, proxy_for(call.url, config.proxy))
    loop = asyncio.get_running_loop()
    gate = _in_flight.get(loop)
    if gate is None:
        gate = _in_flight[loop] = asyncio.Semaphore(_POOL_SIZE)
    async with gate:
        return await _send_now(client, call, config)


async def _send_now(client: httpx.AsyncClient, call: PreparedCall, config: OMSConnectionConfig) -> Any:
    try:
        request = client.build_request(
            call.method, call.url, headers=call.headers, content=call.body or None, timeout=config.timeout
        )
        response = await client.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():  # decoded, as requests does
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise body_too_large(call, response.status_code)
                chunks.append(chunk)
        finally:
            await response.aclose()
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as err:  # nothing was sent
        raise transport_error(call, config.endpoint, type(err).__name__, sent=False, detail=str(err)) from err
    except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as err:
        # Sent, maybe taken; these messages name the host only.
        raise transport_error(call, config.endpoint, type(err).__name__, sent=True, detail=str(err)) from err
    except (httpx.HTTPError, OSError, ValueError) as err:
        # Others (e.g. a header value h11 refuses) may quote a header: name the error type only, drop the cause.
        raise OMSApiError(
            f"OMS {call.operation} failed before an answer from {config.endpoint} ({type(err).__name__}); check "
            "the connection's endpoint and verify settings"
        ) from None
    return parse_response(call, response.status_code, response.headers, b"".join(chunks))


async def authorized_send(
    builder: OMSRequestBuilder,
    config: OMSConnectionConfig,
    method: str,
    path: str,
    operation: str,
    query: Mapping[str, int | str | None] | None = None,
) -> Any:
    """
    Send one call, signed with AK/SK or carrying an IAM token (then a 401 renews it and tries once more).

    The token is fetched in a worker thread, so the event loop is never blocked by a login.
    """
    if config.iam is None:
        return await async_send(builder.build(method, path, operation=operation, query=query), config)
    token = await asyncio.to_thread(get_token, config.iam)
    mask_secret(token)
    try:
        return await async_send(builder.build(method, path, operation=operation, query=query, auth_token=token), config)
    except OMSApiError as err:
        if err.http_status != 401:
            raise
    token = await asyncio.to_thread(get_token, config.iam, renew=True)
    mask_secret(token)
    return await async_send(builder.build(method, path, operation=operation, query=query, auth_token=token), config)


async def _get_connection(conn_id: str) -> Any:
    aget = getattr(BaseHook, "aget_connection", None)
    if aget is not None:  # the Task SDK's async lookup: talks to the supervisor without blocking the loop
        return await aget(conn_id)
    from asgiref.sync import sync_to_async

    return await sync_to_async(BaseHook.get_connection)(conn_id)


async def connect(conn_id: str) -> tuple[OMSRequestBuilder, OMSConnectionConfig]:
    """Read the OMS connection in the triggerer; return the request builder and the connection's settings."""
    config = config_from_connection(await _get_connection(conn_id))
    return OMSRequestBuilder(config.endpoint, config.project_id, config.credentials), config


class MigrationTaskTrigger(BaseTrigger):
    """
    Poll an OMS migration task until it reaches a target status, fails, stops moving, or a deadline passes.

    Yields exactly one event: ``{"status": "success" | "failed" | "stuck" | "unknown" | "timeout" | "error",
    "migration_task_id": ..., "task": <progress and outcome fields>, "message": ..., "restarts": ...,
    "started_at": ..., "attempts": ...}``. It never starts a task;
    the operator does that before deferring, so a triggerer restart cannot start it twice.

    :param migration_task_id: the OMS task id.
    :param oms_conn_id: the OMS connection; credentials are read from it in the triggerer, never serialized.
    :param poll_interval: seconds between two reads of the task (with other waits in the same triggerer, a read may
        come up to a tenth of this later, gathered into one round: see ``triggers/poller.py``).
    :param deadline: a UNIX time after which a ``timeout`` event is sent; ``None`` waits without limit.
    :param target_statuses: statuses that end the wait successfully (default: succeeded).
    :param failure_statuses: statuses that end the wait with ``failed`` (default: failed).
    :param restarts: the operator's count of failed-object restarts so far, sent back in the event.
    :param started_at: when the operator started the task (UNIX time), sent back in the event.
    :param attempts: the figures of the attempts of this run that ended before (the operator's, see
        :func:`~airflow_provider_oms.waiting.attempt_figures`: counters only), sent back in the event.
    :param cancel_on_kill: pause the task in :meth:`on_kill`, when a person marks the deferred task failed or
        success or clears it (Airflow 3.3+). ``False`` for a sensor, which must never change what it watches.
    :param stale_fingerprint: :func:`~airflow_provider_oms.waiting.fingerprint` of the task read before the
        operator's own start; until ``grace_until``, a read still equal to it is not taken as the outcome.
    :param grace_until: the end (UNIX time) of that grace window.
    :param end_from_trigger: end the Airflow task here instead of resuming it on a worker (a sensor started in the
        triggerer): ``TaskSuccessEvent`` with the sensor's XCom, ``TaskFailedEvent``, or ``TaskSkippedEvent``.
    :param soft_fail: with ``end_from_trigger``, skip rather than fail the task when the OMS task ends in a status
        that is not awaited or the deadline passes; an error reaching OMS still fails it.
    """

    def __init__(
        self,
        *,
        migration_task_id: str,
        oms_conn_id: str,
        poll_interval: float = 30.0,
        deadline: float | None = None,
        target_statuses: Collection[int] = (TaskStatus.SUCCEEDED,),
        failure_statuses: Collection[int] = (TaskStatus.FAILED,),
        restarts: int = 0,
        started_at: float | None = None,
        attempts: Sequence[Mapping[str, Any]] | None = None,
        cancel_on_kill: bool = True,
        stale_fingerprint: Sequence[Any] | None = None,
        grace_until: float | None = None,
        end_from_trigger: bool = False,
        soft_fail: bool = False,
    ) -> None:
        super().__init__()
        self.migration_task_id = str(migration_task_id)
        self.oms_conn_id = oms_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = deadline
        self.target_statuses = [int(s) for s in target_statuses]
        self.failure_statuses = [int(s) for s in failure_statuses]
        # Echoed in the event rather than passed as defer() kwargs: `airflow dags test` drops those kwargs when
        # it runs a trigger inline, and the operator needs them after every deferral.
        self.restarts = int(restarts)
        self.started_at = started_at
        self.attempts = [dict(attempt) for attempt in attempts or ()]
        self.cancel_on_kill = bool(cancel_on_kill)
        self.stale_fingerprint = None if stale_fingerprint is None else list(stale_fingerprint)
        self.grace_until = grace_until
        self.end_from_trigger = bool(end_from_trigger)
        self.soft_fail = bool(soft_fail)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(migration_task_id={self.migration_task_id!r}, oms_conn_id={self.oms_conn_id!r})"

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the kwargs stored in the metadata database: ids and numbers only."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "migration_task_id": self.migration_task_id,
                "oms_conn_id": self.oms_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "target_statuses": self.target_statuses,
                "failure_statuses": self.failure_statuses,
                "restarts": self.restarts,
                "started_at": self.started_at,
                "attempts": self.attempts,
                "cancel_on_kill": self.cancel_on_kill,
                "stale_fingerprint": self.stale_fingerprint,
                "grace_until": self.grace_until,
                "end_from_trigger": self.end_from_trigger,
                "soft_fail": self.soft_fail,
            },
        )

    async def _connect(self) -> tuple[OMSRequestBuilder, OMSConnectionConfig]:
        return await connect(self.oms_conn_id)

    def _event(self, status: str, *, task: dict[str, Any] | None = None, message: str = "") -> TriggerEvent:
        return TriggerEvent(
            {
                "status": status,
                "migration_task_id": self.migration_task_id,
                "task": task,
                "message": message,
                "restarts": self.restarts,
                "started_at": self.started_at,
                "attempts": self.attempts,
            }
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll the task; yield one event (with ``end_from_trigger``, the one that ends the Airflow task) and return."""
        async for event in self._outcome():
            if not self.end_from_trigger:
                yield event
                return
            end = self._end_task(event.payload)
            if isinstance(end, TaskSuccessEvent):
                end = await self._push_result(end)
            yield end
            return

    async def _outcome(self) -> AsyncIterator[TriggerEvent]:
        try:
            # A task started in the triggerer was never checked by a worker, and Airflow 3.3 rendered the id here.
            self.migration_task_id = check_path_value("migration_task_id", self.migration_task_id, "task_id")
            builder, config = await self._connect()
            poller = shared_poller(builder, config)
            with poller.watching():
                async for event in self._poll(poller, config):
                    yield event
                    return
        except AirflowException as err:  # OMS errors, and a connection that does not exist
            yield self._event("error", message=str(err))

    def _end_task(self, event: Mapping[str, Any]) -> TriggerEvent:
        """
        Turn the wait's event into the one that ends the Airflow task, logging why it ends so (the task log shows it).

        Success carries the same XCom as the sensor's ``execute_complete``.
        """
        task_id, status, task = self.migration_task_id, event["status"], event.get("task") or {}
        if status == Outcome.SUCCESS.value:
            self.log.info("OMS migration task %s is %s: the sensor succeeds", task_id, status_name(task.get("status")))
            summary = result(task_id, task, restarts=0, elapsed_seconds=0.0)
            return TaskSuccessEvent(xcoms={"return_value": summary})
        if status == "error":  # OMS could not be asked: never hidden as a skip, as in poke mode
            self.log.error("Waiting for OMS migration task %s failed: %s", task_id, event.get("message"))
            return TaskFailedEvent()
        if status == Outcome.FAILED.value:
            message = failure_message(task_id, task)
        elif status == "timeout":
            message = f"OMS migration task {task_id} did not reach the awaited status within the sensor's timeout"
        else:
            message = event.get("message") or not_awaited_message(task_id, task, self.target_statuses)
        if self.soft_fail:
            self.log.warning("Skipping because soft_fail is set: %s", message)
            return TaskSkippedEvent()
        self.log.error(message)
        return TaskFailedEvent()

    async def _push_result(self, success: TaskSuccessEvent) -> TaskSuccessEvent:
        """
        Push the sensor's XCom through the Task SDK when the triggerer gave this trigger a task context (3.3).

        Airflow 3.3.2 stores a ``TaskSuccessEvent``'s ``xcoms`` JSON-encoded twice, so a downstream task would
        pull a string; pushed through the task instance, the XCom is stored as the worker path stores it.
        """
        ti = self.task_instance
        if ti is None or not success.xcoms or not hasattr(ti, "xcom_push"):  # no task context: leave it to Airflow
            return success
        # Not ti.xcom_push: it reads an attribute the triggerer's (deserialized) task does not have.
        from airflow.sdk.execution_time.xcom import XCom

        where = {"dag_id": ti.dag_id, "task_id": ti.task_id, "run_id": ti.run_id, "map_index": ti.map_index}
        for key, value in success.xcoms.items():
            await XCom.aset(key=key, value=value, **where)
        return TaskSuccessEvent()

    async def _poll(self, poller: SharedPoller, config: OMSConnectionConfig) -> AsyncIterator[TriggerEvent]:
        """Read the task every poll interval (through the loop's shared poller) until there is an outcome."""
        before = self.stale_fingerprint
        outage = Outage(config.outage_tolerance)
        while True:
            read_began = time.time()
            try:
                task = await poller.read(self.migration_task_id, poll_interval=self.poll_interval, wait_log=self.log)
            except OMSApiError as err:
                if not err.transient:
                    raise
                give_up = outage.failed(err, read_began, time.time())
                if give_up:
                    yield self._event("error", message=give_up)
                    return
                self.log.warning(outage.log_line(self.migration_task_id, err, time.time()))
                task = {}
            else:
                recovered = outage.recovered(time.time())
                if recovered:
                    self.log.info(recovered)
            if not task:  # OMS could not be asked: only the deadline can end the wait now
                if await self._sleep_until_next_read():
                    yield self._event("timeout", task=None)
                    return
                continue
            self.log.info(progress_line(self.migration_task_id, task))
            outcome = classify(task, self.target_statuses, self.failure_statuses)
            shown = shows_start(task, before, self.grace_until, time.time())
            if shown is None:
                self.log.info("OMS does not show the start of task %s yet; waiting", self.migration_task_id)
                outcome = Outcome.WAITING
            elif shown:
                before = None  # the task has moved on: from now on every status is its own
            if outcome is not Outcome.WAITING:
                message = "" if shown else stale_start_message(self.migration_task_id, task, self.started_at)
                yield self._event(outcome.value, task=summarize(task), message=message)
                return
            if await self._sleep_until_next_read():
                yield self._event("timeout", task=summarize(task))
                return

    async def _sleep_until_next_read(self) -> bool:
        """Sleep one poll interval, or until the deadline; return whether the deadline has passed."""
        wait = self.poll_interval
        if self.deadline is not None:
            remaining = self.deadline - time.time()
            if remaining <= 0:
                return True
            wait = min(wait, remaining)
        await asyncio.sleep(wait)
        return False

    async def on_kill(self) -> None:
        """
        Pause the OMS task when a user marks the deferred task failed or success, or clears it (Airflow 3.3+).

        Nothing is paused when ``cancel_on_kill`` is false (a sensor, or an operator told not to). The triggerer
        cancels this method after ``[triggerer] on_kill_timeout`` seconds, so its retries and each request's
        timeout are kept within most of that budget, and giving up is logged rather than cut short silently.
        """
        if not self.cancel_on_kill:
            self.log.info(
                "Airflow task killed while deferred; OMS migration task %s is left as it is", self.migration_task_id
            )
            return
        budget = max(1.0, 0.8 * conf.getfloat("triggerer", "on_kill_timeout", fallback=30))
        try:
            await asyncio.wait_for(self._pause(budget), budget)
            self.log.info("Paused OMS migration task %s because the Airflow task was killed", self.migration_task_id)
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            self.log.warning(
                "Could not pause OMS migration task %s within %.0f s (most of [triggerer] on_kill_timeout): it may "
                "still be running; pause it in the OMS console if it should not",
                self.migration_task_id,
                budget,
            )
        except OMSApiError as err:
            if err.error_code == ERROR_TASK_NOT_IN_PROGRESS:
                self.log.info("OMS migration task %s was not in progress; nothing to pause", self.migration_task_id)
            else:
                self.log.warning("Could not pause OMS migration task %s: %s", self.migration_task_id, err)
        except AirflowException as err:
            self.log.warning("Could not pause OMS migration task %s: %s", self.migration_task_id, err)

    async def _pause(self, budget: float) -> None:
        builder, config = await self._connect()
        # Retries and each request's timeout must fit the budget, or the triggerer's cancel cuts them short.
        config = dataclasses.replace(
            config,
            timeout=min(config.timeout, budget),
            retry_policy=dataclasses.replace(
                config.retry_policy, max_seconds=min(config.retry_policy.max_seconds, budget)
            ),
        )
        path = builder.path("/tasks/{task_id}/stop", task_id=self.migration_task_id)
        operation = f"stop task {self.migration_task_id}"

        async def stop() -> Any:
            return await authorized_send(builder, config, "POST", path, operation)

        await config.retry_policy.acall(stop, operation=operation, repeat_is_safe=True, log=self.log)
