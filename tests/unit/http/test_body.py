from __future__ import annotations

import pytest

from lanai.errors import BadInput
from lanai.http.body import multipart_file

BOUNDARY = "----lanaiTestBoundary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def form(*parts: tuple[str, bytes, str | None]) -> bytes:
    out = b""
    for name, content, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n".encode()
        out += b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def test_file_field_is_found_among_others() -> None:
    data = b"\xff\xd8binary\r\n--not-the-boundary\r\n"
    body = form(("note", b"hello", None), ("file", data, "photo.jpg"))
    assert multipart_file(body, CONTENT_TYPE) == data


def test_image_field_or_single_file_part() -> None:
    assert multipart_file(form(("image", b"abc", "a.png")), CONTENT_TYPE) == b"abc"
    assert multipart_file(form(("upload", b"xyz", "a.png")), CONTENT_TYPE) == b"xyz"
    assert multipart_file(form(("file", b"q", None)), f'multipart/form-data; boundary="{BOUNDARY}"') == b"q"


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"file=x", "multipart/form-data", "no boundary"),
        (b"garbage without parts", CONTENT_TYPE, "no parts"),
        (form(("a", b"1", "x.png"), ("b", b"2", "y.png")), CONTENT_TYPE, "no field named 'file'"),
        (f"--{BOUNDARY}\r\nContent-Type: x\r\n\r\nabc\r\n--{BOUNDARY}--".encode(), CONTENT_TYPE, "Content-Disposition"),
        (f"--{BOUNDARY}\r\nno separator here--{BOUNDARY}--".encode(), CONTENT_TYPE, "separator"),
    ],
)
def test_malformed_forms(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        multipart_file(body, content_type)


def test_liberal_in_what_tutorial_clients_send() -> None:
    from lanai.http.body import looks_like_image

    jpeg = b"\xff\xd8\xff\xe0 a jpeg"
    # no boundary in the Content-Type: taken from the body
    assert multipart_file(form(("file", jpeg, "a.jpg")), "multipart/form-data") == jpeg
    # the image under another name, beside another file and a plain field
    body = form(("notes", b"plain text", "notes.txt"), ("photo", jpeg, "a.jpg"), ("user", b"ann", None))
    assert multipart_file(body, CONTENT_TYPE) == jpeg
    assert looks_like_image(jpeg) and looks_like_image(b"RIFF\x00\x00\x00\x00WEBPVP8 ") and not looks_like_image(b"{}")
