"""Tiny HTTP servers on free loopback ports for the bench tests.

* :class:`RawServer`: a hand-written asyncio server in a thread, for responses a framework will not
  produce (dropped connections, garbage, HTTP/1.0 bodies ended by close, 100 Continue).
* :class:`UvicornThread`: an ASGI app under uvicorn in a thread, the way lanai really serves; with
  :func:`make_app`, a Starlette app that records what it saw in an :class:`AppState`.
* ``python bench_testservers.py``: the trivial raw server in its own process (for throughput), which
  prints its port once it listens.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
RAW_RESPONSES = {
    b"/ok": OK,
    b"/garbage": b"HELLO THERE\r\n\r\n",
    b"/http10": b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nbody ended by close",
    b"/continue": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"/chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: yes\r\n\r\n"
    ),
}


class _RawProtocol(asyncio.Protocol):
    def __init__(self, server: RawServer) -> None:
        self.server = server
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.server.transports.add(self.transport)
        self.server.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.transports.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head, self.buf = self.buf[:end], self.buf[end + 4 :]
            path = head.split(b" ", 2)[1]
            self.server.hits[path.decode()] += 1
            if path == b"/drop":
                self.transport.close()
                return
            self.transport.write(RAW_RESPONSES.get(path, OK))
            if path == b"/http10":
                self.transport.close()
                return


class RawServer:
    """The raw server in a background thread; ``hits`` counts requests by path."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.connections = 0
        self.transports: set[asyncio.Transport] = set()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        self.url = f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        server = self.loop.run_until_complete(self.loop.create_server(lambda: _RawProtocol(self), "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()
        for transport in list(self.transports):
            transport.abort()
        server.close()
        self.loop.run_until_complete(server.wait_closed())
        self.loop.close()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


class UvicornThread:
    """An ASGI app served by uvicorn in a background thread, on a socket bound before it starts."""

    def __init__(self, app: ASGIApp) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", access_log=False)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        self._thread.start()
        wait_until_serving(self.port)

    def close(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)
        self._sock.close()


def wait_until_serving(port: int, timeout: float = 10.0) -> None:
    """Block until the server on ``port`` answers one HTTP request (the socket is already listening)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"GET /ready HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 ")


@dataclass
class AppState:
    """What the test app saw: requests by path, client ports (one per connection) and parsed bodies."""

    hits: Counter[str] = field(default_factory=Counter)
    ports: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    parsed: list[dict[str, Any]] = field(default_factory=list)

    def clear(self) -> None:
        self.hits.clear()
        self.ports.clear()
        self.parsed.clear()


def make_app(state: AppState) -> Starlette:
    def seen(request: Request) -> None:
        state.hits[request.url.path] += 1
        assert request.client is not None
        state.ports[request.url.path].add(request.client.port)

    async def ok(request: Request) -> Response:
        seen(request)
        return JSONResponse({"ok": True})

    async def busy(request: Request) -> Response:
        seen(request)
        return JSONResponse({"error": "busy"}, status_code=503)

    async def close(request: Request) -> Response:
        seen(request)
        return JSONResponse({"ok": True}, headers={"Connection": "close"})

    async def chunked(request: Request) -> Response:
        seen(request)

        async def parts() -> AsyncIterator[bytes]:
            for i in range(5):
                yield f'{{"part": {i}}}\n'.encode()

        return StreamingResponse(parts(), media_type="application/x-ndjson")

    async def slow(request: Request) -> Response:
        seen(request)
        for _ in range(100):  # up to 5 s, but stop as soon as the client has gone
            if await request.is_disconnected():
                break
            await asyncio.sleep(0.05)
        return JSONResponse({"ok": "late"})

    async def pause(request: Request) -> Response:
        seen(request)
        await asyncio.sleep(float(request.query_params["ms"]) / 1000)
        return JSONResponse({"ok": "paused"})

    async def multipart(request: Request) -> Response:
        seen(request)
        async with request.form() as form:
            upload = form["file"]
            data = await upload.read()  # type: ignore[union-attr]
            state.parsed.append(
                {
                    "fields": list(form.keys()),
                    "filename": upload.filename,  # type: ignore[union-attr]
                    "content_type": upload.content_type,  # type: ignore[union-attr]
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
        return JSONResponse({"ok": True})

    async def raw(request: Request) -> Response:
        seen(request)
        body = await request.body()
        state.parsed.append(
            {"content_type": request.headers.get("content-type"), "sha256": hashlib.sha256(body).hexdigest()}
        )
        return JSONResponse({"ok": True})

    routes = [
        Route("/ready", ok),
        Route("/ok", ok),
        Route("/busy", busy),
        Route("/close", close),
        Route("/chunked", chunked),
        Route("/slow", slow),
        Route("/pause", pause),
        Route("/multipart", multipart, methods=["POST"]),
        Route("/raw", raw, methods=["POST"]),
    ]
    return Starlette(routes=routes)


@dataclass
class AppServer:
    url: str
    state: AppState


async def _serve_forever() -> None:
    class Fast(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]

        def data_received(self, data: bytes) -> None:
            self.transport.write(OK * data.count(b"\r\n\r\n"))

    server = await asyncio.get_running_loop().create_server(Fast, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve_forever())
    else:
        uvloop.run(_serve_forever())
