"""Pairing over HTTP: a device's two messages (``/v1/pair``, ``/v1/pair/confirm``, open to the allowed
networks: the one-time code is the credential) and the admin's desk (``/v1/admin/pairing``: open a
pairing and see its code, look at it, close it). The exchange itself is ``lanai.security.pairing``."""

from __future__ import annotations

import base64
import binascii
from typing import TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lanai.errors import BadInput, NotReady
from lanai.http.body import json_object, read_body
from lanai.http.json_response import JSONResponse
from lanai.protocol.pairing import (
    PairConfirm,
    PairConfirmed,
    PairedDeviceInfo,
    PairingOfferInfo,
    PairingRequest,
    PairingStatusInfo,
    PairStart,
    PairStarted,
)
from lanai.protocol.wire import Wire, WireError
from lanai.security.pairing import PairingDesk

__all__ = ["routes"]

_BODY_LIMIT = 16 * 1024
W = TypeVar("W", bound=Wire)


def _desk(request: Request) -> PairingDesk:
    desk: PairingDesk | None = request.app.state.pairing
    if desk is None:
        raise NotReady("this server does not pair devices.", hint="lanai serve pairs them; this app was built without.")
    return desk


async def _body(request: Request, shape: type[W], *, empty: W | None = None) -> W:
    """The JSON body as ``shape``; ``empty`` (when given) stands for an empty body."""
    raw = await read_body(request, _BODY_LIMIT)
    if empty is not None and not raw.strip():
        return empty
    try:
        return shape.from_dict(json_object(raw))
    except WireError as exc:
        raise BadInput(str(exc)) from None


def _unbase64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput(f"{what} is not base64.") from None


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def start(request: Request) -> Response:
    desk = _desk(request)
    body = await _body(request, PairStart)
    message = _unbase64(body.message, "message")
    public_key = (body.public_key or "").encode()
    # SPAKE2 is a few milliseconds of pure-Python arithmetic: off the event loop
    session, reply = await run_in_threadpool(desk.start, body.device, message, public_key)
    return JSONResponse(PairStarted(session, _base64(reply)).to_dict())


async def confirm(request: Request) -> Response:
    desk = _desk(request)
    body = await _body(request, PairConfirm)
    proof, sealed = await run_in_threadpool(desk.confirm, body.session, _unbase64(body.proof, "proof"))
    return JSONResponse(PairConfirmed(_base64(proof), _base64(sealed)).to_dict())


async def open_pairing(request: Request) -> Response:
    desk = _desk(request)
    body = await _body(request, PairingRequest, empty=PairingRequest())
    offer = desk.open(body.role, body.models, body.ttl, body.attempts)
    info = PairingOfferInfo(offer.code, offer.role, list(offer.models), offer.expires, offer.attempts)
    return JSONResponse(info.to_dict(), 201)


async def pairing_status(request: Request) -> Response:
    status = _desk(request).status()
    paired = [PairedDeviceInfo(d.name, d.role, d.certificate, d.at) for d in status.paired]
    return JSONResponse(PairingStatusInfo(status.open, status.expires, status.attempts, paired).to_dict())


async def close_pairing(request: Request) -> Response:
    _desk(request).close()
    return Response(status_code=204)


def routes() -> list[Route]:
    return [
        Route("/v1/pair", start, methods=["POST"]),
        Route("/v1/pair/confirm", confirm, methods=["POST"]),
        Route("/v1/admin/pairing", open_pairing, methods=["POST"]),
        Route("/v1/admin/pairing", pairing_status, methods=["GET"]),
        Route("/v1/admin/pairing", close_pairing, methods=["DELETE"]),
    ]
