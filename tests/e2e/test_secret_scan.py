"""
Secret scan (issue 4, requirement 4): no credential value ever shows up anywhere Airflow or the provider writes.

Every credential gets a distinctive value: the OMS connection's AK/SK (also the destination's when no destination
connection is given) and security token, a destination connection's AK/SK and security token, the source's AK/SK,
security token, GCS auth JSON (with its private_key) and CDN key. Then one DAG
(tests/e2e/dags/oms_secret_scan_dags.py) runs every path of a start (success, deferrable wait, OMS errors
OMS.0065 and OMS.1009, a transport error on a closed port, validation errors) through:

- `airflow dags test` (masking off in-process), and
- `airflow tasks test`, the real task runner with masking on, one task at a time,

against the local OMS emulator. The test then looks for each value (raw, JSON-, repr- and URL-escaped) in their
output, in every XCom, rendered template field, trigger row and next_kwargs of the metadata databases, in every
cell of every table and in every byte of every file under the AIRFLOW_HOMEs, in the emulator's log, and, in
process, in exception messages (with their cause chains and tracebacks), reprs, serialized trigger kwargs and
log events. A finding names the value and the place, and shows the surroundings with every value masked.

To keep the run short, the `airflow tasks test` runs are shared between two AIRFLOW_HOMEs (the second one holds
a copy of the first one's migrated database) that run side by side.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import shutil
import socket
import sqlite3
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import structlog.testing

try:
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 3.1
    from airflow.exceptions import TaskDeferred  # type: ignore[no-redef,attr-defined]
from airflow.sdk.module_loading import import_string

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.exceptions import OMSApiError, OMSError, OMSValidationError
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.operators.oms import StartMigrationTaskOperator
from airflow_provider_oms.sensors.oms import MigrationTaskSensor
from airflow_provider_oms.testing import OMSEmulator
from airflow_provider_oms.testing.airflow_runner import AirflowTestEnvironment
from airflow_provider_oms.triggers.oms import MigrationTaskTrigger
from tests.e2e.dags.oms_secret_scan_dags import (
    CLOSED_CONN_ID,
    DAG_ID,
    DST_CONN_ID,
    OMS_CONN_ID,
    SRC_CONN_ID,
    SRC_LONG_CONN_ID,
    UNKNOWN_TASK_ID,
)
from tests.helpers import migrated_airflow, task_context, write_objects

pytestmark = pytest.mark.e2e

DAGS = Path(__file__).resolve().parent / "dags"

# -- the distinctive credentials ------------------------------------------------------------------------------

OMS_AK = "LEAKCHECK-OMS-AK-3b8e1d"
OMS_SK = "LEAKCHECK-OMS-SK-9c2f47"
OMS_TOKEN = "LEAKCHECK-OMS-TOKEN-11aa22"
DST_AK = "LEAKCHECK-DST-AK-a4c913"
DST_SK = "LEAKCHECK-DST-SK-b70e52"
DST_TOKEN = "LEAKCHECK-DST-TOKEN-c3d8f6"
SRC_AK = "LEAKCHECK-SRC-AK-d15b07"
SRC_SK = "LEAKCHECK-SRC-SK-7f3a9c"
SRC_TOKEN = "LEAKCHECK-SRC-TOKEN-e29a4b"
CDN_KEY = "LEAKCHECK-CDN-KEY-f6e1c8"
GCS_PRIVATE_KEY_CORE = "LEAKCHECK-GCS-PRIVATE-KEY-5d1e0a"
GCS_PRIVATE_KEY = f"-----BEGIN PRIVATE KEY-----\n{GCS_PRIVATE_KEY_CORE}\n-----END PRIVATE KEY-----\n"
GCS_PRIVATE_KEY_ID = "LEAKCHECK-GCS-KEY-ID-0b7d2e"
GCS_AUTH = {
    "type": "service_account",
    "project_id": "leakcheck-project",
    "private_key_id": GCS_PRIVATE_KEY_ID,
    "private_key": GCS_PRIVATE_KEY,
    "client_email": "leakcheck@leakcheck-project.iam.gserviceaccount.com",
}
GCS_AUTH_JSON = json.dumps(GCS_AUTH)
SRC_LONG_AK = "LEAKCHECK-SRCLONG-AK-8a9b"
SRC_LONG_SK = "LEAKCHECK-SRCLONG-SK-" + "7" * 80  # 101 characters: one over the limit

#: name -> the forms in which the value could show up (a JSON text also as its compact dump).
SECRETS: dict[str, tuple[str, ...]] = {
    "OMS connection AK (login)": (OMS_AK,),
    "OMS connection SK (password)": (OMS_SK,),
    "OMS connection security_token": (OMS_TOKEN,),
    "destination connection AK (login)": (DST_AK,),
    "destination connection SK (password)": (DST_SK,),
    "destination connection security_token": (DST_TOKEN,),
    "source connection AK (login)": (SRC_AK,),
    "source connection SK (password)": (SRC_SK,),
    "source connection security_token": (SRC_TOKEN,),
    "source connection cdn_authentication_key": (CDN_KEY,),
    "GCS auth JSON (json_auth_file)": (GCS_AUTH_JSON, json.dumps(GCS_AUTH, separators=(",", ":"))),
    "GCS private_key": (GCS_PRIVATE_KEY, GCS_PRIVATE_KEY_CORE),
    "GCS private_key_id": (GCS_PRIVATE_KEY_ID,),
    "over-long source AK (login)": (SRC_LONG_AK,),
    "over-long source SK (password, 101 chars)": (SRC_LONG_SK,),
}


def _variants(value: str) -> set[str]:
    """The value as written raw, in a JSON string, in a Python repr, and URL-encoded."""
    return {value, json.dumps(value)[1:-1], repr(value)[1:-1], quote(value, safe=""), quote_plus(value)}


#: (text to look for, name), longest first: a JSON that holds a key is reported as the JSON.
_PATTERNS = sorted(
    {(variant, name) for name, forms in SECRETS.items() for form in forms for variant in _variants(form)},
    key=lambda pattern: (-len(pattern[0]), pattern[1]),
)
_CONTEXT = 150


def find_secrets(where: str, text: str | bytes) -> list[str]:
    """Return one finding per credential found in ``text``: name, place, count, and its masked surroundings."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")  # one character per byte; every value is ASCII
    counts: dict[str, int] = {}
    for variant, name in _PATTERNS:
        found = text.count(variant)
        if found:
            counts[name] = counts.get(name, 0) + found
            text = text.replace(variant, f"<<{name}>>")
    findings = []
    for name, count in counts.items():
        at = text.find(f"<<{name}>>")
        context = text[max(0, at - _CONTEXT) : at + len(name) + 4 + _CONTEXT]
        findings.append(f"{name} found {count} time(s) in {where}; around the first one: ...{context!r}...")
    return findings


