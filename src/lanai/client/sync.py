"""The blocking client: every call of ``api`` and ``llm`` over ``httpx.Client``, with failover."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Concatenate, ParamSpec, TypeVar

import httpx

from lanai.client import api, llm
from lanai.client.calls import Call, Request, StreamCall, as_method
from lanai.client.errors import LanaiError, connection_failed
from lanai.client.failover import Attempts, Failure, RetryPolicy, ServerPool
from lanai.client.streams import Stream
from lanai.client.transport import Cert, Verify, build, http_options, judge, server_list

__all__ = ["Client"]

P = ParamSpec("P")
T = TypeVar("T")


def _call(build_call: Callable[P, Call[T]]) -> Callable[Concatenate[Client, P], T]:
    def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.run(build_call(*args, **kwargs))

    as_method(build_call, method, "Client")
    return method


def _stream(build_call: Callable[P, StreamCall[T]]) -> Callable[Concatenate[Client, P], Stream[T]]:
    def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> Stream[T]:
        return self.open(build_call(*args, **kwargs))

    as_method(build_call, method, "Client", "Stream[{}]")
    return method


class Client:
    """A lanai server, or several: each call goes to a healthy one and fails over (see ``failover``).

    ``servers`` is a base URL (``http://box:8000``), a comma-separated string of them, or a list.
    ``timeout`` bounds each try's connect/read/write, ``connect_timeout`` the connect alone (a box that is
    off answers nothing); ``retry`` sets attempts, backoff and the call's total deadline. ``api_key`` is
    sent as ``Authorization: Bearer``; ``verify`` and ``cert`` set TLS (see ``transport``). Use it as a
    context manager, or ``close()`` it. Safe to share between threads.
    """

    def __init__(
        self,
        servers: str | Sequence[str],
        *,
        api_key: str | None = None,
        timeout: float | None = 30.0,
        connect_timeout: float | None = 5.0,
        retry: RetryPolicy | None = None,
        verify: Verify = True,
        cert: Cert = None,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 100,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        options = http_options(api_key=api_key, timeout=timeout, connect_timeout=connect_timeout, verify=verify,
                               cert=cert, headers=headers, max_connections=max_connections)  # fmt: skip
        self.pool = ServerPool(server_list(servers), (retry or RetryPolicy()).resolved(timeout), clock)
        self._http = httpx.Client(transport=transport, **options)
        self._sleep = sleep

    @property
    def servers(self) -> tuple[str, ...]:
        return self.pool.servers

    def _send(self, call: Request, *, stream: bool) -> tuple[httpx.Response, str]:
        """The accepted answer and the server that gave it, trying servers as the policy allows."""
        attempts = Attempts(self.pool, idempotent=call.idempotent, pinned=call.server)
        server = attempts.first()
        while True:
            error: LanaiError
            failure: Failure | None
            wait: float | None
            try:
                response = self._http.send(build(self._http, call, server, attempts.remaining()), stream=stream)
                if response.status_code not in call.accept:
                    response.read()  # the error's body (already read unless streaming)
                    response.close()
            except httpx.TransportError as exc:
                lost = connection_failed(exc, server)
                error, failure, wait = lost, (Failure.SENT if lost.sent else Failure.UNSENT), None
            else:
                if response.status_code in call.accept:
                    attempts.succeeded(server)
                    return response, server
                error, failure, wait = judge(response)
                if failure is None:
                    attempts.succeeded(server)  # it answered: alive, and the error is ours
            retry = None if failure is None else attempts.failed(server, failure, wait)
            if retry is None:
                raise error
            if retry.delay > 0:
                self._sleep(retry.delay)
            server = retry.server

    def run(self, call: Call[T]) -> T:
        """Execute a call description (what every method does)."""
        response, _ = self._send(call, stream=False)
        return call.decode(response)

    def open(self, call: StreamCall[T]) -> Stream[T]:
        """Start a streamed call: failover until its answer begins, then its items as they arrive."""
        response, server = self._send(call, stream=True)
        return Stream(response, call.event, server)

    def probe(self) -> dict[str, bool]:
        """Ask every server whether it is ready now, and route by the answers."""
        found = {}
        for server in self.pool.servers:
            try:
                found[server] = self.run(api.ready(server=server))
            except LanaiError:  # ConnectionFailed (which marked it), or an answer that is not a readiness
                found[server] = False
                continue
            if not found[server]:
                self.pool.failed(server, self.pool.clock())
        return found

    health = _call(api.health)
    ready = _call(api.ready)
    server_metadata = _call(api.server_metadata)
    model_metadata = _call(api.model_metadata)
    model_ready = _call(api.model_ready)
    models = _call(api.models)
    repository_index = _call(api.repository_index)
    load = _call(api.load)
    unload = _call(api.unload)
    run_task = _call(api.run_task)
    classify = _call(api.classify)
    infer = _call(api.infer)
    pipelines = _call(api.pipelines)
    run_pipeline = _call(api.run_pipeline)
    chat = _call(llm.chat)
    chat_stream = _stream(llm.chat_stream)
    complete = _call(llm.complete)
    complete_stream = _stream(llm.complete_stream)
    embeddings = _call(llm.embeddings)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
