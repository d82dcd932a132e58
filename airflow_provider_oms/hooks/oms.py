"""The OMS hook: an Airflow connection in, authenticated OMS v2 calls out."""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from airflow_provider_oms.client import (
    MAX_RESPONSE_BYTES,
    Credentials,
    OMSRequestBuilder,
    PreparedCall,
    body_too_large,
    parse_response,
    transport_error,
)
from airflow_provider_oms.constants import (
    ENDPOINT_TEMPLATE,
    ERROR_TASK_ALREADY_STARTED,
    ERROR_TASK_NOT_IN_PROGRESS,
    GROUP_STATUS_NAMES,
    KNOWN_REGIONS,
    START_TASK_BODY_LIMITS,
    TOKEN_MAX_LENGTH,
    TaskStatus,
    status_name,
)
from airflow_provider_oms.exceptions import OMSApiError, OMSValidationError
from airflow_provider_oms.iam import IAMSettings, get_token
from airflow_provider_oms.retries import RetryPolicy
from airflow_provider_oms.validation import (
    check_bandwidth_policy,
    check_credential,
    check_length,
    check_path_value,
    check_start_task_body,
    coerce_bool,
)
from airflow_provider_oms.waiting import DEFAULT_OUTAGE_TOLERANCE

if TYPE_CHECKING:
    import requests
    from airflow.sdk import Connection

# requests is imported where it is used, not here: DAG files import this module through the operators, and
# Airflow parses them again and again without making a single call.

DEFAULT_TIMEOUT = 60.0
AUTH_AKSK = "aksk"
AUTH_TOKEN = "token"  # noqa: S105 - the name of an auth type
IAM_ENDPOINT_TEMPLATE = "https://iam.{region}.myhuaweicloud.com"
IAM_GLOBAL_ENDPOINT = "https://iam.myhuaweicloud.com"
IAM_FIELD_MAX_LENGTH = 256
#: AK and SK: 1..100 characters (the seed API's limit for every AK/SK field).
CREDENTIAL_MAX_LENGTH = 100
_LOOPBACK_NAMES = {"localhost"}


#: After a start whose answer was lost, a task in these statuses was started by it.
STARTED_STATUSES = frozenset({TaskStatus.WAITING, TaskStatus.RUNNING, TaskStatus.RETRYING})
#: After a group start or retry whose answer was lost, a group in these statuses was started by it.
GROUP_STARTED_STATUSES = frozenset({0, 1, 2})
#: After a group stop whose answer was lost, a group in these statuses was stopped by it.
GROUP_STOPPED_STATUSES = frozenset({3, 7})
#: The fields of StartTaskGroupReq / RetryTaskGroupReq: temporary-credential tokens are not among them.
GROUP_START_FIELDS = frozenset(
    {
        "src_ak",
        "src_sk",
        "json_auth_file",
        "connection_string",
        "dst_ak",
        "dst_sk",
        "source_cdn_authentication_key",
        "migrate_failed_object",
    }
)


def refuse_tokens(body: Mapping[str, Any], call: str, sources: Mapping[str, str] | None = None) -> None:
    """
    Refuse a body with temporary-credential tokens for a call whose request has no field for them.

    :param body: the start-like body.
    :param call: the call, for the message (``start task group``).
    :param sources: where each field came from, to name the connection.
    """
    for field_name in TOKEN_FIELDS:
        if body.get(field_name):
            where = (sources or {}).get(field_name, f"the body's {field_name!r}")
            raise OMSValidationError(
                f"{where} holds a security token (temporary credentials), but OMS's {call} request has no field "
                "for it: the AK/SK would be sent without their token and fail inside OMS. Use a connection with "
                "permanent AK/SK for this call"
            )


def _group_body(body: Mapping[str, Any], call: str) -> dict[str, Any]:
    refuse_tokens(body, call)
    return {key: value for key, value in body.items() if key in GROUP_START_FIELDS}


#: The start-like fields that carry temporary-credential tokens.
TOKEN_FIELDS = ("src_security_token", "dst_security_token")
#: After a stop whose answer was lost, a task in these statuses was stopped by it.
STOPPED_STATUSES = frozenset({TaskStatus.PAUSING, TaskStatus.PAUSED})


def _refused(error: requests.ConnectionError) -> bool:
    """Whether a connection error happened before the request was sent (the connect itself failed)."""
    from urllib3.exceptions import NewConnectionError

    reason = getattr(error.args[0] if error.args else None, "reason", None)
    return isinstance(reason, NewConnectionError)


