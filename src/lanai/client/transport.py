"""What the sync and async clients share around httpx: settings (TLS, timeouts, headers), building one
try of a call, and judging an answer that is not the one the call accepts."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from lanai.client.calls import Request
from lanai.client.errors import LanaiError, error_from_answer, retry_after
from lanai.client.failover import Failure

__all__ = ["Verify", "Cert", "http_options", "server_list", "build", "judge"]

Verify = bool | str | os.PathLike[str] | ssl.SSLContext
"""True: check the server's certificate against the system's CAs; a path: against that CA file (lanai's
own CA); False: do not check (tests only); or a ready SSLContext."""
Cert = str | tuple[str, str] | None
"""A client certificate for mutual TLS: one PEM file with the key, or (certificate, key)."""


def _ssl(verify: Verify, cert: Cert) -> bool | ssl.SSLContext:
    if isinstance(verify, ssl.SSLContext) or (isinstance(verify, bool) and cert is None):
        return verify
    if isinstance(verify, bool):
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=os.fspath(verify))
    if cert is not None:
        certfile, keyfile = (cert, None) if isinstance(cert, str) else cert
        context.load_cert_chain(certfile, keyfile)
    return context


def http_options(
    *,
    api_key: str | None,
    timeout: float | None,
    connect_timeout: float | None,
    verify: Verify,
    cert: Cert,
    headers: Mapping[str, str] | None,
    max_connections: int,
) -> dict[str, Any]:
    """Keyword arguments for ``httpx.Client`` or ``httpx.AsyncClient``."""
    from lanai import __version__

    merged = {"User-Agent": f"lanai-client/{__version__}", **(headers or {})}
    if api_key:
        merged["Authorization"] = f"Bearer {api_key}"
    return {
        "headers": merged,
        "timeout": httpx.Timeout(timeout, connect=connect_timeout),
        "verify": _ssl(verify, cert),
        "limits": httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        "follow_redirects": False,
    }


def server_list(servers: str | Sequence[str]) -> list[str]:
    """One base URL, a comma-separated string of them, or a list."""
    if isinstance(servers, str):
        return [s for s in servers.split(",") if s.strip()]
    return list(servers)


def _capped(timeout: httpx.Timeout, remaining: float) -> httpx.Timeout:
    """``timeout`` with no part longer than the call has left."""
    left = max(remaining, 0.001)

    def cap(value: float | None) -> float:
        return left if value is None else min(value, left)

    return httpx.Timeout(connect=cap(timeout.connect), read=cap(timeout.read), write=cap(timeout.write),
                         pool=cap(timeout.pool))  # fmt: skip


def build(http: httpx.Client | httpx.AsyncClient, call: Request, server: str, remaining: float) -> httpx.Request:
    """One try of ``call`` on ``server``, its timeouts capped by the ``remaining`` seconds of the call."""
    return http.build_request(
        call.method,
        server + call.path,
        params=call.params,
        content=call.content,
        headers=dict(call.headers),
        timeout=_capped(http.timeout, remaining),
    )


def judge(response: httpx.Response) -> tuple[LanaiError, Failure | None, float | None]:
    """The error an unaccepted answer means, whether it may be retried (BUSY: 503 and 429 only), and
    the server's ``Retry-After``. The body must have been read."""
    error = error_from_answer(response.status_code, response.headers, response.content)
    if response.status_code in (429, 503):
        return error, Failure.BUSY, retry_after(response.headers)
    return error, None, None
