"""
IAM token authentication (``X-Auth-Token``), the seed API's form.

A token comes from the IAM endpoint for an IAM user's name and password and is cached until shortly before
it expires.

No Airflow here. A token is asked for once per endpoint, domain, user, project and password, and shared by
every hook of the process (and by triggers, through a worker thread), so a thousand waits do not log in a
thousand times, and a connection with a wrong password never rides on the token another connection's right
password got.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_provider_oms.client import parse_error_body
from airflow_provider_oms.exceptions import OMSApiError
from airflow_provider_oms.proxies import proxy_for

TOKEN_PATH = "/v3/auth/tokens"  # noqa: S105 - a URL path
SUBJECT_TOKEN_HEADER = "X-Subject-Token"  # noqa: S105 - a header name
#: A token is renewed this long before it expires (they are valid for 24 h).
RENEW_BEFORE_SECONDS = 15 * 60


@dataclass(frozen=True)
class IAMSettings:
    """Who logs in where. The repr shows no password."""

    endpoint: str
    domain: str
    user: str
    password: str = field(repr=False)
    project_id: str
    verify: bool | str = True
    timeout: float = 60.0
    #: The connection's extra ``proxy`` (see :func:`airflow_provider_oms.proxies.proxy_for`); not in the repr.
    proxy: str | None = field(default=None, repr=False)

    @property
    def cache_key(self) -> tuple[str, str, str, str, str]:
        """What a cached token is for: who logs in where, and a keyed hash of the password (never the password)."""
        return (self.endpoint, self.domain, self.user, self.project_id, _password_hash(self.password))


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    expires_at: float


_cache: dict[tuple[str, str, str, str, str], _Token] = {}
_lock = threading.Lock()
#: Keys the password hashes of this process: a hash in memory cannot be checked against guesses elsewhere.
_HASH_KEY = secrets.token_bytes(32)


def _password_hash(password: str) -> str:
    return hmac.new(_HASH_KEY, password.encode("utf-8"), hashlib.sha256).hexdigest()


def _expiry(body: Any) -> float:
    try:
        text = body["token"]["expires_at"]
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except (KeyError, TypeError, ValueError):
        return time.time() + 3600  # unknown: assume an hour, renew early rather than late


def _request_token(settings: IAMSettings) -> _Token:
    import requests  # here, not at the top: DAG files import the hook that imports this module

    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": settings.user, "password": settings.password, "domain": {"name": settings.domain}}
                },
            },
            "scope": {"project": {"id": settings.project_id}},
        }
    }
    url = settings.endpoint.rstrip("/") + TOKEN_PATH
    proxy = proxy_for(url, settings.proxy)
    try:
        with requests.Session() as session:
            session.trust_env = False  # the proxy is decided by proxy_for(), as for every OMS call
            response = session.post(
                url,
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json;charset=utf-8"},
                timeout=settings.timeout,
                verify=settings.verify,
                allow_redirects=False,
                proxies={"http": proxy, "https": proxy} if proxy else None,
            )
    except requests.RequestException as err:
        raise OMSApiError(
            f"IAM token request failed: no answer from {settings.endpoint} ({type(err).__name__})",
            error_msg=type(err).__name__,
            transient=True,
        ) from None
    token = response.headers.get(SUBJECT_TOKEN_HEADER)
    if response.status_code != 201 or not token:
        code, message = parse_error_body(response.content)
        if code == str(response.status_code):  # IAM's {"error": {"code": 401, ...}}: the status again
            code = None
        hint = (
            "check the IAM user name (login), password and extra 'domain' of the connection"
            if response.status_code in (400, 401, 403)
            else "check the connection's extra 'iam_endpoint'"
        )
        raise OMSApiError(
            f"IAM token request to {settings.endpoint} failed: HTTP {response.status_code}"
            + (f" {code}" if code else "")
            + (f": {message}" if message else "")
            + f". Hint: {hint}",
            http_status=response.status_code,
            error_code=code,
            error_msg=message,
            request_id=response.headers.get("X-Request-Id"),
        )
    try:
        answer = response.json()
    except ValueError:
        answer = None
    return _Token(value=token, expires_at=_expiry(answer))


def get_token(settings: IAMSettings, *, renew: bool = False) -> str:
    """
    Return a valid token for these settings: the cached one, or a new one from IAM.

    :param renew: drop the cached token first (after the service refused it with a 401).
    """
    key = settings.cache_key
    with _lock:
        cached = _cache.get(key)
        if renew or (cached and cached.expires_at - RENEW_BEFORE_SECONDS <= time.time()):
            _cache.pop(key, None)
            cached = None
        if cached is not None:
            return cached.value
        # Under the lock: concurrent callers wait for one login instead of each making their own.
        token = _request_token(settings)
        _cache[key] = token
        return token.value
