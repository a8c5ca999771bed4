"""The request a benchmark sends, built once as bytes and re-sent on every connection.

Three body shapes, as real clients send them: ``multipart`` (a form field ``file`` carrying the image,
as curl ``-F file=@cat.jpg`` and C#'s ``MultipartFormDataContent`` do), ``raw`` (the image bytes as the
body) and ``json`` (any JSON document, e.g. an Open Inference Protocol request).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from lanai import __version__

__all__ = [
    "RequestSpec",
    "image_content_type",
    "json_request",
    "multipart_request",
    "raw_image_request",
]

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)
_MANAGED = frozenset({"host", "content-length", "transfer-encoding"})


@dataclass(frozen=True)
class RequestSpec:
    """One HTTP request: ``method``, ``path`` (with any query), extra ``headers`` and the ``body``.

    ``Host`` and ``Content-Length`` are added by :meth:`to_bytes`; do not put them in ``headers``.
    """

    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def __post_init__(self) -> None:
        if not self.method.isalpha() or not self.method.isupper():
            raise ValueError(f"HTTP method {self.method!r} is not valid. Hint: use e.g. 'POST' or 'GET'.")
        if not self.path.startswith("/") or _has_space_or_newline(self.path):
            raise ValueError(
                f"request path {self.path!r} must start with '/' and contain no spaces or newlines. "
                "Hint: percent-encode spaces as %20."
            )
        for name, value in self.headers:
            if name.lower() in _MANAGED:
                raise ValueError(f"header {name!r} is set by lanai bench itself. Hint: remove it.")
            if not name or _has_space_or_newline(name) or ":" in name or _has_newline(value):
                raise ValueError(f"header {name!r}: {value!r} is not a valid HTTP header.")

    def to_bytes(self, host: str) -> bytes:
        """The complete HTTP/1.1 request (request line, headers, blank line, body) for server ``host``.

        ``host`` is the ``Host`` header value, e.g. ``127.0.0.1:8000``.
        """
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}", f"User-Agent: lanai-bench/{__version__}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        if self.body or self.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("latin-1") + self.body


def image_content_type(data: bytes) -> str | None:
    """The MIME type of an encoded image from its magic bytes (JPEG, PNG, WebP, GIF, BMP), or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, content_type in _MAGIC:
        if data.startswith(magic):
            return content_type
    return None


def multipart_request(
    path: str,
    image_bytes: bytes,
    filename: str,
    *,
    field: str = "file",
    headers: Mapping[str, str] | None = None,
) -> RequestSpec:
    """A ``POST`` of a ``multipart/form-data`` body whose one field (``file``) carries the image.

    The part's ``Content-Type`` comes from the image's magic bytes (``application/octet-stream`` if unknown).
    """
    if _has_newline(filename):
        raise ValueError(f"filename {filename!r} contains a newline. Hint: pass a plain file name.")
    if not field or _has_space_or_newline(field) or '"' in field:
        raise ValueError(f"form field name {field!r} must be non-empty, without spaces or quotes.")
    boundary = "lanai-bench-" + secrets.token_hex(16)
    while boundary.encode() in image_bytes:  # pragma: no cover - 128 random bits
        boundary = "lanai-bench-" + secrets.token_hex(16)
    content_type = image_content_type(image_bytes) or "application/octet-stream"
    quoted = filename.replace('"', "%22")
    part_head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{quoted}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    )
    body = part_head.encode("utf-8") + image_bytes + f"\r\n--{boundary}--\r\n".encode("ascii")
    extra = _header_tuple(headers)
    return RequestSpec("POST", path, (("Content-Type", f"multipart/form-data; boundary={boundary}"), *extra), body)


def raw_image_request(path: str, image_bytes: bytes, *, headers: Mapping[str, str] | None = None) -> RequestSpec:
    """A ``POST`` whose body is the encoded image, with ``Content-Type`` detected from its magic bytes."""
    content_type = image_content_type(image_bytes)
    if content_type is None:
        raise ValueError(
            f"the image is not JPEG, PNG, WebP, GIF or BMP (it starts with {image_bytes[:8]!r}). "
            "Hint: pass an encoded image file such as a .jpg or .png."
        )
    return RequestSpec("POST", path, (("Content-Type", content_type), *_header_tuple(headers)), image_bytes)


def json_request(
    path: str, body: bytes, *, method: str = "POST", headers: Mapping[str, str] | None = None
) -> RequestSpec:
    """A request with a JSON ``body`` given as UTF-8 bytes (sent as is, not re-encoded)."""
    return RequestSpec(method, path, (("Content-Type", "application/json"), *_header_tuple(headers)), body)


def _header_tuple(headers: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in (headers or {}).items())


def _has_newline(text: str) -> bool:
    return "\r" in text or "\n" in text


def _has_space_or_newline(text: str) -> bool:
    return any(c.isspace() for c in text)
