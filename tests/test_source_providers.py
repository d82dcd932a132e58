"""
airflow_provider_oms.source_providers: other providers' connection types read as those providers read them.

These run without the Amazon, Azure and Google providers (the main environment has none of them). The Amazon
provider's hook is replaced by a stand-in here, to show what is done with the keys it gives; tests/providers runs
the real Amazon and Azure providers (`make test-providers`).
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_oms import connections, source_providers
from airflow_provider_oms.connections import config_from_connection, destination_fields, source_fields
from airflow_provider_oms.exceptions import OMSValidationError

ACCOUNT_KEY = "QUNDT1VOVC1LRVktbmV2ZXItbG9nZ2VkLTAwMDE=" * 2
GCS_KEY = {"type": "service_account", "project_id": "p", "private_key": "-----BEGIN PRIVATE KEY-----X"}


def conn(conn_type: str, login: str | None = None, password: str | None = None, host: str | None = None, **extra):
    return SimpleNamespace(
        conn_id="src", conn_type=conn_type, login=login, password=password, host=host, extra_dejson=extra
    )


@pytest.fixture
def masked(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    seen: list[Any] = []
    monkeypatch.setattr(connections, "mask_secret", seen.append)
    return seen


@pytest.fixture
def without_amazon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source_providers, "amazon_hook_class", lambda: None)


class StandInAwsBaseHook:
    """What the tests need of the Amazon provider's AwsBaseHook: get_credentials() -> frozen credentials."""

    calls: list[dict[str, Any]] = []
    credentials = SimpleNamespace(access_key="ASIASTSISSUED0001", secret_key="sts-secret-0001", token="sts-token-0001")

    def __init__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)

    def get_credentials(self) -> Any:
        if isinstance(self.credentials, Exception):
            raise self.credentials
        return self.credentials


@pytest.fixture
def amazon(monkeypatch: pytest.MonkeyPatch) -> type[StandInAwsBaseHook]:
    monkeypatch.setattr(StandInAwsBaseHook, "calls", [])
    monkeypatch.setattr(source_providers, "amazon_hook_class", lambda: StandInAwsBaseHook)
    return StandInAwsBaseHook


# -- aws ------------------------------------------------------------------------------------------------------


def test_without_the_amazon_provider_the_keys_are_read_as_before(without_amazon, masked):
    fields, where = source_fields(
        conn("aws", aws_access_key_id="AK-1", aws_secret_access_key="SK-1", aws_session_token="T-1")
    )
    assert fields == {"src_ak": "AK-1", "src_sk": "SK-1", "src_security_token": "T-1"}
    assert where["src_ak"] == "extra 'aws_access_key_id' of source connection 'src'"
    assert {"AK-1", "SK-1", "T-1"} <= set(masked)


@pytest.mark.parametrize(
    "extra",
    [
        {"role_arn": "arn:aws:iam::123456789012:role/r"},
        {"profile_name": "prod"},
        {"role_arn": "arn:r", "assume_role_method": "assume_role_with_web_identity"},
        {"role_arn": "arn:r", "aws_access_key_id": "AK-1", "aws_secret_access_key": "SK-1"},
    ],
    ids=["role", "profile", "web identity", "keys to assume a role with"],
)
def test_without_the_amazon_provider_a_role_or_profile_is_refused_saying_what_to_install(without_amazon, extra):
    with pytest.raises(OMSValidationError, match=r"'src' gets its keys through .*install apache-airflow-providers-am"):
        source_fields(conn("aws", **extra))


def test_the_amazon_providers_keys_are_sent_with_their_session_token(amazon, masked):
    fields, where = source_fields(conn("aws", role_arn="arn:aws:iam::123456789012:role/r"))
    assert amazon.calls == [{"aws_conn_id": "src", "client_type": "sts"}]
    assert fields == {
        "src_ak": "ASIASTSISSUED0001",
        "src_sk": "sts-secret-0001",
        "src_security_token": "sts-token-0001",
    }
    assert (
        where["src_security_token"]
        == "the session token of the keys the Amazon provider resolved for source connection 'src'"
    )
    assert {"ASIASTSISSUED0001", "sts-secret-0001", "sts-token-0001"} <= set(masked)


def test_static_keys_also_go_through_the_amazon_provider(amazon, monkeypatch, masked):
    monkeypatch.setattr(
        amazon, "credentials", SimpleNamespace(access_key="AK-STATIC", secret_key="SK-STATIC", token=None)
    )
    fields, _ = source_fields(conn("aws", "AK-STATIC", "SK-STATIC"))
    assert fields == {"src_ak": "AK-STATIC", "src_sk": "SK-STATIC"}
    assert len(amazon.calls) == 1