def assert_no_secrets(what: str, sources: Iterable[tuple[str, Any]]) -> int:
    """Fail listing every credential found in ``sources`` (place, text or object); return how many were scanned."""
    findings: list[str] = []
    scanned = 0
    for where, content in sources:
        scanned += 1
        findings += find_secrets(where, content if isinstance(content, (str, bytes)) else repr(content))
    if findings:
        pytest.fail(
            f"credential values leaked into {what} ({len(findings)} finding(s)); the values are shown as "
            "<<name>>:\n" + "\n".join(f"  - {finding}" for finding in findings),
            pytrace=False,
        )
    return scanned


def error_texts(label: str, error: BaseException) -> Iterator[tuple[str, str]]:
    """str and repr of an error and of each error in its __cause__ / __context__ chain, and its traceback."""
    seen: set[int] = set()
    current: BaseException | None = error
    depth = 0
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        where = label if depth == 0 else f"{label} (chained error {depth}: {type(current).__name__})"
        yield f"str() of {where}", str(current)
        yield f"repr() of {where}", repr(current)
        current = current.__cause__ or current.__context__
        depth += 1
    yield f"formatted traceback of {label}", "".join(traceback.format_exception(error))


def raised(call: Callable[[], Any]) -> BaseException:
    """Call and return what it raised; fail if it raised nothing."""
    try:
        call()
    except (Exception, TaskDeferred) as err:  # TaskDeferred is a BaseException
        return err
    pytest.fail(f"{call} raised nothing")


