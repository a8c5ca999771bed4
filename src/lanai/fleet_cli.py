"""``lanai push`` and ``lanai pull``: model versions to and from an OCI registry."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lanai.config import load_settings
from lanai.errors import BadInput
from lanai.fleet.reference import parse_reference
from lanai.fleet.registry import Credentials, RegistryClient, docker_credentials
from lanai.store import Store

__all__ = ["add_parsers", "run_push", "run_pull", "run_drain"]

PASSWORD_ENV = "LANAI_REGISTRY_PASSWORD"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="publish a model version to an OCI registry (signed with --sign-key)")
    p.add_argument("model", metavar="NAME[:VERSION]", help="the model, at its active version unless one is given")
    p.add_argument("reference", metavar="REGISTRY/REPOSITORY:TAG", help="e.g. registry.local:5000/models/defects:v3")
    p.add_argument("--sign-key", type=Path, help="sign the files with this elliptic-curve private key (PEM)")
    p.add_argument("--sign-password-env", metavar="VAR", help="read the signing key's password from this variable")
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
    from lanai.fleet.artifact import push

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
    store = Store(load_settings(cli={"home": args.home}).home)
    with _client(args, ref.registry) as client:
        published = push(store, name, version, ref, client, sign_key=args.sign_key, sign_password=password)
    signed = "signed" if published.signed else "unsigned"
    print(f"pushed {name} as {published.reference} ({signed}; {published.sent} blobs sent)")
    return 0


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
