"""Tests of request building and response parsing (``airflow_provider_oms.client``): pure, no network."""

from __future__ import annotations

import json
import pickle
from types import SimpleNamespace
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from airflow_provider_oms import signer
from airflow_provider_oms.client import (
    CONTENT_TYPE_JSON_BODY,
    CONTENT_TYPE_NO_BODY,
    USER_AGENT,
    Credentials,
    OMSRequestBuilder,
    PreparedCall,
    encode_json,
    parse_response,
)
from airflow_provider_oms.exceptions import OMSApiError, OMSValidationError

AK = "AKFORCLIENTTESTS0001"
SK = "SKFORCLIENTTESTS-very-secret-0123456789"
TOKEN = "TOKENFORCLIENTTESTS-temporary-credentials"
PROJECT = "0123456789abcdef0123456789abcdef"
TASK = "1234567890123"
ENDPOINT = "https://oms.cn-north-4.myhuaweicloud.com"
HOST = "oms.cn-north-4.myhuaweicloud.com"
DATE = "20240101T000000Z"
START_BODY = {
    "src_ak": "SRC-AK-SECRET",
    "src_sk": "SRC-SK-SECRET",
    "dst_ak": "DST-AK-SECRET",
    "dst_sk": "DST-SK-SECRET",
    "migrate_failed_object": False,
}

STATIC = Credentials(access_key=AK, secret_key=SK)
TEMPORARY = Credentials(access_key=AK, secret_key=SK, security_token=TOKEN)


def builder(credentials: Credentials = STATIC, endpoint: str = ENDPOINT) -> OMSRequestBuilder:
    return OMSRequestBuilder(endpoint, PROJECT, credentials)


def recompute(call: PreparedCall, credentials: Credentials) -> dict[str, str]:
    """Sign again from what is sent: the method, the path and query of the URL, the headers and the body."""
    parts = urlsplit(call.url)
    headers = {name: value for name, value in call.headers.items() if name != "Authorization"}
    return signer.sign(
        method=call.method,
        path=parts.path,
        query=parts.query,
        headers=headers,
        body=call.body,
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
    )


def assert_verifies(call: PreparedCall, credentials: Credentials) -> None:
    parsed = signer.parse_authorization(call.headers["Authorization"])
    assert parsed is not None
    assert parsed.access_key == credentials.access_key
    sent = {name for name in call.headers if name != "Authorization"}
    assert parsed.signed_headers == sorted(name.lower() for name in sent)  # every header sent is signed
    assert recompute(call, credentials)["Authorization"] == call.headers["Authorization"]


# --------------------------------------------------------------------------------------------------------------
# OMSRequestBuilder
# --------------------------------------------------------------------------------------------------------------


def test_url_has_project_and_path() -> None:
    b = builder()
    path = b.path("/tasks/{task_id}/start", task_id=TASK)
    assert path == f"/v2/{PROJECT}/tasks/{TASK}/start"
    call = b.build("POST", path, json_body=START_BODY, operation=f"start task {TASK}", sdk_date=DATE)
    assert call.url == f"{ENDPOINT}/v2/{PROJECT}/tasks/{TASK}/start"
    assert call.method == "POST"
    assert call.operation == f"start task {TASK}"
    assert call.headers["X-Project-Id"] == PROJECT
    assert call.headers["X-Sdk-Date"] == DATE
    assert call.headers["User-Agent"] == USER_AGENT


def test_integer_path_param() -> None:
    assert builder().path("/tasks/{task_id}", task_id=int(TASK)) == f"/v2/{PROJECT}/tasks/{TASK}"  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["a b", "é中", "a;b", "a&b=c", "a+b", "~x~", "a@b!"])
def test_path_param_is_exactly_one_segment(value: str) -> None:
    b = builder()
    call = b.build("GET", b.path("/tasks/{task_id}/start", task_id=value), sdk_date=DATE)
    parts = urlsplit(call.url)
    assert parts.path.count("/") == 5  # /v2/{project}/tasks/{task_id}/start
    assert parts.query == ""
    assert parts.fragment == ""
    segments = parts.path.split("/")
    assert segments[1:4] == ["v2", PROJECT, "tasks"]
    assert segments[5] == "start"
    assert unquote(segments[4]) == value
    assert_verifies(call, STATIC)


