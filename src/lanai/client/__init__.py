"""The Python client of lanai servers: sync and async, over httpx, with failover between several boxes.

    from lanai.client import Client

    with Client(["http://box1:8000", "http://box2:8000"], api_key="…") as lanai:
        print(lanai.classify("efficientnet-lite0", "cat.jpg").label)

    pair("box.local", "1234-5678")                      # once, with the code `lanai pair` shows
    with paired("box.local").client() as lanai: ...     # then: its key, trusting its own CA

How it is built: ``api`` and ``llm`` describe every endpoint once, as data (``calls.Call``: what to send,
whether it may run twice, how to read the answer); ``sync.Client`` and ``aio.AsyncClient`` only execute
those descriptions over ``httpx.Client`` / ``httpx.AsyncClient``; ``failover`` is the one retry and
server-choice policy both follow (its docstring has the rules); ``errors`` is the exception tree. The
client imports none of the server (no Starlette, uvicorn, ONNX Runtime): only the shared vocabulary in
``lanai.errors``, ``lanai.types`` and ``lanai.protocol``.
"""

from __future__ import annotations

from lanai.client.aio import AsyncClient
from lanai.client.errors import (
    BadInput,
    ClientError,
    Conflict,
    ConnectionFailed,
    EndpointNotFound,
    Forbidden,
    LanaiError,
    ModelNotFound,
    NotFound,
    NotReady,
    Overloaded,
    PayloadTooLarge,
    ProtocolError,
    RateLimited,
    ServerError,
    Unauthorized,
    VersionNotFound,
)
from lanai.client.failover import RetryPolicy
from lanai.client.llm import Chunk, Embeddings
from lanai.client.pairing import PairedServer, pair, paired, paired_servers
from lanai.client.streams import AsyncStream, Stream
from lanai.client.sync import Client

__all__ = [
    "Client",
    "AsyncClient",
    "pair",
    "paired",
    "paired_servers",
    "PairedServer",
    "RetryPolicy",
    "Stream",
    "AsyncStream",
    "Chunk",
    "Embeddings",
    "LanaiError",
    "BadInput",
    "PayloadTooLarge",
    "NotFound",
    "ModelNotFound",
    "VersionNotFound",
    "Conflict",
    "Overloaded",
    "RateLimited",
    "NotReady",
    "ClientError",
    "Unauthorized",
    "Forbidden",
    "EndpointNotFound",
    "ServerError",
    "ProtocolError",
    "ConnectionFailed",
]
