"""
Per call: show-task and start-task through OMSHook, the official OmsClient and a bare requests.Session.

The emulator runs in a process of its own, so ``time.process_time`` here counts only the client's CPU. The
three clients take turns in blocks (the order rotating), each timed call by itself:

* show: ``GET /v2/{project}/tasks/{id}`` of one task, which never leaves "waiting".
* start: each client has its own paused task; every start is followed by an untimed stop by the same client.
  The emulator's ``task_start_delay`` is an hour, so a started task stays "waiting" and a stop pauses it at
  once: every start is a valid one, and only the starts are timed.

The floor is the minimal correct signed client: it signs each request afresh with the provider's signer
functions (a fresh ``X-Sdk-Date``), sends it on the hook's path (a prepared request through ``Session.send``,
the hook's session settings and send arguments), checks the status and decodes the JSON answer. The gap between
it and the hook is the hook's own work.
"""

from __future__ import annotations

import gc
import json
import time
import timeit
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from support import EmulatorProcess, Section, Sizes, Table, Target, sample_task_body, us, use_connection

from airflow_provider_oms import signer
from airflow_provider_oms.client import (
    CONTENT_TYPE_JSON_BODY,
    CONTENT_TYPE_NO_BODY,
    USER_AGENT,
    Credentials,
    OMSRequestBuilder,
)
from airflow_provider_oms.hooks.oms import OMSHook

CONN_ID = "oms_bench_per_call"
TARGET_OVER_FLOOR = 0.10


class HookClient:
    """The provider: one OMSHook, its start body built once as the operator does."""

    name = "OMSHook (provider)"

    def __init__(self) -> None:
        self.hook = OMSHook(oms_conn_id=CONN_ID)
        self.body = self.hook.build_start_task_body()

    def show(self, task_id: str) -> Any:
        """Read a task."""
        return self.hook.get_task(task_id)

    def start(self, task_id: str) -> None:
        """Start a paused task."""
        self.hook.start_task(task_id, self.body)

    def stop(self, task_id: str) -> None:
        """Pause a task."""
        self.hook.stop_task(task_id)


class SdkClient:
    """The official SDK's OmsClient, as a PythonOperator would use it."""

    name = "official OmsClient"

    def __init__(self, connection: dict[str, Any]) -> None:
        from huaweicloudsdkcore.auth.credentials import BasicCredentials
        from huaweicloudsdkoms.v2 import OmsClient, ShowTaskRequest, StartTaskReq, StartTaskRequest, StopTaskRequest

        self._show, self._start, self._body, self._stop = (
            ShowTaskRequest,
            StartTaskRequest,
            StartTaskReq,
            StopTaskRequest,
        )
        credentials = BasicCredentials(connection["login"], connection["password"], connection["extra"]["project_id"])
        self.client = (
            OmsClient.new_builder()
            .with_credentials(credentials)
            .with_endpoints([connection["extra"]["endpoint"]])
            .build()
        )
        self._ak, self._sk = connection["login"], connection["password"]

    def show(self, task_id: str) -> Any:
        """Read a task."""
        return self.client.show_task(self._show(task_id=task_id))

    def start(self, task_id: str) -> None:
        """Start a paused task."""
        body = self._body(dst_ak=self._ak, dst_sk=self._sk, migrate_failed_object=False)
        self.client.start_task(self._start(task_id=task_id, body=body))

    def stop(self, task_id: str) -> None:
        """Pause a task."""
        self.client.stop_task(self._stop(task_id=task_id))