def test_the_scanner_names_the_value_and_hides_it():
    findings = find_secrets(
        "a log line", f"signing with sk={SRC_SK}, body {json.dumps({'json_auth_file': GCS_AUTH_JSON})}"
    )
    assert len(findings) == 2, findings
    assert any(f.startswith("source connection SK (password) found 1 time(s) in a log line") for f in findings)
    assert any(f.startswith("GCS auth JSON (json_auth_file) found 1 time(s)") for f in findings)
    assert not any(SRC_SK in f or GCS_PRIVATE_KEY_CORE in f for f in findings)
    assert find_secrets("bytes", f"x{quote(GCS_PRIVATE_KEY)}y".encode())[0].startswith("GCS private_key found")
    assert find_secrets("clean", "nothing to see, ***") == []


# -- fixtures -------------------------------------------------------------------------------------------------


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def emulator_log() -> Iterator[list[str]]:
    """Every record of the emulator's logger (debug included) while this module runs, formatted."""
    collector = _Collector()
    logger = logging.getLogger("airflow_provider_oms.emulator")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(collector)
    yield collector.lines
    logger.removeHandler(collector)
    logger.setLevel(level)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory, emulator_log) -> Iterator[OMSEmulator]:
    # The OMS connection's AK/SK are the pair the emulator checks signatures with. Objects copy at 20 kB/s:
    # the sample tasks' objects take milliseconds, the "running" task's 5 MB object minutes.
    with OMSEmulator(
        tmp_path_factory.mktemp("buckets"),
        access_key=OMS_AK,
        secret_key=OMS_SK,
        task_start_delay=0.3,
        bytes_per_second=20_000,
    ) as emu:
        yield emu


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def connections(emulator) -> dict[str, dict[str, Any]]:
    fast_retries = {"retry_max_attempts": 2, "retry_base_wait": 0.01}
    oms_extra = {
        "project_id": emulator.project_id,
        "endpoint": emulator.url,
        "region": "cn-north-4",
        "security_token": OMS_TOKEN,
        **fast_retries,
    }
    return {
        OMS_CONN_ID: {"conn_type": "huaweicloud_oms", "login": OMS_AK, "password": OMS_SK, "extra": oms_extra},
        CLOSED_CONN_ID: {
            "conn_type": "huaweicloud_oms",
            "login": OMS_AK,
            "password": OMS_SK,
            # No outage tolerance: a wait on it fails at the first unreachable read (the error path scanned here).
            "extra": {**oms_extra, "endpoint": f"http://127.0.0.1:{_closed_port()}", "outage_tolerance": 0},
        },
        DST_CONN_ID: {
            "conn_type": "generic",
            "login": DST_AK,
            "password": DST_SK,
            "extra": {"security_token": DST_TOKEN},
        },
        SRC_CONN_ID: {
            "conn_type": "generic",
            "login": SRC_AK,
            "password": SRC_SK,
            "extra": {"security_token": SRC_TOKEN, "json_auth_file": GCS_AUTH, "cdn_authentication_key": CDN_KEY},
        },
        SRC_LONG_CONN_ID: {
            "conn_type": "generic",
            "login": SRC_LONG_AK,
            "password": SRC_LONG_SK,
            "extra": {"security_token": SRC_TOKEN},
        },
    }


@pytest.fixture(scope="module")
def conn_env(connections) -> Iterator[dict[str, dict[str, Any]]]:
    """The connections as AIRFLOW_CONN_* variables of this process too, for the in-process checks."""
    with pytest.MonkeyPatch.context() as patch:
        for conn_id, conn in connections.items():
            patch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        yield connections


