"""A call described once, as data: what to send, whether it may run twice, and how to read the answer.

The functions of ``api`` and ``llm`` build these; the sync and async clients only execute them, so
every endpoint is written once. Helpers here turn inputs into bodies and answers into values.

**Idempotency.** ``idempotent`` says whether a call may be sent again after a failure that struck once
the request was out (a read timeout, a reset mid-answer), when it may have run. It is true for reads
(GETs, the repository index) and for inference, which has no side effects (tasks, infer, pipelines,
embeddings, chat and completions); false for repository load and unload, unless the caller passes
``retry_unsafe=True``. Failures before sending, and 503/429 answers, are retried for every call (see
``failover``). A stream is retried only until its answer starts: once it has yielded, never.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from lanai.client.errors import ProtocolError
from lanai.protocol.wire import Wire, WireError

__all__ = ["Request", "Call", "StreamCall", "Data", "json_request", "read_json", "wire_decoder",
           "segment", "read_data", "as_method"]  # fmt: skip

T = TypeVar("T")
W = TypeVar("W", bound=Wire)
Data = bytes | bytearray | memoryview | os.PathLike[str]
"""Raw input: bytes, or the path of a file to send."""


@dataclass(frozen=True, kw_only=True)
class Request:
    """One HTTP request, relative to whichever server it goes to."""

    method: str
    path: str
    params: Mapping[str, str] | None = None
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    idempotent: bool = True
    """May it be sent again when it may already have run? (See the module docstring.)"""
    accept: frozenset[int] = frozenset({200})
    """Statuses that are answers to decode; any other is an error."""
    server: str | None = None
    """Pinned to this server: one try, no failover (checking the health of one box)."""


@dataclass(frozen=True, kw_only=True)
class Call(Request, Generic[T]):
    """A request whose whole answer becomes one value."""

    decode: Callable[[httpx.Response], T]


@dataclass(frozen=True, kw_only=True)
class StreamCall(Request, Generic[T]):
    """A request answered by server-sent events; each event's JSON becomes an item (None: skipped)."""

    event: Callable[[Any], T | None]


def json_request(doc: Any) -> tuple[bytes, dict[str, str]]:
    """A JSON body and its Content-Type header."""
    return json.dumps(doc, ensure_ascii=False).encode(), {"Content-Type": "application/json"}


def read_json(response: httpx.Response) -> Any:
    """The answer's JSON; ProtocolError when it is not JSON."""
    try:
        return json.loads(response.content)
    except ValueError:
        preview = response.content[:120].decode("utf-8", "replace")
        raise ProtocolError(
            f"the answer to {response.request.method} {response.request.url.path} is not JSON: {preview!r}",
            hint="is this a lanai server?",
            status=response.status_code,
        ) from None


def wire_decoder(cls: type[W]) -> Callable[[httpx.Response], W]:
    """Decode the answer as the wire value ``cls``."""

    def decode(response: httpx.Response) -> W:
        return from_json(cls, read_json(response), response)

    return decode


def from_json(cls: type[W], doc: Any, response: httpx.Response) -> W:
    """``cls.from_dict(doc)``; ProtocolError names the field that does not fit."""
    try:
        return cls.from_dict(doc)
    except WireError as exc:
        raise ProtocolError(
            f"the answer to {response.request.url.path} is not a {cls.__name__}: {exc}",
            hint="the server may be a different lanai version.",
            status=response.status_code,
        ) from None


def segment(value: str) -> str:
    """A model, version or task name as one path segment."""
    if not value:
        raise ValueError("a model, version, task or pipeline name is empty")
    return quote(value, safe="")


def read_data(data: Data) -> bytes:
    """Bytes as they are; a path is read."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, os.PathLike):
        with open(data, "rb") as file:
            return file.read()
    raise TypeError(f"expected bytes or a path, not {type(data).__name__}")


def as_method(build: Callable[..., Any], method: Callable[..., Any], owner: str, returns: str = "{}") -> None:
    """Give the client ``method`` made from ``build`` the builder's name, docstring and signature (with
    ``self``, and ``Call[X]`` shown as ``returns.format(X)``), so ``help(Client.classify)`` reads like a
    method written out."""
    signature = inspect.signature(build)
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    annotation = signature.return_annotation
    if isinstance(annotation, str) and annotation.endswith("]"):
        annotation = returns.format(annotation[annotation.index("[") + 1 : -1])
    method.__name__ = build.__name__
    method.__qualname__ = f"{owner}.{build.__name__}"
    method.__doc__ = build.__doc__
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[self_param, *signature.parameters.values()], return_annotation=annotation
    )
