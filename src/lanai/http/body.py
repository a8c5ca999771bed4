"""Reading request bodies within the size limit, and finding the image in a multipart form."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import ClientDisconnect, Request

from lanai.errors import BadInput, PayloadTooLarge

__all__ = ["read_body", "json_object", "image_from_request", "multipart_file", "looks_like_image"]

_FILE_FIELDS = (b"file", b"image")


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than {limit} bytes.",
        hint="send a smaller body, or raise max_body_bytes in the server settings.",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes before reading them where possible."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise BadInput(f"Content-Length {declared!r} is not a number.")
        if int(declared) > limit:
            raise _too_large(limit)
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        request.scope["lanai.client_gone"] = True  # counted as 499 (nobody saw an answer), not as a 400
        raise BadInput("the client closed the connection before sending the whole body.") from None
    return b"".join(chunks)


def json_object(body: bytes) -> dict[str, Any]:
    """``body`` parsed as a JSON object; BadInput for anything else."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"the body is not valid JSON: {exc}.", hint="send a JSON object.") from None
    if not isinstance(doc, dict):
        raise BadInput("the body must be a JSON object.")
    return doc


def _boundary(content_type: str, body: bytes) -> bytes:
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip('"').encode("latin-1")
    # Clients built from shell one-liners send "multipart/form-data" without the boundary; a form body
    # starts with "--boundary", so take it from there.
    first_line = body.split(b"\r\n", 1)[0]
    if first_line.startswith(b"--") and 2 < len(first_line) <= 72 and b" " not in first_line.strip():
        return first_line[2:].strip()
    raise BadInput(
        "the multipart body has no boundary in its Content-Type.",
        hint="let your HTTP client build the form (curl -F file=@photo.jpg).",
    )


_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def looks_like_image(data: bytes) -> bool:
    """Whether ``data`` starts the way a JPEG, PNG, GIF, BMP, TIFF or WebP file does."""
    return data.startswith(_IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def multipart_file(body: bytes, content_type: str) -> bytes:
    """The content of the form field ``file`` (or ``image``, or else the only file part)."""
    delimiter = b"--" + _boundary(content_type, body)
    files: dict[bytes, bytes] = {}
    fields = []
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            raise BadInput("a multipart part has no header/content separator.", hint="check the form encoding.")
        name, is_file = _disposition(head)
        fields.append(name.decode("latin-1"))
        if is_file or name in _FILE_FIELDS:
            files[name] = content[:-2] if content.endswith(b"\r\n") else content
    if not fields:
        raise BadInput("the multipart body has no parts.", hint="send the image in a form field named 'file'.")
    for name in _FILE_FIELDS:
        if name in files:
            return files[name]
    if len(files) == 1:
        return next(iter(files.values()))
    images = [content for content in files.values() if looks_like_image(content)]
    if len(images) == 1:  # the image under another field name, beside other files
        return images[0]
    raise BadInput(
        f"the form has no field named 'file' (it has: {', '.join(fields)}).",
        hint="send the image as form field 'file', e.g. curl -F file=@photo.jpg.",
    )


def _disposition(head: bytes) -> tuple[bytes, bool]:
    for line in head.split(b"\r\n"):
        if line[:20].lower() == b"content-disposition:":
            name, is_file = b"", False
            for param in line.split(b";")[1:]:
                key, _, value = param.strip().partition(b"=")
                if key.lower() == b"name":
                    name = value.strip(b'"')
                elif key.lower() == b"filename":
                    is_file = True
            return name, is_file
    raise BadInput("a multipart part has no Content-Disposition header.", hint="check the form encoding.")


async def image_from_request(request: Request, limit: int) -> bytes:
    """The image in a multipart form (field ``file``, else ``image``, else the one file or the one image
    part) or the raw body, whatever its Content-Type (tutorials' clients label it every which way)."""
    content_type = request.headers.get("content-type", "")
    body = await read_body(request, limit)
    # a body that plainly is an image is one, whatever the Content-Type says
    if content_type.lower().startswith("multipart/") and not looks_like_image(body):
        return multipart_file(body, content_type)
    if not body:
        raise BadInput(
            "the request has no image.",
            hint="send a form field 'file' (curl -F file=@photo.jpg) or the raw bytes with Content-Type image/jpeg.",
        )
    return body