@pytest.fixture(scope="module")
def homes(tmp_path_factory, connections) -> list[AirflowTestEnvironment]:
    """Two AIRFLOW_HOMEs: the database is migrated once, and the second home gets a copy of it."""
    first = migrated_airflow(tmp_path_factory.mktemp("airflow-home"), DAGS, connections)
    second_home = tmp_path_factory.mktemp("airflow-home-b")
    for name in ("airflow.db", "airflow.cfg"):
        if (first.home / name).exists():
            shutil.copy2(first.home / name, second_home / name)
    return [first, AirflowTestEnvironment(second_home, DAGS, connections)]


_prefixes = itertools.count()


def new_task(emulator: OMSEmulator, hook: OMSHook, *, paused: bool = True, size: int = 0) -> str:
    """
    Create a task of its own objects (3 small ones, or one of ``size`` bytes), paused unless told otherwise.

    The create body carries the source and destination keys too, so they pass through the emulator as well.
    """
    n = next(_prefixes)
    prefix = f"scan-{n}/"
    if size:
        path = emulator.bucket_path("src") / prefix / "big.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    else:
        write_objects(emulator.bucket_path("src"), [f"{prefix}f{i}.txt" for i in range(3)])
    emulator.bucket_path("dst")
    body = {
        "task_type": "prefix",
        "src_node": {"region": "local", "bucket": "src", "object_key": [prefix], "ak": SRC_AK, "sk": SRC_SK},
        "dst_node": {"region": "local", "bucket": "dst", "save_prefix": f"landing-{n}/", "ak": DST_AK, "sk": DST_SK},
    }
    task_id = str(hook.create_task(body)["id"])
    if paused:
        hook.stop_task(task_id)
        emulator.wait_for_status(task_id, {TaskStatus.PAUSED}, timeout=20)
    return task_id


@dataclass
class AirflowRun:
    """One `airflow` command and its whole output."""

    command: str
    output: str = ""


@dataclass
class Runs:
    dags_test: AirflowRun
    tasks_tests: dict[str, AirflowRun]
    #: OMS task ids: ``running`` (OMS.0065), and the tasks the success paths started, by run.
    oms_tasks: dict[str, str]
    closed_endpoint: str


#: The DAG's tasks: the path each takes and what its output must say (so that the scan is not of nothing).
PATHS = {
    "success": "succeeded after 0 restart(s)",
    "deferrable_wait": "succeeded after 0 restart(s)",
    "oms_error_already_started": "failed: HTTP 400 OMS.0065",
    # The operator reads the task before starting it (to recognise a stale status after the start).
    "oms_error_unknown_task": f"OMS show task {UNKNOWN_TASK_ID} failed: HTTP 404 OMS.1009",
    "transport_error": "failed: no answer from http://127.0.0.1:",
    "validation_error_flag": "migrate_failed_object must be a boolean or the string 'true' or 'false'",
    "validation_error_long_sk": (
        f"SK (password of source connection '{SRC_LONG_CONN_ID}') must be 1 to 100 characters long, got 101"
    ),
}
#: Which AIRFLOW_HOME runs which `airflow tasks test` (the first one also runs `airflow dags test` first).
LANES = (
    ("oms_error_already_started", "transport_error", "validation_error_long_sk"),
    ("success", "deferrable_wait", "oms_error_unknown_task", "validation_error_flag"),
)