def test_the_workers_own_aws_credentials_are_never_sent(amazon):
    """A connection naming no keys, role or profile would get the provider's default chain: refused, hook unasked."""
    with pytest.raises(OMSValidationError, match=r"holds no source keys.*the worker's own AWS credentials are never"):
        source_fields(conn("aws", region_name="eu-west-1"))
    assert amazon.calls == []


def test_an_amazon_provider_failure_names_the_connection(amazon, monkeypatch):
    monkeypatch.setattr(amazon, "credentials", RuntimeError("The config profile (prod) could not be found"))
    with pytest.raises(OMSValidationError, match=r"could not resolve the keys of source connection 'src': Runtime"):
        source_fields(conn("aws", profile_name="prod"))


def test_bad_keys_from_the_amazon_provider_are_refused_without_quoting_them(amazon, monkeypatch, masked):
    monkeypatch.setattr(amazon, "credentials", SimpleNamespace(access_key="AK 1", secret_key="SK-SECRET-9", token=None))
    with pytest.raises(OMSValidationError, match="AK of the keys the Amazon provider resolved") as err:
        source_fields(conn("aws", profile_name="prod"))
    assert "SK-SECRET-9" in masked
    assert "AK 1" not in str(err.value)


# -- wasb -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("connection", "expected"),
    [
        (
            conn("wasb", "acct1", ACCOUNT_KEY),
            f"AccountName=acct1;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net",
        ),
        (
            conn("wasb", "acct1", host="https://acct2.blob.core.chinacloudapi.cn/", shared_access_key=ACCOUNT_KEY),
            f"AccountName=acct2;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.chinacloudapi.cn",
        ),
        (
            conn("wasb", "acct1", extra__wasb__shared_access_key=ACCOUNT_KEY),
            f"AccountName=acct1;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net",
        ),
        (
            conn("wasb", "acct1", account_key=ACCOUNT_KEY),
            f"AccountName=acct1;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net",
        ),
        (
            conn("wasb", "acct1", ACCOUNT_KEY, host="acct3.privatelink.example.com"),
            f"AccountName=acct3;AccountKey={ACCOUNT_KEY};BlobEndpoint=https://acct3.privatelink.example.com",
        ),
    ],
    ids=["login-password", "shared_access_key-host", "prefixed-extra", "account_key", "custom-endpoint"],
)
def test_wasb_account_name_and_key_become_a_connection_string(masked, connection, expected):
    fields, where = source_fields(connection)
    assert fields == {"connection_string": f"DefaultEndpointsProtocol=https;{expected}"}
    assert where["connection_string"].startswith("the account name and ")
    assert ACCOUNT_KEY in masked


def test_wasb_connection_string_wins_as_in_the_azure_provider(masked):
    fields, _ = source_fields(conn("wasb", "acct1", ACCOUNT_KEY, extra__wasb__connection_string="AccountName=x;K=V"))
    assert fields == {"connection_string": "AccountName=x;K=V"}


def test_wasb_an_empty_short_name_does_not_fall_back_as_in_the_azure_provider():
    with pytest.raises(OMSValidationError, match="DefaultAzureCredential"):
        source_fields(conn("wasb", "acct1", account_key="", extra__wasb__account_key=ACCOUNT_KEY))


@pytest.mark.parametrize(
    ("connection", "message"),
    [
        (conn("wasb", "app-id", "app-secret", tenant_id="t1"), r"Entra ID \(extra 'tenant_id'\), which gives tokens"),
        (conn("wasb", "acct1", ACCOUNT_KEY, sas_token="sv=1&sig=2"), "uses a SAS token"),
        (conn("wasb", "acct1"), "needs extra 'connection_string', or the account name .* DefaultAzureCredential"),
        (conn("wasb", password=ACCOUNT_KEY), "has a key .* but no account name: set its login"),
    ],
    ids=["entra-id", "sas-token", "managed-identity", "no-account"],
)
def test_wasb_without_an_account_key_is_refused_saying_why(connection, message):
    with pytest.raises(OMSValidationError, match=message) as err:
        source_fields(connection)
    assert "'src'" in str(err.value)
    assert ACCOUNT_KEY not in str(err.value)


