"""
Airflow connections in, OMS settings and credentials out: the one place that reads a connection's fields.

* :func:`config_from_connection`: the OMS connection (type ``huaweicloud_oms``) -> :class:`OMSConnectionConfig`
  (AK/SK or the IAM user, project, endpoint, TLS, timeout, retries).
* :func:`credentials_from_connection`: the AK/SK and security token of a destination connection.
* :func:`source_fields`: the start body's source fields from a connection of a type in :data:`SOURCE_READERS`.

Nothing here imports Airflow: a connection is any object with ``login``, ``password``, ``extra_dejson``,
``conn_type`` (and ``conn_id``, for messages), e.g. ``airflow.sdk.Connection`` or a ``SimpleNamespace`` in a
test. Every credential read is registered with Airflow's secret masker as it is read, before any check can
refuse it. The hook (:mod:`airflow_provider_oms.hooks.oms`) makes the calls; this module only reads.

**Adding a source connection type** is one entry in :data:`SOURCE_READERS`: a function that takes a
:class:`SourceReader` and puts the body fields the type holds (``docs/connection.md`` shows one).
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from airflow_provider_oms.client import Credentials
from airflow_provider_oms.constants import ENDPOINT_TEMPLATE, KNOWN_REGIONS, TOKEN_MAX_LENGTH
from airflow_provider_oms.exceptions import OMSValidationError
from airflow_provider_oms.iam import IAMSettings
from airflow_provider_oms.proxies import check_proxy_url
from airflow_provider_oms.retries import RetryPolicy
from airflow_provider_oms.source_providers import read_aws, read_google_cloud, read_wasb
from airflow_provider_oms.validation import check_credential, check_length, check_path_value, coerce_bool
from airflow_provider_oms.waiting import DEFAULT_OUTAGE_TOLERANCE

DEFAULT_TIMEOUT = 60.0
AUTH_AKSK = "aksk"
AUTH_TOKEN = "token"  # noqa: S105 - the name of an auth type
IAM_ENDPOINT_TEMPLATE = "https://iam.{region}.myhuaweicloud.com"
IAM_GLOBAL_ENDPOINT = "https://iam.myhuaweicloud.com"
IAM_FIELD_MAX_LENGTH = 256
#: AK and SK: 1..100 characters (the seed API's limit for every AK/SK field).
CREDENTIAL_MAX_LENGTH = 100
_LOOPBACK_NAMES = {"localhost"}


class ConnectionLike(Protocol):
    """What this module reads of a connection (``airflow.sdk.Connection`` has it all, and ``conn_id``)."""

    login: str | None
    password: str | None
    conn_type: str | None

    @property
    def extra_dejson(self) -> dict[str, Any]:
        """The connection's extras as a dict."""


def mask_secret(value: Any) -> None:
    """Register a value with Airflow's secret masker, imported on first use (the module itself stays Airflow-free)."""
    from airflow.sdk.log import mask_secret as register

    register(value)


def _conn_id(conn: ConnectionLike) -> str:
    return str(getattr(conn, "conn_id", None) or "")


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
    #: Extra ``proxy``: a proxy URL that wins over ``HTTPS_PROXY``/``HTTP_PROXY``, ``"none"``, or ``None`` (follow the
    #: environment); see :mod:`airflow_provider_oms.proxies`. Not in the repr: it may hold the proxy's password.
    proxy: str | None = field(default=None, repr=False)


def credentials_from_connection(conn: ConnectionLike, *, role: str) -> tuple[Credentials, dict[str, Any]]:
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
    where = f"{role} connection {_conn_id(conn)!r}"
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
    conn: ConnectionLike,
    extra: Mapping[str, Any],
    where: str,
    region: str | None,
    project_id: str,
    verify: bool | str,
    timeout: float,
    proxy: str | None,
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
        proxy=proxy,
    )


def _proxy(extra: Mapping[str, Any], where: str) -> str | None:
    """Read extra ``proxy``; its credentials are masked before any check can refuse it."""
    raw = extra.get("proxy")
    if raw is None or str(raw).strip() == "":
        return None
    value = str(raw).strip()
    mask_secret(value)
    password = urlsplit(value).password
    if password:
        mask_secret(password)
    why = check_proxy_url(value)
    if why:
        raise OMSValidationError(f"extra 'proxy' of {where} {why}")
    return value


