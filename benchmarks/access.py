"""What access control and TLS cost per classify request: plain vs key vs TLS vs mTLS + key.

Four `lanai serve` processes on one store copy each (the bundled model), started once; each round runs
`lanai bench` against every one in turn (alternating order), a few seconds at each concurrency, and the
script prints medians over the rounds and each variant's median ratio to plain, paired by round.

    python benchmarks/access.py --rounds 6 --duration 3 --concurrency 1 16
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from lanai.bundled import DEFAULT_MODEL, ensure_default_model
from lanai.security.certs import TlsFiles, init_authority, issue_client
from lanai.security.keys import KeyRing
from lanai.store import Store

from serving import photo


@dataclass
class Variant:
    name: str
    serve_args: list[str]
    bench_args: list[str]
    client_cert: tuple[str, str] | None = None
    proc: subprocess.Popen[str] | None = None
    url: str = ""


def start(variant: Variant, home: Path, ca: Path) -> None:
    cmd = [sys.executable, "-m", "lanai.cli", "serve", "--home", str(home), "--host", "127.0.0.1", "--port", "0",
           "--no-grpc", "--no-admin-loopback", *variant.serve_args]  # fmt: skip
    variant.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    assert variant.proc.stderr is not None
    for line in variant.proc.stderr:
        found = re.search(r"listening on (https?://\S+)", line)
        if found:
            variant.url = found.group(1).replace("0.0.0.0", "127.0.0.1")
            break
    else:
        raise RuntimeError(f"{variant.name}: lanai serve exited early")
    threading.Thread(target=variant.proc.stderr.read, daemon=True).start()  # never let the log pipe fill
    context = ssl.create_default_context(cafile=str(ca))
    if variant.client_cert is not None:
        context.load_cert_chain(*variant.client_cert)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(variant.url + "/v2/health/ready", verify=context, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{variant.name}: not ready")


def window(variant: Variant, image: Path, concurrency: int, seconds: float) -> dict:
    cmd = [sys.executable, "-m", "lanai.cli", "bench", variant.url, "--model", DEFAULT_MODEL, "--image", str(image),
           "-c", str(concurrency), "-d", str(seconds), "--warmup", "0.5", "--json", *variant.bench_args]  # fmt: skip
    result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    if result["errors"]:
        raise RuntimeError(f"{variant.name}: {result['errors']} errors: {result}")
    return {"rps": result["throughput_rps"], "p50": result["latency_ms"]["p50"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lanai-access-"))
    template = work / "template"
    ensure_default_model(Store(template))
    files = TlsFiles.of(template)
    init_authority(files, names=["localhost"], addresses=["127.0.0.1"])
    client = issue_client(files, "bench")
    key = KeyRing(template).create("bench", "infer")
    image = work / "chelsea.jpg"
    image.write_bytes(photo())
    tls_client = ["--cacert", str(files.ca_cert)]
    variants = [
        Variant("plain", [], []),
        Variant("key", ["--auth", "required"], ["--api-key", key]),
        Variant("tls", ["--tls"], tls_client),
        Variant("mtls+key", ["--mtls", "--auth", "required"],
                [*tls_client, "--cert", str(client.cert), "--key", str(client.key), "--api-key", key],
                (str(client.cert), str(client.key))),
    ]  # fmt: skip
    try:
        for variant in variants:
            home = work / variant.name
            shutil.copytree(template, home)
            start(variant, home, files.ca_cert)
        results: dict[tuple[str, int], list[dict]] = {(v.name, c): [] for v in variants for c in args.concurrency}
        for r in range(args.rounds):
            order = variants if r % 2 == 0 else variants[::-1]
            line = []
            for c in args.concurrency:
                for variant in order:
                    w = window(variant, image, c, args.duration)
                    results[variant.name, c].append(w)
                    line.append(f"{variant.name} c{c} {w['rps']:.1f}/s p50 {w['p50']:.2f} ms")
            print(f"round {r + 1}: " + "  ".join(line), flush=True)
        print(f"\nmedians over {args.rounds} rounds ({args.duration:g} s windows), ratios to plain paired by round")
        for c in args.concurrency:
            base = results["plain", c]
            for variant in variants:
                runs = results[variant.name, c]
                rps = statistics.median(w["rps"] for w in runs)
                p50 = statistics.median(w["p50"] for w in runs)
                ratio = statistics.median(w["rps"] / b["rps"] for w, b in zip(runs, base))
                extra = statistics.median(w["p50"] - b["p50"] for w, b in zip(runs, base))
                print(f"  c{c:<3} {variant.name:<9} {rps:7.1f}/s  p50 {p50:6.2f} ms   {ratio:.3f}× plain   "
                      f"p50 {extra:+.2f} ms")  # fmt: skip
    finally:
        for variant in variants:
            if variant.proc is not None:
                variant.proc.terminate()
                variant.proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
