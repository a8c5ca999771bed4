"""What a benchmark is: the server's address and the request, how many at once, how long or how many."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from lanai.bench.requests import RequestSpec

__all__ = ["BenchConfig", "Target", "parse_url"]


@dataclass(frozen=True)
class Target:
    """Where to connect (``host``, ``port``), the ``Host`` header, a path ``prefix`` from the URL, and
    whether the server speaks TLS (an https:// URL)."""

    host: str
    port: int
    host_header: str
    prefix: str
    tls: bool = False


def parse_url(url: str) -> Target:
    """Parse a base URL such as ``http://127.0.0.1:8000``; ValueError says what to fix."""
    if "://" not in url:
        raise ValueError(f"URL {url!r} has no scheme. Hint: write it as http://{url.lstrip('/')}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"URL {url!r} is not an http(s)://host[:port] address.")
    if parts.query or parts.fragment:
        raise ValueError(f"URL {url!r}: put the query in the request path, not the base URL.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"URL {url!r} has an invalid port.") from None
    tls = parts.scheme == "https"
    return Target(parts.hostname, port, parts.netloc.rsplit("@", 1)[-1], parts.path.rstrip("/"), tls)


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark: what to send where, how many at once, and for how long or how many times.

    Give exactly one of ``duration`` (seconds measured) or ``requests`` (requests measured).
    ``timeout`` (seconds) fails a request that has no complete response by then. For an https:// URL,
    ``cafile`` is the authority to trust (default: the system's), ``certfile``/``keyfile`` a client
    certificate for servers that require one (mTLS).
    """

    url: str
    request: RequestSpec
    concurrency: int
    duration: float | None = None
    requests: int | None = None
    warmup: float = 1.0
    timeout: float = 30.0
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for an https:// URL, else None."""
        if not parse_url(self.url).tls:
            return None
        context = ssl.create_default_context(cafile=self.cafile)
        if self.certfile:
            context.load_cert_chain(self.certfile, self.keyfile)
        return context

    def __post_init__(self) -> None:
        parse_url(self.url)
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ValueError(f"concurrency must be a whole number ≥ 1, not {self.concurrency!r}.")
        if (self.duration is None) == (self.requests is None):
            raise ValueError("give exactly one of duration (seconds) or requests (a count), not both or neither.")
        if self.duration is not None and not self.duration > 0:
            raise ValueError(f"duration must be > 0 seconds, not {self.duration!r}.")
        if self.requests is not None and (not isinstance(self.requests, int) or self.requests < 1):
            raise ValueError(f"requests must be a whole number ≥ 1, not {self.requests!r}.")
        if not self.warmup >= 0:
            raise ValueError(f"warmup must be ≥ 0 seconds, not {self.warmup!r}.")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, not {self.timeout!r}.")
