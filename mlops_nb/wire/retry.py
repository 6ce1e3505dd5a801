"""When the client sends a call again: :class:`RetryPolicy`, carried out by urllib3's ``Retry``.

A call the API description marks ``read_only`` changes nothing, so it is sent again
after any failure that may be passing: a 429, 502, 503 or 504 answer, a connection that
dropped, a read that timed out. A write is sent again only when the connection could not
be made at all, which proves nothing was sent; a write whose answer was lost raises
:class:`~mlops_nb.wire.errors.WriteOutcomeUnknown` and is never repeated by itself.

Waits grow exponentially with jitter (urllib3's backoff), a ``Retry-After`` header is
honoured, and all attempts and waits of one call fit in one deadline: no wait runs past
it and no attempt starts after it (an attempt itself may take up to the client's
``timeout``).
"""

from __future__ import annotations

import math
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, InvalidHeader, MaxRetryError, ProxyError, ResponseError
from urllib3.util.retry import Retry

__all__ = ["RetryPolicy", "PerCallRetryAdapter", "causes", "never_sent"]

_TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How a client sends read-only calls again (and writes that provably never left).

    ``deadline``: seconds from a call's first attempt within which retries may happen;
    ``max_attempts``: attempts per call, the first included (1 turns retrying off);
    ``backoff``: urllib3's backoff factor (the second retry waits ``2 * backoff``, the
    next ``4 * backoff``, ...; the first is immediate), at most ``backoff_max`` seconds,
    plus a random ``jitter`` of up to that many seconds; ``statuses``: the HTTP answers
    that mean "try again". ``Retry-After`` is honoured within the deadline.

    ``RetryPolicy.off()`` never retries. ``Client(retry=False)`` is the same.
    """

    deadline: float = 30.0
    max_attempts: int = 10
    backoff: float = 0.2
    backoff_max: float = 10.0
    jitter: float = 0.2
    statuses: frozenset[int] = field(default=_TRANSIENT_STATUSES)

    def __post_init__(self) -> None:
        if not (isinstance(self.max_attempts, int) and self.max_attempts >= 1):
            raise ValueError(f"max_attempts must be an integer of at least 1, got {self.max_attempts!r}")
        for name in ("deadline", "backoff", "backoff_max", "jitter"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value >= 0 and not math.isnan(value)):
                raise ValueError(f"{name} must be a number of seconds, not negative; got {value!r}")
        object.__setattr__(self, "statuses", frozenset(self.statuses))

    @classmethod
    def off(cls) -> RetryPolicy:
        """A policy that sends every call once."""
        return cls(max_attempts=1)

    @classmethod
    def from_option(cls, value: RetryPolicy | bool | None) -> RetryPolicy:
        """What ``Client(retry=...)`` takes: a policy, ``True``/``None`` (the default one) or ``False`` (off)."""
        if isinstance(value, RetryPolicy):
            return value
        if value is None or value is True:
            return cls()
        if value is False:
            return cls.off()
        raise TypeError(f"retry must be a RetryPolicy, True or False; got {type(value).__name__}")

    @property
    def enabled(self) -> bool:
        return self.max_attempts > 1

    def for_call(self, read_only: bool, refused: frozenset[int] = frozenset(), retry_connect: bool = True) -> Retry:
        """A fresh urllib3 ``Retry`` for one call, its deadline starting now.

        ``refused``: for a write, the answers that say it was turned away undone (a scoring URL's
        503 while its deployment starts), so that sending it again cannot apply it twice.
        ``retry_connect=False`` makes a connection that cannot be made fail at once (for a server
        that never answered).
        """
        again = self.max_attempts - 1
        statuses = self.statuses if read_only else self.statuses & refused
        retry = _DeadlineRetry(
            total=again,
            connect=again if retry_connect else 0,
            # A write that may have reached the server is never repeated: urllib3 re-raises
            # the read error (read=False) and ignores error statuses (status=0).
            read=again if read_only else False,
            status=again if statuses else 0,
            other=0,
            allowed_methods=None,  # read-only-ness is per RPC, not per HTTP verb: decided above
            status_forcelist=statuses,
            respect_retry_after_header=bool(statuses),
            backoff_factor=self.backoff,
            backoff_max=self.backoff_max,
            backoff_jitter=self.jitter,
            raise_on_status=False,  # the last answer is returned and becomes the API error
        )
        retry.deadline = time.monotonic() + self.deadline
        return retry


class _DeadlineRetry(Retry):
    """urllib3's ``Retry``, stopping where the next wait would end past the call's deadline."""

    deadline: float = math.inf
    planned_wait: float = 0.0

    def new(self, **kw: Any) -> _DeadlineRetry:
        retry = super().new(**kw)
        retry.deadline = self.deadline
        return retry

    def increment(self, method: str | None = None, url: str | None = None, response: Any = None,
                  error: Exception | None = None, _pool: Any = None, _stacktrace: Any = None) -> _DeadlineRetry:
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        wait = retry._wait_before_next(response)
        if time.monotonic() + wait >= self.deadline:
            reason = error or ResponseError(f"the retry deadline passed (last answer: HTTP "
                                            f"{getattr(response, 'status', '?')})")
            raise MaxRetryError(_pool, url, reason) from reason  # type: ignore[arg-type]
        retry.planned_wait = wait
        return retry

    def _wait_before_next(self, response: Any) -> float:
        if self.respect_retry_after_header and response is not None:
            try:
                retry_after = self.get_retry_after(response)
            except InvalidHeader:
                retry_after = None
            if retry_after is not None:
                return retry_after
        return self.get_backoff_time()

    def sleep(self, response: Any = None) -> None:
        # Decided in increment(), so that a wait which would overrun the deadline never starts.
        if self.planned_wait > 0:
            time.sleep(self.planned_wait)


class PerCallRetryAdapter(HTTPAdapter):
    """A requests adapter whose urllib3 ``Retry`` is chosen per call.

    requests hands ``adapter.max_retries`` to urllib3 inside ``send()``, one object for
    every call; :meth:`retrying` sets the one the current thread's next call uses, so each
    call gets its own counters, deadline and read-only rule while sharing one pool.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._per_thread = threading.local()
        super().__init__(**kwargs)

    @property  # type: ignore[override]
    def max_retries(self) -> Retry:
        return getattr(self._per_thread, "retry", None) or self._default_retry

    @max_retries.setter
    def max_retries(self, value: Retry) -> None:
        self._default_retry = value

    @contextmanager
    def retrying(self, retry: Retry) -> Iterator[None]:
        self._per_thread.retry = retry
        try:
            yield
        finally:
            self._per_thread.retry = None


def causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and what it wraps, outermost first: requests wraps urllib3, which wraps the socket's."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        yield cause
        if isinstance(cause, MaxRetryError):
            cause = cause.reason
        elif isinstance(cause, ProxyError):
            cause = cause.original_error
        else:
            inner = [arg for arg in cause.args if isinstance(arg, BaseException)]
            cause = inner[0] if inner else cause.__cause__ or cause.__context__


def never_sent(error: BaseException) -> bool:
    """True when ``error`` (from requests) proves the request did not reach the server: the
    connection could not be made, or its TLS handshake failed on the certificate."""
    # NewConnectionError and NameResolutionError are ConnectTimeoutErrors too.
    return any(isinstance(c, (ConnectTimeoutError, ssl.SSLCertVerificationError)) for c in causes(error))
