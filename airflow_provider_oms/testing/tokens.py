"""
The IAM side of the local OMS emulator: tokens for IAM users' passwords, checked on ``X-Auth-Token`` requests.

No HTTP here; :mod:`~airflow_provider_oms.testing.server` serves ``POST /v3/auth/tokens`` with it, as IAM's
endpoint does, and lets every OMS request carry a token instead of a signature. Tokens and passwords are never
logged, and never part of an error message.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_oms.constants import ERROR_AUTH
from airflow_provider_oms.testing.store import OMSEmulatorError

# The same names as the provider's client and iam modules, which the emulator cannot import: they import Airflow
# (through the exceptions), and nothing of the emulator does.
TOKEN_PATH = "/v3/auth/tokens"  # noqa: S105 - a URL path
SUBJECT_TOKEN_HEADER = "X-Subject-Token"  # noqa: S105 - a header name
AUTH_TOKEN_HEADER = "X-Auth-Token"  # noqa: S105 - a header name
#: IAM's tokens are valid for 24 hours.
DEFAULT_TOKEN_TTL = 24 * 60 * 60.0
#: Real tokens are a few kilobytes of base64 ("MII..."); these are long and random too.
_TOKEN_BYTES = 768
_TOKEN_PREFIX = "MIIE"  # noqa: S105 - not a secret: the start every token shares


class IAMError(OMSEmulatorError):
    """An error answer of the IAM endpoint, in the ``{"error": {"code", "message", "title"}}`` shape of IAM v3."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(status, str(status), message)
        self.title = title

    def to_json(self) -> dict[str, Any]:
        """Return the JSON error body."""
        return {"error": {"code": self.status, "message": self.error_msg, "title": self.title}}


def _bad_request(message: str) -> IAMError:
    return IAMError(400, "Bad Request", message)


def _token_error(reason: str) -> OMSEmulatorError:
    # What the API gateway answers for a token it does not accept, as for a bad signature.
    return OMSEmulatorError(401, ERROR_AUTH, f"Incorrect IAM authentication information: {reason}")


def _object(parent: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if not isinstance(value, Mapping):
        raise _bad_request(f"The request body is invalid: {where}.{key} must be an object.")
    return value


def _string(parent: Mapping[str, Any], key: str, where: str) -> str:
    value = parent.get(key)
    if not isinstance(value, str) or not value:
        raise _bad_request(f"The request body is invalid: {where}.{key} must be a non-empty string.")
    return value


@dataclass(frozen=True)
class _Token:
    project_id: str
    user: str
    domain: str
    expires_at: datetime = field(repr=False)


class TokenIssuer:
    """
    IAM users, and the tokens issued to them; thread-safe.

    :param users: the IAM users, ``{(domain name, user name): password}``.
    :param project_id: the only project a token can be scoped to (by id).
    :param ttl: seconds a token is valid.
    :param clock: the server's time (timezone-aware UTC), for ``expires_at`` and for expiry checks.
    """

    def __init__(
        self,
        users: Mapping[tuple[str, str], str],
        *,
        project_id: str,
        clock: Callable[[], datetime],
        ttl: float = DEFAULT_TOKEN_TTL,
    ) -> None:
        if not ttl > 0:
            raise ValueError("token_ttl must be more than 0 seconds")
        self._users = dict(users)
        self._project_id = project_id
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self._issued = 0

    @property
    def issued(self) -> int:
        """How many tokens were issued."""
        with self._lock:
            return self._issued

    def revoke_all(self) -> None:
        """Make every token issued so far invalid, as changing the user's password does."""
        with self._lock:
            self._tokens.clear()

    def issue(self, body: Any) -> tuple[str, dict[str, Any]]:
        """
        Check a password-method token request body; return the token and the answer's body.

        :raises IAMError: 400 for a malformed body, 401 for a wrong user, password, domain or project.
        """
        if not isinstance(body, Mapping):
            raise _bad_request("The request body is invalid: it must be a JSON object.")
        auth = _object(body, "auth", "body")
        identity = _object(auth, "identity", "auth")
        methods = identity.get("methods")
        if not isinstance(methods, list) or "password" not in methods:
            raise _bad_request("The request body is invalid: auth.identity.methods must list 'password'.")
        user = _object(_object(identity, "password", "auth.identity"), "user", "auth.identity.password")
        where = "auth.identity.password.user"
        name, password = _string(user, "name", where), _string(user, "password", where)
        domain = _string(_object(user, "domain", where), "name", f"{where}.domain")
        project = _object(_object(auth, "scope", "auth"), "project", "auth.scope")
        project_id = project.get("id")
        if not isinstance(project_id, str) or not project_id:
            # Scoping by project name would need the region's project names, which the emulator does not keep.
            raise _bad_request("The request body is invalid: the emulator scopes tokens by auth.scope.project.id.")

        expected = self._users.get((domain, name))
        # Compared in constant time, and a wrong user answers the same as a wrong password.
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            raise IAMError(401, "Unauthorized", "The username or password is wrong.")
        if project_id != self._project_id:
            raise IAMError(401, "Unauthorized", "The project in auth.scope.project.id does not exist in this domain.")

        issued_at = self._clock()
        expires_at = issued_at + timedelta(seconds=self._ttl)
        token = _TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
        with self._lock:
            self._tokens[token] = _Token(project_id=project_id, user=name, domain=domain, expires_at=expires_at)
            self._issued += 1
        answer = {
            "token": {
                "methods": ["password"],
                "expires_at": _iam_time(expires_at),
                "issued_at": _iam_time(issued_at),
                "user": {"name": name, "domain": {"name": domain}},
                "project": {"id": project_id},
            }
        }
        return token, answer

    def check(self, token: str, project_id: str) -> None:
        """
        Accept a request with this ``X-Auth-Token`` on ``project_id``'s API.

        :raises OMSEmulatorError: 401 ``APIGW.0301`` for an unknown, revoked or expired token, or one of another
            project.
        """
        with self._lock:
            known = self._tokens.get(token)
        if known is None:
            raise _token_error("decrypt token fail")
        if self._clock() >= known.expires_at:
            raise _token_error("the token has expired")
        if known.project_id != project_id:
            raise _token_error("the token is not scoped to the project in the path")


def _iam_time(moment: datetime) -> str:
    """Format a time as IAM does, e.g. ``2020-01-04T09:05:22.701000Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
