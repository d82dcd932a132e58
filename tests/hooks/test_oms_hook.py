from __future__ import annotations

import json

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.exceptions import OMSApiError, OMSValidationError
from airflow_provider_oms.hooks.oms import OMSHook
from airflow_provider_oms.testing import EMULATOR_AK, EMULATOR_PROJECT_ID, EMULATOR_SK
from tests.helpers import create_sample_task

AK = "HOOKTESTAK0000000001"
SK = "HOOKTESTSK-very-secret-0000000000000001"


def oms_extra(**extra):
    return {"project_id": EMULATOR_PROJECT_ID, "region": "cn-north-4", **extra}


# -- connection resolution (no network) -------------------------------------------------------------


def test_connection_is_read_lazily(set_connection):
    hook = OMSHook(oms_conn_id="does_not_exist_yet")
    set_connection("does_not_exist_yet", login=AK, password=SK, extra=oms_extra())
    assert hook.config.project_id == EMULATOR_PROJECT_ID


def test_region_gives_the_endpoint(set_connection):
    set_connection("oms", login=AK, password=SK, extra=oms_extra())
    config = OMSHook("oms").config
    assert config.endpoint == "https://oms.cn-north-4.myhuaweicloud.com"
    assert config.credentials.access_key == AK
    assert config.credentials.secret_key == SK
    assert config.verify is True
    assert config.timeout == 60.0


def test_endpoint_overrides_region_and_extras_are_coerced(set_connection):
    set_connection(
        "oms",
        login=AK,
        password=SK,
        extra=oms_extra(endpoint="http://127.0.0.1:8123", verify="False", timeout="7.5"),
    )
    config = OMSHook("oms").config
    assert config.endpoint == "http://127.0.0.1:8123"
    assert config.verify is False
    assert config.timeout == 7.5


