"""
Source connections through the real Amazon and Azure providers (`make test-providers`, OMS_PROVIDERS=1).

Roles and web identities are assumed against moto's STS running as a real process on 127.0.0.1 (conftest's
``local_sts``), reached through the connection's ``service_config: {"sts": {"endpoint_url": ...}}``: the Amazon
provider sends assume-role calls there and never to a top-level ``endpoint_url`` (``AwsConnectionWrapper.
get_service_endpoint_url(..., sts_connection_assume=True)``). The keys STS issues must reach the start body the
hook sends to the OMS emulator, with their session token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import boto3
import pytest
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.microsoft.azure.hooks.wasb import WasbHook
from azure.storage.blob import BlobServiceClient
from azure.storage.blob._shared.authentication import SharedKeyCredentialPolicy

from airflow_provider_oms import source_providers
from airflow_provider_oms.exceptions import OMSValidationError
from tests.helpers import create_sample_task

ROLE_ARN = "arn:aws:iam::123456789012:role/oms-source"
BASE_AK, BASE_SK = "AKIABASEKEYFORSTS001", "base-secret-key-for-sts-0001"
ACCOUNT_KEY = "T01TLXByb3ZpZGVycy10ZXN0LWFjY291bnQta2V5LTAwMDE=" * 2


@pytest.fixture
def started_with(make_emulator) -> Any:
    """start(source_conn_id) -> the source fields of the start body the hook sent to the emulator."""
    emulator, hook = make_emulator(task_start_delay=5)
    task_id = create_sample_task(emulator, hook)
    hook.stop_task(task_id)
    bodies: list[Mapping[str, Any]] = []
    store = emulator._store
    start_task = store.start_task

    def recording_start(migration_task_id: Any, body: Any) -> None:
        bodies.append(dict(body))
        start_task(migration_task_id, body)

    store.start_task = recording_start

    def start(source_conn_id: str) -> dict[str, Any]:
        bodies.clear()
        emulator.wait_for_status(task_id, {3}, timeout=20)  # paused: a start is accepted
        hook.start_task(task_id, hook.build_start_task_body(source_conn_id=source_conn_id))
        hook.stop_task(task_id)
        (body,) = bodies
        return {name: value for name, value in body.items() if name.startswith("src_") or name == "connection_string"}

    return start


def _aws(set_connection: Any, conn_id: str, login: str | None = None, **extra: Any) -> str:
    return set_connection(
        conn_id,
        conn_type="aws",
        login=login,
        password=BASE_SK if login else None,
        extra={"region_name": "us-east-1", **extra},
    )


def _caller_arn(local_sts: str, fields: Mapping[str, Any]) -> str:
    """Who the keys are, asked of the local STS with the keys themselves."""
    sts = boto3.client(
        "sts",
        region_name="us-east-1",
        endpoint_url=local_sts,
        aws_access_key_id=fields["src_ak"],
        aws_secret_access_key=fields["src_sk"],
        aws_session_token=fields.get("src_security_token"),
    )
    return str(sts.get_caller_identity()["Arn"])


def test_the_real_amazon_provider_is_the_one_asked():
    assert source_providers.amazon_hook_class() is AwsBaseHook


def test_aws_static_keys(set_connection, started_with):
    _aws(set_connection, "aws_keys", login=BASE_AK)
    assert started_with("aws_keys") == {"src_ak": BASE_AK, "src_sk": BASE_SK}


def test_aws_temporary_keys_kept_in_the_connection(set_connection, started_with):
    """The form of tests/distributed's source connection, which .venv-distributed now reads through the provider."""
    _aws(set_connection, "aws_temporary", login="ASIATEMPORARYKEY0001", aws_session_token="kept-session-token-0001")
    assert started_with("aws_temporary") == {
        "src_ak": "ASIATEMPORARYKEY0001",
        "src_sk": BASE_SK,
        "src_security_token": "kept-session-token-0001",
    }


def test_aws_assumed_role_keys_and_session_token_from_a_local_sts(set_connection, started_with, local_sts):
    _aws(
        set_connection,
        "aws_role",
        login=BASE_AK,
        role_arn=ROLE_ARN,
        assume_role_kwargs={"DurationSeconds": 43200},
        service_config={"sts": {"endpoint_url": local_sts}},
    )
    fields = started_with("aws_role")
    assert set(fields) == {"src_ak", "src_sk", "src_security_token"}
    assert fields["src_ak"].startswith("ASIA") and fields["src_ak"] != BASE_AK
    assert _caller_arn(local_sts, fields).startswith("arn:aws:sts::123456789012:assumed-role/oms-source/")


def test_aws_web_identity_from_a_local_sts(set_connection, started_with, local_sts, tmp_path):
    token_file = tmp_path / "web-identity-token"
    token_file.write_text("a-web-identity-token-the-local-sts-accepts")
    _aws(
        set_connection,
        "aws_web_identity",
        role_arn=ROLE_ARN,
        assume_role_method="assume_role_with_web_identity",
        assume_role_with_web_identity_federation="file",
        assume_role_with_web_identity_token_file=str(token_file),
        service_config={"sts": {"endpoint_url": local_sts}},
    )
    fields = started_with("aws_web_identity")
    assert set(fields) == {"src_ak", "src_sk", "src_security_token"}
    assert "assumed-role/oms-source/" in _caller_arn(local_sts, fields)