@pytest.mark.parametrize(
    "value", ["a/b", "a?b=1", "a#frag", "a%2Fb", "%2F", "/", "?", "#", "a/../b", "..", ".", "é/中", "x?y#z/w", "a\r\nb"]
)
def test_path_param_that_could_change_the_path_is_refused(value: str) -> None:
    # check_path_value runs in the builder too, so no caller can skip it.
    with pytest.raises(OMSValidationError, match="task_id"):
        builder().path("/tasks/{task_id}/start", task_id=value)


@pytest.mark.parametrize("project", ["a/b", "a?b", "a#b", "a%2Fb", "..", "", " p"])
def test_project_id_that_is_not_one_segment_is_refused(project: str) -> None:
    with pytest.raises(OMSValidationError, match="project_id"):
        OMSRequestBuilder(ENDPOINT, project, STATIC)


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://oms.cn-north-4.myhuaweicloud.com",
        "https://oms.cn-north-4.myhuaweicloud.com/",
        "https://oms.cn-north-4.myhuaweicloud.com:443",
        "http://127.0.0.1:8080",
        "http://localhost:1234/",
        "https://[::1]:8443",
    ],
)
def test_host_header_is_the_netloc_with_port(endpoint: str) -> None:
    call = builder(endpoint=endpoint).build("GET", f"/v2/{PROJECT}/tasks", sdk_date=DATE)
    netloc = urlsplit(endpoint).netloc
    assert call.headers["Host"] == netloc
    assert urlsplit(call.url).netloc == netloc
    assert call.url == f"{urlsplit(endpoint).scheme}://{netloc}/v2/{PROJECT}/tasks"
    assert_verifies(call, STATIC)


def test_content_type_with_and_without_body() -> None:
    b = builder()
    path = b.path("/tasks/{task_id}/start", task_id=TASK)
    with_body = b.build("POST", path, json_body=START_BODY, sdk_date=DATE)
    assert with_body.headers["Content-Type"] == CONTENT_TYPE_JSON_BODY == "application/json;charset=utf-8"
    assert with_body.body == encode_json(START_BODY)
    assert json.loads(with_body.body) == START_BODY
    without_body = b.build("POST", b.path("/tasks/{task_id}/stop", task_id=TASK), sdk_date=DATE)
    assert without_body.headers["Content-Type"] == CONTENT_TYPE_NO_BODY == "application/json"
    assert without_body.body == b""
    empty_object = b.build("POST", path, json_body={}, sdk_date=DATE)
    assert empty_object.body == b"{}"
    assert empty_object.headers["Content-Type"] == CONTENT_TYPE_JSON_BODY


def test_body_is_utf8_json_as_hashed() -> None:
    call = builder().build("POST", f"/v2/{PROJECT}/tasks", json_body={"description": "迁移 é"}, sdk_date=DATE)
    assert call.body == '{"description":"迁移 é"}'.encode()
    assert_verifies(call, STATIC)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"limit": 10, "offset": 0, "task_name": "my task/1"}, "limit=10&offset=0&task_name=my%20task%2F1"),
        ({"task_name": "my task/1", "offset": 0, "limit": 10}, "limit=10&offset=0&task_name=my%20task%2F1"),
        ({"status": None, "limit": 5}, "limit=5"),
        ({"flag": True, "other": False}, "flag=true&other=false"),
        ({"name": "a+b=c&d?e#f~g"}, "name=a%2Bb%3Dc%26d%3Fe%23f~g"),
        ({"empty": ""}, "empty="),
    ],
)
def test_query_sent_is_the_canonical_query(query: dict[str, Any], expected: str) -> None:
    call = builder().build("GET", f"/v2/{PROJECT}/tasks", query=query, sdk_date=DATE)
    parts = urlsplit(call.url)
    pairs = [(key, value) for key, value in query.items() if value is not None]
    assert parts.query == signer.canonical_query(pairs) == expected
    assert parts.fragment == ""
    assert dict(parse_qsl(parts.query, keep_blank_values=True)) == {
        key: signer._query_value(value) for key, value in pairs
    }
    assert_verifies(call, STATIC)


