"""What every gRPC call goes through before its servicer: access control and the metrics.

Each method needs a level of access (see ``lanai.security.guard``):

- public: the health checks that load balancers and orchestrators make without credentials
  (``grpc.health.v1.Health``, ``ServerLive``, ``ServerReady``); a wrong key there is ignored;
- inference: ``ModelInfer``, the metadata, ``ModelReady``, the repository index, and reflection (the
  API's description, as /openapi.json is over HTTP);
- admin: ``RepositoryModelLoad``, ``RepositoryModelUnload`` and any method not listed here, so that a
  method added later is protected until someone lists it.

The key comes from the metadata ``authorization: Bearer <key>`` (or ``x-api-key: <key>``), a client
certificate (mTLS) from the call's auth context, the address from the call's peer. The check runs
before the request message is parsed; a refused call ends with UNAUTHENTICATED, PERMISSION_DENIED or
RESOURCE_EXHAUSTED (see ``errors``) and is counted like any other status. An admitted caller is in
``CALLER`` while its servicer runs, which checks a key's models.
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any
from urllib.parse import unquote

import grpc

from lanai.errors import LanaiError
from lanai.grpc.errors import rpc_error
from lanai.grpc.metrics import GrpcMetrics
from lanai.security.guard import ANONYMOUS, Access, Guard, Principal
from lanai.security.identity import PeerCertificate

__all__ = ["DoorInterceptor", "CALLER", "PUBLIC_METHODS", "INFER_METHODS", "access_of", "token_of", "peer_address"]

CALLER: ContextVar[Principal] = ContextVar("lanai.grpc.caller", default=ANONYMOUS)
"""Who makes the call being served (anonymous outside a call)."""

_INFERENCE = "/inference.GRPCInferenceService/"
PUBLIC_METHODS = frozenset(
    {
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        _INFERENCE + "ServerLive",
        _INFERENCE + "ServerReady",
    }
)
INFER_METHODS = frozenset(
    {
        _INFERENCE + "ServerMetadata",
        _INFERENCE + "ModelMetadata",
        _INFERENCE + "ModelReady",
        _INFERENCE + "ModelInfer",
        _INFERENCE + "RepositoryIndex",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    }
)

Behavior = Callable[..., Any]
Admit = Callable[[grpc.aio.ServicerContext], Awaitable[Principal]]


def access_of(method: str) -> Access:
    """The level a method (``/package.Service/Method``) needs: admin unless listed above."""
    if method in PUBLIC_METHODS:
        return Access.PUBLIC
    if method in INFER_METHODS:
        return Access.INFER
    return Access.ADMIN


def token_of(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The key a call presents: ``authorization: Bearer <key>`` or ``x-api-key: <key>``; None without one."""
    for name, value in metadata or ():
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        if name == "authorization" and text[:7].lower() == "bearer ":
            return text[7:].strip()
        if name == "x-api-key":
            return text.strip()
    return None


def peer_address(peer: str | None) -> str | None:
    """The bare IP address of a call's peer, as ``ServicerContext.peer()`` gives it (``ipv4:127.0.0.1:5555``,
    ``ipv6:[::1]:5555``, or URL-encoded ``ipv6:%5B::1%5D:5555``); an IPv4-mapped IPv6 address as IPv4.
    None for anything else (a Unix socket, an unknown form)."""
    kind, _, rest = (peer or "").partition(":")
    rest = unquote(rest)
    if kind == "ipv6" and rest.startswith("[") and "]" in rest:
        host = rest[1 : rest.index("]")]
    elif kind in ("ipv4", "ipv6"):
        host = rest.rsplit(":", 1)[0]
    else:
        return None
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return str(mapped or address)


def peer_certificate(context: grpc.aio.ServicerContext) -> PeerCertificate | None:
    """The client certificate the call's TLS handshake verified (mTLS), or None."""
    pems = context.auth_context().get("x509_pem_cert")
    return PeerCertificate.from_pem(pems[0]) if pems else None


class DoorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Admits each call by ``guard`` (by its method's level, key and address) and records its status and
    duration."""

    def __init__(self, guard: Guard, metrics: GrpcMetrics) -> None:
        self._guard = guard
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
        access = access_of(method)
        # public calls are checked only for their network, not identified: a bad key there is no error
        token = token_of(details.invocation_metadata) if access is not Access.PUBLIC else None

        async def admit(context: grpc.aio.ServicerContext) -> Principal:
            return await self._admit(context, token, access)

        return _guarded(handler, method.lstrip("/"), self._metrics, admit, self._guard.release)

    async def _admit(self, context: grpc.aio.ServicerContext, token: str | None, access: Access) -> Principal:
        """The caller, if it may make this call; else the call ends here with the refusal's status."""
        try:
            peer = self._guard.admit(peer_address(context.peer()))
            if access is Access.PUBLIC:
                return ANONYMOUS
            cert = peer_certificate(context)
            self._guard.check_certificate(cert, peer)
            who = self._guard.identify(token, peer, access, cert=cert)
            self._guard.authorize(who, access)
        except LanaiError as exc:
            error = rpc_error(exc)
            await context.abort(error.code, error.details, error.trailing_metadata)
            raise AssertionError("abort() returned") from None  # pragma: no cover
        return who


def _kind(handler: grpc.RpcMethodHandler) -> str:
    streaming = (handler.request_streaming, handler.response_streaming)
    return {(False, False): "unary_unary", (False, True): "unary_stream", (True, False): "stream_unary"}.get(
        streaming, "stream_stream"
    )


def _guarded(
    handler: grpc.RpcMethodHandler, method: str, metrics: GrpcMetrics, admit: Admit | None,
    release: Callable[[Principal], None] = lambda who: None,
) -> grpc.RpcMethodHandler:  # fmt: skip
    """The handler, admitting its caller first (when ``admit`` is given) and recording its method, status code
    and duration when the call ends. A single request message is parsed only once the caller is admitted
    (a stream of them is read by the servicer, after that anyway)."""
    kind = _kind(handler)
    behavior: Behavior = getattr(handler, kind)
    parse: Callable[[bytes], Any] | None = None
    if admit is not None and not handler.request_streaming and handler.request_deserializer is not None:
        parse, handler = handler.request_deserializer, handler._replace(request_deserializer=None)

    def begin() -> float:
        metrics.in_flight.inc()
        return time.perf_counter()

    def end(context: grpc.aio.ServicerContext, started: float, error: BaseException | None) -> None:
        """The call is over: free its caller's slot, and record its method, status code and duration."""
        metrics.in_flight.dec()
        release(CALLER.get())
        code = context.code()  # set by abort(); None when the behavior returned or raised on its own
        if code is None:
            code = grpc.StatusCode.OK if error is None else _unhandled(error)
        metrics.observe(method, code.name, time.perf_counter() - started)

    async def enter(request: Any, context: grpc.aio.ServicerContext) -> Any:
        """Admit the caller (setting ``CALLER``) and parse the request, or end the call."""
        if admit is None:
            return request
        CALLER.set(await admit(context))  # each call runs in a task (and context) of its own
        if parse is None:
            return request
        try:
            return parse(request)
        except Exception as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the request message is not valid: {exc}")
            raise AssertionError("abort() returned") from None  # pragma: no cover

    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started, error = begin(), None
            try:
                async for response in behavior(await enter(request, context), context):
                    yield response
            except BaseException as exc:
                error = exc
                raise
            finally:
                end(context, started, error)

        return handler._replace(**{kind: stream})

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started, error = begin(), None
        try:
            return await behavior(await enter(request, context), context)
        except BaseException as exc:
            error = exc
            raise
        finally:
            end(context, started, error)

    return handler._replace(**{kind: call})


def _unhandled(error: BaseException) -> grpc.StatusCode:
    """What gRPC answers for an exception that left a behavior without abort()."""
    return grpc.StatusCode.CANCELLED if isinstance(error, asyncio.CancelledError) else grpc.StatusCode.UNKNOWN
