"""Exceptions raised by the provider. Messages never contain a credential."""

from __future__ import annotations

from typing import Any

try:
    from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, AirflowSkipException, AirflowTaskTimeout
except ImportError:  # Airflow 3.1
    from airflow.exceptions import (  # type: ignore[no-redef]
        AirflowException,
        AirflowSensorTimeout,
        AirflowSkipException,
        AirflowTaskTimeout,
    )

from airflow_provider_oms.version_compat import AirflowFailException

__all__ = [
    "AirflowException",
    "AirflowSkipException",
    "AirflowTaskTimeout",
    "OMSApiError",
    "OMSError",
    "OMSMigrationError",
    "OMSMigrationFailed",
    "OMSRefusedError",
    "OMSSensorTimeout",
    "OMSValidationError",
    "connection_test_failure",
]


class OMSError(AirflowException):
    """Base class of every error this provider raises."""


class OMSValidationError(OMSError, ValueError):
    """Input refused before anything was sent; the message names the field and the limit."""


class OMSApiError(OMSError):
    """
    The OMS API answered with an error, or could not be reached.

    :param message: what happened, in words a person can act on.
    :param http_status: HTTP status of the response, ``None`` when no response arrived. (Not
        ``status_code``: AirflowException uses that name for the API server's own status.)
    :param error_code: OMS error code such as ``OMS.0065`` or ``APIGW.0301``.
    :param error_msg: the service's error message.
    :param request_id: the ``X-Request-Id`` of the response, for Huawei support.
    :param transient: the same request may succeed later (throttling, a gateway error, a lost connection).
    :param may_have_applied: the request may have reached the service and taken effect although no good
        answer came back (a lost response, a gateway timeout).
    :param retry_after: seconds the service asked to wait (``Retry-After``).
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        error_code: str | None = None,
        error_msg: str | None = None,
        request_id: str | None = None,
        transient: bool = False,
        may_have_applied: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.error_code = error_code
        self.error_msg = error_msg
        self.request_id = request_id
        self.transient = transient
        self.may_have_applied = may_have_applied
        self.retry_after = retry_after

    @property
    def is_refusal(self) -> bool:
        """
        Whether OMS answered and refused the request itself: HTTP 4xx, not throttling, not authentication.

        The same request would be refused again; whether a retry can change that depends on the object's state,
        which the caller reads back. Credentials (401, 403) are left out: a fixed connection or clock changes them.
        """
        status = self.http_status
        return status is not None and 400 <= status < 500 and status not in (401, 403, 408, 429) and not self.transient

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:  # keep the class and the attributes when pickled
        attributes = {name: getattr(self, name) for name in _API_ERROR_FIELDS}
        return (_rebuild_api_error, (type(self), str(self), attributes))


_API_ERROR_FIELDS = (
    "http_status",
    "error_code",
    "error_msg",
    "request_id",
    "transient",
    "may_have_applied",
    "retry_after",
)


def _rebuild_api_error(cls: type[OMSApiError], message: str, attributes: dict[str, Any]) -> OMSApiError:
    return cls(message, **attributes)


class OMSRefusedError(OMSApiError, AirflowFailException):
    """
    OMS refused a request for a reason that a retry cannot change: Airflow fails the task once, without retries.

    A finished task started again, a task that does not exist, a request that OMS finds invalid. Built with
    :meth:`from_refusal`, it keeps the refusal's HTTP status, error code and request id.
    """

    @classmethod
    def from_refusal(cls, err: OMSApiError, message: str) -> OMSRefusedError:
        """
        Return the error to fail with: ``message`` (what happened and what to do), then OMS's own words.

        :param err: OMS's refusal.
        :param message: what the task read back says about it, and what to do.
        """
        attributes = {name: getattr(err, name) for name in _API_ERROR_FIELDS}
        return cls(f"{message}. OMS said: {err}", **{**attributes, "transient": False})


class OMSMigrationError(OMSError):
    """
    A migration task ended without reaching the awaited status: failed, paused, unknown, or out of time.

    :param message: what happened, with the OMS reason.
    :param task: the task's progress and outcome fields at the end (no credentials).
    """

    def __init__(self, message: str, *, task: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.task = task


class OMSMigrationFailed(OMSMigrationError, AirflowFailException):
    """
    A migration ended failed after the operator's own restarts for its failed objects: Airflow does not retry it.

    Raised only with ``retry_failed_objects`` set; without it a failed migration is an :class:`OMSMigrationError`,
    which Airflow's retries start again.
    """


class OMSSensorTimeout(OMSMigrationError, AirflowSensorTimeout):
    """A sensor's wait ran out of time. Like any sensor timeout, Airflow does not retry it."""


def connection_test_failure(err: OMSApiError, *, token_auth: bool = False) -> str:
    """
    Say what a failed connection test (the form's Test button) means and what to check.

    :param token_auth: the connection logs in as an IAM user (``auth_type: token``) rather than signing with AK/SK.
    """
    if err.http_status is None:
        return f"Could not reach OMS: {err}. Check the connection's region or endpoint, and the network or proxy."
    if "clock is" in str(err):
        return f"OMS refused the request's date: {err}"
    if err.http_status in (401, 403):
        # Not the connection id: the UI's Test button tests a throw-away copy under a random one. Not str(err)
        # either: its hint repeats the advice below.
        # IAM's error code is the HTTP status again ({"error": {"code": 401, ...}}): say it once.
        code = err.error_code if err.error_code != str(err.http_status) else None
        said = " ".join(str(part) for part in (f"HTTP {err.http_status}", code, err.error_msg) if part)
        request = f" (request id {err.request_id})" if err.request_id else ""
        if token_auth:
            return (
                "IAM or OMS refused the credentials: check the IAM user name (login) and password, the extra "
                "'domain' (the account), and that project_id is the project of this region for that account. "
                f"The answer was: {said}{request}"
            )
        return (
            f"OMS refused the credentials ({err.error_code or err.http_status}): check the AK (login) and SK "
            "(password), the security token of temporary credentials, and that project_id is the project of this "
            f"region for that account. OMS said: {said}{request}"
        )
    if err.http_status == 404:
        return f"OMS did not find the project or the API: check project_id and the region or endpoint. {err}"
    return str(err)
