"""``lanai pair`` (on the box: open a pairing and show its code; on a device: pair with a box) and
``lanai devices`` (the paired devices, on the box). See ``lanai.security.pairing``."""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
import time
from urllib.parse import urlsplit

import httpx

from lanai.admin_client import AdminClient, call
from lanai.config import load_settings
from lanai.errors import ConfigError
from lanai.protocol.pairing import PairingOfferInfo, PairingRequest, PairingStatusInfo
from lanai.security.keys import KeyRing

__all__ = ["run_pair_command", "run_devices_command"]


def run_pair_command(args: argparse.Namespace) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request on the terminal
    if args.box and args.code:
        return _pair_device(args)
    if args.box or args.code:
        raise ConfigError("pairing a device needs both the box and the code.", hint="lanai pair BOX 1234-5678")
    return _open_on_box(args)


# -- on the device -----------------------------------------------------------------------------------


def _pair_device(args: argparse.Namespace) -> int:
    from lanai.client.pairing import pair

    server = pair(args.box, args.code, args.name, name=args.save_as)
    print(f"paired with {server.url} as {server.device!r} ({server.role}); saved in {server.folder}")
    if server.fingerprint:
        print(f"  the box's certificate: SHA-256 {server.fingerprint}")
        print("  this device now trusts the box's own CA for it (ca.pem there), and nothing else")
    else:
        print("  warning: the box serves plain HTTP, so the key travels in clear on every request.")
        print("  ask its admin for TLS: lanai certs init, then lanai serve --tls")
    print(f'use it: from lanai.client import paired; paired("{server.name}").client()')
    return 0


# -- on the box --------------------------------------------------------------------------------------


def _open_on_box(args: argparse.Namespace) -> int:
    settings = load_settings(cli={"home": args.home})
    models = [m.strip() for m in (args.models or "").split(",") if m.strip()]
    request = PairingRequest(args.role, models, args.ttl, args.attempts)
    with AdminClient(settings, args.url) as (http, base):
        url = base + "/v1/admin/pairing"
        answer = call(http, "POST", url, request.to_dict())
        offer = PairingOfferInfo.from_dict(answer)
        port = urlsplit(url).port or 8000
        host = _host_name() + (f":{port}" if port != 8000 else "")
        print(f"\n    pairing code:  {offer.code}\n")
        print(f"on the device, within {round(offer.expires - time.time())} s ({offer.attempts} tries):")
        print(f"    lanai pair {host} {offer.code}")
        print(
            f"the device gets a key with role {offer.role}"
            + (f", for {', '.join(offer.models)}" if offer.models else "")
        )
        if args.no_wait:
            return 0
        return _wait(http, url, offer)


def _wait(http: httpx.Client, url: str, offer: PairingOfferInfo) -> int:
    seen = len(PairingStatusInfo.from_dict(call(http, "GET", url)).paired)
    print("waiting for the device (Ctrl-C closes the pairing)...", flush=True)
    try:
        while True:
            time.sleep(1.0)
            status = PairingStatusInfo.from_dict(call(http, "GET", url))
            if len(status.paired) > seen:
                device = status.paired[-1]
                print(f"paired {device.name!r} ({device.role}); lanai devices list shows it, revoke removes it")
                return 0
            if not status.open:
                print("the pairing closed without a device: its time or its tries ran out.", file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        call(http, "DELETE", url)
        print("\npairing closed.")
        return 130


def _host_name() -> str:
    import socket

    return socket.gethostname().split(".")[0] or "this-box"


# -- lanai devices -----------------------------------------------------------------------------------


def _when(stamp: float | None) -> str:
    return "-" if stamp is None else datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")


def run_devices_command(args: argparse.Namespace) -> int:
    ring = KeyRing(load_settings(cli={"home": args.home}).home)
    if args.action == "revoke":
        ring.revoke(args.name, device=True)
        print(f"device {args.name!r} revoked (its key and certificate); a running server refuses it within a second.")
        return 0
    devices = [k for k in ring.list() if k.device]
    if args.json:
        rows = [{"name": d.name, "role": d.role, "models": list(d.models), "certificate": d.certificate,
                 "paired": d.created, "last_used": d.last_used} for d in devices]  # fmt: skip
        print(json.dumps(rows, indent=1))
        return 0
    if not devices:
        print("no paired devices: lanai pair opens a pairing")
        return 0
    print(f"{'NAME':<24} {'ROLE':<6} {'PAIRED':<16} {'LAST USED':<16} CERTIFICATE")
    for d in devices:
        cert = (d.certificate or "-")[:23]
        print(f"{d.name:<24} {d.role:<6} {_when(d.created):<16} {_when(d.last_used):<16} {cert}")
    return 0
