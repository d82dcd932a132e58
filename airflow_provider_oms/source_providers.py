"""
Source connections of other providers' types (``aws``, ``wasb``, ``google_cloud_platform``), read as they read them.

These are the readers of those types in :data:`~airflow_provider_oms.connections.SOURCE_READERS`:

* ``aws``: through the Amazon provider's own ``AwsBaseHook`` when it is installed, so that what it accepts (keys,
  a profile, an assumed role, web identity) gives keys; without it, the keys the connection holds.
* ``wasb``: a connection string, or the account name and key, read as the Azure provider's ``WasbHook`` reads them.
* ``google_cloud_platform``: the service-account key JSON, read as the Google provider's ``GoogleBaseHook`` does.

OMS is handed keys and uses them for the whole migration: what gives only short-lived tokens (Entra ID, a SAS
token, Google's application default credentials or impersonation) is refused here, before anything is sent.
Nothing of Airflow or of another provider is imported at module level: the Amazon provider is imported when an
``aws`` connection is read, never when a DAG file is parsed.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_oms.constants import START_TASK_BODY_LIMITS, TOKEN_MAX_LENGTH
from airflow_provider_oms.exceptions import OMSValidationError
from airflow_provider_oms.validation import check_credential

if TYPE_CHECKING:
    from airflow_provider_oms.connections import SourceReader

AMAZON_PROVIDER = "apache-airflow-providers-amazon"
#: Extras of an ``aws`` connection that name a way to get keys only the Amazon provider resolves.
AWS_INDIRECT_EXTRAS = (
    "role_arn",
    "profile_name",
    "assume_role_method",
    "assume_role_with_web_identity_token_file",
)
#: Extras of a ``google_cloud_platform`` connection that give Google credentials other than a key OMS can use.
_GOOGLE_WITHOUT_KEY = {
    "credential_config_file": "a workload identity federation configuration gives short-lived tokens",
    "key_secret_name": "the key is kept in Google Secret Manager, which this provider does not read",
    "impersonation_chain": "impersonation gives short-lived tokens of another account",
    "idp_issuer_url": "the client credentials grant gives short-lived tokens",
}


def amazon_hook_class() -> Any:
    """Return the Amazon provider's ``AwsBaseHook``, or ``None`` when the provider is not installed."""
    try:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    except ImportError:
        return None
    return AwsBaseHook


def read_aws(source: SourceReader) -> None:
    """
    Read ``aws``: through the Amazon provider's ``AwsBaseHook(...).get_credentials()`` when it is installed.

    Without the provider: login/password or extras ``aws_access_key_id``/``aws_secret_access_key``, extra
    ``aws_session_token``; a role, profile or web identity is refused, as only the provider resolves them.
    A connection naming no keys, role or profile is left without fields (and refused by the caller): the
    provider's default chain (the worker's environment or instance role) is never handed to OMS.
    """
    named = [key for key in AWS_INDIRECT_EXTRAS if source.extra_value(key)]
    hook_class = amazon_hook_class()
    if hook_class is None:
        if named:
            raise OMSValidationError(
                f"source connection {source.conn_id!r} gets its keys through {', '.join(map(repr, named))}, which "
                f"only the Amazon provider resolves: install {AMAZON_PROVIDER} (OMS needs the keys themselves, and "
                "this provider then asks the Amazon provider's AwsBaseHook for them), or set the keys"
            )
        of = source.of
        access_key, ak_from = source.extra_or("aws_access_key_id", source.conn.login, f"login {of}")
        secret_key, sk_from = source.extra_or("aws_secret_access_key", source.conn.password, f"password {of}")
        source.keys(access_key, ak_from, secret_key, sk_from)
        source.token("aws_session_token")
        return
    holds_keys = (source.conn.login and source.conn.password) or source.extra_value("aws_access_key_id")
    if named or holds_keys:
        _read_aws_through_the_provider(source, hook_class)


def _read_aws_through_the_provider(source: SourceReader, hook_class: Any) -> None:
    where = f"the keys the Amazon provider resolved for source connection {source.conn_id!r}"
    try:
        credentials = hook_class(aws_conn_id=source.conn_id, client_type="sts").get_credentials()
    except Exception as error:  # a missing profile, an STS refusal, an unreachable endpoint...
        raise OMSValidationError(
            f"the Amazon provider could not resolve the keys of source connection {source.conn_id!r}: "
            f"{type(error).__name__}: {error}"
        ) from error
    for value in (credentials.access_key, credentials.secret_key, credentials.token):
        source.mask(value)
    source.keys(credentials.access_key, f"AK of {where}", credentials.secret_key, f"SK of {where}")
    if credentials.token:  # temporary keys: OMS needs the token that goes with them
        token = check_credential(f"security_token ({where})", credentials.token, TOKEN_MAX_LENGTH)
        source.put("src_security_token", token, f"the session token of {where}")


