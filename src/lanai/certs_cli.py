"""``lanai certs …``: the store's certificate authority, server certificate and client certificates."""

from __future__ import annotations

import argparse

from lanai.config import load_settings
from lanai.security.certs import TlsFiles, init_authority, issue_client, renew_server

__all__ = ["run_certs_command"]


def run_certs_command(args: argparse.Namespace) -> int:
    files = TlsFiles.of(load_settings(cli={"home": args.home}).home)
    if args.action == "init":
        kept = files.ca_cert.exists() and not args.force
        fp = init_authority(files, names=args.name, addresses=args.address, force=args.force)
        print(f"{'kept the' if kept else 'made a new'} certificate authority: {files.ca_cert}")
        print(f"server certificate: {files.server_cert}")
        print(f"  SHA-256 fingerprint {fp}")
        print("serve with: lanai serve --tls   (or --mtls to require client certificates)")
        print(f"clients trust {files.ca_cert} (copy it to them, or check the fingerprint on first use)")
        return 0
    if args.action == "renew":
        fp = renew_server(files, names=args.name, addresses=args.address, days=args.days)
        print(f"new server certificate from the same authority: {files.server_cert}")
        print(f"  SHA-256 fingerprint {fp}")
        print("a running server switches to it within a few seconds; clients that trust the CA need nothing")
        return 0
    bundle = issue_client(files, args.name, args.role, days=args.days)
    print(f"client certificate {args.name!r} ({args.role}): {bundle.cert} and key {bundle.key}")
    print(f"for Windows: {bundle.p12}  (password: {bundle.p12_password}; certutil -importpfx, or double-click)")
    print(f"  SHA-256 fingerprint {bundle.fingerprint}")
    return 0
