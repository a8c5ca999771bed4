from __future__ import annotations

from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP

import pytest

from lanai import __version__
from lanai.bench.requests import (
    RequestSpec,
    image_content_type,
    json_request,
    multipart_request,
    raw_image_request,
)

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00rest of a jpeg \r\n--not-a-boundary"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def test_to_bytes_is_a_complete_http11_request() -> None:
    spec = RequestSpec("POST", "/v2/models/m/infer?x=1", (("Authorization", "Bearer t"),), b"{}")
    assert spec.to_bytes("127.0.0.1:8000") == (
        b"POST /v2/models/m/infer?x=1 HTTP/1.1\r\n"
        b"Host: 127.0.0.1:8000\r\n"
        b"User-Agent: lanai-bench/" + __version__.encode() + b"\r\n"
        b"Authorization: Bearer t\r\n"
        b"Content-Length: 2\r\n"
        b"\r\n{}"
    )


def test_get_without_body_has_no_content_length() -> None:
    assert b"Content-Length" not in RequestSpec("GET", "/health").to_bytes("h")
    assert b"Content-Length: 0\r\n" in RequestSpec("POST", "/x").to_bytes("h")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "get"}, "method"),
        ({"path": "v1/x"}, "must start with '/'"),
        ({"path": "/a b"}, "percent-encode"),
        ({"headers": (("Content-Length", "3"),)}, "set by lanai bench itself"),
        ({"headers": (("X-A", "1\r\nX-B: 2"),)}, "not a valid HTTP header"),
    ],
)
def test_request_spec_rejects_what_would_break_the_request(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"method": "POST", "path": "/x"}
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        RequestSpec(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (JPEG, "image/jpeg"),
        (PNG, "image/png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"GIF89a....", "image/gif"),
        (b"BM......", "image/bmp"),
        (b"%PDF-1.7", None),
        (b"", None),
    ],
)
def test_image_content_type(data: bytes, expected: str | None) -> None:
    assert image_content_type(data) == expected


def test_raw_image_request() -> None:
    spec = raw_image_request("/classify", PNG, headers={"X-Key": "k"})
    assert spec.method == "POST" and spec.body == PNG
    assert spec.headers == (("Content-Type", "image/png"), ("X-Key", "k"))
    with pytest.raises(ValueError, match=r"not JPEG, PNG.*Hint"):
        raw_image_request("/classify", b"hello")


def test_json_request_sends_the_bytes_as_given() -> None:
    spec = json_request("/v2/models/m/infer", b'{"inputs": []}')
    assert spec.body == b'{"inputs": []}' and spec.headers == (("Content-Type", "application/json"),)


def _parse_multipart(spec: RequestSpec) -> list[EmailMessage]:
    """Parse the body as a MIME multipart message, the way a strict server would."""
    head = b"Content-Type: " + dict(spec.headers)["Content-Type"].encode() + b"\r\n\r\n"
    message = BytesParser(policy=HTTP).parsebytes(head + spec.body)
    assert isinstance(message, EmailMessage) and message.get_content_type() == "multipart/form-data"
    return list(message.iter_parts())  # type: ignore[arg-type]


def test_multipart_request_carries_the_image_in_field_file() -> None:
    spec = multipart_request("/classify", JPEG, 'my "cat".jpg')
    [part] = _parse_multipart(spec)
    assert part.get_param("name", header="content-disposition") == "file"
    assert part.get_filename() == "my %22cat%22.jpg"  # quotes escaped the way browsers do
    assert part.get_content_type() == "image/jpeg"
    assert part.get_payload(decode=True) == JPEG


def test_multipart_of_an_unknown_file_is_octet_stream() -> None:
    [part] = _parse_multipart(multipart_request("/x", b"\x00\x01", "blob.bin", field="image"))
    assert part.get_content_type() == "application/octet-stream"
    assert part.get_param("name", header="content-disposition") == "image"


def test_multipart_rejects_names_that_break_headers() -> None:
    with pytest.raises(ValueError, match="filename"):
        multipart_request("/x", JPEG, "a\r\nb.jpg")
    with pytest.raises(ValueError, match="field name"):
        multipart_request("/x", JPEG, "a.jpg", field='fi"le')