@pytest.fixture(scope="module")
def runs(emulator, homes, conn_env) -> Runs:
    """Run the DAG with `airflow dags test`, and each of its paths with `airflow tasks test`."""
    hook = OMSHook(OMS_CONN_ID)
    running = new_task(emulator, hook, paused=False, size=5_000_000)  # in progress for minutes: OMS.0065
    oms_tasks = {"running": running}
    dags_conf = {
        "success_task_id": new_task(emulator, hook),
        "deferrable_task_id": new_task(emulator, hook),
        "running_task_id": running,
        # In progress for ~10 s from now: the deferrable sensor most likely defers, then its trigger sees it succeed.
        "sensor_task_id": new_task(emulator, hook, paused=False, size=200_000),
    }
    task_params = {
        "success_task_id": new_task(emulator, hook),
        "deferrable_task_id": new_task(emulator, hook),
        "running_task_id": running,
        "sensor_task_id": "",
    }
    oms_tasks.update({f"dags test {k}": v for k, v in dags_conf.items() if k != "running_task_id"})
    oms_tasks.update({f"tasks test {k}": v for k, v in task_params.items() if k.startswith(("success", "defer"))})

    def tasks_test(env: AirflowTestEnvironment, task_id: str) -> AirflowRun:
        done = env.run("tasks", "test", DAG_ID, task_id, "-t", json.dumps(task_params), timeout=240)
        return AirflowRun(f"`airflow tasks test {DAG_ID} {task_id}`", done.stdout + done.stderr)

    def lane(index: int) -> list[tuple[str, AirflowRun]]:
        env = homes[index]
        done: list[tuple[str, AirflowRun]] = []
        if index == 0:
            result = env.dags_test(DAG_ID, dags_conf, timeout=240)
            done.append(("dags test", AirflowRun(f"`airflow dags test {DAG_ID}`", result.output)))
        done += [(task_id, tasks_test(env, task_id)) for task_id in LANES[index]]
        return done

    with ThreadPoolExecutor(max_workers=len(LANES)) as pool:
        finished = [run for lane_runs in pool.map(lane, range(len(LANES))) for run in lane_runs]
    by_name = dict(finished)
    return Runs(
        dags_test=by_name.pop("dags test"),
        tasks_tests=by_name,
        oms_tasks=oms_tasks,
        closed_endpoint=conn_env[CLOSED_CONN_ID]["extra"]["endpoint"],
    )


def db_rows(env: AirflowTestEnvironment, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(env.home / "airflow.db")) as db:
        return db.execute(query, params).fetchall()


def table_columns(env: AirflowTestEnvironment, table: str) -> list[str]:
    return [row[1] for row in db_rows(env, f'PRAGMA table_info("{table}")')]


# -- every path was taken -------------------------------------------------------------------------------------


def test_every_path_was_taken(runs, homes, emulator):
    states = dict(db_rows(homes[0], "SELECT task_id, state FROM task_instance WHERE dag_id = ?", DAG_ID))
    assert states == {
        "success": "success",
        "deferrable_wait": "success",
        "sensor_deferrable": "success",
        **{task: "failed" for task in PATHS if task not in ("success", "deferrable_wait")},
    }, runs.dags_test.output[-5000:]
    for task, marker in PATHS.items():
        assert marker in runs.dags_test.output, f"dags test: {task}"
        assert marker in runs.tasks_tests[task].output, runs.tasks_tests[task].output[-5000:]
    assert "running trigger in line" in runs.dags_test.output
    assert "running trigger in line" in runs.tasks_tests["deferrable_wait"].output
    assert f"no answer from {runs.closed_endpoint}" in runs.tasks_tests["transport_error"].output
    for label, task_id in runs.oms_tasks.items():
        if label != "running":
            assert emulator.get_task(task_id)["status"] == TaskStatus.SUCCEEDED, label


# -- (a), (b): what the task runners print and write ----------------------------------------------------------


def test_no_secret_in_the_real_task_runner_logs(runs, homes):
    """`airflow tasks test` (masking on): stdout and stderr of each path, and any log file it wrote."""
    sources = [(f"the output of {run.command}", run.output) for run in runs.tasks_tests.values()]
    sources += [
        (f"log file {path}", path.read_bytes())
        for env in homes
        for path in sorted((env.home / "logs").rglob("*"))
        if path.is_file()
    ]
    assert assert_no_secrets("the task logs of `airflow tasks test`", sources) >= len(PATHS)


