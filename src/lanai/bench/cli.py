"""``lanai bench``: argument handling around :func:`lanai.bench.run`.

Image runs use the raw-socket load generator (``loadgen``), not :mod:`lanai.client`: on a 2-core box the
client (httpx) spends ~1.2-1.5 ms of CPU per classify request against the generator's ~0.14 ms, which
took 10-20 % of the server's throughput when both shared the box. Chat runs (``--chat``), bounded by
token generation, use :class:`lanai.client.AsyncClient`.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from lanai.bench.config import BenchConfig
from lanai.bench.loadgen import run
from lanai.bench.progress import ProgressBar
from lanai.bench.requests import RequestSpec, multipart_request, raw_image_request
from lanai.errors import BadInput

__all__ = ["run_bench_command", "sample_photo"]


def sample_photo() -> bytes:
    """scikit-image's ``chelsea`` (a real photo of a cat) as a quality-90 JPEG."""
    try:
        from PIL import Image
        from skimage import data
    except ImportError:
        raise BadInput(
            "no --image given, and scikit-image (which has the sample photo) is not installed.",
            hint="pass --image photo.jpg, or pip install scikit-image.",
        ) from None
    buffer = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _request(args: argparse.Namespace) -> RequestSpec:
    if args.image is not None:
        try:
            image = args.image.read_bytes()
        except OSError as exc:
            raise BadInput(f"cannot read --image {args.image}: {exc.strerror}.") from None
    else:
        image = sample_photo()
    path = args.endpoint or (f"/v1/models/{args.model}/classify" if args.model else "/v1/infer")
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else None
    if args.mode == "raw":
        return raw_image_request(path, image, headers=headers)
    return multipart_request(path, image, Path(args.image or "chelsea.jpg").name, headers=headers)


def run_bench_command(args: argparse.Namespace) -> int:
    duration = args.duration if args.duration is not None or args.requests is not None else 10.0
    if args.chat:
        return _run_chat(args, duration)
    try:
        config = BenchConfig(
            args.url, _request(args), args.concurrency, duration=duration, requests=args.requests,
            warmup=args.warmup, timeout=args.timeout, cafile=args.cacert, certfile=args.cert, keyfile=args.key,
        )  # fmt: skip
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    progress = None if args.no_progress or args.json else ProgressBar()
    try:
        result = run(config, progress)
    except ConnectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.format_text())
    return 0 if result.ok else 1


def _run_chat(args: argparse.Namespace, duration: float | None) -> int:
    import asyncio
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request in the report

    from lanai.bench.chat import ChatBenchConfig, run_chat

    try:
        config = ChatBenchConfig(
            args.url, args.chat, args.prompt, args.max_tokens, args.concurrency, duration=duration,
            requests=args.requests, timeout=args.timeout,
        )  # fmt: skip
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    result = asyncio.run(run_chat(config))
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.format_text())
    return 0 if result.ok else 1