@pytest.mark.parametrize("query", [None, {}, {"status": None}])
def test_no_query_means_no_question_mark(query: dict[str, Any] | None) -> None:
    call = builder().build("GET", f"/v2/{PROJECT}/tasks", query=query, sdk_date=DATE)
    assert "?" not in call.url
    assert call.url == f"{ENDPOINT}/v2/{PROJECT}/tasks"


def test_security_token_sent_and_signed_only_with_temporary_credentials() -> None:
    path = f"/v2/{PROJECT}/tasks/{TASK}/start"
    temporary = builder(TEMPORARY).build("POST", path, json_body=START_BODY, sdk_date=DATE)
    assert temporary.headers["X-Security-Token"] == TOKEN
    parsed = signer.parse_authorization(temporary.headers["Authorization"])
    assert parsed is not None
    assert "x-security-token" in parsed.signed_headers
    assert_verifies(temporary, TEMPORARY)

    for credentials in (STATIC, Credentials(access_key=AK, secret_key=SK, security_token="")):
        static = builder(credentials).build("POST", path, json_body=START_BODY, sdk_date=DATE)
        assert not any(name.lower() == "x-security-token" for name in static.headers)
        parsed = signer.parse_authorization(static.headers["Authorization"])
        assert parsed is not None
        assert parsed.signed_headers == ["content-type", "host", "user-agent", "x-project-id", "x-sdk-date"]
        assert_verifies(static, credentials)


class Scenario(NamedTuple):
    """A call to build: the method, the path template and its parameters, the query, the body, the credentials."""

    method: str
    template: str
    params: dict[str, str]
    query: dict[str, Any] | None
    body: Any
    credentials: Credentials

    def build(self) -> PreparedCall:
        b = builder(self.credentials)
        path = b.path(self.template, **self.params)
        return b.build(self.method, path, query=self.query, json_body=self.body, sdk_date=DATE)