def test_no_secret_in_the_output_of_dags_test(runs):
    """`airflow dags test` masks nothing in-process: whatever the provider logs or raises shows as is."""
    assert_no_secrets("the output of `airflow dags test`", [(runs.dags_test.command, runs.dags_test.output)])


# -- (c), (d), (g): the metadata databases --------------------------------------------------------------------


def test_no_secret_in_xcom(runs, homes):
    """Every XCom. (Those of `airflow tasks test` go with its temporary DAG run; the file scan sees what is left.)"""
    rows = [
        (i, *row)
        for i, env in enumerate(homes)
        for row in db_rows(env, "SELECT dag_id, task_id, run_id, key, value FROM xcom")
    ]
    returned = {task_id for _, dag_id, task_id, _, key, _ in rows if dag_id == DAG_ID and key == "return_value"}
    assert {"success", "deferrable_wait", "sensor_deferrable"} <= returned, rows
    assert_no_secrets(
        "XCom values",
        [
            (f"XCom {key!r} of {dag_id}.{task_id} (run {run_id}, home {i})", value)
            for i, dag_id, task_id, run_id, key, value in rows
        ],
    )


def test_no_secret_in_rendered_template_fields(runs, homes):
    sources = [
        (f"rendered fields of {task_id} (run {run_id}, home {i})", fields)
        for i, env in enumerate(homes)
        for task_id, run_id, fields in db_rows(
            env, "SELECT task_id, run_id, rendered_fields FROM rendered_task_instance_fields"
        )
    ]
    assert len(sources) >= len(PATHS) + 1, sources  # every task of the `dags test` run
    assert_no_secrets("rendered template fields", sources)


def test_no_secret_in_trigger_rows_or_next_kwargs(runs, homes):
    sources: list[tuple[str, Any]] = []
    for i, env in enumerate(homes):
        for trigger_id, classpath, kwargs in db_rows(env, 'SELECT id, classpath, kwargs FROM "trigger"'):
            sources.append((f"trigger row {trigger_id} ({classpath}, home {i})", kwargs))
        for table in ("task_instance", "task_instance_history"):
            if "next_kwargs" in table_columns(env, table):
                query = f"SELECT task_id, next_kwargs FROM {table}"  # noqa: S608 - one of two fixed names
                sources += [
                    (f"{table}.next_kwargs of {task_id} (home {i})", value) for task_id, value in db_rows(env, query)
                ]
    triggers = [where for where, _ in sources if where.startswith("trigger row")]
    # the deferrable operator of the `dags test` run (and its sensor, if its task was not done yet) and of the
    # `tasks test` run
    assert len(triggers) >= 2, sources
    assert_no_secrets("the trigger table and next_kwargs", sources)