def test_verify_may_be_a_ca_bundle_path(set_connection, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    set_connection("oms", login=AK, password=SK, extra=oms_extra(verify=str(bundle)))
    assert OMSHook("oms").config.verify == str(bundle)


def test_verify_path_that_is_not_a_file_is_refused(set_connection, tmp_path):
    set_connection("oms", login=AK, password=SK, extra=oms_extra(verify=str(tmp_path / "missing.pem")))
    with pytest.raises(OMSValidationError, match="must be true, false or the path of a CA bundle file"):
        _ = OMSHook("oms").config


@pytest.mark.parametrize(
    ("login", "password", "extra", "field"),
    [
        (AK + "\n", SK, oms_extra(), "AK (login of OMS connection 'oms')"),
        (AK, SK + " ", oms_extra(), "SK (password of OMS connection 'oms')"),
        (AK, "SKé" + SK, oms_extra(), "SK (password of OMS connection 'oms')"),
        (
            AK,
            SK,
            oms_extra(security_token="\nSUPER-SECRET-STS-TOKEN"),
            "security_token (extra of OMS connection 'oms')",
        ),
    ],
)
def test_credentials_with_spaces_line_breaks_or_non_ascii_are_refused_unquoted(
    set_connection, login, password, extra, field
):
    set_connection("oms", login=login, password=password, extra=extra)
    with pytest.raises(OMSValidationError) as err:
        OMSHook("oms").list_tasks()
    assert f"{field} must be printable ASCII without spaces" in str(err.value)
    for secret in (AK, SK, "SUPER-SECRET"):
        assert secret not in str(err.value)
    assert err.value.__cause__ is None


def test_half_a_source_key_pair_is_refused(set_connection):
    set_connection("oms", login=AK, password=SK, extra=oms_extra())
    set_connection("src", login="SOURCE-AK-0001")
    with pytest.raises(OMSValidationError, match=r"source connection 'src' has only its AK \(login of source"):
        OMSHook("oms").build_start_task_body(source_conn_id="src")


@pytest.mark.parametrize(
    ("arguments", "message"), [({"limit": "ten"}, "limit must be"), ({"offset": -1}, "offset must be")]
)
def test_list_arguments_are_checked(set_connection, arguments, message):
    set_connection("oms", login=AK, password=SK, extra=oms_extra())
    with pytest.raises(OMSValidationError, match=message):
        OMSHook("oms").list_tasks(**arguments)


@pytest.mark.parametrize(
    ("login", "password", "extra", "message"),
    [
        (AK, SK, {"region": "cn-north-4"}, "extra 'project_id' of connection 'oms' is required"),
        (AK, SK, {"project_id": "p"}, "needs extra 'region' (e.g. 'cn-north-4') or 'endpoint'"),
        (AK, SK, {"project_id": "p", "region": "mars-north-1"}, "'mars-north-1', which is not a known OMS region"),
        (AK, SK, oms_extra(endpoint="http://oms.example.com"), "plain http:// to a host that is not loopback"),
        (AK, SK, oms_extra(endpoint="ftp://x"), "endpoint must be an http(s) URL"),
        (AK, SK, oms_extra(timeout="soon"), "extra 'timeout' of connection 'oms' must be a number of seconds"),
        (AK, SK, oms_extra(timeout=0), "must be more than 0 seconds"),
        (None, SK, oms_extra(), "AK (login) of connection 'oms' is required and must be 1 to 100 characters"),
        (AK, "", oms_extra(), "SK (password) of connection 'oms' is required and must be 1 to 100 characters"),
        (AK, "S" * 101, oms_extra(), "SK (password of OMS connection 'oms') must be 1 to 100 characters long, got 101"),
        (AK, SK, oms_extra(project_id="a/b"), "must not contain '/'"),
    ],
)
def test_bad_connections_are_refused_before_any_request(set_connection, login, password, extra, message):
    set_connection("oms", login=login, password=password, extra=extra)
    hook = OMSHook("oms")
    with pytest.raises(OMSValidationError) as err:
        hook.get_task("1")
    assert message in str(err.value)
    assert SK not in str(err.value)
    assert "session" not in hook.__dict__  # no HTTP session was even created


def test_insecure_http_can_be_allowed_explicitly(set_connection):
    set_connection(
        "oms", login=AK, password=SK, extra=oms_extra(endpoint="http://oms.example.com", allow_insecure_http="true")
    )
    assert OMSHook("oms").config.endpoint == "http://oms.example.com"


def test_reprs_hold_no_credential(set_connection):
    set_connection("oms", login=AK, password=SK, extra=oms_extra(security_token="TOKEN-SECRET-123"))
    hook = OMSHook("oms")
    texts = [repr(hook), repr(hook.config), repr(hook.request_builder), repr(hook.config.credentials)]
    for text in texts:
        for secret in (AK, SK, "TOKEN-SECRET-123"):
            assert secret not in text


def test_every_credential_read_is_masked(set_connection, mocker):
    masked = mocker.patch("airflow_provider_oms.connections.mask_secret")
    set_connection("oms", login=AK, password=SK, extra=oms_extra(security_token="OMS-TOKEN-0001"))
    set_connection(
        "src",
        login="SOURCE-AK-0001",
        password="SOURCE-SK-0001",
        extra={
            "security_token": "SOURCE-TOKEN-0001",
            "json_auth_file": {"type": "service_account", "private_key": "PK-0001"},
            "cdn_authentication_key": "CDN-KEY-0001",
        },
    )
    body = OMSHook("oms").build_start_task_body(source_conn_id="src")
    seen = [call.args[0] for call in masked.call_args_list]
    for secret in (AK, SK, "OMS-TOKEN-0001", "SOURCE-AK-0001", "SOURCE-SK-0001", "SOURCE-TOKEN-0001", "CDN-KEY-0001"):
        assert secret in seen
    assert body["json_auth_file"] in seen


# -- the start body ---------------------------------------------------------------------------------


def test_start_body_defaults_to_the_oms_connection_as_destination(set_connection):
    set_connection("oms", login=AK, password=SK, extra=oms_extra(security_token="OMS-TOKEN-0001"))
    body = OMSHook("oms").build_start_task_body(migrate_failed_object=True)
    assert body == {
        "dst_ak": AK,
        "dst_sk": SK,
        "dst_security_token": "OMS-TOKEN-0001",
        "migrate_failed_object": True,
    }


def test_start_body_from_source_and_destination_connections(set_connection):
    set_connection("oms", login=AK, password=SK, extra=oms_extra())
    set_connection("dst", login="DEST-AK-0001", password="DEST-SK-0001")
    set_connection(
        "src",
        login="SOURCE-AK-0001",
        password="SOURCE-SK-0001",
        extra={"security_token": "SOURCE-TOKEN-0001", "cdn_authentication_key": "CDN-KEY-0001"},
    )
    body = OMSHook("oms").build_start_task_body(source_conn_id="src", destination_conn_id="dst")
    assert body == {
        "dst_ak": "DEST-AK-0001",
        "dst_sk": "DEST-SK-0001",
        "src_ak": "SOURCE-AK-0001",
        "src_sk": "SOURCE-SK-0001",
        "src_security_token": "SOURCE-TOKEN-0001",
        "source_cdn_authentication_key": "CDN-KEY-0001",
        "migrate_failed_object": False,
    }


def test_gcs_auth_file_from_an_object_or_a_string(set_connection):
    key = {"type": "service_account", "project_id": "p", "private_key": "PK"}
    set_connection("oms", login=AK, password=SK, extra=oms_extra())
    set_connection("gcs_obj", extra={"json_auth_file": key})
    set_connection("gcs_str", extra={"json_auth_file": json.dumps(key)})
    hook = OMSHook("oms")
    for conn_id in ("gcs_obj", "gcs_str"):
        body = hook.build_start_task_body(source_conn_id=conn_id)
        assert json.loads(body["json_auth_file"]) == key
        assert "src_ak" not in body
        assert "src_sk" not in body


def test_gcs_auth_file_that_is_not_json_is_refused(set_connection):
    set_connection("oms", login=AK, password=SK, extra=oms_extra())
    set_connection("gcs", extra={"json_auth_file": "not json PRIVATE"})
    with pytest.raises(
        OMSValidationError, match="extra 'json_auth_file' of connection 'gcs' must be a JSON object"
    ) as err:
        OMSHook("oms").build_start_task_body(source_conn_id="gcs")
    assert "PRIVATE" not in str(err.value)


def test_no_source_connection_sends_no_source_fields(set_connection):
    set_connection("oms", login=AK, password=SK, extra=oms_extra())
    body = OMSHook("oms").build_start_task_body()
    assert not [key for key in body if key.startswith("src_")]


def test_source_credentials_over_the_limit_name_the_connection(set_connection):
    set_connection("oms", login=AK, password=SK, extra=oms_extra())
    set_connection("src", login="SOURCE-AK", password="X" * 101)
    with pytest.raises(OMSValidationError) as err:
        OMSHook("oms").build_start_task_body(source_conn_id="src")
    assert "SK (password of source connection 'src') must be 1 to 100 characters long, got 101" in str(err.value)
    assert "X" * 101 not in str(err.value)


# -- against the emulator, over real HTTP ------------------------------------------------------------


def test_task_lifecycle_through_the_hook(oms_emulator, oms_conn):
    hook = OMSHook(oms_conn)
    task_id = create_sample_task(oms_emulator, hook)
    done = oms_emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED})
    assert hook.get_task(task_id)["successful_num"] == done["successful_num"] == 3

    listed = hook.list_tasks(limit=10, status=TaskStatus.SUCCEEDED)
    assert [str(t["id"]) for t in listed["tasks"]] == [task_id]
    assert listed["count"] == 1

    with pytest.raises(OMSApiError) as err:
        hook.start_task(task_id, hook.build_start_task_body())
    assert err.value.http_status == 400
    assert err.value.request_id

    hook.delete_task(task_id)
    with pytest.raises(OMSApiError) as err:
        hook.get_task(task_id)
    assert err.value.error_code == "OMS.1009"
    assert "check the migration task id" in str(err.value)


