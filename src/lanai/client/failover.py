"""Which server a request goes to, and whether, where and when a failed one is tried again.

Pure logic over a clock, shared by the sync and async clients (they do the I/O and the sleeping).

**Servers.** A :class:`ServerPool` holds the base URLs with a mark each. Requests rotate over the
servers that are not marked; a server that fails is marked for a while: for its ``Retry-After`` when it
answered 503 or 429, else for an exponential backoff that grows with its consecutive failures (capped
by ``RetryPolicy.down_max``). A success clears the mark. When the mark runs out the server gets
requests again: the next request is the probe, and if it fails it fails over at once.

**Retries.** :class:`Attempts` follows one call. After a failure it picks the next server (an unmarked
one at once; when all are marked, the one free soonest, after waiting for it) or gives up:

- a connection that failed before the request was sent, and a 503 or 429 answer: always safe to retry;
- a failure after the request was sent (read timeout, reset mid-answer): retried only for calls marked
  idempotent (see ``calls``);
- never more than ``attempts`` tries, and never a wait that would end past the call's ``deadline``;
- a call pinned to one server (health checks of that server) is tried once.

A wait for a server that refused or dropped connections is also capped by the call's own backoff
(``backoff`` doubling per wait up to ``max_backoff``); a ``Retry-After`` is honoured in full.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

__all__ = ["RetryPolicy", "Failure", "Retry", "ServerPool", "Attempts", "normalize_url"]

Clock = Callable[[], float]


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a call tries. Times in seconds."""

    attempts: int = 5
    """Tries per call, the first included (1: never retry)."""
    deadline: float | None = None
    """The most one call may take, retries and waits included (a stream: until its answer starts).
    None: twice the client's timeout, or 60 s without one."""
    backoff: float = 0.1
    """The first wait when every server is marked; it doubles with each further wait of the call."""
    max_backoff: float = 2.0
    """The longest wait of the call's own backoff (a server's ``Retry-After`` may ask for more)."""
    down_max: float = 30.0
    """The longest a failing server is avoided before a request probes it again."""

    def resolved(self, timeout: float | None) -> RetryPolicy:
        """This policy with its deadline settled for a client whose tries time out after ``timeout``."""
        if self.deadline is not None:
            return self
        return replace(self, deadline=2 * timeout if timeout else 60.0)

    def __post_init__(self) -> None:
        if (
            self.attempts < 1
            or (self.deadline is not None and self.deadline <= 0)
            or min(self.backoff, self.max_backoff, self.down_max) < 0
        ):
            raise ValueError("RetryPolicy needs attempts >= 1, a positive deadline and non-negative backoffs")


class Failure(enum.Enum):
    """How an attempt failed, which decides whether it may be retried."""

    UNSENT = "unsent"
    """No connection: the request never reached the server."""
    SENT = "sent"
    """The connection failed after the request went out: it may have run."""
    BUSY = "busy"
    """The server answered 503 or 429: it did not run the request."""


@dataclass(frozen=True)
class Retry:
    """Try again on ``server`` after sleeping ``delay`` seconds."""

    server: str
    delay: float


def normalize_url(url: str) -> str:
    """A base URL without its trailing slash; ``http://`` is assumed when no scheme is given."""
    url = url.strip().rstrip("/")
    if not url:
        raise ValueError("a server URL is empty")
    return url if "://" in url else "http://" + url


@dataclass
class _Mark:
    until: float = 0.0
    failures: int = 0
    firm: bool = False
    """The mark is the server's own Retry-After: a retry waits for all of it."""


class ServerPool:
    """The servers, their marks, and the rotation between them. Thread-safe."""

    def __init__(self, servers: Sequence[str], policy: RetryPolicy, clock: Clock) -> None:
        urls = [normalize_url(s) for s in servers]
        if not urls:
            raise ValueError("give at least one server URL")
        if len(set(urls)) != len(urls):
            raise ValueError(f"a server is listed twice: {urls}")
        self.servers: tuple[str, ...] = tuple(urls)
        self.policy = policy
        self.clock = clock
        self._marks = {url: _Mark() for url in urls}
        self._next = 0
        self._lock = threading.Lock()

    def available(self, now: float | None = None) -> list[str]:
        """The unmarked servers, in list order."""
        now = self.clock() if now is None else now
        with self._lock:
            return [s for s in self.servers if self._marks[s].until <= now]

    def choose(self, now: float) -> tuple[str, float, bool]:
        """The server to use next, when it is free, and whether that time is the server's own Retry-After:
        the next unmarked one in rotation (free now), else the one whose mark ends first."""
        with self._lock:
            count = len(self.servers)
            for step in range(count):
                server = self.servers[(self._next + step) % count]
                if self._marks[server].until <= now:
                    self._next = (self._next + step + 1) % count
                    return server, now, False
            server = min(self.servers, key=lambda s: self._marks[s].until)
            mark = self._marks[server]
            return server, mark.until, mark.firm

    def succeeded(self, server: str) -> None:
        with self._lock:
            mark = self._marks.get(server)
            if mark is not None:
                mark.until, mark.failures, mark.firm = 0.0, 0, False

    def failed(self, server: str, now: float, retry_after: float | None = None) -> None:
        """Mark ``server``: for ``retry_after`` when it gave one, else for its backoff."""
        with self._lock:
            mark = self._marks.get(server)
            if mark is None:  # a pinned call to a server outside the pool
                return
            mark.failures += 1
            if retry_after is not None:
                mark.until, mark.firm = now + retry_after, True
            else:
                hold = min(self.policy.down_max, self.policy.backoff * 2 ** (mark.failures - 1))
                mark.until, mark.firm = now + hold, False


class Attempts:
    """One call's tries: the first server, then after each failure a :class:`Retry` or None (give up)."""

    def __init__(self, pool: ServerPool, *, idempotent: bool, pinned: str | None = None) -> None:
        self.pool = pool
        self.idempotent = idempotent
        self.pinned = None if pinned is None else normalize_url(pinned)
        self.started = pool.clock()
        self.deadline = self.started + (pool.policy.deadline or 60.0)
        self.tries = 0
        self._waits = 0

    def first(self) -> str:
        """The server for the first try (the pinned one, else the next free one; never a wait)."""
        return self.pinned if self.pinned is not None else self.pool.choose(self.pool.clock())[0]

    def remaining(self) -> float:
        """Seconds left before the deadline (for the next try's timeouts)."""
        return max(0.0, self.deadline - self.pool.clock())

    def succeeded(self, server: str) -> None:
        self.pool.succeeded(server)

    def failed(self, server: str, failure: Failure, retry_after: float | None = None) -> Retry | None:
        """Record the failure; where and when to try again, or None to give up."""
        now = self.pool.clock()
        self.tries += 1
        self.pool.failed(server, now, retry_after if failure is Failure.BUSY else None)
        if self.pinned is not None or self.tries >= self.pool.policy.attempts:
            return None
        if failure is Failure.SENT and not self.idempotent:
            return None
        target, free_at, firm = self.pool.choose(now)
        delay = max(0.0, free_at - now)
        if delay > 0:
            if not firm:  # a server's Retry-After is honoured in full; a dead server's mark is only a hint
                policy = self.pool.policy
                delay = min(delay, policy.max_backoff, policy.backoff * 2**self._waits)
            self._waits += 1
        if now + delay >= self.deadline:
            return None
        return Retry(target, delay)
