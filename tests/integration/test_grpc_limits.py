"""Slow, idle and greedy clients of the gRPC door, on real sockets: a connection that does not finish its
HTTP/2 handshake within ``header_timeout`` is closed, an idle one is sent away after ``grpc_idle_timeout``,
connections past ``max_connections`` are refused; ordinary calls notice nothing."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.grpc import inference_pb2 as pb
from lanai.grpc.inference_pb2_grpc import GRPCInferenceServiceStub
from lanai.security.certs import TlsFiles, init_authority
from lanai.store import Store

from support import ServerThread, make_store

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]) -> Store:
    return make_store(tmp_path_factory.mktemp("grpc-limits"), model_files)


@pytest.fixture(scope="module")
def server(store: Store) -> Iterator[ServerThread]:
    settings = Settings(home=store.root, header_timeout=0.5, grpc_idle_timeout=0.5, intra_op_threads=1)
    started = ServerThread(DataPlane(store, settings), settings)
    with started:
        yield started


def connect(server: ServerThread) -> socket.socket:
    assert server.service.grpc_port is not None, "the grpc extra is not installed"
    return socket.create_connection(("127.0.0.1", server.service.grpc_port), timeout=5)


def closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed ``sock`` (reading what it sent meanwhile)."""
    start = time.monotonic()
    sock.settimeout(seconds)
    while sock.recv(65536):
        pass
    return time.monotonic() - start


def ready(server: ServerThread) -> bool:
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        return bool(stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready)


def test_a_silent_connection_is_cut_off(server: ServerThread) -> None:
    with connect(server) as sock:
        assert closed_within(sock, 5) < 3
    assert ready(server)


@pytest.mark.parametrize("sent", [PREFACE[:10], PREFACE], ids=["half a preface", "a preface without SETTINGS"])
def test_an_unfinished_handshake_is_cut_off(server: ServerThread, sent: bytes) -> None:
    with connect(server) as sock:
        sock.sendall(sent)
        assert closed_within(sock, 5) < 3
    assert ready(server)


def test_a_silent_connection_is_cut_off_under_tls_too(store: Store) -> None:
    files = TlsFiles.of(store.root)
    init_authority(files, names=["localhost"], addresses=["127.0.0.1"])
    settings = Settings(home=store.root, header_timeout=0.5, intra_op_threads=1, tls=True).with_store_tls()
    server = ServerThread(DataPlane(store, settings), settings)
    with server:
        with connect(server) as sock:  # no ClientHello ever comes
            assert closed_within(sock, 5) < 3
        credentials = grpc.ssl_channel_credentials(files.ca_cert.read_bytes())
        with grpc.secure_channel(f"localhost:{server.service.grpc_port}", credentials) as channel:
            stub = GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
            assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready


def test_an_idle_connection_is_sent_away_and_the_client_comes_back(server: ServerThread) -> None:
    states: list[grpc.ChannelConnectivity] = []
    with grpc.insecure_channel(server.grpc_address) as channel:
        channel.subscribe(states.append)
        stub = GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
        wait_until(lambda: went_idle(states))
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready  # a new connection, transparently
        channel.unsubscribe(states.append)


def test_connections_past_max_connections_are_refused(store: Store) -> None:
    settings = Settings(home=store.root, max_connections=4, header_timeout=30, intra_op_threads=1)
    server = ServerThread(DataPlane(store, settings), settings)
    with server:
        held = [connect(server) for _ in range(4)]
        try:
            with connect(server) as one_more:
                assert closed_within(one_more, 10) < 5  # at once, long before the 30 s handshake deadline
            for sock in held:
                sock.settimeout(0.2)
                with pytest.raises(TimeoutError):  # still open: the server waits for their handshake
                    while sock.recv(65536):
                        pass
        finally:
            for sock in held:
                sock.close()
        wait_until(lambda: _answers(server))  # once the server has seen them go


def went_idle(states: list[grpc.ChannelConnectivity]) -> bool:
    """Whether the channel was connected and then lost its connection (the server sent it away)."""
    ready = grpc.ChannelConnectivity.READY
    return ready in states and grpc.ChannelConnectivity.IDLE in states[states.index(ready) :]


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _answers(server: ServerThread) -> bool:
    try:
        return ready(server)
    except grpc.RpcError:
        return False
