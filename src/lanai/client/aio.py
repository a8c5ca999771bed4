"""The asyncio client: every call of ``api`` and ``llm`` over ``httpx.AsyncClient``, with failover.

The same calls, policy and errors as :class:`lanai.client.Client`; only the waiting differs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Concatenate, ParamSpec, TypeVar

import httpx

from lanai.client import api, llm
from lanai.client.calls import Call, Request, StreamCall, as_method
from lanai.client.errors import LanaiError, connection_failed
from lanai.client.failover import Attempts, Failure, RetryPolicy, ServerPool
from lanai.client.streams import AsyncStream
from lanai.client.transport import Cert, Verify, build, http_options, judge, server_list

__all__ = ["AsyncClient"]

P = ParamSpec("P")
T = TypeVar("T")


def _call(build_call: Callable[P, Call[T]]) -> Callable[Concatenate[AsyncClient, P], Awaitable[T]]:
    async def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.run(build_call(*args, **kwargs))

    as_method(build_call, method, "AsyncClient")
    return method


def _stream(build_call: Callable[P, StreamCall[T]]) -> Callable[Concatenate[AsyncClient, P], Awaitable[AsyncStream[T]]]:
    async def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> AsyncStream[T]:
        return await self.open(build_call(*args, **kwargs))

    as_method(build_call, method, "AsyncClient", "AsyncStream[{}]")
    return method


class AsyncClient:
    """:class:`lanai.client.Client` for asyncio: the same arguments, every method awaitable; a streamed
    call is ``stream = await client.chat_stream(...)`` then ``async for chunk in stream``. Use it as an
    async context manager, or ``await aclose()`` it."""

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
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        options = http_options(api_key=api_key, timeout=timeout, connect_timeout=connect_timeout, verify=verify,
                               cert=cert, headers=headers, max_connections=max_connections)  # fmt: skip
        self.pool = ServerPool(server_list(servers), (retry or RetryPolicy()).resolved(timeout), clock)
        self._http = httpx.AsyncClient(transport=transport, **options)
        self._sleep = sleep

    @property
    def servers(self) -> tuple[str, ...]:
        return self.pool.servers

    async def _send(self, call: Request, *, stream: bool) -> tuple[httpx.Response, str]:
        """The accepted answer and the server that gave it, trying servers as the policy allows."""
        attempts = Attempts(self.pool, idempotent=call.idempotent, pinned=call.server)
        server = attempts.first()
        while True:
            error: LanaiError
            failure: Failure | None
            wait: float | None
            try:
                request = build(self._http, call, server, attempts.remaining())
                response = await self._http.send(request, stream=stream)
                if response.status_code not in call.accept:
                    await response.aread()  # the error's body (already read unless streaming)
                    await response.aclose()
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
                await self._sleep(retry.delay)
            server = retry.server

    async def run(self, call: Call[T]) -> T:
        """Execute a call description (what every method does)."""
        response, _ = await self._send(call, stream=False)
        return call.decode(response)

    async def open(self, call: StreamCall[T]) -> AsyncStream[T]:
        """Start a streamed call: failover until its answer begins, then its items as they arrive."""
        response, server = await self._send(call, stream=True)
        return AsyncStream(response, call.event, server)

    async def probe(self) -> dict[str, bool]:
        """Ask every server whether it is ready now (all at once), and route by the answers."""

        async def one(server: str) -> bool:
            try:
                ok = await self.run(api.ready(server=server))
            except LanaiError:  # ConnectionFailed (which marked it), or an answer that is not a readiness
                return False
            if not ok:
                self.pool.failed(server, self.pool.clock())
            return ok

        answers = await asyncio.gather(*(one(s) for s in self.pool.servers))
        return dict(zip(self.pool.servers, answers))

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

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