def test_stop_then_start_a_running_task(tmp_path, oms_conn, monkeypatch):
    from airflow_provider_oms.testing import OMSEmulator

    with OMSEmulator(tmp_path / "data", object_delay=0.2) as emulator:
        monkeypatch.setenv(f"AIRFLOW_CONN_{oms_conn.upper()}", emulator.airflow_connection_uri_env())
        hook = OMSHook(oms_conn)
        task_id = create_sample_task(emulator, hook, files=10)
        emulator.wait_for_status(task_id, {TaskStatus.RUNNING})
        hook.stop_task(task_id)
        assert emulator.wait_for_status(task_id, {TaskStatus.PAUSED})["successful_num"] < 10

        with pytest.raises(OMSApiError) as err:
            hook.stop_task(task_id)
        assert err.value.error_code == "OMS.0066"

        hook.start_task(task_id, hook.build_start_task_body())
        assert emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED}, timeout=20)["successful_num"] == 10


def test_starting_a_running_task_is_an_oms_error_without_credentials(tmp_path, oms_conn, monkeypatch):
    from airflow_provider_oms.testing import OMSEmulator

    with OMSEmulator(tmp_path / "data", task_start_delay=5) as emulator:
        monkeypatch.setenv(f"AIRFLOW_CONN_{oms_conn.upper()}", emulator.airflow_connection_uri_env())
        hook = OMSHook(oms_conn)
        task_id = create_sample_task(emulator, hook)
        with pytest.raises(OMSApiError) as err:
            hook.start_task(task_id, hook.build_start_task_body())
    error = err.value
    assert (error.http_status, error.error_code) == (400, "OMS.0065")
    assert error.error_msg
    assert error.request_id and error.request_id in str(error)
    assert f"start task {task_id}" in str(error)
    for secret in (EMULATOR_AK, EMULATOR_SK):
        assert secret not in str(error)
        assert secret not in repr(error)