def test_no_secret_in_any_table(runs, homes):
    """Every cell of every table; connections come from the environment, so none should be in a database."""
    sources: list[tuple[str, Any]] = []
    for i, env in enumerate(homes):
        tables = [name for (name,) in db_rows(env, "SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = table_columns(env, table)
            query = f'SELECT * FROM "{table}"'  # noqa: S608 - a name from sqlite_master
            for number, row in enumerate(db_rows(env, query)):
                sources += [
                    (f"{table}.{column} of row {number} (home {i})", value)
                    for column, value in zip(columns, row, strict=True)
                    if isinstance(value, (str, bytes))
                ]
        assert db_rows(env, "SELECT COUNT(*) FROM connection") == [(0,)]
    assert_no_secrets("the metadata database", sources)


# -- (e), (f), (g): in process --------------------------------------------------------------------------------


def _first_event(trigger: MigrationTaskTrigger) -> Any:
    async def first() -> Any:
        events = trigger.run()
        try:
            return await asyncio.wait_for(events.__anext__(), 60)
        finally:
            await events.aclose()

    return asyncio.run(first())


def test_no_secret_in_errors_reprs_or_logs_in_process(emulator, conn_env, capfd, caplog):
    """Raise every error in process; check messages, cause chains, tracebacks, reprs, kwargs and log events."""
    caplog.set_level(logging.DEBUG)
    hook = OMSHook(OMS_CONN_ID)
    running = new_task(emulator, hook, paused=False, size=5_000_000)
    sources: list[tuple[str, Any]] = []
    full = {"oms_conn_id": OMS_CONN_ID, "source_conn_id": SRC_CONN_ID, "destination_conn_id": DST_CONN_ID}

    def operator(name: str, **kwargs: Any) -> StartMigrationTaskOperator:
        return StartMigrationTaskOperator(
            task_id=name, **{"migration_task_id": running, "poll_interval": 1, **full, **kwargs}
        )

    with structlog.testing.capture_logs() as log_events:
        body = hook.build_start_task_body(source_conn_id=SRC_CONN_ID, destination_conn_id=DST_CONN_ID)
        assert body["src_sk"] == SRC_SK and body["source_cdn_authentication_key"] == CDN_KEY  # the values are used
        assert json.loads(body["json_auth_file"])["private_key"] == GCS_PRIVATE_KEY
        closed_hook = OMSHook(CLOSED_CONN_ID)
        errors: dict[str, BaseException] = {
            "hook.start_task of a running task": raised(lambda: hook.start_task(running, body)),
            "hook.start_task of an unknown task": raised(lambda: hook.start_task(UNKNOWN_TASK_ID, body)),
            "hook.get_task on a closed port": raised(lambda: closed_hook.get_task(running)),
            "hook.start_task on a closed port": raised(lambda: closed_hook.start_task(running, body)),
            "hook.build_start_task_body with a 101-char source SK": raised(
                lambda: hook.build_start_task_body(source_conn_id=SRC_LONG_CONN_ID)
            ),
            "operator.execute, migrate_failed_object 'maybe'": raised(
                lambda: operator("flag", migrate_failed_object="maybe").execute(task_context())
            ),
            "operator.execute, 101-char source SK": raised(
                lambda: operator("long_sk", source_conn_id=SRC_LONG_CONN_ID).execute(task_context())
            ),
            "operator.execute, closed port": raised(
                lambda: operator("closed", oms_conn_id=CLOSED_CONN_ID).execute(task_context())
            ),
            "operator.execute, running task": raised(lambda: operator("running").execute(task_context())),
            "operator.execute, unknown task": raised(
                lambda: operator("unknown", migration_task_id=UNKNOWN_TASK_ID).execute(task_context())
            ),
            "sensor.poke, closed port": raised(
                lambda: MigrationTaskSensor(task_id="s", migration_task_id=running, oms_conn_id=CLOSED_CONN_ID).poke(
                    task_context()
                )
            ),
        }
        assert [errors[k].error_code for k in list(errors)[:2]] == ["OMS.0065", "OMS.1009"]  # type: ignore[attr-defined]
        assert all(isinstance(e, OMSApiError) for k, e in errors.items() if "closed port" in k)
        assert all(isinstance(e, OMSValidationError) for k, e in errors.items() if "101" in k or "maybe" in k)
        ok, message = closed_hook.test_connection()
        assert not ok
        sources.append(("test_connection() message on a closed port", message))

        # Success, synchronous: the result and everything pushed to XCom.
        context = task_context()
        result = operator("success", migration_task_id=new_task(emulator, hook)).execute(context)
        assert result["status"] == TaskStatus.SUCCEEDED
        sources += [("execute() result", result), ("XCom pushes of execute()", context["ti"].mock_calls)]

        # Deferrable: defer, round-trip the trigger through serialize() as the triggerer does, run it, resume.
        deferring = operator("deferrable", migration_task_id=new_task(emulator, hook), deferrable=True)
        context = task_context()
        deferred = raised(lambda: deferring.execute(context))
        assert isinstance(deferred, TaskDeferred)
        classpath, kwargs = deferred.trigger.serialize()
        trigger = import_string(classpath)(**kwargs)
        event = _first_event(trigger)
        assert event.payload["status"] == "success", event.payload
        result = deferring.execute_complete(context, event.payload)
        sources += [
            ("the TaskDeferred", repr(deferred)),
            ("str() of the TaskDeferred", str(deferred)),
            ("serialized trigger kwargs", json.dumps(kwargs)),
            ("the trigger event", repr(event)),
            ("execute_complete() result", result),
            ("XCom pushes of the deferrable execute()", context["ti"].mock_calls),
        ]

        # The trigger on a closed port: an error event, then the operator's error.
        closed_trigger = MigrationTaskTrigger(migration_task_id=running, oms_conn_id=CLOSED_CONN_ID, poll_interval=1)
        error_event = _first_event(closed_trigger)
        assert error_event.payload["status"] == "error", error_event.payload
        errors["execute_complete of the trigger's error event"] = raised(
            lambda: deferring.execute_complete(task_context(), error_event.payload)
        )
        assert isinstance(errors["execute_complete of the trigger's error event"], OMSError)
        sources += [
            ("the trigger's error event", repr(error_event)),
            ("serialized kwargs of the closed-port trigger", json.dumps(closed_trigger.serialize()[1])),
        ]

        # (f) reprs, with every cached property loaded.
        sensor = MigrationTaskSensor(task_id="sensor", migration_task_id=running, oms_conn_id=OMS_CONN_ID)
        sensor.hook.config  # noqa: B018 - load the connection
        call = hook.request_builder.build(
            "POST", hook.request_builder.path("/tasks/{task_id}/start", task_id=running), json_body=body
        )
        sources += [
            ("repr(OMSHook)", repr(hook)),
            ("repr(OMSHook.config)", repr(hook.config)),
            ("str(OMSHook.config)", str(hook.config)),
            ("repr(OMSHook.config.credentials)", repr(hook.config.credentials)),
            ("repr(OMSHook.request_builder)", repr(hook.request_builder)),
            ("repr(a signed start call)", repr(call)),
            ("repr(StartMigrationTaskOperator)", repr(deferring)),
            ("repr(StartMigrationTaskOperator.hook.config)", repr(deferring.hook.config)),
            ("repr(MigrationTaskSensor)", repr(sensor)),
            ("repr(MigrationTaskSensor.hook.config)", repr(sensor.hook.config)),
            ("repr(MigrationTaskTrigger)", repr(trigger)),
            ("MigrationTaskTrigger.serialize()", json.dumps(trigger.serialize())),
        ]
    for label, error in errors.items():
        sources += list(error_texts(label, error))
    sources += [(f"log event {i} of the provider in process", entry) for i, entry in enumerate(log_events)]
    captured = capfd.readouterr()
    sources += [
        ("stdout in process", captured.out),
        ("stderr in process", captured.err),
        ("stdlib log records in process", caplog.text),
    ]
    assert any("retrying in" in str(entry.get("event")) for entry in log_events)  # the retries were logged
    assert_no_secrets("errors, reprs and logs in process", sources)


# -- (h), and the whole AIRFLOW_HOME: after everything else ---------------------------------------------------


def test_no_secret_in_the_emulator_log(runs, emulator, emulator_log):
    assert any(f"/tasks/{runs.oms_tasks['running']}/start 400" in line for line in emulator_log), emulator_log[-20:]
    assert_no_secrets(
        "the emulator's log",
        [(f"emulator log record {i}", line) for i, line in enumerate(emulator_log)]
        + [("the emulator's request records", emulator.requests)],
    )


def test_no_secret_in_any_file_of_airflow_home(runs, homes):
    """Every byte of every file: config, logs, and the databases (free pages and journals included)."""
    files = [path for env in homes for path in sorted(env.home.rglob("*")) if path.is_file()]
    assert sum(path.name == "airflow.db" for path in files) == len(homes)
    assert_no_secrets("the AIRFLOW_HOME trees", [(f"file {path}", path.read_bytes()) for path in files])