def config_from_connection(conn: ConnectionLike) -> OMSConnectionConfig:
    """
    Resolve an OMS connection into credentials, project, endpoint, TLS and timeout settings, checking each.

    Shared by :class:`~airflow_provider_oms.hooks.oms.OMSHook` and the async trigger, so both read a connection the
    same way.
    """
    conn_id = _conn_id(conn)
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
    proxy = _proxy(extra, where)
    iam = (
        _iam_settings(conn, extra, where, region, project_id, verify, timeout, proxy)
        if auth_type == AUTH_TOKEN
        else None
    )
    return OMSConnectionConfig(
        proxy=proxy,
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


# -- source connections ---------------------------------------------------------------------------------------

#: Extras of source connections that hold secrets (of any supported type): masked as read, used or not.
SOURCE_SECRET_EXTRAS = (
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "security_token",
    "keyfile_dict",
    "json_auth_file",
    "connection_string",
    "shared_access_key",
    "account_key",
    "sas_token",
    "client_secret",
    "cdn_authentication_key",
)
#: Extras that name a way to get keys OMS cannot use: it needs the keys themselves, not a role or a profile.
_INDIRECT_CREDENTIAL_EXTRAS = (
    "role_arn",
    "profile_name",
    "aws_profile",
    "assume_role_method",
    "web_identity_token_file",
)


@dataclass(repr=False)
class SourceReader:
    """
    One source connection being read: its extras, and the start-body fields put so far with where each came from.

    A reader in :data:`SOURCE_READERS` calls :meth:`put` (or the helpers built on it) for each field it finds.
    The repr names the connection only: the extras and fields hold keys.
    """

    conn: ConnectionLike
    conn_id: str
    conn_type: str
    extra: dict[str, Any]
    fields: dict[str, Any] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"SourceReader(conn_id={self.conn_id!r}, conn_type={self.conn_type!r})"

    @property
    def of(self) -> str:
        """``of source connection '<id>'``, for messages and :attr:`where`."""
        return f"of source connection {self.conn_id!r}"

    def extra_value(self, key: str) -> Any:
        """Return an extra by its name, or by the ``extra__<conn_type>__<name>`` form older forms saved."""
        value = self.extra.get(key)
        return value if value not in (None, "") else self.extra.get(f"extra__{self.conn_type}__{key}") or None

    def extra_or(self, key: str, fallback: Any, fallback_from: str) -> tuple[Any, str]:
        """Return an extra and ``extra '<key>' of ...``, or the fallback and where it came from."""
        value = self.extra_value(key)
        return (value, f"extra {key!r} {self.of}") if value else (fallback, fallback_from)

    def mask(self, value: Any) -> Any:
        """Register a value with the secret masker as it is read (before any check can refuse it); return it."""
        if value:
            mask_secret(value)
        return value

    def put(self, field_name: str, value: Any, source: str) -> None:
        """Set a start-body field (``src_ak``, ``json_auth_file``...) and say where it came from."""
        self.fields[field_name], self.where[field_name] = value, source

    def keys(self, access_key: Any, ak_from: str, secret_key: Any, sk_from: str) -> None:
        """Put ``src_ak``/``src_sk``: both or neither, each checked against the AK/SK limits."""
        if bool(access_key) != bool(secret_key):
            present = f"AK ({ak_from})" if access_key else f"SK ({sk_from})"
            raise OMSValidationError(
                f"source connection {self.conn_id!r} has only its {present}: set both, or neither for a task that "
                "needs no source keys"
            )
        if access_key:
            self.put("src_ak", check_credential(f"AK ({ak_from})", access_key, CREDENTIAL_MAX_LENGTH), ak_from)
            self.put("src_sk", check_credential(f"SK ({sk_from})", secret_key, CREDENTIAL_MAX_LENGTH), sk_from)

    def login_keys(self) -> None:
        """Put ``src_ak``/``src_sk`` from the connection's login and password."""
        self.keys(self.conn.login, f"login {self.of}", self.conn.password, f"password {self.of}")

    def token(self, key: str) -> None:
        """Put ``src_security_token`` from extra ``key`` (temporary credentials), when it is set."""
        token = self.extra_value(key)
        if token:
            source = f"extra {key!r} {self.of}"
            self.put(
                "src_security_token", check_credential(f"security_token ({source})", token, TOKEN_MAX_LENGTH), source
            )

    def key_file(self, key: str, value: Any, source: str) -> None:
        """Put ``json_auth_file``: a Google Cloud service-account key, as JSON text or an object."""
        self.put("json_auth_file", _json_auth_file(value, self.conn_id, key), source)


def _read_ak_sk(source: SourceReader) -> None:
    """
    Read ``generic``, ``huaweicloud_oms``, ``huaweicloud``: login/password; extras security_token, json_auth_file.

    ``huaweicloud`` is the connection type of the Huawei provider (``apache-airflow-providers-huawei``, from
    github.com/HuaweiCloudDeveloper/HuaweiCloud-Airflow-provider), which does not import on Airflow 3: its
    ``HuaweiBaseHook`` (``hooks/base_huawei_cloud.py``) and ``OBSHook.get_credential`` (``hooks/huawei_obs.py``)
    read the AK from login and the SK from password, and extras ``region``, ``project_id``, ``obs_bucket`` and
    ``enterprise_project_id``. The same fields serve it as the OMS connection and as a destination.
    """
    source.login_keys()
    source.token("security_token")
    _read_json_auth_file(source)


def _read_json_auth_file(source: SourceReader) -> None:
    keyfile = source.extra_value("json_auth_file")
    if keyfile:
        source.key_file("json_auth_file", keyfile, f"extra 'json_auth_file' {source.of}")


#: How each source connection type is read: one entry per type. A reader puts the fields the type holds; what
#: every type shares (``cdn_authentication_key``, refusing a connection without keys, masking) is done around it.
SOURCE_READERS: dict[str, Callable[[SourceReader], None]] = {
    "aws": read_aws,
    "google_cloud_platform": read_google_cloud,
    "wasb": read_wasb,
    "generic": _read_ak_sk,
    "huaweicloud_oms": _read_ak_sk,
    "huaweicloud": _read_ak_sk,
}
#: Connection types a source connection may have (the keys of :data:`SOURCE_READERS` as shipped).
SOURCE_CONN_TYPES = tuple(SOURCE_READERS)


def source_fields(conn: ConnectionLike) -> tuple[dict[str, Any], dict[str, str]]:
    """
    Return the start body's source fields from a connection users already keep, and where each came from.

    By connection type (:data:`SOURCE_READERS`):

    * ``aws``: the keys the Amazon provider's ``AwsBaseHook`` resolves (keys, profile, assumed role, web
      identity) when it is installed, else login/password or extras ``aws_access_key_id``/``aws_secret_access_key``
      -> ``src_ak``/``src_sk``; a session token -> ``src_security_token``.
    * ``google_cloud_platform``: extra ``keyfile_dict`` (the key JSON), or ``key_path`` (a file holding it)
      -> ``json_auth_file``.
    * ``wasb`` (Azure Blob Storage): extra ``connection_string``, or the account name and key -> ``connection_string``.
    * ``generic``, ``huaweicloud_oms`` and ``huaweicloud``: login/password -> ``src_ak``/``src_sk``; extras
      ``security_token`` -> ``src_security_token`` and ``json_auth_file`` -> ``json_auth_file``.

    (:mod:`airflow_provider_oms.source_providers` reads the other providers' types as those providers do.)

    Every type may add extra ``cdn_authentication_key`` -> ``source_cdn_authentication_key``. Every value read
    is registered with the secret masker and checked before anything is sent. A connection of another type, or
    one that holds no key OMS can use (e.g. Google application default credentials, or an ``aws`` role without
    the Amazon provider), is refused, naming the connection and what is missing.
    """
    conn_id, conn_type = _conn_id(conn), conn.conn_type or "generic"
    reader = SOURCE_READERS.get(conn_type)
    if reader is None:
        raise OMSValidationError(
            f"source connection {conn_id!r} has type {conn_type!r}, which this provider cannot read source keys "
            f"from; use a connection of type {', '.join(SOURCE_READERS)}"
        )
    source = SourceReader(conn, conn_id, conn_type, dict(conn.extra_dejson or {}))
    for value in (conn.login, conn.password, *(source.extra_value(key) for key in SOURCE_SECRET_EXTRAS)):
        if value:
            mask_secret(value)  # as read, before any check can refuse it
    reader(source)
    fields = source.fields
    cdn_key = source.extra_value("cdn_authentication_key")
    indirect = [key for key in _INDIRECT_CREDENTIAL_EXTRAS if source.extra_value(key)]
    if not fields and (indirect or not cdn_key):  # a CDN key alone serves a source behind a CDN (a URL list)
        raise OMSValidationError(_no_source_keys(conn_id, conn_type, indirect))
    if cdn_key:
        source.put("source_cdn_authentication_key", cdn_key, f"extra 'cdn_authentication_key' {source.of}")
    for value in fields.values():  # as sent: a key file read from disk or an object turned into JSON text
        mask_secret(value)
    if "json_auth_file" in fields:  # and its parts: the masker hides a key file's private_key on its own
        mask_secret(json.loads(fields["json_auth_file"]))
    return fields, source.where


def _no_source_keys(conn_id: str, conn_type: str, indirect: list[str]) -> str:
    """Say what a source connection without keys lacks, and why a role or profile does not do."""
    where = "login and password (AK/SK)"
    if conn_type == "aws":
        where = (
            "login and password, or extras 'aws_access_key_id' and 'aws_secret_access_key', or (resolved by the "
            "Amazon provider) extra 'role_arn' or 'profile_name'; the worker's own AWS credentials are never sent"
        )
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


def destination_fields(conn: ConnectionLike, conn_id: str) -> tuple[dict[str, Any], dict[str, str]]:
    """
    Return the start body's destination fields (``dst_ak``, ``dst_sk``, ``dst_security_token``) and their sources.

    :param conn: a connection holding the destination (OBS) AK/SK in login/password, and extra ``security_token``.
    :param conn_id: its id, for the sources (the connection asked for).
    """
    credentials, _ = credentials_from_connection(conn, role="destination")
    fields: dict[str, Any] = {"dst_ak": credentials.access_key, "dst_sk": credentials.secret_key}
    where = {"dst_ak": f"login of connection {conn_id!r}", "dst_sk": f"password of connection {conn_id!r}"}
    if credentials.security_token:
        fields["dst_security_token"] = credentials.security_token
        where["dst_security_token"] = f"extra 'security_token' of connection {conn_id!r}"
    return fields, where