class FloorClient:
    """
    The minimal correct signed client: no client that talks to OMS can do less.

    Each request is signed afresh with the provider's signer functions (a fresh ``X-Sdk-Date``, the same headers
    the hook signs) and sent on the hook's path: a prepared request through ``Session.send`` on a session set up
    as the hook's (``trust_env`` off), with the same send arguments. Then it checks the status and decodes the
    JSON answer. What it leaves out is the hook's own work: argument checks, the retry wrapper, the capped
    streamed read and error-aware parsing.
    """

    name = "bare requests, signed per request (floor)"

    def __init__(self, connection: dict[str, Any], timeout: float, verify: bool | str) -> None:
        self.session = requests.Session()
        self.session.trust_env = False
        endpoint = connection["extra"]["endpoint"]
        self.base_url = endpoint.rstrip("/")
        self.host = endpoint.split("://", 1)[1].rstrip("/")
        self.project = connection["extra"]["project_id"]
        self.ak, self.sk = connection["login"], connection["password"]
        self.timeout, self.verify = timeout, verify

    def _send(self, method: str, path: str, body: bytes = b"") -> requests.Response:
        path = f"/v2/{self.project}{path}"
        headers = {
            "Content-Type": CONTENT_TYPE_JSON_BODY if body else CONTENT_TYPE_NO_BODY,
            "Host": self.host,
            "User-Agent": USER_AGENT,
            signer.HEADER_PROJECT_ID: self.project,
            signer.HEADER_DATE: signer.format_sdk_date(),
        }
        signed = signer.sign(
            method=method, path=path, query="", headers=headers, body=body, access_key=self.ak, secret_key=self.sk
        )
        session = self.session
        prepared = requests.Request(
            method,
            self.base_url + path,
            headers={**session.headers, **signed},
            data=body or None,
            cookies=session.cookies,
        ).prepare()
        response = session.send(prepared, timeout=self.timeout, verify=self.verify, allow_redirects=False, proxies={})
        if response.status_code != 200:
            raise RuntimeError(f"{method} {path} answered HTTP {response.status_code}: {response.text[:200]}")
        return response

    def show(self, task_id: str) -> Any:
        """Read a task."""
        return self._send("GET", f"/tasks/{task_id}").json()

    def start(self, task_id: str) -> None:
        """Start a paused task."""
        body = {"dst_ak": self.ak, "dst_sk": self.sk, "migrate_failed_object": False}
        self._send("POST", f"/tasks/{task_id}/start", json.dumps(body).encode())

    def stop(self, task_id: str) -> None:
        """Pause a task."""
        self._send("POST", f"/tasks/{task_id}/stop")


class Series:
    """What one client's timed calls of one kind added up to."""

    def __init__(self) -> None:
        self.calls = 0
        self.cpu = 0.0
        self.wall = 0.0
        self.walls: list[float] = []
        self.requests: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.connections = 0

    @property
    def cpu_per_call(self) -> float:
        """Client CPU seconds per timed call."""
        return self.cpu / self.calls

    def time(self, call: Callable[[str], Any], task_id: str, count: int, after: Callable[[str], Any] | None) -> None:
        """Make ``count`` calls, timing each by itself; ``after`` runs untimed after each."""
        process_time, perf_counter = time.process_time, time.perf_counter
        for _ in range(count):
            cpu, wall = process_time(), perf_counter()
            call(task_id)
            wall_end, cpu_end = perf_counter(), process_time()
            self.cpu += cpu_end - cpu
            self.wall += wall_end - wall
            self.walls.append(wall_end - wall)
            if after is not None:
                after(task_id)
        self.calls += count


def _create_task(hook: OMSHook, *, paused: bool) -> str:
    task_id = str(hook.create_task(sample_task_body())["id"])
    if paused:
        hook.stop_task(task_id)
    return task_id


