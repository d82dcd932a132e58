"""
Bad answers from the server: a small canned HTTP server on 127.0.0.1 answers what a broken gateway or a
misconfigured endpoint would (the real service cannot be made to), and the hook must turn each into a clear
error, retrying only what is transient.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import deque
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_provider_oms.exceptions import OMSApiError
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.testing import EMULATOR_AK, EMULATOR_PROJECT_ID, EMULATOR_SK
from airflow_provider_oms.triggers.oms import MigrationTaskTrigger


class CannedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), CannedHandler)
        self.answers: deque[tuple[int, dict[str, str], bytes]] = deque()
        self.paths: list[str] = []

    def handle_error(self, request, client_address):
        # A client that stops reading (an answer over the size cap) resets the connection: expected here, and
        # not worth a traceback on stderr. Anything else is printed as usual.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class CannedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CannedServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.paths.append(f"{self.command} {self.path}")
        status, headers, body = self.server.answers.popleft() if self.server.answers else (500, {}, b"no answer")
        self.send_response_only(status)  # no automatic Date header: some answers bring their own
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format, *args):
        pass


@pytest.fixture
def canned(set_connection):
    server = CannedServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    set_connection(
        "canned",
        conn_type="huaweicloud_oms",
        login=EMULATOR_AK,
        password=EMULATOR_SK,
        extra={
            "project_id": EMULATOR_PROJECT_ID,
            "endpoint": f"http://127.0.0.1:{server.server_port}",
            "retry_max_attempts": 3,
            "retry_base_wait": 0.01,
            "timeout": 5,
            # A wait fails at the first read that stays bad, rather than waiting out an outage.
            "outage_tolerance": 0,
        },
    )
    yield server
    server.shutdown()
    server.server_close()


HTML = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"


def test_html_gateway_page_is_retried_then_quoted(canned):
    canned.answers.extend([(502, {"Content-Type": "text/html"}, HTML)] * 3)
    with pytest.raises(OMSApiError) as err:
        OMSHook("canned").get_task("1")
    assert err.value.http_status == 502
    assert "non-JSON response body: '<html><head><title>502 Bad Gateway" in str(err.value)
    assert len(canned.paths) == 3


def test_transient_error_then_success(canned):
    canned.answers.extend([(503, {}, b""), (200, {}, b'{"id": 1, "status": 2}')])
    assert OMSHook("canned").get_task("1")["status"] == 2
    assert len(canned.paths) == 2


def test_429_honours_retry_after(canned):
    canned.answers.extend([(429, {"Retry-After": "1"}, b'{"error_code": "APIGW.0308", "error_msg": "throttled"}')])
    canned.answers.append((200, {}, b'{"tasks": [], "count": 0}'))
    started = datetime.now(timezone.utc)
    assert OMSHook("canned").list_tasks()["count"] == 0
    assert datetime.now(timezone.utc) - started >= timedelta(seconds=1)


def test_empty_error_body(canned):
    canned.answers.extend([(404, {}, b"")])
    with pytest.raises(OMSApiError) as err:
        OMSHook("canned").get_task("1")
    assert (err.value.http_status, err.value.error_code) == (404, None)
    assert "OMS show task 1 failed: HTTP 404" in str(err.value)
    assert len(canned.paths) == 1  # a 4xx is never retried


@pytest.mark.parametrize("body", [b"not json at all", b'{"id": 1, "status": ', b"<html></html>"])
def test_success_status_with_a_body_that_is_not_json(canned, body):
    canned.answers.append((200, {}, body))
    with pytest.raises(OMSApiError, match="returned HTTP 200 with a body that is not JSON"):
        OMSHook("canned").get_task("1")
    assert len(canned.paths) == 1


def test_redirects_are_never_followed(canned):
    canned.answers.append((302, {"Location": "http://127.0.0.1:9/elsewhere"}, b""))
    with pytest.raises(OMSApiError, match="HTTP 302 \\(redirects are not followed; check the connection's endpoint\\)"):
        OMSHook("canned").get_task("1")
    assert len(canned.paths) == 1


def test_a_body_over_the_size_cap_is_refused(canned):
    canned.answers.append((200, {}, b'{"tasks": ["' + b"x" * (9 * 1024 * 1024) + b'"]}'))
    with pytest.raises(OMSApiError, match="is larger than 8 MiB"):
        OMSHook("canned").list_tasks()


def test_clock_skew_is_explained(canned):
    server_date = format_datetime(datetime.now(timezone.utc) - timedelta(hours=2), usegmt=True)
    body = b'{"error_code": "APIGW.0301", "error_msg": "x-sdk-date expired"}'
    canned.answers.append((401, {"Date": server_date}, body))
    with pytest.raises(OMSApiError) as err:
        OMSHook("canned").get_task("1")
    assert "This machine's clock is 2h00m" in str(err.value)
    assert "ahead of the server's" in str(err.value)
    assert "fix the clock (NTP)" in str(err.value)


def test_the_trigger_reports_a_bad_answer_as_an_error_event(canned):
    canned.answers.extend([(502, {"Content-Type": "text/html"}, HTML)] * 3)

    async def first_event():
        trigger = MigrationTaskTrigger(migration_task_id="1", oms_conn_id="canned", poll_interval=0.1)
        return (await anext(trigger.run())).payload

    payload = asyncio.run(first_event())
    assert payload["status"] == "error"
    assert "HTTP 502" in payload["message"] and "502 Bad Gateway" in payload["message"]
    assert len(canned.paths) == 3


#: Answers the sync path refuses (tests above), each with what its error says.
REFUSED = {
    "over the size cap": ((200, {}, b'{"id": "' + b"x" * (9 * 1024 * 1024) + b'"}'), "is larger than 8 MiB"),
    "a redirect": ((302, {"Location": "http://127.0.0.1:9/elsewhere"}, b""), "redirects are not followed"),
    "not JSON": ((200, {}, b"not json at all"), "returned HTTP 200 with a body that is not JSON"),
    "HTML error page": ((502, {"Content-Type": "text/html"}, HTML), "HTTP 502"),
}


@pytest.mark.parametrize("answer", REFUSED)
def test_the_deferrable_wait_refuses_a_bad_answer_as_the_hook_does(canned, answer):
    response, says = REFUSED[answer]
    canned.answers.extend([response] * 3)  # enough for the retries of what is retried
    with pytest.raises(OMSApiError, match=says) as refused:
        OMSHook("canned").get_task("1")
    sync_tries = len(canned.paths)
    canned.answers.clear()
    canned.answers.extend([response] * 3)

    async def first_event():
        trigger = MigrationTaskTrigger(migration_task_id="1", oms_conn_id="canned", poll_interval=0.1)
        return (await anext(trigger.run())).payload

    payload = asyncio.run(first_event())

    # The same error, after as many tries: one mapping of answers to errors on both paths.
    assert payload["status"] == "error", payload
    assert str(refused.value) in payload["message"], (str(refused.value), payload["message"])
    assert len(canned.paths) == 2 * sync_tries, canned.paths
