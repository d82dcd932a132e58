"""
The alternative async transport of the benchmarks: the provider's prepared, signed calls sent with aiohttp.

What the trigger's httpx path does, with aiohttp instead (as Airflow's HTTP provider does in ``HttpAsyncHook``):
one session per event loop with a pool of 10 connections, no environment proxies, no redirects, the connection's
timeout, the answer read up to the provider's cap and parsed by the provider's own ``parse_response``. Benchmark
only: :func:`install` swaps it in for ``airflow_provider_oms.triggers.oms.async_send`` in the process it runs in.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import aiohttp
from yarl import URL

from airflow_provider_oms.client import MAX_RESPONSE_BYTES, PreparedCall, body_too_large, parse_response
from airflow_provider_oms.connections import OMSConnectionConfig
from airflow_provider_oms.triggers import oms as oms_module

_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = weakref.WeakKeyDictionary()


def _session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None:
        session = _sessions[loop] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=10), trust_env=False, auto_decompress=True
        )
    return session


async def aiohttp_send(call: PreparedCall, config: OMSConnectionConfig) -> Any:
    """Send a prepared call with the loop's aiohttp session and parse the answer as the provider does."""
    timeout = aiohttp.ClientTimeout(total=config.timeout)
    async with _session().request(
        call.method,
        URL(call.url, encoded=True),  # already percent-encoded and signed as it is: not re-encoded
        headers=call.headers,
        data=call.body or None,
        allow_redirects=False,
        timeout=timeout,
    ) as response:
        body = await response.content.read(MAX_RESPONSE_BYTES + 1)
        if len(body) > MAX_RESPONSE_BYTES:
            raise body_too_large(call, response.status)
        return parse_response(call, response.status, response.headers, body)


def install() -> None:
    """Send the triggers' calls in this process through aiohttp."""
    oms_module.async_send = aiohttp_send  # type: ignore[assignment]
