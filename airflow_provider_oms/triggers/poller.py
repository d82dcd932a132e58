"""
One poller for many deferred waits, so that a thousand of them cost a few OMS requests a round.

The waits of one event loop that share an OMS endpoint, project, credentials, TLS setting and proxy read their
tasks through one :class:`SharedPoller`.

Each wait keeps its own loop (poll interval, stale-start grace, outage tolerance, deadline, progress lines,
``on_kill``): only the read changes. When a wait asks for its task, the poller gathers the asks of a short moment
into a round. A round with few asks, or with fewer asks than the pages the running tasks fill, reads each task with
one show (``GET /tasks/{id}``), as a lone wait always did; so does a round whose tasks are not running yet
(status 1), until a show finds one running. Otherwise it pages through the project's running tasks
(``GET /tasks?status=2``, 100 a page, newest first, stopping once every asked task was seen) and reads each asked
task that is not among them (it changed state) with one show. A round gathers the asks of a tenth of the
shortest poll interval among its waits (6 s at most), so a read comes at most that late and never sooner than
its wait's interval. Waits that sleep the same interval after the same round ask together again, so their rounds
stay merged; waits that deferred further apart than the gather window keep separate rounds, at most about ten per
poll interval.

The list call, its retries and its backoff (a 429's ``Retry-After``) serve every wait of the round at once. The
list's status filter takes one value and lists every running task of the project, watched or not: the poller
compares the pages this takes with the number of asks before choosing it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import secrets
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow_provider_oms.constants import TaskStatus

if TYPE_CHECKING:
    from airflow_provider_oms.client import OMSRequestBuilder
    from airflow_provider_oms.connections import OMSConnectionConfig

log = logging.getLogger(__name__)

#: Tasks per page of the list call (the API's maximum).
PAGE_SIZE = 100
#: Below this many asks in a round, each task is read with a show.
MIN_SHARED_ASKS = 4
#: While shows are chosen over the list, list anyway every this many rounds, to learn how many tasks run.
LIST_REFRESH_ROUNDS = 20
#: How long a round waits for more asks once the first came: a tenth of the shortest poll interval among its waits,
#: and at most this (a tenth of the event trigger's default 60 s). So waits make at most about ten rounds per poll
#: interval however far apart they deferred, and each read comes at most a tenth of its interval late.
GATHER_SECONDS = 6.0

_HASH_KEY = secrets.token_bytes(32)
_pollers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], SharedPoller]] = (
    weakref.WeakKeyDictionary()
)


def _identity(config: OMSConnectionConfig) -> str:
    """Return a keyed hash of what authenticates the calls (AK/SK and token, or the IAM user and password)."""
    parts: tuple[Any, ...] = (
        config.credentials.access_key,
        config.credentials.secret_key,
        config.credentials.security_token,
    )
    if config.iam is not None:
        parts += config.iam.cache_key  # its password part is already a keyed hash
    return hmac.new(_HASH_KEY, repr(parts).encode("utf-8"), hashlib.sha256).hexdigest()


def shared_poller(builder: OMSRequestBuilder, config: OMSConnectionConfig) -> SharedPoller:
    """
    Return the running event loop's poller for this connection's endpoint, project, credentials, TLS and proxy.

    Pollers are kept per event loop: ``airflow dags test`` runs each trigger in a fresh ``asyncio.run``.
    """
    loop = asyncio.get_running_loop()
    pollers = _pollers.setdefault(loop, {})
    key = (config.endpoint, config.project_id, _identity(config), config.verify, config.proxy)
    poller = pollers.get(key)
    if poller is None:
        poller = pollers[key] = SharedPoller(builder, config)
    return poller


class SharedPoller:
    """
    Reads migration tasks for the waits of one event loop and one connection key (see the module's docstring).

    :param builder: builds and signs the calls.
    :param config: the connection's settings: retry policy, timeout, TLS, proxy, IAM.
    """

    def __init__(self, builder: OMSRequestBuilder, config: OMSConnectionConfig) -> None:
        self._builder = builder
        self._config = config
        self._asks: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._gather = GATHER_SECONDS
        self._rounds: asyncio.Task[None] | None = None
        self._rounds_without_list = 0
        #: How many tasks the last list said were running (``None``: not listed yet).
        self.running_count: int | None = None
        #: How many waits are watching a task through this poller.
        self.watched = 0

    @contextmanager
    def watching(self, tasks: int = 1) -> Iterator[None]:
        """Count a wait (or an event trigger's ``tasks`` watched tasks) while it runs."""
        self.watched += tasks
        try:
            yield
        finally:
            self.watched -= tasks

    async def read(self, migration_task_id: str, *, poll_interval: float, wait_log: Any) -> dict[str, Any]:
        """
        Return the task as OMS shows it now: read in the next round (a list page or a show).

        A lone wait's read is one show with the retry policy and the wait's own log, as before the poller.

        :raises OMSApiError: when OMS could not be asked or refused (after the retry policy).
        """
        if self.watched < MIN_SHARED_ASKS:
            return await self._show(migration_task_id, wait_log)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._asks.setdefault(migration_task_id, []).append(answer)
        self._gather = min(self._gather, max(0.0, poll_interval / 10))
        if self._rounds is None or self._rounds.done():
            self._rounds = loop.create_task(self._run_rounds())
        # A cancelled wait (a kill) cancels only its own answer: the round serves the others.
        return await answer

    async def _run_rounds(self) -> None:
        while self._asks:
            await asyncio.sleep(self._gather)
            asks, self._asks, self._gather = self._asks, {}, GATHER_SECONDS
            try:
                found = await self._read_many(set(asks))
            except Exception as err:  # handed to every wait of the round, which decides
                for answers in asks.values():
                    for answer in answers:
                        if not answer.done():
                            answer.set_exception(err)
                continue
            for task_id, answers in asks.items():
                result = found[task_id]
                for answer in answers:
                    if answer.done():
                        continue
                    if isinstance(result, BaseException):
                        answer.set_exception(result)
                    else:
                        answer.set_result(result)

    async def _read_many(self, task_ids: set[str]) -> dict[str, dict[str, Any] | BaseException]:
        found: dict[str, dict[str, Any] | BaseException] = {}
        pages = None if self.running_count is None else max(1, math.ceil(self.running_count / PAGE_SIZE))
        # The count of running tasks goes stale while shows are chosen: list again now and then to refresh it.
        refresh = self._rounds_without_list >= LIST_REFRESH_ROUNDS
        # The list serves at most as many asks as there are running tasks (none, when the watched tasks still wait
        # to start in status 1): it pays only when that is more than the pages it takes.
        served = len(task_ids) if self.running_count is None else min(len(task_ids), self.running_count)
        if len(task_ids) >= MIN_SHARED_ASKS and (pages is None or pages < served or refresh):
            self._rounds_without_list = 0
            found.update(await self._list_running(task_ids))
        else:
            self._rounds_without_list += 1
        missing = [task_id for task_id in task_ids if task_id not in found]
        shows = await asyncio.gather(*(self._show(task_id, log) for task_id in missing), return_exceptions=True)
        found.update(zip(missing, shows, strict=True))
        running = sum(isinstance(task, dict) and task.get("status") == TaskStatus.RUNNING for task in shows)
        if self.running_count is not None and running > self.running_count:
            self.running_count = None  # more tasks run than the last list said (they started): list next round
        return found

    async def _list_running(self, task_ids: set[str]) -> dict[str, dict[str, Any]]:
        """Page through the running tasks until every asked one was seen or the list ends."""
        from airflow_provider_oms.triggers.oms import authorized_send

        found: dict[str, dict[str, Any]] = {}
        offset = 0
        path = self._builder.path("/tasks")
        while True:
            query = {"limit": PAGE_SIZE, "offset": offset, "status": int(TaskStatus.RUNNING)}

            async def page(query: dict[str, int] = query) -> Any:
                return await authorized_send(self._builder, self._config, "GET", path, "list running tasks", query)

            answer = (
                await self._config.retry_policy.acall(
                    page, operation="list running tasks", repeat_is_safe=True, log=log
                )
                or {}
            )
            tasks = answer.get("tasks") or []
            self.running_count = int(answer.get("count") or 0)
            for task in tasks:
                task_id = str(task.get("id"))
                if task_id in task_ids:
                    found[task_id] = task
            offset += PAGE_SIZE
            if len(found) == len(task_ids) or not tasks or offset >= self.running_count:
                return found

    async def list_all(
        self, *, status: int, task_name: str | None, group_id: str | None, wait_log: Any
    ) -> list[dict[str, Any]]:
        """
        Return every task in ``status`` that matches the name filter and task group, page after page.

        Each page goes through the connection's retry policy (a 429 waits its ``Retry-After``), as the running
        list does.
        """
        from airflow_provider_oms.triggers.oms import authorized_send

        tasks: list[dict[str, Any]] = []
        path = self._builder.path("/tasks")
        operation = f"list tasks in status {status}"
        while True:
            query: dict[str, int | str] = {"limit": PAGE_SIZE, "offset": len(tasks), "status": status}
            query.update({key: value for key, value in (("task_name", task_name), ("group_id", group_id)) if value})

            async def page(query: dict[str, int | str] = query) -> Any:
                return await authorized_send(self._builder, self._config, "GET", path, operation, query)

            answer = await self._config.retry_policy.acall(page, operation=operation, repeat_is_safe=True, log=wait_log)
            listed = (answer or {}).get("tasks") or []
            tasks.extend(listed)
            if not listed or len(tasks) >= int((answer or {}).get("count") or 0):
                return tasks

    async def _show(self, migration_task_id: str, wait_log: Any) -> dict[str, Any]:
        from airflow_provider_oms.triggers.oms import authorized_send

        path = self._builder.path("/tasks/{task_id}", task_id=migration_task_id)
        operation = f"show task {migration_task_id}"

        async def show() -> Any:
            return await authorized_send(self._builder, self._config, "GET", path, operation)

        return await self._config.retry_policy.acall(show, operation=operation, repeat_is_safe=True, log=wait_log) or {}
