"""An answer's head and body leave in one write, so a client gets them in one TCP segment (one wakeup),
and what waits for a body that may never come (100 Continue, a stream's head) still goes out."""

from __future__ import annotations

import io
import json
import socket
import struct

from PIL import Image

from support import RunningServer

_TCP_INFO_DATA_SEGS_IN = 152
"""Offset of tcpi_data_segs_in (segments that carried data, received) in Linux's struct tcp_info (4.6+)."""


def connect(server: RunningServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def data_segments_in(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(struct.unpack_from("I", info, _TCP_INFO_DATA_SEGS_IN)[0])


def read_answer(sock: socket.socket) -> tuple[bytes, bytes]:
    """The head and the Content-Length body of one answer."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:])
    length = int({k.lower(): v for k, v in fields.items()}[b"content-length"])
    while len(body) < length:
        body += sock.recv(65536)
    return head, body


def test_each_answer_arrives_in_one_segment(server: RunningServer) -> None:
    with connect(server) as sock:
        for _ in range(3):  # warm: no handshake or quick-ack segments in what is counted
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            read_answer(sock)
        before = data_segments_in(sock)
        for _ in range(20):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body = read_answer(sock)
            assert head.startswith(b"HTTP/1.1 200"), head
            assert json.loads(body)["status"]
        assert data_segments_in(sock) - before == 20  # uvicorn alone writes a head and a body: 40


def test_100_continue_is_sent_before_the_body_comes(server: RunningServer) -> None:
    png = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(png, "PNG")
    body = png.getvalue()
    with connect(server) as sock:
        sock.sendall(
            b"POST /v1/models/tiny/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
            + f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        sock.settimeout(5)
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), interim
        sock.sendall(body)
        head, answer = read_answer(sock)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert json.loads(answer)["predictions"], answer