def read_wasb(source: SourceReader) -> None:
    """
    Read ``wasb`` (Azure Blob Storage) as the Azure provider's ``WasbHook.get_conn`` does, into ``connection_string``.

    In its order: extra ``connection_string``; Entra ID (extra ``tenant_id``) refused; extra
    ``shared_access_key``; extra ``sas_token`` refused; the password; extra ``account_key``; else (its
    ``DefaultAzureCredential``) refused. A key goes with the account of the account URL (host, or
    ``https://<login>.blob.core.windows.net``) as an Azure connection string, the form OMS takes for Azure.
    Extras may also have the ``extra__wasb__`` prefix, as ``WasbHook._get_field`` reads them.
    """
    refused = f"Azure Blob Storage connection {source.conn_id!r}"
    connection_string = provider_field(source.extra, "wasb", "connection_string")
    if connection_string:
        if not isinstance(connection_string, str):
            raise OMSValidationError(f"extra 'connection_string' {source.of} must be text")
        source.put("connection_string", connection_string, f"extra 'connection_string' {source.of}")
        return
    if provider_field(source.extra, "wasb", "tenant_id"):
        raise OMSValidationError(
            f"{refused} signs in with Entra ID (extra 'tenant_id'), which gives tokens OMS cannot use: OMS needs "
            "the storage account's key or a connection string"
        )
    extra, of = source.extra, source.of
    if provider_field(extra, "wasb", "shared_access_key"):
        key, key_from = provider_field(extra, "wasb", "shared_access_key"), f"extra 'shared_access_key' {of}"
    elif provider_field(extra, "wasb", "sas_token"):
        raise OMSValidationError(
            f"{refused} uses a SAS token (extra 'sas_token'): OMS needs the storage account's key or a connection "
            "string"
        )
    elif source.conn.password:
        key, key_from = source.conn.password, f"password {of}"
    elif provider_field(extra, "wasb", "account_key"):
        key, key_from = provider_field(extra, "wasb", "account_key"), f"extra 'account_key' {of}"
    else:
        raise OMSValidationError(
            f"{refused} needs extra 'connection_string', or the account name (login) and its key (password or "
            "extra 'account_key'): without them the Azure provider signs in with DefaultAzureCredential (a managed "
            "identity...), which gives tokens OMS cannot use"
        )
    account, endpoint = _azure_account(getattr(source.conn, "host", None), source.conn.login)
    if not account:
        raise OMSValidationError(f"{refused} has a key ({key_from}) but no account name: set its login")
    account_key = source.mask(check_credential(f"account key ({key_from})", key, 1024))
    source.put(
        "connection_string",
        f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey={account_key};{endpoint}",
        f"the account name and {key_from}",
    )


def _azure_account(host: str | None, login: str | None) -> tuple[str, str]:
    """Return the account name and the endpoint part of a connection string, as ``parse_blob_account_url`` does."""
    if not (host or login):
        return "", ""
    url = host or f"https://{login}.blob.core.windows.net/"
    netloc = urlsplit(url if "://" in url else f"https://{url}").netloc
    if "." not in netloc:  # only an account (or directory) id: the provider takes the login's default address
        netloc = f"{login}.blob.core.windows.net"
    account, _, domain = netloc.partition(".")
    account = account[:24]
    if domain.startswith("blob."):
        return account, f"EndpointSuffix={domain.removeprefix('blob.')}"
    return account, f"BlobEndpoint=https://{account}.{domain}"


def provider_field(extra: dict[str, Any], conn_type: str, name: str) -> Any:
    """
    Return an extra as the other providers read theirs: the short name when present, else the prefixed form.

    The rule of ``get_field`` in ``airflow/providers/google/common/hooks/base_google.py`` (behind
    ``GoogleBaseHook._get_field``) and of ``WasbHook._get_field`` in the Azure provider: a short name that is
    present wins even when empty (then unset, with no fall back); else ``extra__<conn_type>__<name>``.
    """
    value = extra[name] if name in extra else extra.get(f"extra__{conn_type}__{name}")
    return None if value == "" else value


def read_google_cloud(source: SourceReader) -> None:
    """
    Read ``google_cloud_platform``: the service-account key from extra ``keyfile_dict`` or ``key_path``.

    Refused, saying why: both at once (the Google provider refuses them too), a key file that is not a service
    account's, and every way that gives no key: a workload identity configuration, a key in Secret Manager,
    impersonation, anonymous access, the client credentials grant, or no field at all (application default
    credentials).
    """
    extra, name = source.extra, f"Google Cloud connection {source.conn_id!r}"
    keyfile, key_path = (
        provider_field(extra, "google_cloud_platform", "keyfile_dict"),
        provider_field(extra, "google_cloud_platform", "key_path"),
    )
    for field, why in _GOOGLE_WITHOUT_KEY.items():
        if provider_field(extra, "google_cloud_platform", field):
            raise OMSValidationError(
                f"{name} uses extra {field!r}: {why}, and OMS needs a service-account key for the whole migration; "
                "give the key JSON in extra 'keyfile_dict' or 'key_path'"
            )
    if str(provider_field(extra, "google_cloud_platform", "is_anonymous")).strip().lower() == "true":
        raise OMSValidationError(f"{name} is anonymous (extra 'is_anonymous'): OMS needs a service-account key")
    if keyfile and key_path:
        raise OMSValidationError(f"{name} has both extras 'keyfile_dict' and 'key_path': keep one")
    if keyfile:
        source.key_file("keyfile_dict", keyfile, f"extra 'keyfile_dict' {source.of}")
    elif key_path:
        source.key_file(
            "key_path", _read_key_file(key_path, source.conn_id), f"the file in extra 'key_path' {source.of}"
        )
    else:
        raise OMSValidationError(
            f"{name} needs extra 'keyfile_dict' or 'key_path' (a service-account key): without them the Google "
            "provider uses application default credentials, which give no key OMS can use"
        )
    kind = json.loads(source.fields["json_auth_file"]).get("type")
    if kind not in (None, "service_account"):
        raise OMSValidationError(f"the key of {name} is of type {kind!r}: OMS needs a service account's key")


def _read_key_file(path: Any, conn_id: str) -> str:
    where = f"extra 'key_path' of source connection {conn_id!r}"
    if not isinstance(path, str) or not os.path.isfile(path):
        raise OMSValidationError(f"{where} must be the path of a service-account key file; {path!r} is not a file")
    with open(path, encoding="utf-8") as handle:
        return handle.read(START_TASK_BODY_LIMITS["json_auth_file"][1] + 1)
