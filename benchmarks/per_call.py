"""
Per call: show-task and start-task through OMSHook, the official OmsClient and a bare requests.Session.

The emulator runs in a process of its own, so ``time.process_time`` here counts only the client's CPU. The
three clients take turns in blocks (the order rotating), each timed call by itself:

* show: ``GET /v2/{project}/tasks/{id}`` of one task, which never leaves "waiting".
* start: each client has its own paused task; every start is followed by an untimed stop by the same client.
  The emulator's ``task_start_delay`` is an hour, so a started task stays "waiting" and a stop pauses it at
  once: every start is a valid one, and only the starts are timed.

The floor signs its two requests once in advance (with the provider's signer) and does only what any client
must: send with ``Session.request``, check the status, decode the JSON answer. A second floor row sends the
same requests as the hook does, prepared and through ``Session.send``: the gap between the two floors is what
that path saves, the gap between it and the hook is the hook's own work.
"""

from __future__ import annotations

import gc
import time
import timeit
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from support import EmulatorProcess, Section, Sizes, Table, Target, sample_task_body, us, use_connection

from airflow_provider_oms import signer
from airflow_provider_oms.client import Credentials, OMSRequestBuilder, PreparedCall
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
    """A bare requests.Session sending requests signed once in advance: no client can do less."""

    name = "bare requests, pre-signed (floor)"

    def __init__(self, connection: dict[str, Any], show_id: str, start_id: str) -> None:
        self.session = requests.Session()
        self.session.trust_env = False
        builder = OMSRequestBuilder(
            connection["extra"]["endpoint"],
            connection["extra"]["project_id"],
            Credentials(connection["login"], connection["password"]),
        )
        body = {"dst_ak": connection["login"], "dst_sk": connection["password"], "migrate_failed_object": False}
        self.calls: dict[tuple[str, str], PreparedCall] = {
            ("show", show_id): builder.build("GET", builder.path("/tasks/{task_id}", task_id=show_id)),
            ("start", start_id): builder.build(
                "POST", builder.path("/tasks/{task_id}/start", task_id=start_id), json_body=body
            ),
            ("stop", start_id): builder.build("POST", builder.path("/tasks/{task_id}/stop", task_id=start_id)),
        }

    def _send(self, action: str, task_id: str) -> requests.Response:
        call = self.calls[(action, task_id)]
        response = self.session.request(call.method, call.url, headers=call.headers, data=call.body or None)
        return self._checked(action, response)

    @staticmethod
    def _checked(action: str, response: requests.Response) -> requests.Response:
        if response.status_code != 200:
            raise RuntimeError(f"{action} answered HTTP {response.status_code}: {response.text[:200]}")
        return response

    def show(self, task_id: str) -> Any:
        """Read a task."""
        return self._send("show", task_id).json()

    def start(self, task_id: str) -> None:
        """Start a paused task."""
        self._send("start", task_id)

    def stop(self, task_id: str) -> None:
        """Pause a task."""
        self._send("stop", task_id)


class PreparedFloorClient(FloorClient):
    """
    The floor on the hook's send path: requests' documented prepared request and ``Session.send``.

    ``Session.request`` merges the session's cookies (into a fresh jar), environment and settings into each
    request; a client that prepares its complete, signed request itself skips that, as the hook does. The
    difference between this row and the floor is what that path saves; between this row and the hook, the hook's
    own work.
    """

    name = "bare requests, pre-signed, prepared + Session.send"

    def _send(self, action: str, task_id: str) -> requests.Response:
        call = self.calls[(action, task_id)]
        prepared = requests.Request(
            call.method,
            call.url,
            headers={**self.session.headers, **call.headers},
            data=call.body or None,
            cookies=self.session.cookies,
        ).prepare()
        return self._checked(action, self.session.send(prepared, allow_redirects=False))


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
            "at once); only starts are timed. The floor sends requests signed once in advance and only checks the "
            "status and decodes the JSON, with `Session.request`; a second floor row does the same with a prepared "
            "request and `Session.send`, the hook's send path. The official client runs with its defaults. Requests, "
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
        start_ids = [_create_task(setup_hook, paused=True) for _ in range(4)]
        clients: list[Any] = [
            HookClient(),
            SdkClient(emulator.connection),
            FloorClient(emulator.connection, show_id, start_ids[2]),
            PreparedFloorClient(emulator.connection, show_id, start_ids[3]),
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
            rest = extra - build_seconds[kind] - retry_seconds
            why = (
                f"{us(hook_cpu - floor_cpu * (1 + TARGET_OVER_FLOOR))} over the target. Of the hook's extra "
                f"{us(extra)} per {kind} call: building and signing the request {us(build_seconds[kind])} (the floor "
                f"signed once in advance), the retry wrapper {us(retry_seconds)}, the rest "
                f"{us(rest)} (argument checks, the streamed read that caps the answer's size, error-aware parsing"
                + (", the start body's check" if kind == "start" else "")
                + "); each part measured alone."
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
    prepared_name = clients[3].name
    for kind in ("show", "start"):
        hook_cpu, floor_cpu, prepared_cpu = (
            results[(name, kind)].cpu_per_call for name in (hook_name, floor_name, prepared_name)
        )
        section.notes.append(
            f"{kind}: the hook sends a prepared request with `Session.send`, which by itself costs "
            f"{us(floor_cpu - prepared_cpu)} less than the floor's `Session.request`; the hook's own work "
            f"(checks, signing, retry wrapper, capped read, parsing) costs {us(hook_cpu - prepared_cpu)} over "
            "that same send path."
        )
    section.notes.append(
        f"The hook's retry wrapper costs {us(retry_seconds)} per call that succeeds at once, measured alone "
        "(tenacity comes in only after a failure)."
    )
    return section
