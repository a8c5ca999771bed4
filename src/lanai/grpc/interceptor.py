"""What every gRPC call goes through before its servicer: the API key check and the metrics.

With ``api_key`` set, a call needs the metadata ``authorization: Bearer <key>`` (or ``x-api-key: <key>``),
as the HTTP door needs the header, except the health checks that load balancers and orchestrators make
without credentials: ``grpc.health.v1.Health`` and the protocol's ``ServerLive`` and ``ServerReady``
(the HTTP door's /v2/health/live and /v2/health/ready are open too). A call without the key ends with
UNAUTHENTICATED before its message is even parsed.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc

from lanai.grpc.metrics import GrpcMetrics

__all__ = ["DoorInterceptor", "OPEN_METHODS", "UNAUTHENTICATED_DETAILS"]

OPEN_METHODS = frozenset(
    {
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/inference.GRPCInferenceService/ServerLive",
        "/inference.GRPCInferenceService/ServerReady",
    }
)
UNAUTHENTICATED_DETAILS = (
    "missing or wrong API key. Hint: send the metadata 'authorization: Bearer <key>' (or 'x-api-key: <key>')."
)

Behavior = Callable[..., Any]


class DoorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses calls without the API key (when one is set) and records each call's status and duration."""

    def __init__(self, api_key: str | None, metrics: GrpcMetrics) -> None:
        self._key = api_key.encode() if api_key else None
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:  # no such method: gRPC answers UNIMPLEMENTED
            return None
        method: str = details.method
        if self._key is not None and method not in OPEN_METHODS and not self._has_key(details.invocation_metadata):
            return _refused(handler, method.lstrip("/"), self._metrics)
        return _measured(handler, method.lstrip("/"), self._metrics)

    def _has_key(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> bool:
        assert self._key is not None
        for name, value in metadata or ():
            given = value.encode() if isinstance(value, str) else value
            if name == "authorization" and given[:7].lower() == b"bearer ":
                return hmac.compare_digest(given[7:].strip(), self._key)
            if name == "x-api-key":
                return hmac.compare_digest(given.strip(), self._key)
        return False


def _kind(handler: grpc.RpcMethodHandler) -> str:
    streaming = (handler.request_streaming, handler.response_streaming)
    return {(False, False): "unary_unary", (False, True): "unary_stream", (True, False): "stream_unary"}.get(
        streaming, "stream_stream"
    )


def _refused(handler: grpc.RpcMethodHandler, method: str, metrics: GrpcMetrics) -> grpc.RpcMethodHandler:
    """The handler, answering UNAUTHENTICATED; its request is not deserialized."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        metrics.observe(method, grpc.StatusCode.UNAUTHENTICATED.name, 0.0)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_DETAILS)

    return handler._replace(request_deserializer=None, **{_kind(handler): refuse})


def _measured(handler: grpc.RpcMethodHandler, method: str, metrics: GrpcMetrics) -> grpc.RpcMethodHandler:
    """The handler, recording its method, status code and duration when the call ends."""
    kind = _kind(handler)
    behavior: Behavior = getattr(handler, kind)

    def record(context: grpc.aio.ServicerContext, started: float, error: BaseException | None) -> None:
        code = context.code()  # set by abort(); None when the behavior returned or raised on its own
        if code is None:
            code = grpc.StatusCode.OK if error is None else _unhandled(error)
        metrics.observe(method, code.name, time.perf_counter() - started)

    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started, error = time.perf_counter(), None
            metrics.in_flight.inc()
            try:
                async for response in behavior(request, context):
                    yield response
            except BaseException as exc:
                error = exc
                raise
            finally:
                metrics.in_flight.dec()
                record(context, started, error)

        return handler._replace(**{kind: stream})

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started, error = time.perf_counter(), None
        metrics.in_flight.inc()
        try:
            return await behavior(request, context)
        except BaseException as exc:
            error = exc
            raise
        finally:
            metrics.in_flight.dec()
            record(context, started, error)

    return handler._replace(**{kind: call})


def _unhandled(error: BaseException) -> grpc.StatusCode:
    """What gRPC answers for an exception that left a behavior without abort()."""
    return grpc.StatusCode.CANCELLED if isinstance(error, asyncio.CancelledError) else grpc.StatusCode.UNKNOWN
