"""
Async transport: the same signed OMS calls through httpx (the provider's path) and through aiohttp, side by side.

issue 22 asks for a cheaper async transport, chosen by measurement: aiohttp is the reference, or httpx stays if
the shared poller makes the difference negligible. Both clients send the same calls, built and signed by the
provider's ``OMSRequestBuilder`` and parsed by its ``parse_response``, in the same process, turn about; the
emulator runs in a process of its own. httpx goes through the provider's own ``async_send`` (its shared client,
pool of 10 and in-flight gate); aiohttp is the alternative written here the same way (a session per loop,
10 connections, 10 calls in flight, the answer read in chunks under the same size cap). aiohttp is installed by
the ``test`` extra only: the provider does not use it.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from support import EmulatorProcess, Section, Sizes, Table, Target, sample_task_body, use_connection

from airflow_provider_oms.client import (
    MAX_RESPONSE_BYTES,
    OMSRequestBuilder,
    PreparedCall,
    body_too_large,
    parse_response,
)
from airflow_provider_oms.connections import OMSConnectionConfig
from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.triggers.oms import async_send
from airflow_provider_oms.triggers.poller import PAGE_SIZE

try:
    import aiohttp
except ImportError:  # pragma: no cover - the test extra installs it
    aiohttp = None

CONN_ID = "oms_bench_transport"
#: Calls in flight at once, as the provider's gate allows.
IN_FLIGHT = 10
#: Timed shared-poller rounds per client and number of waits.
ROUNDS = 5

Send = Callable[[PreparedCall], Awaitable[Any]]


def _floor_sender(canned: dict[str, bytes]) -> Send:
    async def send(call: PreparedCall) -> Any:  # no HTTP: the answer this URL got before, parsed
        await asyncio.sleep(0)
        return parse_response(call, 200, {}, canned.get(call.url) or canned["show"])

    return send


def _aiohttp_sender(session: Any, config: OMSConnectionConfig) -> Send:
    gate = asyncio.Semaphore(IN_FLIGHT)
    timeout = aiohttp.ClientTimeout(total=config.timeout)

    async def send(call: PreparedCall) -> Any:
        async with (
            gate,
            session.request(
                call.method,
                call.url,
                headers=call.headers,
                data=call.body or None,
                timeout=timeout,
                allow_redirects=False,
            ) as response,
        ):
            chunks, size = [], 0
            async for chunk in response.content.iter_chunked(65536):
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise body_too_large(call, response.status)
                chunks.append(chunk)
            return parse_response(call, response.status, response.headers, b"".join(chunks))

    return send


async def _timed(work: Callable[[], Awaitable[None]]) -> float:
    started = time.process_time()
    await work()
    return time.process_time() - started


async def _measure(
    builder: OMSRequestBuilder, config: OMSConnectionConfig, ids: list[str], sizes: Sizes
) -> dict[tuple[str, str], float]:
    senders: dict[str, Send] = {"httpx": lambda call: async_send(call, config)}
    session = None
    if aiohttp is not None:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=IN_FLIGHT, keepalive_timeout=60), trust_env=False
        )
        senders["aiohttp"] = _aiohttp_sender(session, config)
    cpu: dict[tuple[str, str], float] = {}
    canned: dict[str, bytes] = {}
    try:

        def show_call(task_id: str) -> PreparedCall:
            path = builder.path("/tasks/{task_id}", task_id=task_id)
            return builder.build("GET", path, operation=f"show task {task_id}")

        def page_calls(waits: int) -> list[PreparedCall]:
            calls = []
            for page in range(math.ceil(waits / PAGE_SIZE)):
                query = {"limit": PAGE_SIZE, "offset": page * PAGE_SIZE, "status": int(TaskStatus.RUNNING)}
                calls.append(builder.build("GET", builder.path("/tasks"), operation="list running tasks", query=query))
            return calls

        def shows(send: Send, start: int, count: int) -> Callable[[], Awaitable[None]]:
            async def work() -> None:
                calls = []
                for n in range(start, start + count):
                    calls.append(send(show_call(ids[n % len(ids)])))
                await asyncio.gather(*calls)

            return work

        def round_of(send: Send, waits: int) -> Callable[[], Awaitable[None]]:
            async def work() -> None:  # the shared poller's round: list pages one after the other
                for page in range(math.ceil(waits / PAGE_SIZE)):
                    query = {"limit": PAGE_SIZE, "offset": page * PAGE_SIZE, "status": int(TaskStatus.RUNNING)}
                    await send(
                        builder.build("GET", builder.path("/tasks"), operation="list running tasks", query=query)
                    )

            return work

        for send in senders.values():  # warm-up: connections opened, imports and caches filled
            await shows(send, 0, IN_FLIGHT * 2)()
        # The floor: the same calls built, signed and parsed, with the answers of one real show and real pages.
        canned["show"] = json.dumps(await senders["httpx"](show_call(ids[0]))).encode()
        for waits in sizes.poll_waits:
            for call in page_calls(waits):
                canned[call.url] = json.dumps(await senders["httpx"](call)).encode()
        senders["no HTTP (floor)"] = _floor_sender(canned)
        for start in range(0, sizes.calls, sizes.call_block):
            for name, send in senders.items():
                count = min(sizes.call_block, sizes.calls - start)
                cpu[name, "shows"] = cpu.get((name, "shows"), 0.0) + await _timed(shows(send, start, count))
        for waits in sizes.poll_waits:
            for _ in range(ROUNDS):
                for name, send in senders.items():
                    cpu[name, str(waits)] = cpu.get((name, str(waits)), 0.0) + await _timed(round_of(send, waits))
    finally:
        if session is not None:
            await session.close()
    return cpu


def run(sizes: Sizes, scratch: Path) -> Section:
    """Send ``sizes.calls`` shows and shared-poller rounds of list pages through each client, turn about."""
    section = Section(
        title="Async transport: httpx and aiohttp, the same signed calls",
        method=(
            f"{sizes.calls:,} shows (`GET /tasks/{{id}}`, {IN_FLIGHT} in flight) through each client, "
            f"{sizes.call_block} at a time turn about, then {ROUNDS} shared-poller rounds per client for "
            f"{', '.join(f'{n:,}' for n in sizes.poll_waits)} waits: one round pages through the running tasks "
            f"({PAGE_SIZE} a page, one page after the other, as the poller does when every wait asks), the project "
            f"holding {max(sizes.poll_waits):,} running tasks. Every call is built and signed by the provider's "
            "`OMSRequestBuilder` and its answer parsed by `parse_response`, so both columns include that shared work. "
            "httpx goes through the provider's `async_send`; aiohttp is the alternative, written in the benchmark "
            "the same way. The floor column builds, signs and parses the same calls with no HTTP (answers recorded "
            "before), so a client's cost is its column minus the floor. CPU is `time.process_time` of this process; "
            "the emulator runs in its own."
        ),
    )
    data_dir = scratch / "transport-data"
    (data_dir / "src" / "data").mkdir(parents=True, exist_ok=True)
    (data_dir / "src" / "data" / "one.txt").write_bytes(b"benchmark object\n")
    (data_dir / "dst").mkdir(parents=True, exist_ok=True)
    with EmulatorProcess(data_dir, scratch / "transport-emulator.log", object_delay=3600.0) as emulator:
        use_connection(CONN_ID, emulator.connection)
        hook = OMSHook(oms_conn_id=CONN_ID)
        ids = [
            str(hook.create_task(sample_task_body(save_prefix=f"t{n}/"))["id"]) for n in range(max(sizes.poll_waits))
        ]
        config = hook.config
        builder = OMSRequestBuilder(config.endpoint, config.project_id, config.credentials)
        hook.close()
        cpu = asyncio.run(_measure(builder, config, ids, sizes))
    clients = ["httpx"] + (["aiohttp"] if aiohttp is not None else []) + ["no HTTP (floor)"]
    rows = [["CPU per 1,000 shows", *(f"{cpu[c, 'shows'] * 1000 / sizes.calls:.3f} s" for c in clients)]]
    for waits in sizes.poll_waits:
        pages = math.ceil(waits / PAGE_SIZE)
        rows.append(
            [
                f"CPU per round, {waits:,} waits ({pages} list pages)",
                *(f"{cpu[c, str(waits)] / ROUNDS * 1000:.1f} ms" for c in clients),
            ]
        )
    section.tables.append(Table(headers=["", *clients], rows=rows))
    if aiohttp is None:
        section.notes.append("aiohttp is not installed (`pip install -e '.[test]'` installs it): httpx and the floor.")
    reference = 1000 if 1000 in sizes.poll_waits else max(sizes.poll_waits)
    httpx_round = cpu["httpx", str(reference)] / ROUNDS
    measured = f"httpx {httpx_round * 1000:.1f} ms"
    if aiohttp is not None:
        measured += f", aiohttp {cpu['aiohttp', str(reference)] / ROUNDS * 1000:.1f} ms"
    section.targets.append(
        Target(
            name=f"Transport CPU per shared-poller round, {reference:,} waits",
            measured=measured,
            goal="a share of the 0.15 s a round (shared polling) small enough to keep httpx",
            met=None,
        )
    )
    return section