def _read_capped(response: requests.Response, call: PreparedCall) -> bytes:
    """Read an answer's body, refusing to read past :data:`MAX_RESPONSE_BYTES`."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=64 * 1024):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise body_too_large(call, response.status_code)
        chunks.append(chunk)
    return b"".join(chunks)


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _json_auth_file(value: object, conn_id: str, key: str = "json_auth_file") -> str:
    """Return a Google Cloud service-account key as a JSON string; the extra may hold it as text or object."""
    if isinstance(value, dict):
        return json.dumps(value)
    where = f"extra {key!r} of connection {conn_id!r}"
    if not isinstance(value, str):
        raise OMSValidationError(f"{where} must be the service-account key JSON, got {type(value).__name__}")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise OMSValidationError(f"{where} must be a JSON object (a Google Cloud service-account key file)")
    return value


@dataclass(frozen=True)
class OMSConnectionConfig:
    """What an OMS connection resolves to. The repr shows no credential."""

    credentials: Credentials
    project_id: str
    endpoint: str
    region: str | None = None
    verify: bool | str = True
    timeout: float = DEFAULT_TIMEOUT
    conn_id: str = field(default="")
    #: Template of the console address for the extra link (extra ``console_url``); ``None``: the default.
    console_url: str | None = None
    #: With ``auth_type: token``: the IAM user that logs in; ``None`` for AK/SK signing.
    iam: IAMSettings | None = None
    #: How calls are retried (extras ``retry_max_attempts``, ``retry_max_seconds``, ``retry_base_wait``,
    #: ``retry_max_wait``).
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    #: How long a wait goes on while OMS cannot be reached, in seconds (extra ``outage_tolerance``).
    outage_tolerance: float = DEFAULT_OUTAGE_TOLERANCE


def credentials_from_connection(conn: Connection, *, role: str) -> tuple[Credentials, dict[str, Any]]:
    """
    Return the AK/SK (login/password) and security token of a connection, and its extras.

    Every credential read is registered with Airflow's secret masker.

    :param conn: the Airflow connection.
    :param role: what the connection is for (``OMS``, ``source``, ``destination``), for error messages.
    """
    extra = dict(conn.extra_dejson or {})
    access_key = conn.login or ""
    secret_key = conn.password or ""
    token = extra.get("security_token") or None
    for secret in (access_key, secret_key, token):
        if secret:
            mask_secret(secret)
    where = f"{role} connection {conn.conn_id!r}"
    if access_key:
        check_credential(f"AK (login of {where})", access_key, CREDENTIAL_MAX_LENGTH)
    if secret_key:
        check_credential(f"SK (password of {where})", secret_key, CREDENTIAL_MAX_LENGTH)
    if token is not None:
        check_credential(f"security_token (extra of {where})", token, TOKEN_MAX_LENGTH)
    return Credentials(access_key=access_key, secret_key=secret_key, security_token=token), extra


def _number(extra: Mapping[str, Any], key: str, default: float, minimum: float, where: str) -> float:
    value = extra.get(key)
    if value is None or value == "":  # an empty form field is an unset one
        value = default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OMSValidationError(f"extra {key!r} of {where} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not number >= minimum:
        raise OMSValidationError(f"extra {key!r} of {where} must be a number of at least {minimum}, got {value!r}")
    return number


def _retry_policy(extra: Mapping[str, Any], where: str) -> RetryPolicy:
    defaults = RetryPolicy()
    attempts = _number(extra, "retry_max_attempts", defaults.max_attempts, 1, where)
    if attempts != int(attempts):
        raise OMSValidationError(f"extra 'retry_max_attempts' of {where} must be a whole number, got {attempts}")
    return RetryPolicy(
        max_attempts=int(attempts),
        max_seconds=_number(extra, "retry_max_seconds", defaults.max_seconds, 0, where),
        base_wait=_number(extra, "retry_base_wait", defaults.base_wait, 0, where),
        max_wait=_number(extra, "retry_max_wait", defaults.max_wait, 0, where),
    )


def _iam_settings(
    conn: Connection,
    extra: Mapping[str, Any],
    where: str,
    region: str | None,
    project_id: str,
    verify: bool | str,
    timeout: float,
) -> IAMSettings:
    """Read the IAM user of a connection with ``auth_type: token``: login, password, extras domain, iam_endpoint."""
    user, password = conn.login or "", conn.password or ""
    for value in (user, password):
        if value:
            mask_secret(value)
    for label, value in (("IAM user name (login", user), ("IAM password (password", password)):
        check_length(f"{label} of {where})", value, 1, IAM_FIELD_MAX_LENGTH, secret=True)
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise OMSValidationError(f"{label} of {where}) must not contain control characters or line breaks")
    domain = str(extra.get("domain") or "")
    if not domain:
        raise OMSValidationError(f"extra 'domain' of {where} is required with auth_type token (the account name)")
    endpoint = str(extra.get("iam_endpoint") or "").strip() or (
        IAM_ENDPOINT_TEMPLATE.format(region=region) if region else IAM_GLOBAL_ENDPOINT
    )
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise OMSValidationError(f"extra 'iam_endpoint' of {where} must be an http(s) URL such as https://host[:port]")
    allow_http = coerce_bool("allow_insecure_http", extra.get("allow_insecure_http", False))
    if parts.scheme == "http" and not allow_http and not _is_loopback(parts.hostname or ""):
        raise OMSValidationError(
            f"extra 'iam_endpoint' of {where} uses plain http:// to a host that is not loopback; the token request "
            "carries the password, so use https:// (or set extra 'allow_insecure_http' to true)"
        )
    return IAMSettings(
        endpoint=endpoint,
        domain=domain,
        user=user,
        password=password,
        project_id=project_id,
        verify=verify,
        timeout=timeout,
    )


def config_from_connection(conn: Connection) -> OMSConnectionConfig:
    """
    Resolve an OMS connection into credentials, project, endpoint, TLS and timeout settings, checking each.

    Shared by :class:`OMSHook` and the async trigger, so both read a connection the same way.
    """
    conn_id = conn.conn_id
    where = f"connection {conn_id!r}"
    extra = dict(conn.extra_dejson or {})
    auth_type = str(extra.get("auth_type") or AUTH_AKSK).strip().lower()
    if auth_type not in (AUTH_AKSK, AUTH_TOKEN):
        raise OMSValidationError(
            f"extra 'auth_type' of {where} must be {AUTH_AKSK!r} or {AUTH_TOKEN!r}, got {auth_type!r}"
        )
    if auth_type == AUTH_TOKEN:
        credentials = Credentials(access_key="", secret_key="")
    else:
        credentials, extra = credentials_from_connection(conn, role="OMS")
        if not credentials.access_key or not credentials.secret_key:
            missing = "AK (login)" if not credentials.access_key else "SK (password)"
            raise OMSValidationError(
                f"{missing} of {where} is required and must be 1 to {CREDENTIAL_MAX_LENGTH} characters"
            )
    if not extra.get("project_id"):
        raise OMSValidationError(f"extra 'project_id' of {where} is required (the Huawei Cloud project id)")
    project_id = check_path_value(f"project_id (extra of {where})", str(extra["project_id"]), "project_id")
    region = str(extra["region"]) if extra.get("region") else None
    endpoint = str(extra.get("endpoint") or "").strip()
    if not endpoint:
        if not region:
            raise OMSValidationError(f"{where} needs extra 'region' (e.g. 'cn-north-4') or 'endpoint'")
        if region not in KNOWN_REGIONS:
            raise OMSValidationError(
                f"extra 'region' of {where} is {region!r}, which is not a known OMS region "
                f"({', '.join(sorted(KNOWN_REGIONS))}); set extra 'endpoint' to use another one"
            )
        endpoint = ENDPOINT_TEMPLATE.format(region=region)
    parts = urlsplit(endpoint)
    allow_http = coerce_bool("allow_insecure_http", extra.get("allow_insecure_http", False))
    if parts.scheme == "http" and not allow_http and not _is_loopback(parts.hostname or ""):
        raise OMSValidationError(
            f"extra 'endpoint' of {where} uses plain http:// to a host that is not loopback; request bodies "
            "carry credentials, so use https:// (or set extra 'allow_insecure_http' to true)"
        )
    verify_raw = extra.get("verify")
    if verify_raw is None or verify_raw == "":  # an empty form field is an unset one
        verify_raw = True
    verify: bool | str
    if isinstance(verify_raw, bool) or str(verify_raw).strip().lower() in {"true", "false"}:
        verify = coerce_bool("verify", verify_raw)
    else:
        verify = str(verify_raw)
        if not os.path.isfile(verify):
            raise OMSValidationError(
                f"extra 'verify' of {where} must be true, false or the path of a CA bundle file; "
                f"{verify!r} is not a file"
            )
    timeout_raw = extra.get("timeout")
    try:
        timeout = float(DEFAULT_TIMEOUT if timeout_raw is None or timeout_raw == "" else timeout_raw)
    except (TypeError, ValueError):
        raise OMSValidationError(
            f"extra 'timeout' of {where} must be a number of seconds, got {extra.get('timeout')!r}"
        ) from None
    if not timeout > 0:
        raise OMSValidationError(f"extra 'timeout' of {where} must be more than 0 seconds, got {timeout}")
    iam = _iam_settings(conn, extra, where, region, project_id, verify, timeout) if auth_type == AUTH_TOKEN else None
    return OMSConnectionConfig(
        iam=iam,
        retry_policy=_retry_policy(extra, where),
        outage_tolerance=_number(extra, "outage_tolerance", DEFAULT_OUTAGE_TOLERANCE, 0, where),
        credentials=credentials,
        project_id=project_id,
        endpoint=endpoint,
        region=region,
        verify=verify,
        timeout=timeout,
        conn_id=conn_id,
        console_url=str(extra["console_url"]) if extra.get("console_url") else None,
    )


#: Start-body source fields and where they go in a create request's ``src_node``.
_SOURCE_NODE_KEYS = {
    "src_ak": "ak",
    "src_sk": "sk",
    "src_security_token": "security_token",
    "json_auth_file": "json_auth_file",
    "connection_string": "connection_string",
}
#: Keys of src_node/dst_node that are credentials: they come from connections, never from a task definition.
_NODE_SECRET_KEYS = frozenset({"ak", "sk", "security_token", "json_auth_file", "connection_string"})

#: Extras of source connections that hold secrets (of any supported connection type).
_SOURCE_SECRET_EXTRAS = (
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "security_token",
    "keyfile_dict",
    "json_auth_file",
    "connection_string",
    "cdn_authentication_key",
)


#: Connection types a source connection may have: the ones :func:`source_fields` can read keys from.
SOURCE_CONN_TYPES = ("aws", "google_cloud_platform", "wasb", "generic", "huaweicloud_oms")
#: Extras that name a way to get keys OMS cannot use: it needs the keys themselves, not a role or a profile.
_INDIRECT_CREDENTIAL_EXTRAS = (
    "role_arn",
    "profile_name",
    "aws_profile",
    "assume_role_method",
    "web_identity_token_file",
)


def _extra_value(extra: Mapping[str, Any], key: str, conn_type: str) -> Any:
    """Return an extra by its name, or by the ``extra__<conn_type>__<name>`` form older connection forms saved."""
    value = extra.get(key)
    return value if value not in (None, "") else extra.get(f"extra__{conn_type}__{key}") or None


def _extra_or(
    extra: Mapping[str, Any], key: str, conn_type: str, fallback: Any, fallback_from: str, of: str
) -> tuple[Any, str]:
    value = _extra_value(extra, key, conn_type)
    return (value, f"extra {key!r} {of}") if value else (fallback, fallback_from)


def _secret(value: Any, field: str, maximum: int) -> str:
    return check_credential(field, value, maximum)


def source_fields(conn: Connection) -> tuple[dict[str, Any], dict[str, str]]:
    """
    Return the start body's source fields from a connection users already keep, and where each came from.

    By connection type:

    * ``aws``: login/password, or extras ``aws_access_key_id``/``aws_secret_access_key`` -> ``src_ak``/``src_sk``;
      extra ``aws_session_token`` -> ``src_security_token``.
    * ``google_cloud_platform``: extra ``keyfile_dict`` (the key JSON), or ``key_path`` (a file holding it)
      -> ``json_auth_file``.
    * ``wasb`` (Azure Blob Storage): extra ``connection_string`` -> ``connection_string``.

    * ``generic`` and ``huaweicloud_oms``: login/password -> ``src_ak``/``src_sk``; extras ``security_token`` ->
      ``src_security_token`` and ``json_auth_file`` -> ``json_auth_file``.

    Every type may add extra ``cdn_authentication_key`` -> ``source_cdn_authentication_key``. Every value read
    is registered with the secret masker and checked before anything is sent. A connection of another type, or
    one that holds no key OMS can use (e.g. an ``aws`` connection with only ``role_arn`` or a profile), is
    refused, naming the connection and what is missing.
    """
    conn_id, conn_type = conn.conn_id, conn.conn_type or "generic"
    if conn_type not in SOURCE_CONN_TYPES:
        raise OMSValidationError(
            f"source connection {conn_id!r} has type {conn_type!r}, which this provider cannot read source keys "
            f"from; use a connection of type {', '.join(SOURCE_CONN_TYPES)}"
        )
    extra = dict(conn.extra_dejson or {})
    of = f"of source connection {conn_id!r}"
    for value in (conn.login, conn.password, *(_extra_value(extra, key, conn_type) for key in _SOURCE_SECRET_EXTRAS)):
        if value:
            mask_secret(value)  # as read, before any check can refuse it
    fields: dict[str, Any] = {}
    where: dict[str, str] = {}

    def put(field: str, value: Any, source: str) -> None:
        fields[field], where[field] = value, source

    access_key: Any = None
    secret_key: Any = None
    ak_from = sk_from = token_name = ""
    if conn_type == "aws":
        access_key, ak_from = _extra_or(extra, "aws_access_key_id", conn_type, conn.login, f"login {of}", of)
        secret_key, sk_from = _extra_or(extra, "aws_secret_access_key", conn_type, conn.password, f"password {of}", of)
        token_name = "aws_session_token"  # noqa: S105 - an extra's name
    elif conn_type not in ("google_cloud_platform", "wasb"):
        access_key, ak_from = conn.login, f"login {of}"
        secret_key, sk_from = conn.password, f"password {of}"
        token_name = "security_token"  # noqa: S105 - an extra's name
    if bool(access_key) != bool(secret_key):
        present = f"AK ({ak_from})" if access_key else f"SK ({sk_from})"
        raise OMSValidationError(
            f"source connection {conn_id!r} has only its {present}: set both, or neither for a task that needs no "
            "source keys"
        )
    if access_key:
        put("src_ak", _secret(access_key, f"AK ({ak_from})", CREDENTIAL_MAX_LENGTH), ak_from)
        put("src_sk", _secret(secret_key, f"SK ({sk_from})", CREDENTIAL_MAX_LENGTH), sk_from)
    token = _extra_value(extra, token_name, conn_type) if token_name else None
    if token:
        source = f"extra {token_name!r} {of}"
        put("src_security_token", _secret(token, f"security_token ({source})", TOKEN_MAX_LENGTH), source)

    if conn_type == "google_cloud_platform":
        keyfile = _extra_value(extra, "keyfile_dict", conn_type)
        key_path = _extra_value(extra, "key_path", conn_type)
        if keyfile:
            put("json_auth_file", _json_auth_file(keyfile, conn_id, "keyfile_dict"), f"extra 'keyfile_dict' {of}")
        elif key_path:
            put(
                "json_auth_file",
                _json_auth_file(_read_key_file(key_path, conn_id), conn_id, "key_path"),
                f"the file in extra 'key_path' {of}",
            )
        else:
            raise OMSValidationError(f"Google Cloud connection {conn_id!r} needs extra 'keyfile_dict' or 'key_path'")
    elif conn_type == "wasb":
        connection_string = _extra_value(extra, "connection_string", conn_type)
        if not isinstance(connection_string, str) or not connection_string:
            raise OMSValidationError(f"Azure Blob Storage connection {conn_id!r} needs extra 'connection_string'")
        put("connection_string", connection_string, f"extra 'connection_string' {of}")
    else:
        keyfile = _extra_value(extra, "json_auth_file", conn_type)
        if keyfile:
            put("json_auth_file", _json_auth_file(keyfile, conn_id, "json_auth_file"), f"extra 'json_auth_file' {of}")
    cdn_key = _extra_value(extra, "cdn_authentication_key", conn_type)
    indirect = [key for key in _INDIRECT_CREDENTIAL_EXTRAS if _extra_value(extra, key, conn_type)]
    if not fields and (indirect or not cdn_key):  # a CDN key alone serves a source behind a CDN (a URL list)
        raise OMSValidationError(_no_source_keys(conn_id, conn_type, indirect))
    if cdn_key:
        put("source_cdn_authentication_key", cdn_key, f"extra 'cdn_authentication_key' {of}")
    for value in fields.values():  # as sent: a key file read from disk or an object turned into JSON text
        mask_secret(value)
    if "json_auth_file" in fields:  # and its parts: the masker hides a key file's private_key on its own
        mask_secret(json.loads(fields["json_auth_file"]))
    return fields, where


def _no_source_keys(conn_id: str, conn_type: str, indirect: list[str]) -> str:
    """Say what a source connection without keys lacks, and why a role or profile does not do."""
    where = "login and password (AK/SK)"
    if conn_type == "aws":
        where = "login and password, or extras 'aws_access_key_id' and 'aws_secret_access_key'"
    message = f"source connection {conn_id!r} holds no source keys: set its {where}"
    if indirect:
        message += (
            f"; it has {', '.join(repr(key) for key in indirect)}, but OMS needs the keys themselves and cannot "
            "assume a role or read a profile"
        )
    return message + (
        ". Leave source_conn_id unset for a task that needs no source keys (a URL list), or give the connection "
        "only extra 'cdn_authentication_key' for a source behind a CDN"
    )


def _read_key_file(path: Any, conn_id: str) -> str:
    where = f"extra 'key_path' of source connection {conn_id!r}"
    if not isinstance(path, str) or not os.path.isfile(path):
        raise OMSValidationError(f"{where} must be the path of a service-account key file; {path!r} is not a file")
    with open(path, encoding="utf-8") as handle:
        text = handle.read(START_TASK_BODY_LIMITS["json_auth_file"][1] + 1)
    return text


class OMSHook(BaseHook):
    """
    Interact with Huawei Cloud OMS (Object Storage Migration Service) v2.

    The connection holds the AK in ``login`` and the SK in ``password``. Extras: ``project_id`` (required),
    ``region`` (gives ``https://oms.{region}.myhuaweicloud.com``) or ``endpoint`` (overrides it, e.g. the local
    emulator's URL), ``security_token`` (temporary credentials, sent as ``X-Security-Token``), ``verify``
    (TLS verification: bool or a CA bundle path), ``timeout`` (seconds), ``allow_insecure_http`` (permit an
    ``http://`` endpoint that is not loopback).

    The connection is read on first use, not when the hook is created. One ``requests.Session`` serves every
    call of the hook, so calls reuse the TCP connection.

    :param oms_conn_id: the Airflow connection id of type ``huaweicloud_oms``.
    """

    conn_name_attr = "oms_conn_id"
    default_conn_name = "huaweicloud_oms_default"
    conn_type = "huaweicloud_oms"
    hook_name = "Huawei Cloud OMS"

    def __init__(self, oms_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.oms_conn_id = oms_conn_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(oms_conn_id={self.oms_conn_id!r})"

    # Airflow 3.2+ reads the connection form (``conn-fields``, ``ui-field-behaviour``) from ``get_provider_info()``
    # without importing the hook and skips these two methods; 3.1 asks the hook. One source: the provider info.

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Return the connection form's extra fields (``conn-fields`` of the provider info), for Airflow 3.1."""
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import PasswordField, StringField

        from airflow_provider_oms.get_provider_info import get_provider_info

        (connection_type,) = get_provider_info()["connection-types"]
        widgets: dict[str, Any] = {}
        for name, spec in connection_type["conn-fields"].items():
            secret = spec["schema"].get("format") == "password"
            field, widget = (PasswordField, BS3PasswordFieldWidget) if secret else (StringField, BS3TextFieldWidget)
            widgets[name] = field(lazy_gettext(spec["label"]), widget=widget(), description=spec["description"])
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Return the connection form's hidden fields, labels and placeholders, for Airflow 3.1."""
        from airflow_provider_oms.get_provider_info import get_provider_info

        (connection_type,) = get_provider_info()["connection-types"]
        behaviour = connection_type["ui-field-behaviour"]
        # Airflow 3.1's schema spells it hidden_fields (provider info: hidden-fields) and requires relabeling.
        return {
            "hidden_fields": list(behaviour["hidden-fields"]),
            "relabeling": dict(behaviour["relabeling"]),
            "placeholders": dict(behaviour["placeholders"]),
        }

    # -- connection -------------------------------------------------------------------------------

    def _read_credentials(self, conn_id: str, *, role: str) -> tuple[Credentials, dict[str, Any]]:
        """Read AK/SK (login/password) and the extras of a connection, masking every credential."""
        return credentials_from_connection(self.get_connection(conn_id), role=role)

    @cached_property
    def config(self) -> OMSConnectionConfig:
        """The resolved connection: credentials, project, endpoint, TLS and timeout settings."""
        return config_from_connection(self.get_connection(self.oms_conn_id))

    @cached_property
    def request_builder(self) -> OMSRequestBuilder:
        """Builds and signs the requests of this hook."""
        config = self.config
        return OMSRequestBuilder(config.endpoint, config.project_id, config.credentials)

    @cached_property
    def session(self) -> requests.Session:
        """The HTTP session of this hook (keep-alive across calls)."""
        import requests

        session = requests.Session()
        session.trust_env = False  # a proxy from the environment must not see signed requests by surprise
        return session

    def close(self) -> None:
        """Close the HTTP session and its kept-alive connections."""
        session = self.__dict__.pop("session", None)
        if session is None:
            return
        # urllib3 2 drops pools on clear() and closes their sockets only when they are garbage-collected; the
        # traceback of a failed attempt can keep a pool alive, so close them here.
        for adapter in session.adapters.values():
            pools = adapter.poolmanager.pools
            for key in pools.keys():  # noqa: SIM118 - urllib3's container cannot be iterated directly
                pools[key].close()
        session.close()

    # -- transport --------------------------------------------------------------------------------

    def _send(self, call: PreparedCall) -> Any:
        import requests

        config = self.config
        try:
            response = self.session.request(
                call.method,
                call.url,
                headers=call.headers,
                data=call.body or None,
                timeout=config.timeout,
                verify=config.verify,
                allow_redirects=False,
                stream=True,
            )
            with response:
                content = _read_capped(response, call)
        except (requests.ConnectTimeout, requests.ConnectionError) as err:
            # A refused or timed-out connect never sent the request; a reset or a closed connection may have
            # come after the service took it. These messages name the host and path only.
            sent = not isinstance(err, requests.ConnectTimeout) and not _refused(err)
            raise transport_error(
                call, self.request_builder.base_url, type(err).__name__, sent=sent, detail=str(err)
            ) from err
        except requests.Timeout as err:  # the read timed out: the request was sent
            raise transport_error(call, self.request_builder.base_url, type(err).__name__, sent=True) from None
        except (requests.RequestException, OSError, ValueError) as err:
            # Others (a header requests refuses, a CA bundle it cannot read) may quote a header value: name the
            # error type only, and drop the cause.
            raise OMSApiError(
                f"OMS {call.operation} failed before an answer from {self.request_builder.base_url} "
                f"({type(err).__name__}); check the connection's endpoint and verify settings"
            ) from None
        return parse_response(call, response.status_code, response.headers, content)

    def _token(self, *, renew: bool = False) -> str | None:
        """Return the IAM token to send, or ``None`` when requests are signed with AK/SK."""
        iam = self.config.iam
        if iam is None:
            return None
        token = get_token(iam, renew=renew)
        mask_secret(token)
        return token

    def _request(
        self, method: str, path: str, *, operation: str, query: Mapping[str, Any] | None = None, json_body: Any = None
    ) -> Any:
        """One attempt of a call. With an IAM token, a 401 renews the token and tries once more."""
        builder = self.request_builder

        def send(token: str | None) -> Any:
            return self._send(
                builder.build(method, path, query=query, json_body=json_body, operation=operation, auth_token=token)
            )

        token = self._token()
        try:
            return send(token)
        except OMSApiError as err:
            if token is None or err.http_status != 401:
                raise
            self.log.info("OMS %s: the IAM token was refused; getting a new one", operation)
            return send(self._token(renew=True))

    def _call(
        self,
        method: str,
        template: str,
        operation: str,
        *,
        query: Mapping[str, Any] | None = None,
        json_body: Any = None,
        repeat_is_safe: bool = True,
        **path_params: str,
    ) -> Any:
        """Send one OMS call, signed afresh for each attempt, retrying transient failures per the policy."""
        builder = self.request_builder
        path = builder.path(template, **path_params)
        return self.config.retry_policy.call(
            lambda: self._request(method, path, query=query, json_body=json_body, operation=operation),
            operation=operation,
            repeat_is_safe=repeat_is_safe,
            log=self.log,
        )

    def _change_state(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        read_status: Callable[[], Any],
        status_label: Callable[[Any], str],
        done_statuses: frozenset[int],
        wrong_state_codes: frozenset[str],
        json_body: Any = None,
    ) -> None:
        """
        Start, stop or retry a task or group, safe against lost answers.

        An attempt whose answer was lost may have taken effect; the next one is then refused as being in the
        wrong state. In that case the object is read back (``read_status``): if it is where the call would have
        put it, the call counts as done. A start is thus never sent again once one is known to have worked.
        """
        maybe_applied = False

        def attempt() -> None:
            nonlocal maybe_applied
            try:
                self._request(method, path, json_body=json_body, operation=operation)
            except OMSApiError as err:
                if err.may_have_applied:
                    maybe_applied = True
                elif maybe_applied and err.error_code in wrong_state_codes:
                    status = read_status()
                    if status in done_statuses:
                        self.log.info(
                            "OMS %s: an earlier attempt's answer was lost, and the %s is now %s: counted as done",
                            operation,
                            "group" if " group " in operation else "task",
                            status_label(status),
                        )
                        return
                raise

        self.config.retry_policy.call(attempt, operation=operation, repeat_is_safe=True, log=self.log)

    def _change_task_state(
        self,
        task_id: str,
        action: str,
        *,
        done_statuses: frozenset[int],
        wrong_state_codes: frozenset[str],
        json_body: Any = None,
    ) -> None:
        self._change_state(
            "POST",
            self.request_builder.path(f"/tasks/{{task_id}}/{action}", task_id=task_id),
            f"{action} task {task_id}",
            read_status=lambda: self.get_task(task_id).get("status"),
            status_label=status_name,
            done_statuses=done_statuses,
            wrong_state_codes=wrong_state_codes,
            json_body=json_body,
        )

    # -- OMS operations ---------------------------------------------------------------------------

    def create_task(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """
        Create a migration task (``POST /v2/{project_id}/tasks``); OMS starts it by itself.

        :param body: a CreateTaskReq, see the OMS API reference.
        :return: ``{"id": <task id>, "name": <task name>}``.
        """
        # Never repeated once it may have reached the service: OMS would create a second task.
        created = self._call("POST", "/tasks", "create task", json_body=dict(body), repeat_is_safe=False) or {}
        self._report_lineage(body)
        return created

    def get_task(self, migration_task_id: str | int) -> dict[str, Any]:
        """
        Return a migration task (``GET /v2/{project_id}/tasks/{task_id}``): status, progress, errors.

        :param migration_task_id: the OMS task id.
        """
        task_id = check_path_value("migration_task_id", migration_task_id, "task_id")
        task = self._call("GET", "/tasks/{task_id}", f"show task {task_id}", task_id=task_id) or {}
        self._report_lineage(task)
        return task

    def _report_lineage(self, task: Mapping[str, Any]) -> None:
        """Report a task's source and destination to Airflow's hook-lineage collector; never fail the call."""
        from airflow_provider_oms.lineage import report_hook_lineage

        try:
            report_hook_lineage(self, task)
        except Exception:
            self.log.debug("Could not report hook lineage", exc_info=True)

    def list_tasks(
        self,
        *,
        limit: int = 10,
        offset: int = 0,
        status: int | None = None,
        task_name: str | None = None,
        group_id: str | None = None,
    ) -> dict[str, Any]:
        """
        List migration tasks (``GET /v2/{project_id}/tasks``).

        :param limit: how many tasks, 1 to 100.
        :param offset: how many to skip.
        :param status: only tasks in this status (see :class:`~airflow_provider_oms.constants.TaskStatus`).
        :param task_name: only tasks whose name contains this.
        :param group_id: only tasks of this task group.
        :return: ``{"tasks": [...], "count": <number of matching tasks>}``.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise OMSValidationError(f"limit must be a whole number from 1 to 100, got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise OMSValidationError(f"offset must be a whole number of 0 or more, got {offset!r}")
        query = {
            "limit": limit,
            "offset": offset,
            "status": status,
            "task_name": task_name,
            "group_id": group_id,
        }
        return self._call("GET", "/tasks", "list tasks", query=query) or {}

    def start_task(self, migration_task_id: str | int, body: Mapping[str, Any]) -> None:
        """
        Start a paused or failed migration task (``POST /v2/{project_id}/tasks/{task_id}/start``).

        :param migration_task_id: the OMS task id.
        :param body: a StartTaskReq, normally from :meth:`build_start_task_body`; it is checked against the
            API's limits before it is sent.
        """
        task_id = check_path_value("migration_task_id", migration_task_id, "task_id")
        check_start_task_body(body)
        self._change_task_state(
            task_id,
            "start",
            done_statuses=STARTED_STATUSES,
            wrong_state_codes=frozenset({ERROR_TASK_ALREADY_STARTED}),
            json_body=dict(body),
        )

    def stop_task(self, migration_task_id: str | int) -> None:
        """
        Pause a running migration task (``POST /v2/{project_id}/tasks/{task_id}/stop``).

        :param migration_task_id: the OMS task id.
        """
        task_id = check_path_value("migration_task_id", migration_task_id, "task_id")
        self._change_task_state(
            task_id,
            "stop",
            done_statuses=STOPPED_STATUSES,
            wrong_state_codes=frozenset({ERROR_TASK_NOT_IN_PROGRESS}),
        )

    def delete_task(self, migration_task_id: str | int) -> None:
        """
        Delete a migration task that is not in progress (``DELETE /v2/{project_id}/tasks/{task_id}``).

        :param migration_task_id: the OMS task id.
        """
        task_id = check_path_value("migration_task_id", migration_task_id, "task_id")
        self._call("DELETE", "/tasks/{task_id}", f"delete task {task_id}", task_id=task_id)

    def update_bandwidth_policy(self, migration_task_id: str | int, policies: list[Mapping[str, Any]]) -> None:
        """
        Set a task's bandwidth limits by time of day (``PUT /v2/{project_id}/tasks/{task_id}/bandwidth-policy``).

        :param migration_task_id: the OMS task id.
        :param policies: up to 5 windows ``{"start": "hh:mm", "end": "hh:mm", "max_bandwidth": bytes/s}``,
            ``max_bandwidth`` from 1 MiB/s (1048576) to 200 MiB/s (209715200). An empty list removes the limits.
        """
        task_id = check_path_value("migration_task_id", migration_task_id, "task_id")
        body = {"bandwidth_policy": check_bandwidth_policy(policies)}
        self._call(
            "PUT",
            "/tasks/{task_id}/bandwidth-policy",
            f"update bandwidth policy of task {task_id}",
            json_body=body,
            task_id=task_id,
        )

    # -- task groups ------------------------------------------------------------------------------

    def create_task_group(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """
        Create a migration task group (``POST /v2/{project_id}/taskgroups``); it starts by itself.

        :param body: a CreateTaskGroupReq.
        :return: ``{"group_id": ...}``.
        """
        return self._call("POST", "/taskgroups", "create task group", json_body=dict(body), repeat_is_safe=False) or {}

    def get_task_group(self, group_id: str) -> dict[str, Any]:
        """Return a task group (``GET /v2/{project_id}/taskgroups/{group_id}``): status and task counts."""
        group = check_path_value("group_id", group_id, "task_id")
        return self._call("GET", "/taskgroups/{group_id}", f"show task group {group}", group_id=group) or {}

    def list_task_groups(self, *, limit: int = 10, offset: int = 0, status: int | None = None) -> dict[str, Any]:
        """List task groups (``GET /v2/{project_id}/taskgroups``): ``{"taskgroups": [...], "count": n}``."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise OMSValidationError(f"limit must be a whole number from 1 to 100, got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise OMSValidationError(f"offset must be a whole number of 0 or more, got {offset!r}")
        query = {"limit": limit, "offset": offset, "status": status}
        return self._call("GET", "/taskgroups", "list task groups", query=query) or {}

    def _group_action(self, group_id: str, action: str, body: Mapping[str, Any] | None = None) -> None:
        group = check_path_value("group_id", group_id, "task_id")
        if action == "stop":
            done, wrong = GROUP_STOPPED_STATUSES, frozenset({ERROR_TASK_NOT_IN_PROGRESS})
        else:
            done, wrong = GROUP_STARTED_STATUSES, frozenset({ERROR_TASK_ALREADY_STARTED})
        self._change_state(
            "PUT",
            self.request_builder.path(f"/taskgroups/{{group_id}}/{action}", group_id=group),
            f"{action} task group {group}",
            read_status=lambda: self.get_task_group(group).get("status"),
            status_label=lambda status: GROUP_STATUS_NAMES.get(status, str(status)),
            done_statuses=done,
            wrong_state_codes=wrong,
            json_body=None if body is None else _group_body(body, f"{action} task group"),
        )

    def start_task_group(self, group_id: str, body: Mapping[str, Any]) -> None:
        """Start a paused task group (``PUT .../taskgroups/{group_id}/start``) with the credentials body."""
        self._group_action(group_id, "start", body)

    def stop_task_group(self, group_id: str) -> None:
        """Pause a running task group (``PUT .../taskgroups/{group_id}/stop``)."""
        self._group_action(group_id, "stop")

    def retry_task_group(self, group_id: str, body: Mapping[str, Any]) -> None:
        """Retry a failed task group (``PUT .../taskgroups/{group_id}/retry``) with the credentials body."""
        self._group_action(group_id, "retry", body)

    # -- sync tasks -------------------------------------------------------------------------------

    def get_sync_task(self, sync_task_id: str) -> dict[str, Any]:
        """Return a sync task (``GET /v2/{project_id}/sync-tasks/{sync_task_id}``); status SYNCHRONIZING/STOPPED."""
        sync = check_path_value("sync_task_id", sync_task_id, "task_id")
        return self._call("GET", "/sync-tasks/{sync_task_id}", f"show sync task {sync}", sync_task_id=sync) or {}

    def start_sync_task(self, sync_task_id: str, body: Mapping[str, Any]) -> None:
        """Start a sync task (``POST .../sync-tasks/{id}/start``); the body needs src and dst AK/SK, no token."""
        sync = check_path_value("sync_task_id", sync_task_id, "task_id")
        refuse_tokens(body, "start sync task")
        self._call(
            "POST",
            "/sync-tasks/{sync_task_id}/start",
            f"start sync task {sync}",
            json_body=dict(body),
            sync_task_id=sync,
        )

    def stop_sync_task(self, sync_task_id: str) -> None:
        """Stop a sync task (``POST .../sync-tasks/{id}/stop``)."""
        sync = check_path_value("sync_task_id", sync_task_id, "task_id")
        self._call("POST", "/sync-tasks/{sync_task_id}/stop", f"stop sync task {sync}", sync_task_id=sync)

    # -- start body -------------------------------------------------------------------------------

    def credentials_body(
        self,
        *,
        source_conn_id: str | None = None,
        destination_conn_id: str | None = None,
        tokenless_call: str | None = None,
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """
        Return the credential fields of a start-like body (start task, start or retry group, start sync task).

        Destination: ``destination_conn_id``'s login/password (default: this hook's OMS connection) and its
        ``security_token`` extra. Source: see :func:`source_fields` (AWS, Google Cloud, Azure Blob and
        AK/SK connections). Without a source connection no source field is set (a URL-list task).

        :param tokenless_call: ``None`` when the call can carry temporary-credential tokens; else the name of
            the call that cannot (task groups, sync tasks), and a connection holding a token is refused: its AK/SK
            would be sent without the token they need, and fail later inside OMS.
        :return: the fields, and for each where it came from (for error messages).
        """
        body: dict[str, Any] = {}
        sources: dict[str, str] = {}
        dst_conn_id = destination_conn_id or self.oms_conn_id
        if dst_conn_id == self.oms_conn_id and self.config.iam is not None:
            raise OMSValidationError(
                f"connection {self.oms_conn_id!r} logs in as an IAM user (auth_type token), so it holds no AK/SK for "
                "the destination: set destination_conn_id to a connection with the destination AK/SK"
            )
        dst, _ = self._read_credentials(dst_conn_id, role="destination")
        body["dst_ak"], sources["dst_ak"] = dst.access_key, f"login of connection {dst_conn_id!r}"
        body["dst_sk"], sources["dst_sk"] = dst.secret_key, f"password of connection {dst_conn_id!r}"
        if dst.security_token:
            body["dst_security_token"] = dst.security_token
            sources["dst_security_token"] = f"extra 'security_token' of connection {dst_conn_id!r}"
        if source_conn_id:
            fields, where = source_fields(self.get_connection(source_conn_id))
            body.update(fields)
            sources.update(where)
        if tokenless_call is not None:
            refuse_tokens(body, tokenless_call, sources)
        return body, sources

    def build_start_task_body(
        self,
        *,
        migrate_failed_object: bool = False,
        source_conn_id: str | None = None,
        destination_conn_id: str | None = None,
    ) -> dict[str, Any]:
        """
        Build and check the StartTaskReq body from Airflow connections; the credentials never pass through args.

        :param migrate_failed_object: restart only the objects that failed.
        :param source_conn_id: connection holding the source cloud's credentials (see :func:`source_fields`).
        :param destination_conn_id: connection holding the destination (OBS) credentials; default the OMS one.
        """
        body, sources = self.credentials_body(source_conn_id=source_conn_id, destination_conn_id=destination_conn_id)
        body["migrate_failed_object"] = migrate_failed_object
        check_start_task_body(body, sources)
        return body

    def build_create_task_body(
        self,
        task: Mapping[str, Any],
        *,
        source_conn_id: str | None = None,
        destination_conn_id: str | None = None,
        tokenless_call: str | None = None,
    ) -> dict[str, Any]:
        """
        Build a CreateTaskReq (or CreateTaskGroupReq) from a task definition without credentials.

        The credentials go into ``src_node`` and ``dst_node`` from the connections, as for a start.
        ``tokenless_call`` names a call whose nodes have no ``security_token`` (create task group), as for
        :meth:`credentials_body`.

        :param task: the request without any credential: ``src_node`` (region, bucket, cloud_type,
            object_key...), ``dst_node`` (region, bucket, save_prefix), ``task_type``, ``description``...
        """
        for node in ("src_node", "dst_node"):
            if not isinstance(task.get(node), Mapping):
                raise OMSValidationError(f"the task definition needs a {node!r} mapping (bucket, region...)")
            given = sorted(set(task[node]) & _NODE_SECRET_KEYS)
            if given:
                raise OMSValidationError(
                    f"{node} must not hold credentials ({', '.join(given)}): they come from the connections"
                )
        fields, sources = self.credentials_body(
            source_conn_id=source_conn_id, destination_conn_id=destination_conn_id, tokenless_call=tokenless_call
        )
        check_start_task_body({**fields, "migrate_failed_object": False}, sources)
        src_node = dict(task["src_node"])
        for field_name, node_key in _SOURCE_NODE_KEYS.items():
            if field_name in fields:
                src_node[node_key] = fields[field_name]
        dst_node = {**task["dst_node"], "ak": fields["dst_ak"], "sk": fields["dst_sk"]}
        if "dst_security_token" in fields:
            dst_node["security_token"] = fields["dst_security_token"]
        body = {**task, "src_node": src_node, "dst_node": dst_node}
        if "source_cdn_authentication_key" in fields:
            body["source_cdn"] = {
                **(task.get("source_cdn") or {}),
                "authentication_key": fields["source_cdn_authentication_key"],
            }
        return body

    # -- UI ---------------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """
        Make one cheap signed read (list one task) and say whether the connection works, or what to fix.

        Used by the Test button of the connection form. It makes a single attempt: the form should answer fast.
        """
        try:
            config = self.config
            self._request(
                "GET", self.request_builder.path("/tasks"), query={"limit": 1, "offset": 0}, operation="list tasks"
            )
        except OMSValidationError as err:
            return False, f"The connection is not usable: {err}"
        except OMSApiError as err:
            return False, _test_failure_reason(err)
        where = f"region {config.region}" if config.region else f"endpoint {config.endpoint}"
        return True, f"Connected to Huawei Cloud OMS ({where}) for project {config.project_id}"


def _test_failure_reason(err: OMSApiError) -> str:
    """Say what a failed connection test means and what to check."""
    if err.http_status is None:
        return f"Could not reach OMS: {err}. Check the connection's region or endpoint, and the network or proxy."
    if "clock is" in str(err):
        return f"OMS refused the request's date: {err}"
    if err.http_status in (401, 403):
        # Not the connection id: the UI's Test button tests a throw-away copy under a random one. Not str(err)
        # either: its hint repeats the advice below.
        details = " ".join(str(part) for part in (err.error_code, err.error_msg) if part)
        request = f" (request id {err.request_id})" if err.request_id else ""
        return (
            f"OMS refused the credentials ({err.error_code or err.http_status}): check the AK (login) and SK "
            "(password), the security token of temporary credentials, and that project_id is the project of this "
            f"region for that account. OMS said: HTTP {err.http_status} {details}{request}"
        )
    if err.http_status == 404:
        return f"OMS did not find the project or the API: check project_id and the region or endpoint. {err}"
    return str(err)