# -- google_cloud_platform --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"keyfile_dict": "A"}, "A"),
        ({"extra__google_cloud_platform__keyfile_dict": "B"}, "B"),
        ({"keyfile_dict": "", "extra__google_cloud_platform__keyfile_dict": "B"}, None),
        ({"is_anonymous": False}, False),
    ],
)
def test_google_fields_are_read_as_the_google_provider_reads_them(extra, expected):
    assert (
        source_providers.provider_field(extra, "google_cloud_platform", next(iter(extra)).split("__")[-1]) == expected
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"keyfile_dict": GCS_KEY},
        {"extra__google_cloud_platform__keyfile_dict": json.dumps(GCS_KEY)},
        {"extra__google_cloud_platform__key_path": "KEY_FILE"},
        {"key_path": "KEY_FILE", "project": "p", "scope": "https://www.googleapis.com/auth/cloud-platform"},
    ],
    ids=["keyfile_dict", "prefixed-keyfile_dict", "prefixed-key_path", "key_path-with-project-and-scope"],
)
def test_google_key_json_from_any_form_the_provider_accepts(tmp_path, masked, extra):
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(GCS_KEY))
    extra = {name: str(key_file) if value == "KEY_FILE" else value for name, value in extra.items()}
    fields, _ = source_fields(conn("google_cloud_platform", **extra))
    assert json.loads(fields["json_auth_file"]) == GCS_KEY
    assert fields["json_auth_file"] in masked


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, r"needs extra 'keyfile_dict' or 'key_path' .* application default credentials"),
        ({"project": "p"}, "application default credentials"),
        ({"credential_config_file": "/etc/wif.json"}, "workload identity federation"),
        ({"extra__google_cloud_platform__key_secret_name": "gcp-key"}, "Google Secret Manager"),
        ({"keyfile_dict": GCS_KEY, "impersonation_chain": "sa@p.iam.gserviceaccount.com"}, "impersonation"),
        ({"idp_issuer_url": "https://idp", "client_id": "c", "client_secret": "s"}, "client credentials grant"),
        ({"is_anonymous": True}, "is anonymous"),
        ({"keyfile_dict": GCS_KEY, "key_path": "/k.json"}, "both extras 'keyfile_dict' and 'key_path'"),
        ({"keyfile_dict": {**GCS_KEY, "type": "authorized_user"}}, "of type 'authorized_user'"),
    ],
    ids=["nothing", "project-only", "wif", "secret-manager", "impersonation", "idp", "anonymous", "both", "user-key"],
)
def test_google_credentials_without_a_key_are_refused_saying_why(masked, extra, message):
    with pytest.raises(OMSValidationError, match=message) as err:
        source_fields(conn("google_cloud_platform", **extra))
    assert "'src'" in str(err.value)
    assert "PRIVATE KEY" not in str(err.value)


# -- huaweicloud (the Huawei provider's connection format) ------------------------------------------------------


def huaweicloud(login: str = "HW-AK-0001", password: str = "HW-SK-0001", **extra: Any) -> Any:  # noqa: S107
    """A connection as the Huawei provider's HuaweiBaseHook reads one: AK/SK in login/password, region, project."""
    extra = {"region": "ap-southeast-3", "project_id": "0123456789abcdef", "obs_bucket": "b", **extra}
    return SimpleNamespace(
        conn_id="hw", conn_type="huaweicloud", login=login, password=password, host=None, extra_dejson=extra
    )


def test_a_huaweicloud_connection_is_a_source(masked):
    fields, where = source_fields(huaweicloud())
    assert fields == {"src_ak": "HW-AK-0001", "src_sk": "HW-SK-0001"}
    assert where["src_sk"] == "password of source connection 'hw'"
    with pytest.raises(OMSValidationError, match="'hw' holds no source keys"):
        source_fields(huaweicloud(login="", password=""))


def test_a_huaweicloud_connection_is_a_destination(masked):
    fields, _ = destination_fields(huaweicloud(), "hw")
    assert fields == {"dst_ak": "HW-AK-0001", "dst_sk": "HW-SK-0001"}


def test_a_huaweicloud_connection_is_the_oms_connection(masked):
    config = config_from_connection(huaweicloud())
    assert (config.project_id, config.region) == ("0123456789abcdef", "ap-southeast-3")
    assert config.endpoint == "https://oms.ap-southeast-3.myhuaweicloud.com"
    assert (config.credentials.access_key, config.credentials.secret_key) == ("HW-AK-0001", "HW-SK-0001")
    assert {"HW-AK-0001", "HW-SK-0001"} <= set(masked)
