"""
Request building and response parsing for the OMS v2 API, shared by the sync hook and the async trigger.

Nothing here does I/O: :class:`OMSRequestBuilder` turns an operation into a signed :class:`PreparedCall`
(method, URL, headers, body bytes), and :func:`parse_response` turns status, headers and body bytes into
data or an :class:`OMSApiError`. A transport (``requests`` or ``httpx``) sits between the two.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

from airflow_provider_oms import __version__, signer
from airflow_provider_oms.constants import ERROR_AUTH, ERROR_NOT_FOUND, ERROR_THROTTLED, MAX_CLOCK_SKEW_SECONDS
from airflow_provider_oms.exceptions import OMSApiError, OMSValidationError
from airflow_provider_oms.retries import MAY_HAVE_APPLIED_STATUSES, RETRYABLE_STATUSES
from airflow_provider_oms.validation import check_path_value

USER_AGENT = f"airflow-provider-oms/{__version__}"
CONTENT_TYPE_JSON_BODY = "application/json;charset=utf-8"
CONTENT_TYPE_NO_BODY = "application/json"
REQUEST_ID_HEADER = "X-Request-Id"
AUTH_TOKEN_HEADER = "X-Auth-Token"  # noqa: S105 - a header name
#: How much of a non-JSON error body is quoted in an error message.
_BODY_EXCERPT = 200
#: The largest answer read: a list of 100 tasks is a few hundred KiB; anything far larger is not OMS.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024

_HINTS = {
    ERROR_AUTH: "check the connection's AK/SK (login/password), its security token, and this machine's clock",
    ERROR_NOT_FOUND: "check the migration task id and the connection's project_id",
    ERROR_THROTTLED: "the API is throttling requests; retry in a few seconds",
}


@dataclass(frozen=True)
class Credentials:
    """An AK/SK pair and an optional security token. The repr shows none of them."""

    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PreparedCall:
    """A signed request, ready for any HTTP client. The repr hides headers and body (they hold secrets)."""

    method: str
    url: str
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    #: What the call does, for log lines and error messages, e.g. ``start task 123``.
    operation: str = ""


_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_json(payload: Any) -> bytes:
    """Serialize a JSON body the way it is hashed and sent."""
    return _JSON_ENCODER.encode(payload).encode("utf-8")


class OMSRequestBuilder:
    """
    Builds signed OMS requests for one endpoint, project and credential set.

    :param endpoint: scheme and host, e.g. ``https://oms.cn-north-4.myhuaweicloud.com``.
    :param project_id: the Huawei Cloud project id (path prefix ``/v2/{project_id}``).
    :param credentials: AK/SK (and security token) that sign every request.
    """

    def __init__(self, endpoint: str, project_id: str, credentials: Credentials) -> None:
        parts = urlsplit(endpoint)
        if parts.username is not None or parts.password is not None:
            # The endpoint is not repeated here: it holds a password.
            raise OMSValidationError("endpoint must not contain a user name or password (user:password@host)")
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise OMSValidationError(f"endpoint must be an http(s) URL such as https://host[:port], got {endpoint!r}")
        if parts.path.strip("/") or parts.query or parts.fragment:
            # The signature covers the path from /v2 on: a prefix would be sent but not signed.
            raise OMSValidationError(
                f"endpoint must be only scheme://host[:port], without a path, query or fragment, got {endpoint!r}"
            )
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        self.host = parts.netloc
        self.project_id = check_path_value("project_id", project_id, "project_id")
        self._credentials = credentials
        self._path_prefix = f"/v2/{quote(self.project_id, safe='')}"

    def __repr__(self) -> str:
        return f"OMSRequestBuilder(base_url={self.base_url!r}, project_id={self.project_id!r})"

    def path(self, template: str, **path_params: str) -> str:
        """
        Fill a path template such as ``/tasks/{task_id}/start``; each value becomes exactly one segment.

        Each value is checked with :func:`check_path_value` (callers check first, to name their own field in
        the error) and quoted with ``safe=""``, so no value can add a segment or a query.
        """
        values = {name: quote(check_path_value(name, value, "task_id"), safe="") for name, value in path_params.items()}
        return f"{self._path_prefix}{template.format(**values)}"

    def build(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, signer.QueryValue | None] | None = None,
        json_body: Any = None,
        operation: str = "",
        sdk_date: str | None = None,
        auth_token: str | None = None,
    ) -> PreparedCall:
        """
        Return the signed request for ``method`` on ``path`` (from :meth:`path`).

        :param query: query parameters; ``None`` values are left out.
        :param json_body: the JSON body, or ``None`` for a request without a body.
        :param operation: a short description for messages.
        :param sdk_date: the ``X-Sdk-Date`` to sign with (tests); default now.
        :param auth_token: an IAM token: sent as ``X-Auth-Token`` instead of signing with AK/SK.
        """
        pairs = [(key, value) for key, value in query.items() if value is not None] if query else []
        canonical_query = signer.canonical_query(pairs) if pairs else ""
        body = b"" if json_body is None else encode_json(json_body)
        headers = {
            "Content-Type": CONTENT_TYPE_JSON_BODY if body else CONTENT_TYPE_NO_BODY,
            "Host": self.host,
            "User-Agent": USER_AGENT,
            signer.HEADER_PROJECT_ID: self.project_id,
            signer.HEADER_DATE: sdk_date or signer.format_sdk_date(),
        }
        url = f"{self.base_url}{path}" + (f"?{canonical_query}" if canonical_query else "")
        if auth_token is not None:
            headers[AUTH_TOKEN_HEADER] = auth_token
            return PreparedCall(method=method, url=url, headers=headers, body=body, operation=operation)
        if self._credentials.security_token:
            headers[signer.HEADER_SECURITY_TOKEN] = self._credentials.security_token
        signed = signer.sign(
            method=method,
            path=path,
            query=canonical_query,
            headers=headers,
            body=body,
            access_key=self._credentials.access_key,
            secret_key=self._credentials.secret_key,
        )
        return PreparedCall(method=method, url=url, headers=signed, body=body, operation=operation)


def _first(mapping: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = mapping.get(key)
        if value not in (None, ""):
            return str(value)
    return None


def parse_error_body(content: bytes) -> tuple[str | None, str | None]:
    """
    Return ``(error_code, error_msg)`` from an error body in any of the shapes the service uses.

    Shapes: ``{"error_code", "error_msg"}``, ``{"errorCode", "errorMsg"}``, ``{"code", "message"}``, any of
    them nested under ``"error"``. A body that is not JSON gives ``(None, excerpt of the text)``.
    """
    text = content.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        excerpt = " ".join(text.split())[:_BODY_EXCERPT]
        return None, (f"non-JSON response body: {excerpt!r}" if excerpt else None)
    if isinstance(data.get("error"), dict):
        data = {**data, **data["error"]}
    code = _first(data, "error_code", "errorCode", "code")
    message = _first(data, "error_msg", "errorMsg", "message")
    detail = _first(data, "error_detail")
    if detail and message:
        message = f"{message} ({detail})"
    return code, message or detail


def parse_response(call: PreparedCall, status: int, headers: Mapping[str, str], content: bytes) -> Any:
    """
    Return the decoded JSON of a successful response (``None`` for an empty body), or raise.

    :raises OMSApiError: on HTTP >= 300 (redirects are not followed) or a 2xx body that is not JSON.
    """
    request_id = headers.get(REQUEST_ID_HEADER) or headers.get(REQUEST_ID_HEADER.lower())
    if 200 <= status < 300:
        if not content.strip():
            return None
        try:
            return json.loads(content)
        except ValueError:
            raise OMSApiError(
                f"OMS {call.operation} returned HTTP {status} with a body that is not JSON"
                + (f" (request id {request_id})" if request_id else ""),
                http_status=status,
                request_id=request_id,
            ) from None
    error_code, error_msg = parse_error_body(content)
    parts = [f"OMS {call.operation} failed: HTTP {status}"]
    if error_code:
        parts.append(f" {error_code}")
    if error_msg:
        parts.append(f": {error_msg}")
    if 300 <= status < 400:
        parts.append(" (redirects are not followed; check the connection's endpoint)")
    if request_id:
        parts.append(f" (request id {request_id})")
    skew = clock_skew(headers.get("Date") or headers.get("date")) if status == 401 else None
    if skew is not None and abs(skew) > MAX_CLOCK_SKEW_SECONDS:
        parts.append(
            f". This machine's clock is {_duration(abs(skew))} {'ahead of' if skew > 0 else 'behind'} the "
            f"server's (its Date header says {headers.get('Date') or headers.get('date')}); the service refuses "
            f"requests dated more than {MAX_CLOCK_SKEW_SECONDS // 60} minutes off: fix the clock (NTP)"
        )
    else:
        hint = _HINTS.get(error_code or "")
        if hint:
            parts.append(f". Hint: {hint}")
    raise OMSApiError(
        "".join(parts),
        http_status=status,
        error_code=error_code,
        error_msg=error_msg,
        request_id=request_id,
        transient=status in RETRYABLE_STATUSES,
        may_have_applied=status in MAY_HAVE_APPLIED_STATUSES,
        retry_after=retry_after(headers.get("Retry-After") or headers.get("retry-after")) if status == 429 else None,
    )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def clock_skew(date_header: str | None, now: datetime | None = None) -> float | None:
    """Seconds this machine's clock is ahead of the server's (negative: behind), from a ``Date`` header."""
    if not date_header:
        return None
    try:
        server = parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return None
    if server.tzinfo is None:
        server = server.replace(tzinfo=timezone.utc)
    return ((now or datetime.now(timezone.utc)) - server).total_seconds()


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def body_too_large(call: PreparedCall, status: int) -> OMSApiError:
    """Build the error for an answer larger than :data:`MAX_RESPONSE_BYTES` (which is not read further)."""
    return OMSApiError(
        f"OMS {call.operation} failed: the answer (HTTP {status}) is larger than {MAX_RESPONSE_BYTES // 1024 // 1024} "
        "MiB, which no OMS answer is; check the connection's endpoint",
        http_status=status,
    )


def transport_error(call: PreparedCall, endpoint: str, error_name: str, *, sent: bool, detail: str = "") -> OMSApiError:
    """
    Build the error for a call that got no answer.

    :param error_name: the HTTP client's exception type, e.g. ``ReadTimeout``.
    :param sent: whether the request may have reached the service (then it may have taken effect).
    :param detail: the client's message, only when it cannot quote a header (it names host and path).
    """
    return OMSApiError(
        f"OMS {call.operation} failed: no answer from {endpoint} ({error_name}{': ' + detail if detail else ''})",
        error_msg=error_name,
        transient=True,
        may_have_applied=sent,
    )
