"""``lanai keys …``: API keys with roles, stored hashed in the store (see ``lanai.security.keys``)."""

from __future__ import annotations

import argparse
import datetime
import json

from lanai.config import load_settings
from lanai.security.keys import ApiKey, KeyRing, parse_duration, parse_rate

__all__ = ["run_keys_command"]


def _ring(args: argparse.Namespace) -> KeyRing:
    return KeyRing(load_settings(cli={"home": args.home}).home)


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")


def _scope(key: ApiKey) -> str:
    parts = [",".join(key.models) if key.models else "all models"]
    if key.rate is not None:
        parts.append(f"{key.rate:g}/s")
    if key.concurrency is not None:
        parts.append(f"{key.concurrency} at once")
    if key.expires is not None:
        parts.append(f"until {_when(key.expires)}")
    return ", ".join(parts)


def run_keys_command(args: argparse.Namespace) -> int:
    ring = _ring(args)
    if args.action == "create":
        models = [m.strip() for m in (args.models or "").split(",") if m.strip()]
        expires = parse_duration(args.expires) if args.expires else None
        rate = parse_rate(args.rate) if args.rate else None
        text = ring.create(args.name, args.role, models=models, expires_in=expires, rate=rate,
                           concurrency=args.concurrency)  # fmt: skip
        print(text)
        print(f"key {args.name!r} ({args.role}) created: this is the only time it is shown.", flush=True)
        return 0
    if args.action == "revoke":
        ring.revoke(args.name)
        print(f"key {args.name!r} revoked; a running server refuses it within a second.")
        return 0
    keys = ring.list()
    if args.json:
        rows = [
            {"name": k.name, "role": k.role, "models": list(k.models), "rate": k.rate, "concurrency": k.concurrency,
             "created": k.created, "expires": k.expires, "last_used": k.last_used}
            for k in keys
        ]  # fmt: skip
        print(json.dumps(rows, indent=1))
        return 0
    if not keys:
        print("no keys yet: lanai keys create NAME --role infer")
        return 0
    print(f"{'NAME':<24} {'ROLE':<6} {'CREATED':<16} {'LAST USED':<16} SCOPE")
    for k in keys:
        print(f"{k.name:<24} {k.role:<6} {_when(k.created):<16} {_when(k.last_used):<16} {_scope(k)}")
    return 0