def _signing(connection: dict[str, Any], number: int) -> tuple[Table, dict[str, float]]:
    """
    Time to sign one request: the provider's signer, its whole request building, and the SDK's signer.

    :return: the table, and the seconds of the provider's request building by kind (``show``, ``start``).
    """
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.sdk_request import SdkRequest
    from huaweicloudsdkcore.signer.signer import Signer

    ak, sk, project = connection["login"], connection["password"], connection["extra"]["project_id"]
    endpoint = connection["extra"]["endpoint"]
    host = endpoint.split("://", 1)[1]
    builder = OMSRequestBuilder(endpoint, project, Credentials(ak, sk))
    show_path = builder.path("/tasks/{task_id}", task_id="1234567890")
    start_path = builder.path("/tasks/{task_id}/start", task_id="1234567890")
    body = {"dst_ak": ak, "dst_sk": sk, "migrate_failed_object": False}
    headers = {
        "Content-Type": "application/json",
        "Host": host,
        "User-Agent": "airflow-provider-oms",
        signer.HEADER_PROJECT_ID: project,
        signer.HEADER_DATE: signer.format_sdk_date(),
    }
    sdk_signer = Signer(BasicCredentials(ak, sk, project))

    def sdk_sign() -> None:
        sdk_signer.sign(
            SdkRequest(
                method="GET",
                schema="http",
                host=host,
                resource_path=show_path,
                uri=show_path,
                query_params=[],
                header_params={"Content-Type": "application/json", "X-Project-Id": project},
                body="",
            )
        )

    build_show = (
        "provider `OMSRequestBuilder.build` (GET show: date, headers, signature)",
        lambda: builder.build("GET", show_path),
    )
    build_start = (
        "provider `OMSRequestBuilder.build` (POST start: JSON body too)",
        lambda: builder.build("POST", start_path, json_body=body),
    )
    cases: list[tuple[str, Callable[[], Any]]] = [
        (
            "provider `signer.sign` alone (GET show)",
            lambda: signer.sign(
                method="GET", path=show_path, query="", headers=headers, body=b"", access_key=ak, secret_key=sk
            ),
        ),
        build_show,
        build_start,
        ("official SDK `Signer.sign` (GET show, with its SdkRequest)", sdk_sign),
    ]
    rows = []
    best: dict[str, float] = {}
    for label, function in cases:
        best[label] = min(timeit.repeat(function, number=number, repeat=5)) / number
        rows.append([label, f"{best[label] * 1e6:.1f} us"])
    table = Table(["what", "time per request (best of 5)"], rows, title="Signing time per request")
    return table, {"show": best[build_show[0]], "start": best[build_start[0]]}


def _retry_wrapper(hook: OMSHook, number: int) -> float:
    """Seconds the hook's retry wrapper (tenacity) adds to each call that succeeds at once."""
    policy = hook.config.retry_policy

    def wrapped() -> None:
        policy.call(lambda: None, operation="benchmark", repeat_is_safe=True, log=hook.log)

    return min(timeit.repeat(wrapped, number=number, repeat=5)) / number


