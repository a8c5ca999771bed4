"""lanai.http.accept: a burst of connections is taken at once, even while the event loop is busy."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
import uvloop

from lanai.http.accept import Acceptor
from lanai.security.certs import TlsFiles, init_authority

BURST = 300
TURN_S = 0.02
"""Each turn of the busy loop takes this long, as a loop serving hundreds of requests does."""


class Counting(asyncio.Protocol):
    made: list[asyncio.Transport] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        Counting.made.append(transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        Counting.made[-1].write(data)


def listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    return sock


async def burst_taken_in(serve_on, seconds: float = 1.0) -> int:  # type: ignore[no-untyped-def]
    """Connections accepted within ``seconds`` of a burst of BURST, while every loop turn takes TURN_S."""
    loop = asyncio.get_running_loop()
    Counting.made = []
    sock = listening()
    server = await serve_on(sock)

    def busy() -> None:
        time.sleep(TURN_S)
        handle[0] = loop.call_soon(busy)

    handle = [loop.call_soon(busy)]
    clients = []
    try:
        for _ in range(BURST):  # the kernel completes each handshake; the server has to accept them
            client = socket.socket()
            client.setblocking(False)
            try:
                client.connect(sock.getsockname())
            except BlockingIOError:
                pass
            clients.append(client)
        await asyncio.sleep(seconds)
        return len(Counting.made)
    finally:
        handle[0].cancel()
        server.close()
        await server.wait_closed()
        for client in clients:
            client.close()
        sock.close()


def test_a_burst_of_connections_is_accepted_at_once_while_the_loop_is_busy() -> None:
    async def acceptor(sock: socket.socket) -> Acceptor:
        return Acceptor(sock, Counting)

    async def uvloops_own(sock: socket.socket) -> asyncio.AbstractServer:
        return await asyncio.get_running_loop().create_server(Counting, sock=sock)

    ours = uvloop.run(burst_taken_in(acceptor))
    theirs = uvloop.run(burst_taken_in(uvloops_own))
    assert ours == BURST, f"{ours} of {BURST} connections accepted in 1 s"
    # why the Acceptor exists: uvloop's server takes one connection per loop turn (about 50 turns here)
    assert theirs < BURST / 2, theirs


def test_accepted_connections_speak_and_tls_is_handshaken(tmp_path: Path) -> None:
    files = TlsFiles(tmp_path / "tls")
    init_authority(files, names=["localhost"], addresses=["127.0.0.1"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.server_cert, files.server_key)

    async def main() -> tuple[bytes, bytes, bytes, int]:
        Counting.made = []
        plain_sock, tls_sock = listening(), listening()
        plain, tls = Acceptor(plain_sock, Counting), Acceptor(tls_sock, Counting, context)
        try:
            reader, writer = await asyncio.open_connection(*plain_sock.getsockname())
            writer.write(b"plain")
            plain_echo = await reader.readexactly(5)
            writer.close()
            client = ssl.create_default_context(cafile=files.ca_cert)
            reader, writer = await asyncio.open_connection(*tls_sock.getsockname(), ssl=client)
            writer.write(b"sealed")
            tls_echo = await reader.readexactly(6)
            writer.close()
            # a client that speaks no TLS to the TLS socket is dropped, and the acceptor goes on
            reader, writer = await asyncio.open_connection(*tls_sock.getsockname())
            writer.write(b"GET / HTTP/1.1\r\n\r\n")
            dropped = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return plain_echo, tls_echo, dropped, len(tls._starting)
        finally:
            for server, sock in ((plain, plain_sock), (tls, tls_sock)):
                server.close()
                await server.wait_closed()
                sock.close()

    plain_echo, tls_echo, dropped, handshaking = uvloop.run(main())
    assert (plain_echo, tls_echo, dropped) == (b"plain", b"sealed", b"")
    assert handshaking == 0


@pytest.mark.parametrize("runner", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_a_closed_acceptor_takes_no_more_connections(runner) -> None:  # type: ignore[no-untyped-def]
    async def main() -> int:
        Counting.made = []
        sock = listening()
        server = Acceptor(sock, Counting)
        server.close()
        reader, writer = await asyncio.open_connection(*sock.getsockname())  # the kernel takes it, nobody else
        await asyncio.sleep(0.2)
        writer.close()
        sock.close()
        return len(Counting.made)

    assert runner(main()) == 0


_OUT_OF_FILES_SERVER = """
import asyncio, logging, resource, socket, sys
import uvloop
from lanai.http.accept import Acceptor

logging.basicConfig(level=logging.WARNING)
resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def main():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    server = Acceptor(sock, Echo)
    print(sock.getsockname()[1], flush=True)
    await asyncio.sleep(60)

uvloop.run(main())
"""


def test_out_of_file_descriptors_pauses_accepting_with_a_hint_and_recovers() -> None:
    pipe = subprocess.PIPE
    child = subprocess.Popen([sys.executable, "-c", _OUT_OF_FILES_SERVER], stdout=pipe, stderr=pipe)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(80)]  # more than 48 descriptors
        time.sleep(1.5)
        for client in clients:
            client.close()
        time.sleep(1.5)  # accepting resumes after a second's pause; the backlog is taken
        with socket.create_connection(("127.0.0.1", port), timeout=10) as late:
            late.sendall(b"still here")
            assert late.recv(100) == b"still here"
        assert child.poll() is None
    finally:
        child.kill()
        _, err = child.communicate()
    assert b"cannot accept connections: Too many open files. Hint: raise the open-files limit" in err, err[-2000:]