def test_wrong_secret_key_is_a_401_with_a_hint(oms_emulator, set_connection):
    conn = oms_emulator.airflow_connection()
    set_connection(
        "bad", conn_type=conn["conn_type"], login=conn["login"], password="WRONG-SK-00000000", extra=conn["extra"]
    )
    with pytest.raises(OMSApiError) as err:
        OMSHook("bad").list_tasks()
    assert (err.value.http_status, err.value.error_code) == (401, "APIGW.0301")
    assert "check the connection's AK/SK" in str(err.value)
    assert "WRONG-SK" not in str(err.value)


def test_security_token_is_sent_signed(oms_emulator, set_connection):
    conn = oms_emulator.airflow_connection()
    extra = {**conn["extra"], "security_token": "TEMP-TOKEN-0001"}
    set_connection("tmp", conn_type=conn["conn_type"], login=conn["login"], password=conn["password"], extra=extra)
    hook = OMSHook("tmp")
    call = hook.request_builder.build("GET", hook.request_builder.path("/tasks"), operation="list tasks")
    assert call.headers["X-Security-Token"] == "TEMP-TOKEN-0001"
    assert "x-security-token" in call.headers["Authorization"]
    assert hook.list_tasks()["count"] == 0


def test_unreachable_endpoint_is_retried_then_a_clear_error(set_connection):
    extra = oms_extra(endpoint="http://127.0.0.1:9", timeout=2, retry_max_attempts=3, retry_base_wait=0.01)
    set_connection("oms", login=AK, password=SK, extra=extra)
    hook = OMSHook("oms")
    with pytest.raises(
        OMSApiError, match=r"OMS list tasks failed: no answer from http://127.0.0.1:9 \(ConnectionError"
    ) as err:
        hook.list_tasks()
    assert err.value.transient is True
    assert err.value.may_have_applied is False  # the connect was refused: nothing was sent


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"retry_max_attempts": 0}, "extra 'retry_max_attempts' of connection 'oms' must be a number of at least 1"),
        ({"retry_max_attempts": 2.5}, "must be a whole number"),
        ({"retry_max_seconds": "soon"}, "extra 'retry_max_seconds' of connection 'oms' must be a number"),
        ({"retry_base_wait": -1}, "extra 'retry_base_wait' of connection 'oms' must be a number of at least 0"),
    ],
)
def test_bad_retry_settings_are_refused(set_connection, extra, message):
    set_connection("oms", login=AK, password=SK, extra=oms_extra(**extra))
    with pytest.raises(OMSValidationError) as err:
        _ = OMSHook("oms").config
    assert message in str(err.value)


def test_retry_settings_come_from_the_connection(set_connection):
    extra = oms_extra(retry_max_attempts="7", retry_max_seconds=30, retry_base_wait="0.5", retry_max_wait=4)
    set_connection("oms", login=AK, password=SK, extra=extra)
    policy = OMSHook("oms").config.retry_policy
    assert (policy.max_attempts, policy.max_seconds, policy.base_wait, policy.max_wait) == (7, 30.0, 0.5, 4.0)


def test_one_session_serves_every_call(oms_emulator, oms_conn):
    hook = OMSHook(oms_conn)
    session = hook.session
    hook.list_tasks()
    hook.list_tasks(limit=1)
    assert hook.session is session
    hook.close()
    assert "session" not in hook.__dict__