SCENARIOS = [
    pytest.param(Scenario("POST", "/tasks/{task_id}/start", {"task_id": TASK}, None, START_BODY, STATIC), id="start"),
    pytest.param(
        Scenario("POST", "/tasks/{task_id}/start", {"task_id": TASK}, None, START_BODY, TEMPORARY), id="start-token"
    ),
    pytest.param(
        Scenario("GET", "/tasks", {}, {"limit": 100, "task_name": "é 中/~"}, None, STATIC), id="list-unicode-query"
    ),
    pytest.param(Scenario("GET", "/tasks/{task_id}", {"task_id": "a b é~"}, None, None, TEMPORARY), id="show-odd-id"),
    pytest.param(Scenario("DELETE", "/tasks/{task_id}", {"task_id": TASK}, None, None, STATIC), id="delete"),
    pytest.param(
        Scenario(
            "PUT",
            "/tasks/{task_id}/bandwidth-policy",
            {"task_id": TASK},
            None,
            {"bandwidth_policy": [{"start": "00:00", "end": "06:00", "max_bandwidth": 1048576}]},
            STATIC,
        ),
        id="bandwidth",
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_what_is_signed_is_what_is_sent(scenario: Scenario) -> None:
    call = scenario.build()
    credentials = scenario.credentials
    assert_verifies(call, credentials)
    # ... and the check can fail: any change to what is sent breaks the signature.
    tampered = [
        PreparedCall(call.method, call.url, call.headers, call.body + b" "),
        PreparedCall(call.method, call.url + ("&" if "?" in call.url else "?") + "x=1", call.headers, call.body),
        PreparedCall(call.method, call.url.replace("/v2/", "/v2/x/"), call.headers, call.body),
        PreparedCall("PATCH", call.url, call.headers, call.body),
        PreparedCall(call.method, call.url, {**call.headers, "X-Sdk-Date": "20240101T000001Z"}, call.body),
    ]
    for other in tampered:
        assert recompute(other, credentials)["Authorization"] != call.headers["Authorization"]


def test_default_sdk_date_is_now() -> None:
    from datetime import datetime, timedelta, timezone

    call = builder().build("GET", f"/v2/{PROJECT}/tasks")
    sent = signer.parse_sdk_date(call.headers["X-Sdk-Date"])
    assert abs(datetime.now(timezone.utc) - sent) < timedelta(minutes=1)
    assert_verifies(call, STATIC)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_prepared_call_signature_matches_official_sdk(sdk: SimpleNamespace, scenario: Scenario) -> None:
    call = scenario.build()
    credentials = scenario.credentials
    parts = urlsplit(call.url)
    request = sdk.SdkRequest(
        method=call.method,
        schema=parts.scheme,
        host=parts.netloc,
        resource_path=parts.path,
        query_params=parse_qsl(parts.query, keep_blank_values=True),
        header_params={name: value for name, value in call.headers.items() if name != "Authorization"},
        body=bytes(call.body),
    )
    sdk.Signer(SimpleNamespace(ak=credentials.access_key, sk=credentials.secret_key)).sign(request)
    assert request.header_params["Authorization"] == call.headers["Authorization"]
    assert f"{parts.scheme}://{parts.netloc}{request.uri}" == call.url


def test_reprs_hide_credentials() -> None:
    b = builder(TEMPORARY)
    call = b.build("POST", b.path("/tasks/{task_id}/start", task_id=TASK), json_body=START_BODY, sdk_date=DATE)
    secrets = [AK, SK, TOKEN, *(str(v) for k, v in START_BODY.items() if k != "migrate_failed_object")]
    for obj in (TEMPORARY, call, b):
        for text in (repr(obj), str(obj)):
            for secret in secrets:
                assert secret not in text, (type(obj).__name__, secret)
    # The reprs still say something useful.
    assert PROJECT in repr(b)
    assert call.url in repr(call)
    # ... and the secrets are really there, so the checks above could fail.
    assert AK in call.headers["Authorization"]
    assert call.headers["X-Security-Token"] == TOKEN
    assert b"SRC-SK-SECRET" in call.body


@pytest.mark.parametrize(
    "endpoint",
    [
        "ftp://x",
        "https://",
        "http://",
        "https://:443",
        "oms.cn-north-4.myhuaweicloud.com",
        "",
        "file:///etc/passwd",
        "//host:1",
    ],
)
def test_invalid_endpoint_is_refused(endpoint: str) -> None:
    with pytest.raises(OMSValidationError, match="endpoint"):
        OMSRequestBuilder(endpoint, PROJECT, STATIC)


@pytest.mark.parametrize("endpoint", ["https://gateway.example/oms", "https://oms.cn-north-4.myhuaweicloud.com/v2"])
def test_endpoint_with_a_path_is_refused(endpoint: str) -> None:
    # The signature covers the path from /v2 on: a prefix would be sent but not signed.
    with pytest.raises(OMSValidationError, match="without a path, query or fragment"):
        builder(endpoint=endpoint)


def test_endpoint_with_userinfo_is_refused_without_repeating_it() -> None:
    with pytest.raises(OMSValidationError, match="must not contain a user name or password") as err:
        builder(endpoint="https://user:hunter2@oms.cn-north-4.myhuaweicloud.com")
    assert "hunter2" not in str(err.value)


# --------------------------------------------------------------------------------------------------------------
# parse_response
# --------------------------------------------------------------------------------------------------------------

OPERATION = f"start task {TASK}"
CALL = PreparedCall("POST", f"{ENDPOINT}/v2/{PROJECT}/tasks/{TASK}/start", {}, b"{}", operation=OPERATION)
REQUEST_ID = "req-0a1b2c3d4e5f"
WITH_REQUEST_ID = {"X-Request-Id": REQUEST_ID}


def api_error(status: int, content: bytes, headers: dict[str, str]) -> OMSApiError:
    """What parse_response raises for an answer to CALL."""
    with pytest.raises(OMSApiError) as info:
        parse_response(CALL, status, headers, content)
    return info.value


def assert_mentions(err: OMSApiError, *parts: str) -> None:
    """The error's message names each part."""
    for part in parts:
        assert part in str(err), part


@pytest.mark.parametrize("status", [200, 201, 202, 204])
@pytest.mark.parametrize("content", [b"", b"  \r\n"])
def test_2xx_empty_is_none(status: int, content: bytes) -> None:
    assert parse_response(CALL, status, WITH_REQUEST_ID, content) is None


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"id": 42, "task_name": "t"}', {"id": 42, "task_name": "t"}),
        (b'{"tasks": [], "count": 0}', {"tasks": [], "count": 0}),
        ('{"name": "迁移"}'.encode(), {"name": "迁移"}),
        (b"[1, 2]", [1, 2]),
        (b' {"a": null}\n', {"a": None}),
    ],
)
def test_2xx_json(content: bytes, expected: Any) -> None:
    assert parse_response(CALL, 200, {}, content) == expected


