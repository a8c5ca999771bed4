"""``lanai push`` and ``lanai pull``: model versions to and from an OCI registry."""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

from lanai.config import Settings, load_settings
from lanai.errors import BadInput
from lanai.fleet.reference import parse_reference
from lanai.fleet.registry import PASSWORD_ENV, Credentials, RegistryClient, docker_credentials
from lanai.store import Store

__all__ = ["add_parsers", "run_push", "run_pull", "run_follow", "run_drain"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="publish a model version to an OCI registry (signed with --sign-key)")
    p.add_argument("model", metavar="NAME[:VERSION]", help="the model, at its active version unless one is given")
    p.add_argument("reference", metavar="REGISTRY/REPOSITORY:TAG", help="e.g. registry.local:5000/models/defects:v3")
    p.add_argument("--sign-key", type=Path, help="sign the files with this elliptic-curve private key (PEM)")
    p.add_argument("--sign-password-env", metavar="VAR", help="read the signing key's password from this variable")
    p.add_argument(
        "--golden",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="an input whose answer the boxes check before they activate the version (repeatable)",
    )
    p.add_argument("--rings", help="rollout order for boxes that follow the tag, e.g. canary,default")
    p.add_argument("--soak", default="0", help="how long each ring runs it before the next takes it (e.g. 30m, 2h)")
    _registry_options(p)
    p.set_defaults(run=run_push)
    p = sub.add_parser("pull", help="bring a model from an OCI registry into the store, as a new inactive version")
    p.add_argument("reference", metavar="REGISTRY/REPOSITORY:TAG|@sha256:DIGEST")
    p.add_argument("--name", help="store it under this name (default: the name it was published under)")
    p.add_argument("--trust", type=Path, action="append", default=[], metavar="KEY.pub",
                   help="accept only artifacts signed with this public key (repeatable; adds to "
                        "trusted_signing_keys)")  # fmt: skip
    _registry_options(p)
    p.set_defaults(run=run_pull)
    p = sub.add_parser("follow", help="keep a model at the version a registry tag names (lanai serve polls it)")
    p.add_argument("model", nargs="?", metavar="NAME", help="the model in this store")
    p.add_argument("reference", nargs="?", metavar="REGISTRY/REPOSITORY:TAG", help="the channel, e.g. …:stable")
    p.add_argument("--list", action="store_true", help="show the channels this box follows and their state")
    p.add_argument("--remove", action="store_true", help="stop following NAME (its versions stay)")
    p.add_argument("--retry", action="store_true", help="forget NAME's refused digests, so they may be tried again")
    p.add_argument("--lock", action="store_true", help="hold every update until --unlock (a shift, a demo)")
    p.add_argument("--unlock", action="store_true", help="let updates go on")
    p.add_argument("--home", type=Path, help="the model store's directory (env LANAI_HOME)")
    p.add_argument("--plain-http", action="store_true", help="the registry speaks HTTP, not HTTPS")
    p.add_argument("--ca-file", type=Path, help="trust this CA (PEM) for the registry's certificate")
    p.add_argument("--username", help=f"log in as this user; the server reads the password from ${PASSWORD_ENV}")
    p.set_defaults(run=run_follow)
    p = sub.add_parser("drain", help="take this box out of the load balancer's rotation (--undo: back in)")
    p.add_argument("--undo", action="store_true", help="end the drain: the box takes new work again")
    p.add_argument("--status", action="store_true", help="only show the box's readiness")
    p.add_argument("--home", type=Path, help="the model store's directory (env LANAI_HOME)")
    p.add_argument("--url", help="the running server (default: this machine, the configured port)")
    p.set_defaults(run=run_drain)


def _registry_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", type=Path, help="the model store's directory (env LANAI_HOME)")
    p.add_argument("--plain-http", action="store_true", help="the registry speaks HTTP, not HTTPS")
    p.add_argument("--ca-file", type=Path, help="trust this CA (PEM) for the registry's certificate")
    p.add_argument("--username", help=f"log in as this user; the password comes from ${PASSWORD_ENV} or stdin")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")


def _client(args: argparse.Namespace, registry: str) -> RegistryClient:
    credentials = None
    if args.username:
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else os.environ.get(PASSWORD_ENV)
        if password is None:
            raise BadInput("--username needs a password.", hint=f"set {PASSWORD_ENV} or pass --password-stdin.")
        credentials = Credentials(args.username, password)
    else:
        credentials = docker_credentials(registry)
    return RegistryClient(registry, plain_http=args.plain_http, ca_file=args.ca_file, credentials=credentials)


def run_push(args: argparse.Namespace) -> int:
    from lanai.fleet.artifact import Rollout, push

    name, _, version_text = args.model.partition(":")
    try:
        version = int(version_text) if version_text else None
    except ValueError:
        raise BadInput(
            f"{version_text!r} is not a version number.", hint="write NAME or NAME:VERSION, e.g. defects:3."
        ) from None
    ref = parse_reference(args.reference)
    if ref.digest is not None:
        raise BadInput("a push names a tag, not a digest.", hint="write REGISTRY/REPOSITORY:TAG.")
    password = os.environ.get(args.sign_password_env) if args.sign_password_env else None
    settings = load_settings(cli={"home": args.home})
    store = Store(settings.home)
    golden = None
    if args.golden:
        from lanai.fleet.golden import made_here

        golden = made_here(store, settings, name, version, args.golden)
        print(f"golden inputs: {len(args.golden)}, answered by {name} here")
    rollout = None
    if args.rings:
        published_at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        rollout = Rollout(
            tuple(r.strip() for r in args.rings.split(",") if r.strip()), _seconds(args.soak), published_at
        )
    with _client(args, ref.registry) as client:
        published = push(store, name, version, ref, client, sign_key=args.sign_key, sign_password=password,
                         golden=golden, rollout=rollout)  # fmt: skip
    signed = "signed" if published.signed else "unsigned"
    print(f"pushed {name} as {published.reference} ({signed}; {published.sent} blobs sent)")
    return 0