def run(sizes: Sizes, scratch: Path) -> Section:
    """Measure ``sizes.calls`` calls of each kind per client, in turns of ``sizes.call_block``."""
    block = min(sizes.call_block, sizes.calls)
    calls = sizes.calls // block * block
    warmup = 20 if sizes.quick else 50
    repeat = 2000 if sizes.quick else 20000
    section = Section(
        title="Per call: show task and start task",
        method=(
            f"{calls:,} sequential calls of each kind per client against the emulator in a separate process on "
            f"127.0.0.1 (so `time.process_time` counts only the client). The clients take turns in blocks of {block}, "
            f"the order rotating; {warmup} untimed warm-up calls each. Every start is followed by an untimed stop "
            "(the emulator's `task_start_delay` is an hour, so a started task stays waiting and a stop pauses it "
            "at once); only starts are timed. The floor is the minimal correct signed client: it signs each request "
            "afresh with the provider's signer functions (a fresh `X-Sdk-Date`), sends it on the hook's path (a "
            "prepared request through `Session.send`, the hook's session settings and send arguments), checks the "
            "status and decodes the JSON. The official client runs with its defaults. The clients share one process "
            "and take turns, so load from other processes on the machine falls on all of them alike. Requests, "
            "connections opened (during the timed calls, after the warm-up) and "
            "error answers are counted by the emulator."
        ),
    )
    with EmulatorProcess(
        scratch / "per-call-data", scratch / "per-call-emulator.log", task_start_delay=3600
    ) as emulator:
        use_connection(CONN_ID, emulator.connection)
        setup_hook = OMSHook(oms_conn_id=CONN_ID)
        show_id = _create_task(setup_hook, paused=False)
        start_ids = [_create_task(setup_hook, paused=True) for _ in range(3)]
        config = setup_hook.config
        clients: list[Any] = [
            HookClient(),
            SdkClient(emulator.connection),
            FloorClient(emulator.connection, config.timeout, config.verify),
        ]
        results: dict[tuple[str, str], Series] = {}
        for kind in ("show", "start"):
            for index, client in enumerate(clients):
                task_id = show_id if kind == "show" else start_ids[index]
                stop = None if kind == "show" else client.stop
                Series().time(getattr(client, kind), task_id, warmup, stop)
                results[(client.name, kind)] = Series()
            for number in range(calls // block):
                turn = number % len(clients)
                order = clients[turn:] + clients[:turn]
                for client in order:
                    index = clients.index(client)
                    task_id = show_id if kind == "show" else start_ids[index]
                    series = results[(client.name, kind)]
                    emulator.reset()
                    gc.collect()
                    series.time(getattr(client, kind), task_id, block, None if kind == "show" else client.stop)
                    stats = emulator.stats()
                    series.requests.update(stats["by_kind"])
                    series.errors.update(stats["errors"])
                    series.connections += stats["connections_opened"]
        signing_table, build_seconds = _signing(emulator.connection, repeat)
        section.tables.append(signing_table)
        retry_seconds = _retry_wrapper(clients[0].hook, repeat)

    rows = []
    for kind in ("show", "start"):
        floor = results[(clients[2].name, kind)]
        sdk = results[(clients[1].name, kind)]
        for client in clients:
            series = results[(client.name, kind)]
            cpu = series.cpu_per_call
            wanted = "GET show" if kind == "show" else "POST start"
            rows.append(
                [
                    kind,
                    client.name,
                    us(cpu),
                    f"{cpu / floor.cpu_per_call:.2f}x",
                    f"{cpu / sdk.cpu_per_call:.2f}x",
                    f"{series.calls / series.wall:,.0f}",
                    us(sorted(series.walls)[len(series.walls) // 2]),
                    f"{series.requests[wanted] / series.calls:.2f}",
                    str(series.connections),
                    ", ".join(f"{code} x{count}" for code, count in series.errors.items()) or "none",
                ]
            )
    section.tables.insert(
        0,
        Table(
            [
                "call",
                "client",
                "client CPU per call",
                "vs floor",
                "vs SDK",
                "calls/s",
                "median latency",
                "requests per call",
                "connections opened",
                "error answers",
            ],
            rows,
        ),
    )
    hook_name, floor_name = clients[0].name, clients[2].name
    for kind in ("show", "start"):
        hook_cpu = results[(hook_name, kind)].cpu_per_call
        floor_cpu = results[(floor_name, kind)].cpu_per_call
        over = hook_cpu / floor_cpu - 1
        why = ""
        if over > TARGET_OVER_FLOOR:
            extra = hook_cpu - floor_cpu
            rest = extra - retry_seconds
            why = (
                f"{us(hook_cpu - floor_cpu * (1 + TARGET_OVER_FLOOR))} over the target. Of the hook's extra "
                f"{us(extra)} per {kind} call: the retry wrapper {us(retry_seconds)} (measured alone); the rest, "
                f"{us(rest)}, is the hook's other work, not measured part by part (argument checks, the request "
                "builder's path checks and quoting, the streamed read that caps the answer's size, error-aware "
                "parsing" + (", the start body's check" if kind == "start" else "") + ")."
            )
        section.targets.append(
            Target(
                f"OMSHook client CPU per {kind} call vs the floor",
                f"{us(hook_cpu)} vs {us(floor_cpu)} ({over:+.0%})",
                f"<= +{TARGET_OVER_FLOOR:.0%}",
                over <= TARGET_OVER_FLOOR,
                why,
            )
        )
    sdk_name = clients[1].name
    for kind in ("show", "start"):
        hook_cpu, floor_cpu, sdk_cpu = (
            results[(name, kind)].cpu_per_call for name in (hook_name, floor_name, sdk_name)
        )
        section.notes.append(
            f"{kind}: the hook costs {us(hook_cpu)} per call, the floor {us(floor_cpu)} "
            f"({(hook_cpu - floor_cpu) * 1e6:+,.0f} us, {hook_cpu / floor_cpu - 1:+.0%}), the official client "
            f"{us(sdk_cpu)} (the hook costs {hook_cpu / sdk_cpu:.2f}x of it). Both the hook and the "
            "floor build and sign every request; building and signing one costs the provider "
            f"{us(build_seconds[kind])}, measured alone."
        )
    section.notes.append(
        f"The hook's retry wrapper costs {us(retry_seconds)} per call that succeeds at once, measured alone "
        "(tenacity comes in only after a failure)."
    )
    return section