@pytest.mark.parametrize("content", [b"<html>OK</html>", b"not json", b'{"truncated": ', b"\xff\xfe"])
def test_2xx_non_json_is_an_error(content: bytes) -> None:
    err = api_error(200, content, WITH_REQUEST_ID)
    assert err.http_status == 200
    assert err.request_id == REQUEST_ID
    assert_mentions(err, OPERATION, "200", REQUEST_ID)


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


ERROR_CASES = [
    pytest.param(
        400,
        _json(
            {
                "error_code": "OMS.0064",
                "error_msg": "Invalid parameter.",
                "error_detail": "request parameter [description] invalid.",
            }
        ),
        "OMS.0064",
        "Invalid parameter. (request parameter [description] invalid.)",
        id="error_code-error_msg-error_detail",
    ),
    pytest.param(
        400,
        _json({"error_code": "OMS.0065", "error_msg": "The task has already started."}),
        "OMS.0065",
        "The task has already started.",
        id="error_code-error_msg",
    ),
    pytest.param(
        400,
        _json({"error_code": "OMS.0064", "error_detail": "request parameter [x] invalid."}),
        "OMS.0064",
        "request parameter [x] invalid.",
        id="error_detail-only",
    ),
    pytest.param(
        401,
        _json({"errorCode": "APIGW.0301", "errorMsg": "Incorrect IAM authentication information"}),
        "APIGW.0301",
        "Incorrect IAM authentication information",
        id="errorCode-errorMsg",
    ),
    pytest.param(
        429,
        _json({"code": "APIGW.0308", "message": "The throttling threshold has been reached"}),
        "APIGW.0308",
        "The throttling threshold has been reached",
        id="code-message",
    ),
    pytest.param(
        404,
        _json({"error": {"code": "OMS.1009", "message": "No resources found."}}),
        "OMS.1009",
        "No resources found.",
        id="nested-code-message",
    ),
    pytest.param(
        400,
        _json({"error": {"error_code": "OMS.0066", "error_msg": "Pause failed."}}),
        "OMS.0066",
        "Pause failed.",
        id="nested-error_code-error_msg",
    ),
    pytest.param(
        403,
        _json({"error": {"errorCode": "APIGW.0302", "errorMsg": "Forbidden."}}),
        "APIGW.0302",
        "Forbidden.",
        id="nested-errorCode-errorMsg",
    ),
    pytest.param(
        400,
        '{"error_code": "OMS.0078", "error_msg": "描述包含非法字符"}'.encode(),
        "OMS.0078",
        "描述包含非法字符",
        id="unicode-message",
    ),
]