def _seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        raise BadInput(f"{text!r} is not a duration.", hint="write seconds, or 30m, 2h, 1d.") from None


def run_pull(args: argparse.Namespace) -> int:
    from lanai.fleet.artifact import pull

    ref = parse_reference(args.reference)
    settings = load_settings(cli={"home": args.home})
    trusted = [Path(key) for key in settings.trusted_signing_keys] + list(args.trust)
    store = Store(settings.home)
    with _client(args, ref.registry) as client:
        pulled = pull(store, ref, client, name=args.name, trusted_keys=trusted)
    how = f"signature verified with {pulled.signed_by}" if pulled.signed_by else "signature not required"
    print(f"pulled {ref} ({pulled.digest}) as {pulled.name} version {pulled.version}, inactive; {how}")
    print(f"activate it with: lanai models activate {pulled.name} {pulled.version}")
    return 0


def run_drain(args: argparse.Namespace) -> int:
    """Drain (or undrain) the running server on this box through its admin API, and show its readiness."""
    from lanai.admin_client import AdminClient, call
    from lanai.protocol.health import Readiness

    method = "GET" if args.status else "DELETE" if args.undo else "POST"
    with AdminClient(load_settings(cli={"home": args.home}), args.url) as (http, base):
        readiness = Readiness.from_dict(call(http, method, base + "/v1/admin/drain"))
    why = f" ({'; '.join(readiness.reasons)})" if readiness.reasons else ""
    print(f"{readiness.state}{why}")
    if readiness.state == "ready":
        print(f"the load balancer's agent check says: weight {readiness.weight}%, maxconn {readiness.maxconn}")
    return 0


def run_follow(args: argparse.Namespace) -> int:
    """Change what this box follows (read by ``lanai serve`` when it starts), or show it."""
    from lanai.fleet.follow import FleetState, Follow, follow_file, lock_file, write_follow_entries

    settings = load_settings(cli={"home": args.home})
    home = settings.home
    if args.lock or args.unlock:
        lock = lock_file(home)
        lock.parent.mkdir(parents=True, exist_ok=True)
        if args.lock:
            lock.touch()
        else:
            lock.unlink(missing_ok=True)
        print("updates are held until lanai follow --unlock" if args.lock else "updates go on")
        return 0
    entries = _own_entries(home)
    if args.list or not args.model:
        return _show_follows(settings)
    if args.retry:
        state = FleetState(home, args.model)
        forgotten = len(state.refused)
        state.refused.clear()
        state.save()
        state.event("retry", reason=f"{forgotten} refused digest(s) forgotten by an admin")
        print(f"{args.model}: {forgotten} refused digest(s) forgotten; they are tried again at the next look")
        return 0
    if args.remove:
        kept = [e for e in entries if e.model != args.model]
        if len(kept) == len(entries):
            raise BadInput(f"this box does not follow {args.model!r} through lanai follow.",
                           hint="lanai follow --list shows what it follows (lanai.toml's [[follow]] too).")  # fmt: skip
        write_follow_entries(home, kept)
        print(f"{args.model} is no longer followed (from the next start of lanai serve)")
        return 0
    if not args.reference:
        raise BadInput("lanai follow NAME needs the channel to follow.", hint="lanai follow NAME REGISTRY/REPO:TAG")
    ref = parse_reference(args.reference)
    if ref.digest is not None:
        raise BadInput("a channel is a tag, not a digest.", hint="follow REGISTRY/REPOSITORY:TAG.")
    entry = Follow(args.model, str(ref), args.plain_http, str(args.ca_file) if args.ca_file else None, args.username)
    write_follow_entries(home, [*(e for e in entries if e.model != args.model), entry])
    print(f"{args.model} follows {ref} (from the next start of lanai serve; see {follow_file(home)})")
    return 0


def _own_entries(home: Path) -> list:  # type: ignore[type-arg]
    from lanai.config import Settings as _Settings
    from lanai.fleet.follow import follow_entries

    return follow_entries(_Settings(home=home))


def _show_follows(settings: Settings) -> int:
    from lanai.fleet.follow import FleetState, follow_entries, lock_file

    entries = follow_entries(settings)
    if not entries:
        print("this box follows no channel: lanai follow NAME REGISTRY/REPO:TAG")
        return 0
    if lock_file(settings.home).exists():
        print("updates are held (lanai follow --unlock)")
    for entry in entries:
        state = FleetState(settings.home, entry.model)
        print(f"{entry.model} ← {entry.reference}: running {state.digest or 'nothing from it yet'}"
              + (f"; {len(state.refused)} refused" if state.refused else ""))  # fmt: skip
    return 0
