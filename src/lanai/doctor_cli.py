"""``lanai doctor``: the box's self-test, as lines or as JSON.

Exit status: 0 when every check is ok (or skipped: nothing to check here), 1 when one failed, 3 when the
worst is a warning (not 2: argparse exits 2 on a usage error).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lanai.config import load_settings
from lanai.protocol.doctor import DoctorReport

__all__ = ["add_parser", "run_doctor_command", "EXIT_STATUS"]

EXIT_STATUS = {"ok": 0, "fail": 1, "warn": 3}


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "doctor",
        help="self-test this box: runtimes, accelerators, temperature, governor, memory, disk, network, port, "
        "model speed",
        description="Checks the box and prints one line per check (ok, warn, fail or skip), with a fix for each "
        "warn and fail. Exit status: 0 all ok, 1 a check failed, 3 warnings only.",
    )
    p.add_argument("--config", type=Path, help="a lanai.toml (default: <home>/lanai.toml)")
    p.add_argument("--home", type=Path, help="the model store's directory (env LANAI_HOME)")
    p.add_argument("--json", action="store_true", help="print the report as JSON (for monitoring)")
    p.add_argument("--quick", action="store_true", help="skip the model benchmark")
    p.add_argument("--runs", type=int, default=20, help="timed requests per model (default 20)")
    return p


def run_doctor_command(args: argparse.Namespace) -> int:
    from lanai.doctor import DoctorOptions, run_doctor

    settings = load_settings(config_file=args.config, cli={"home": args.home})
    report = run_doctor(settings, DoctorOptions(benchmark=not args.quick, runs=max(1, args.runs)))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(render(report))
    return EXIT_STATUS[report.status]


def render(report: DoctorReport) -> str:
    """The report as lines: ``ok    governor: performance on 4 core(s)``, a fix under each warn and fail."""
    lines = [f"lanai {report.version} doctor"]
    for check in report.checks:
        lines.append(f"{check.status:<5} {check.name}: {check.message}")
        if check.fix:
            lines.append(f"      fix: {check.fix}")
    counts = {s: sum(c.status == s for c in report.checks) for s in ("ok", "warn", "fail", "skip")}
    lines.append(f"{report.status}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return "\n".join(lines)