@pytest.mark.parametrize(("status", "content", "code", "message"), ERROR_CASES)
def test_error_body_shapes(status: int, content: bytes, code: str, message: str) -> None:
    err = api_error(status, content, WITH_REQUEST_ID)
    assert (err.http_status, err.error_code, err.error_msg, err.request_id) == (status, code, message, REQUEST_ID)
    assert_mentions(err, OPERATION, f"HTTP {status}", code, message, REQUEST_ID)


@pytest.mark.parametrize(
    ("status", "content", "in_error_msg"),
    [
        (502, b"<html><body><h1>502 Bad Gateway</h1>\n<p>nginx</p></body></html>", "502 Bad Gateway"),
        (503, b"Service Unavailable", "Service Unavailable"),
        (400, b"[1, 2, 3]", "[1, 2, 3]"),
        (500, b"\xff\xfe garbage", "garbage"),
    ],
)
def test_error_with_a_body_that_is_not_a_json_object(status: int, content: bytes, in_error_msg: str) -> None:
    err = api_error(status, content, WITH_REQUEST_ID)
    assert err.http_status == status
    assert err.error_code is None
    assert err.error_msg is not None
    assert in_error_msg in err.error_msg
    assert err.request_id == REQUEST_ID
    assert_mentions(err, OPERATION, f"HTTP {status}", in_error_msg, REQUEST_ID)


def test_long_html_error_body_is_cut() -> None:
    content = b"<html>" + b"x" * 10_000 + b"</html>"
    err = api_error(502, content, {})
    assert err.error_msg is not None
    assert len(err.error_msg) < 300
    assert len(str(err)) < 500


@pytest.mark.parametrize("content", [b"", b"   ", b"{}"])
def test_error_with_an_empty_body(content: bytes) -> None:
    err = api_error(500, content, WITH_REQUEST_ID)
    assert (err.http_status, err.error_code, err.error_msg, err.request_id) == (500, None, None, REQUEST_ID)
    assert_mentions(err, OPERATION, "HTTP 500", REQUEST_ID)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_is_an_error(status: int) -> None:
    err = api_error(status, b"", {**WITH_REQUEST_ID, "Location": "https://elsewhere.example/"})
    assert err.http_status == status
    assert err.request_id == REQUEST_ID
    assert_mentions(err, OPERATION, f"HTTP {status}", "redirect", REQUEST_ID)


def test_request_id_header_lower_case_and_absent() -> None:
    assert api_error(400, b"{}", {"x-request-id": REQUEST_ID}).request_id == REQUEST_ID
    without = api_error(400, _json({"error_code": "OMS.0064", "error_msg": "bad"}), {})
    assert without.request_id is None
    assert "request id" not in str(without)


@pytest.mark.parametrize(("code", "hint"), [("APIGW.0301", "AK/SK"), ("OMS.1009", "task id"), ("APIGW.0308", "retry")])
def test_known_error_codes_come_with_a_hint(code: str, hint: str) -> None:
    assert_mentions(api_error(400, _json({"error_code": code, "error_msg": "m"}), {}), "Hint:", hint)


def test_unknown_error_code_has_no_hint() -> None:
    assert "Hint" not in str(api_error(400, _json({"error_code": "OMS.0065", "error_msg": "m"}), {}))


@pytest.mark.parametrize(("status", "content", "code", "message"), ERROR_CASES[:2])
def test_api_error_survives_pickling(status: int, content: bytes, code: str, message: str) -> None:
    original = api_error(status, content, WITH_REQUEST_ID)
    copy = pickle.loads(pickle.dumps(original))  # noqa: S301 (our own object)
    assert type(copy) is OMSApiError
    assert str(copy) == str(original)
    assert (copy.http_status, copy.error_code, copy.error_msg, copy.request_id) == (
        status,
        code,
        message,
        REQUEST_ID,
    )


def test_api_error_with_no_response_survives_pickling() -> None:
    original = OMSApiError("could not connect")
    copy = pickle.loads(pickle.dumps(original))  # noqa: S301 (our own object)
    assert str(copy) == "could not connect"
    assert (copy.http_status, copy.error_code, copy.error_msg, copy.request_id) == (None, None, None, None)
