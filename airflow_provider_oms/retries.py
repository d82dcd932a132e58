"""
When an OMS call is worth another attempt, how long to wait, and when to give up; shared by sync and async.

tenacity drives the attempts after the first; the first is made without it, as most calls need no other.

Transient failures are retried with exponential backoff and jitter: connection errors and timeouts, 429
(honouring ``Retry-After``) and 500/502/503/504. Other 4xx answers never are. Attempts and total time are
bounded. A call that may have taken effect although its answer was lost (a timeout after sending, a reset,
a gateway timeout) is retried only when the caller says repeating it is safe.
"""

from __future__ import annotations

import asyncio
import random
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_oms.exceptions import OMSApiError

if TYPE_CHECKING:
    from tenacity import RetryCallState

#: HTTP statuses worth another attempt.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Of those, the ones after which the request may still have taken effect (the gateway gave up waiting).
MAY_HAVE_APPLIED_STATUSES = frozenset({500, 502, 504})


def describe(error: BaseException) -> str:
    """Give a short reason for a log line: ``HTTP 503 APIGW.0308`` or ``no answer (ReadTimeout)``."""
    if isinstance(error, OMSApiError):
        if error.http_status is not None:
            return f"HTTP {error.http_status}" + (f" {error.error_code}" if error.error_code else "")
        return f"no answer ({error.error_msg or 'connection error'})"
    return type(error).__name__


@dataclass(frozen=True)
class RetryPolicy:
    """
    How OMS calls are retried; set per connection through its extras.

    :param max_attempts: attempts per call, the first one included (extra ``retry_max_attempts``, default 5).
    :param max_seconds: no new attempt starts later than this after the first (extra ``retry_max_seconds``,
        default 120).
    :param base_wait: first backoff in seconds, doubled each time, plus up to as much jitter
        (extra ``retry_base_wait``, default 1).
    :param max_wait: the longest backoff in seconds (extra ``retry_max_wait``, default 20); a longer
        ``Retry-After`` is still honoured.
    """

    max_attempts: int = 5
    max_seconds: float = 120.0
    base_wait: float = 1.0
    max_wait: float = 20.0

    def should_retry(self, error: BaseException, *, repeat_is_safe: bool) -> bool:
        """
        Whether ``error`` is worth another attempt.

        :param repeat_is_safe: repeating the call cannot do harm even if an earlier attempt took effect (reads,
            deletes, and start/stop, whose caller checks the task's state after a wrong-state answer).
        """
        if not isinstance(error, OMSApiError) or not error.transient:
            return False
        return repeat_is_safe or not error.may_have_applied

    def _backoff(self, attempt: int, error: BaseException | None) -> float:
        """Seconds to wait after failed attempt number ``attempt``."""
        if isinstance(error, OMSApiError) and error.retry_after is not None:
            return max(0.0, error.retry_after)
        # Exponential backoff with jitter, written out: tenacity renamed wait_exponential_jitter's arguments.
        backoff = min(self.max_wait, self.base_wait * 2 ** (attempt - 1))
        return backoff + random.uniform(0, self.base_wait)  # noqa: S311 - jitter, not a secret

    def _first_failure(
        self, error: Exception, *, started: float, operation: str, repeat_is_safe: bool, log: Any
    ) -> float:
        """After a failed first attempt: the wait before the second, or raise ``error`` if none is due."""
        if self.max_attempts < 2 or not self.should_retry(error, repeat_is_safe=repeat_is_safe):
            raise error
        wait = self._backoff(1, error)
        if time.monotonic() - started + wait >= self.max_seconds:
            raise error
        log.warning(
            "OMS %s: attempt 1 of %d failed (%s); retrying in %.1f s",
            operation,
            self.max_attempts,
            describe(error),
            wait,
        )
        return wait

    def _arguments(self, operation: str, repeat_is_safe: bool, log: Any, started: float) -> dict[str, Any]:
        """Return the tenacity settings for attempts 2 and later (the first one, the hot path, goes without)."""
        from tenacity import retry_if_exception, stop_after_attempt, stop_before_delay

        def wait(state: RetryCallState) -> float:
            return self._backoff(state.attempt_number + 1, state.outcome.exception() if state.outcome else None)

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                "OMS %s: attempt %d of %d failed (%s); retrying in %.1f s",
                operation,
                state.attempt_number + 1,
                self.max_attempts,
                describe(error) if error else "?",
                state.upcoming_sleep,
            )

        return {
            "stop": stop_after_attempt(self.max_attempts - 1)
            | stop_before_delay(max(0.0, self.max_seconds - (time.monotonic() - started))),
            "wait": wait,
            "retry": retry_if_exception(lambda err: self.should_retry(err, repeat_is_safe=repeat_is_safe)),
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def call(self, function: Callable[[], Any], *, operation: str, repeat_is_safe: bool, log: Any) -> Any:
        """Call ``function`` until it succeeds, fails for good, or the attempts or time run out."""
        started = time.monotonic()
        try:
            try:
                return function()
            except Exception as error:
                wait = self._first_failure(
                    error, started=started, operation=operation, repeat_is_safe=repeat_is_safe, log=log
                )
            time.sleep(wait)
            from tenacity import Retrying

            return Retrying(**self._arguments(operation, repeat_is_safe, log, started))(function)
        except OMSApiError as error:
            raise _shown(error, operation, log) from None

    async def acall(
        self, function: Callable[[], Awaitable[Any]], *, operation: str, repeat_is_safe: bool, log: Any
    ) -> Any:
        """Do as :meth:`call` does for a coroutine function, sleeping without blocking the event loop."""
        started = time.monotonic()
        try:
            try:
                return await function()
            except Exception as error:
                wait = self._first_failure(
                    error, started=started, operation=operation, repeat_is_safe=repeat_is_safe, log=log
                )
            await asyncio.sleep(wait)
            from tenacity import AsyncRetrying

            return await AsyncRetrying(**self._arguments(operation, repeat_is_safe, log, started))(function)
        except OMSApiError as error:
            raise _shown(error, operation, log) from None


def _shown(error: OMSApiError, operation: str, log: Any) -> OMSApiError:
    """
    Return ``error`` as the caller should see it, after logging where it came from at debug level.

    Its one-line message (code, message, request id, advice) stays; the frames of the attempts and the retry
    machinery go, and so does the transport error that caused it (whose text the message already quotes).
    """
    # The frames only: not the chained transport error, whose text may hold what the message leaves out.
    where = "".join(traceback.format_tb(error.__traceback__))
    log.debug("OMS %s: where the last attempt failed (%s):\n%s", operation, describe(error), where)
    return error.with_traceback(None)
