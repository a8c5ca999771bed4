"""``lanai discover``: list the lanai boxes that answer on the LAN."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import TextIO

from lanai.discovery.browse import Box, discover

__all__ = ["run_discover_command", "add_arguments"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``lanai discover`` (``--timeout``, ``--json``, ``--interface``)."""
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds to listen for answers (default 2)")
    parser.add_argument("--json", action="store_true", help="one JSON list, with base_url for each box")
    parser.add_argument(
        "--interface", action="append", metavar="ADDRESS", help="listen only on the interface with this address"
    )


def run_discover_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Browse for ``timeout`` seconds and print the boxes found; 0 if any answered, else 1."""
    out = out or sys.stdout
    timeout = float(getattr(args, "timeout", None) or 2.0)
    boxes = discover(timeout, interfaces=getattr(args, "interface", None))
    if getattr(args, "json", False):
        json.dump([_as_json(box) for box in boxes], out, indent=2)
        out.write("\n")
    elif not boxes:
        out.write(f"no lanai box answered within {timeout:g} s (is multicast allowed on this network?)\n")
    else:
        rows = [("NAME", "URL", "STATE", "VERSION", "GRPC", "ID", "MODELS")]
        for box in boxes:
            models = ",".join(box.models) + (f" (+{box.more_models})" if box.more_models else "")
            grpc = "" if box.grpc_port is None else str(box.grpc_port)
            rows.append((box.name, box.base_url, box.state, box.version, grpc, box.id, models))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1] + "\n")
    return 0 if boxes else 1


def _as_json(box: Box) -> dict[str, object]:
    found: dict[str, object] = asdict(box)
    for key in ("addresses", "tasks", "models"):
        found[key] = list(getattr(box, key))
    found["base_url"] = box.base_url
    return found
