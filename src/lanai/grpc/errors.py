"""The one place where lanai's errors become gRPC status codes, details and trailing metadata.

| error                                   | code               | why                                          |
|-----------------------------------------|--------------------|----------------------------------------------|
| Unauthenticated (no key where one is    | UNAUTHENTICATED    | the hint says how to send a key over gRPC    |
| needed; unknown, revoked or expired key)|                    | (metadata, not an HTTP header)               |
| PermissionDenied (the key's role or     | PERMISSION_DENIED  | the details say which right is missing       |
| models do not allow this)               |                    |                                              |
| RateLimited (a key over its rate, or an | RESOURCE_EXHAUSTED | + RetryInfo and ``retry-after``              |
| address sending bad keys)               |                    |                                              |
| PayloadTooLarge                         | RESOURCE_EXHAUSTED | what gRPC itself answers for a message over  |
|                                         |                    | the size limit, so both limits read alike    |
| BadInput (wrong name, dtype, shape…)    | INVALID_ARGUMENT   | the client must change the request           |
| NotFound (a model, version, key or     | NOT_FOUND          |                                              |
| device that does not exist)             |                    |                                              |
| Conflict (a name already taken)         | ALREADY_EXISTS     |                                              |
| Overloaded (a model's queue is full)    | RESOURCE_EXHAUSTED | + RetryInfo and ``retry-after``              |
| NotReady (starting or draining)         | UNAVAILABLE        | + RetryInfo and ``retry-after``: retry soon  |
| ModelLoadError, StoreError, ConfigError,| FAILED_PRECONDITION| the model or the store is not in a state to  |
| BackendUnavailable, other LanaiErrors   |                    | serve this until someone fixes it; Triton    |
|                                         |                    | says INTERNAL, but the server has no bug     |
| anything else                           | INTERNAL           | logged; the client sees no traceback         |

The details are the error's message and hint. Errors a client should retry also carry a
``google.rpc.RetryInfo`` in the standard ``grpc-status-details-bin`` trailer (read by
``grpc_status.rpc_status.from_call``) and a plain ``retry-after: <seconds>`` trailer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import grpc
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, duration_pb2, message_factory

from lanai.errors import (
    BadInput,
    Conflict,
    LanaiError,
    NotFound,
    NotReady,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    WrongTask,
)

__all__ = [
    "RpcError",
    "rpc_error",
    "code_of",
    "retry_after",
    "describe",
    "STATUS_DETAILS_KEY",
    "RETRY_INFO_TYPE",
    "KEY_HINT",
]

STATUS_DETAILS_KEY = "grpc-status-details-bin"
KEY_HINT = "send the metadata 'authorization: Bearer <key>' (or 'x-api-key: <key>'); lanai keys create makes one."
RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"


@dataclass(frozen=True)
class RpcError:
    """How a call ends: its status code, details and trailing metadata."""

    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...] = ()


def code_of(exc: LanaiError) -> grpc.StatusCode:
    """The status code of one of lanai's errors (see the table above)."""
    if isinstance(exc, Unauthenticated):
        return grpc.StatusCode.UNAUTHENTICATED
    if isinstance(exc, PermissionDenied):
        return grpc.StatusCode.PERMISSION_DENIED
    if isinstance(exc, (PayloadTooLarge, Overloaded, RateLimited)):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(exc, BadInput):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, NotFound):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, Conflict):
        return grpc.StatusCode.ALREADY_EXISTS
    if isinstance(exc, NotReady):
        return grpc.StatusCode.UNAVAILABLE
    return grpc.StatusCode.FAILED_PRECONDITION


def retry_after(exc: LanaiError) -> float | None:
    """Seconds after which a retry should succeed, for the errors a client should simply retry."""
    if isinstance(exc, (Overloaded, RateLimited)):
        return exc.retry_after
    if isinstance(exc, NotReady):
        return 1.0
    return None


def describe(exc: LanaiError) -> str:
    """The error's message and hint, with this door's own hints: a missing key is sent as metadata (not
    an HTTP header), and a language model asked for tensors is served over HTTP only."""
    if isinstance(exc, Unauthenticated):
        return f"{exc.message} Hint: {KEY_HINT}"
    if isinstance(exc, WrongTask) and exc.hint is None:
        return f"{exc.message} Hint: its {exc.task} requests go to the HTTP door (the OpenAI-compatible API)."
    return str(exc)


def rpc_error(exc: LanaiError) -> RpcError:
    """The status a call that raised ``exc`` ends with."""
    code, details = code_of(exc), describe(exc)
    delay = retry_after(exc)
    if delay is None:
        return RpcError(code, details)
    status = _status_with_retry_info(code, details, delay)
    return RpcError(code, details, ((STATUS_DETAILS_KEY, status), ("retry-after", str(max(1, math.ceil(delay))))))


def _status_with_retry_info(code: grpc.StatusCode, details: str, delay: float) -> bytes:
    """A serialized ``google.rpc.Status`` holding a ``google.rpc.RetryInfo``."""
    status_class, retry_class = _rpc_classes()
    seconds = math.floor(delay)
    retry = retry_class()
    retry.retry_delay.seconds, retry.retry_delay.nanos = seconds, round((delay - seconds) * 1e9)
    status = status_class(code=code.value[0], message=details)
    status.details.add(type_url=RETRY_INFO_TYPE, value=retry.SerializeToString())
    return status.SerializeToString()  # type: ignore[no-any-return]


@cache
def _rpc_classes() -> tuple[type, type]:
    """``google.rpc.Status`` and ``google.rpc.RetryInfo``, built in a descriptor pool of their own.

    googleapis-common-protos (grpcio-status) defines them too; a pool of our own needs no extra
    dependency and cannot clash with those definitions when both are imported. The wire format is the same.
    """
    pool = descriptor_pool.DescriptorPool()
    for known in (any_pb2, duration_pb2):
        pool.AddSerializedFile(known.DESCRIPTOR.serialized_pb)
    pool.Add(_rpc_file())
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.RetryInfo")),
    )


def _rpc_file() -> descriptor_pb2.FileDescriptorProto:
    field = descriptor_pb2.FieldDescriptorProto
    rpc = descriptor_pb2.FileDescriptorProto(
        name="lanai/grpc/google_rpc.proto",
        package="google.rpc",
        syntax="proto3",
        dependency=["google/protobuf/any.proto", "google/protobuf/duration.proto"],
    )
    status = rpc.message_type.add(name="Status")
    status.field.add(name="code", number=1, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL)
    status.field.add(name="message", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    status.field.add(
        name="details", number=3, type=field.TYPE_MESSAGE, label=field.LABEL_REPEATED, type_name=".google.protobuf.Any"
    )
    retry = rpc.message_type.add(name="RetryInfo")
    retry.field.add(
        name="retry_delay",
        number=1,
        type=field.TYPE_MESSAGE,
        label=field.LABEL_OPTIONAL,
        type_name=".google.protobuf.Duration",
    )
    return rpc
