"""HAProxy's agent check: a TCP port that answers each connection with one line saying how much work
this box wants (``up ready 75% maxconn:12``), or ``drain``, ``maint`` or ``down``, then closes.

HAProxy reads it every ``agent-inter`` (``server box1 … check agent-check agent-port 8002``): the weight
(1–100 %) scales the server's share of new requests, ``maxconn`` caps its concurrent connections,
``drain`` stops new requests while letting the current ones finish, ``maint`` takes it out while a new
model version activates, and ``up``/``ready`` put it back. The line comes from the data plane's
readiness: loading → ``down``; draining or degraded (too hot, no model, queues full) → ``drain``;
activating a model → ``maint``; else the weight and maxconn of ``DataPlane.readiness``.
"""

from __future__ import annotations

import asyncio
import logging

from lanai.dataplane import DataPlane

__all__ = ["AgentCheck", "agent_line"]

log = logging.getLogger(__name__)


def agent_line(plane: DataPlane) -> str:
    readiness = plane.readiness()
    if readiness.state == "loading":
        return "down\n"
    if plane.maintenance:
        return "maint\n"
    if readiness.state != "ready":
        return "drain\n"
    return f"up ready {readiness.weight}% maxconn:{readiness.maxconn}\n"


class AgentCheck:
    """The agent-check listener on ``host:port`` (0: a free port, read back from ``port``)."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self.port: int | None = None
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._answer, host, port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("HAProxy agent check on %s:%d", host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(agent_line(self.plane).encode("ascii"))
            await writer.drain()
        except (ConnectionError, OSError):
            pass  # the checker went away: nothing to tell it
        finally:
            writer.close()