def test_aws_profile_from_a_shared_credentials_file(set_connection, started_with, monkeypatch, tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[migration]\naws_access_key_id = ASIAPROFILEKEY000001\naws_secret_access_key = profile-secret-0001\n"
        "aws_session_token = profile-session-token-0001\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    _aws(set_connection, "aws_profile", profile_name="migration")
    assert started_with("aws_profile") == {
        "src_ak": "ASIAPROFILEKEY000001",
        "src_sk": "profile-secret-0001",
        "src_security_token": "profile-session-token-0001",
    }


def test_aws_a_role_the_sts_refuses_is_refused_before_the_start(set_connection, make_emulator, local_sts):
    emulator, hook = make_emulator()
    _aws(
        set_connection,
        "aws_bad_role",
        login=BASE_AK,
        role_arn="not-an-arn",
        service_config={"sts": {"endpoint_url": local_sts}},
    )
    emulator.reset_requests()
    with pytest.raises(OMSValidationError, match="could not resolve the keys of source connection 'aws_bad_role'"):
        hook.build_start_task_body(source_conn_id="aws_bad_role")
    assert emulator.requests == []


def test_aws_without_keys_role_or_profile_never_sends_the_workers_own(set_connection, make_emulator, monkeypatch):
    _, hook = make_emulator()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATHEWORKERSOWN001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "the-workers-own-secret")
    _aws(set_connection, "aws_nothing")
    with pytest.raises(OMSValidationError, match="holds no source keys") as err:
        hook.build_start_task_body(source_conn_id="aws_nothing")
    assert "AKIATHEWORKERSOWN001" not in str(err.value)


# -- wasb: what the Azure provider's WasbHook makes of a connection, and what this provider sends ----------------


WASB_FORMS = {
    "login-password": {"login": "acct1", "password": ACCOUNT_KEY},
    "shared_access_key-host": {
        "login": "acct1",
        "host": "https://acct2.blob.core.chinacloudapi.cn/",
        "extra": {"shared_access_key": ACCOUNT_KEY},
    },
    "prefixed-shared_access_key": {"login": "acct1", "extra": {"extra__wasb__shared_access_key": ACCOUNT_KEY}},
    "account_key": {"login": "acct1", "extra": {"account_key": ACCOUNT_KEY}},
    "connection_string": {
        "extra": {
            "connection_string": f"DefaultEndpointsProtocol=https;AccountName=acct4;AccountKey={ACCOUNT_KEY};"
            "EndpointSuffix=core.windows.net"
        }
    },
}


def _wasb(monkeypatch: pytest.MonkeyPatch, conn_id: str, form: Mapping[str, Any]) -> str:
    conn = {"conn_type": "wasb", **form}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


@pytest.mark.parametrize("form", WASB_FORMS.values(), ids=WASB_FORMS.keys())
def test_wasb_the_connection_string_sent_is_the_account_and_key_the_azure_provider_uses(
    monkeypatch, started_with, form
):
    conn_id = _wasb(monkeypatch, "azure_src", form)
    theirs = WasbHook(wasb_conn_id=conn_id).get_conn()
    assert isinstance(theirs.credential, SharedKeyCredentialPolicy)

    fields = started_with(conn_id)
    assert set(fields) == {"connection_string"}
    ours = BlobServiceClient.from_connection_string(fields["connection_string"])
    assert (ours.account_name, ours.credential.account_key) == (theirs.account_name, theirs.credential.account_key)
    assert ours.url.rstrip("/") == theirs.url.rstrip("/")


WASB_WITHOUT_KEY = {
    "entra-id": ({"login": "app-id", "password": "app-secret", "extra": {"tenant_id": "t1"}}, "Entra ID"),
    "sas-token": ({"login": "acct1", "extra": {"sas_token": "sv=2024-01-01&sig=abc"}}, "SAS token"),
    "default-credential": ({"login": "acct1"}, "DefaultAzureCredential"),
}


@pytest.mark.parametrize(("form", "message"), WASB_WITHOUT_KEY.values(), ids=WASB_WITHOUT_KEY.keys())
def test_wasb_what_gives_the_azure_provider_no_account_key_is_refused(monkeypatch, make_emulator, form, message):
    emulator, hook = make_emulator()
    conn_id = _wasb(monkeypatch, "azure_src", form)
    assert not isinstance(WasbHook(wasb_conn_id=conn_id).get_conn().credential, SharedKeyCredentialPolicy)
    emulator.reset_requests()
    with pytest.raises(OMSValidationError, match=message):
        hook.build_start_task_body(source_conn_id=conn_id)
    assert emulator.requests == []