def test_what_goes_on_the_wire(set_connection):
    # The hook prepares each signed request itself and sends it with Session.send: the session's default headers
    # still go out, ours win, and a cookie the server set comes back on the next call, as with Session.request.
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(dict(self.headers.items()))
            payload = b'{"id": 7, "status": 2}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Set-Cookie", "lb=sticky; Path=/")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        set_connection("oms", login=AK, password=SK, extra=oms_extra(endpoint=endpoint))
        hook = OMSHook("oms")
        assert hook.get_task("7")["status"] == 2
        assert hook.get_task("7")["status"] == 2
        hook.close()
    finally:
        server.shutdown()
        server.server_close()
    assert len(seen) == 2
    assert "Cookie" not in seen[0]
    assert seen[1]["Cookie"] == "lb=sticky"
    for headers in seen:
        assert headers["User-Agent"].startswith("airflow-provider-oms")
        assert headers["Accept"] == "*/*"
        assert "gzip" in headers["Accept-Encoding"]
        assert headers["Authorization"].startswith(f"SDK-HMAC-SHA256 Access={AK}, ")
        assert headers["X-Project-Id"] == EMULATOR_PROJECT_ID


# -- source credentials from the connections users already have --------------------------------------


@pytest.mark.parametrize(
    ("conn", "expected"),
    [
        (
            {"conn_type": "aws", "login": "AWS-AK-000000001", "password": "AWS-SK-000000001"},
            {"src_ak": "AWS-AK-000000001", "src_sk": "AWS-SK-000000001"},
        ),
        (
            {
                "conn_type": "aws",
                "extra": {
                    "aws_access_key_id": "AWS-AK-FROM-EXTRA",
                    "aws_secret_access_key": "AWS-SK-FROM-EXTRA",
                    "aws_session_token": "AWS-SESSION-TOKEN-1",
                },
            },
            {"src_ak": "AWS-AK-FROM-EXTRA", "src_sk": "AWS-SK-FROM-EXTRA", "src_security_token": "AWS-SESSION-TOKEN-1"},
        ),
        (
            {
                "conn_type": "wasb",
                "extra": {"connection_string": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=K"},
            },
            {"connection_string": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=K"},
        ),
        (
            {
                "conn_type": "generic",
                "login": "GENERIC-AK-0001",
                "password": "GENERIC-SK-0001",
                "extra": {"security_token": "TOK-000001"},
            },
            {"src_ak": "GENERIC-AK-0001", "src_sk": "GENERIC-SK-0001", "src_security_token": "TOK-000001"},
        ),
        (
            {
                "conn_type": "huaweicloud_oms",
                "login": "HW-AK-0000001",
                "password": "HW-SK-0000001",
                "extra": {"cdn_authentication_key": "CDNKEY-1"},
            },
            {"src_ak": "HW-AK-0000001", "src_sk": "HW-SK-0000001", "source_cdn_authentication_key": "CDNKEY-1"},
        ),
    ],
    ids=["aws-login", "aws-extras", "wasb", "generic", "huaweicloud_oms"],
)
def test_source_credentials_by_connection_type(set_connection, conn, expected, mocker):
    masked = mocker.patch("airflow_provider_oms.connections.mask_secret")
    set_connection("oms", login=AK, password=SK, extra=oms_extra())
    set_connection("src", **conn)
    body = OMSHook("oms").build_start_task_body(source_conn_id="src")
    source = {k: v for k, v in body.items() if k not in {"dst_ak", "dst_sk", "migrate_failed_object"}}
    assert source == expected
    seen = [call.args[0] for call in masked.call_args_list]
    for value in expected.values():
        assert value in seen


GCS_KEY = {"type": "service_account", "project_id": "p", "private_key": "-----BEGIN PRIVATE KEY-----X"}


@pytest.mark.parametrize("form", ["keyfile_dict-object", "keyfile_dict-text", "legacy-prefix", "key_path"])
def test_google_cloud_connection_gives_the_json_auth_file(set_connection, tmp_path, form):
    set_connection("oms", login=AK, password=SK, extra=oms_extra())
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(GCS_KEY))
    extra = {
        "keyfile_dict-object": {"keyfile_dict": GCS_KEY},
        "keyfile_dict-text": {"keyfile_dict": json.dumps(GCS_KEY)},
        "legacy-prefix": {"extra__google_cloud_platform__keyfile_dict": json.dumps(GCS_KEY)},
        "key_path": {"key_path": str(key_file)},
    }[form]
    set_connection("gcp", conn_type="google_cloud_platform", extra=extra)
    body = OMSHook("oms").build_start_task_body(source_conn_id="gcp")
    assert json.loads(body["json_auth_file"]) == GCS_KEY
    assert "src_ak" not in body


@pytest.mark.parametrize(
    ("conn", "message"),
    [
        (
            {"conn_type": "google_cloud_platform"},
            "Google Cloud connection 'src' needs extra 'keyfile_dict' or 'key_path'",
        ),
        ({"conn_type": "google_cloud_platform", "extra": {"key_path": "/nonexistent.json"}}, "is not a file"),
        (
            {"conn_type": "wasb", "login": "account"},
            "Azure Blob Storage connection 'src' needs extra 'connection_string'",
        ),
        (
            {"conn_type": "aws", "extra": {"aws_access_key_id": "AWS-AK-ONLY-0001"}},
            "has only its AK (extra 'aws_access_key_id'",
        ),
    ],
)
def test_incomplete_source_connections_are_refused(set_connection, conn, message):
    set_connection("oms", login=AK, password=SK, extra=oms_extra())
    set_connection("src", **conn)
    with pytest.raises(OMSValidationError) as err:
        OMSHook("oms").build_start_task_body(source_conn_id="src")
    assert message in str(err.value)


# -- the Test button ------------------------------------------------------------------------------------


def test_test_connection_succeeds_with_one_read(oms_emulator, oms_conn):
    ok, message = OMSHook(oms_conn).test_connection()
    assert ok, message
    assert f"for project {oms_emulator.project_id}" in message
    assert [(r.method, r.status) for r in oms_emulator.requests] == [("GET", 200)]


def test_test_connection_explains_bad_credentials(oms_emulator, set_connection):
    conn = oms_emulator.airflow_connection()
    set_connection(
        "bad", conn_type="huaweicloud_oms", login=conn["login"], password="WRONG-SK-000000000", extra=conn["extra"]
    )
    ok, message = OMSHook("bad").test_connection()
    assert not ok
    assert "OMS refused the credentials (APIGW.0301): check the AK (login) and SK (password)" in message
    assert "OMS said: HTTP 401 APIGW.0301" in message
    assert "'bad'" not in message  # the UI tests a copy under a random id: naming it would mislead
    assert message.count("check") == 1, message  # the advice once, not again as the error's own hint
    assert "WRONG-SK" not in message
    assert len(oms_emulator.requests) == 1  # a single attempt: the form answers fast


def test_test_connection_explains_an_unknown_project(oms_emulator, set_connection):
    conn = oms_emulator.airflow_connection()
    extra = {**conn["extra"], "project_id": "ffffffffffffffffffffffffffffffff"}
    set_connection("other", conn_type="huaweicloud_oms", login=conn["login"], password=conn["password"], extra=extra)
    ok, message = OMSHook("other").test_connection()
    assert not ok
    assert "project_id is the project of this region" in message or "did not find the project" in message


def test_test_connection_explains_an_unreachable_endpoint(set_connection):
    set_connection("oms", login=AK, password=SK, extra=oms_extra(endpoint="http://127.0.0.1:9"))
    ok, message = OMSHook("oms").test_connection()
    assert not ok
    assert message.startswith("Could not reach OMS")
    assert "Check the connection's region or endpoint" in message


def test_test_connection_explains_a_bad_setting(set_connection):
    set_connection("oms", login=AK, password=SK, extra={"region": "cn-north-4"})
    ok, message = OMSHook("oms").test_connection()
    assert not ok
    assert "extra 'project_id' of connection 'oms' is required" in message


def test_test_connection_explains_clock_skew(tmp_path, set_connection):
    from airflow_provider_oms.testing import OMSEmulator

    # The emulator's clock runs 30 minutes behind: this machine's clock is 30 minutes ahead of the server's.
    with OMSEmulator(tmp_path / "data", clock_offset=-1800) as emulator:
        conn = emulator.airflow_connection()
        set_connection(
            "skewed", conn_type="huaweicloud_oms", login=conn["login"], password=conn["password"], extra=conn["extra"]
        )
        ok, message = OMSHook("skewed").test_connection()
    assert not ok
    assert message.startswith("OMS refused the request's date")
    assert "This machine's clock is 30m0" in message
    assert "ahead of the server's" in message
