"""Helpers for the fuzz tests: hypothesis settings (bounded and reproducible in CI, long on demand), a tally of
what each target answered, the server's liveness, and structure-aware builders of hostile request bodies.

``LANAI_FUZZ_EXAMPLES=5000`` makes every target try that many cases (else the small CI numbers) with a random
seed, printed so that a run can be repeated with ``LANAI_FUZZ_SEED=<seed>``.
"""

from __future__ import annotations

import json
import os
import random
import struct
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

LONG_EXAMPLES = int(os.environ.get("LANAI_FUZZ_EXAMPLES", "0") or 0)
SEED = int(os.environ.get("LANAI_FUZZ_SEED") or random.randrange(2**32)) if LONG_EXAMPLES else 0
REQUEST_TIMEOUT = 30.0
"""Seconds the client waits; every answer must come well within it."""
ANSWER_WITHIN = 20.0


def fuzz_settings(ci_examples: int) -> settings:
    """``ci_examples`` derandomized cases in CI; ``LANAI_FUZZ_EXAMPLES`` random (seeded) cases on demand."""
    return settings(
        max_examples=LONG_EXAMPLES or ci_examples,
        derandomize=not LONG_EXAMPLES,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )


@dataclass
class Tally:
    """Status codes per target, printed at the end of the module."""

    seen: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, target: str, status: int | str) -> None:
        self.seen[target][str(status)] += 1

    def report(self) -> str:
        lines = [f"fuzz tally (seed {SEED if LONG_EXAMPLES else 'derandomized'}):"]
        for target in sorted(self.seen):
            counts = self.seen[target]
            total = sum(counts.values())
            fives = sum(n for code, n in counts.items() if code.startswith("5"))
            codes = ", ".join(f"{code}×{n}" for code, n in sorted(counts.items()))
            lines.append(f"  {target}: {total} cases, {fives} 5xx ({codes})")
        return "\n".join(lines)


TALLY = Tally()


def assert_alive(url: str) -> None:
    """The server still answers its liveness probe (with a fresh connection)."""
    answer = httpx.get(url + "/health/live", timeout=10)
    assert answer.status_code == 200, f"/health/live answered {answer.status_code}: {answer.text[:200]}"


def assert_sane(target: str, response: httpx.Response, *, valid: bool = False) -> None:
    """Never a 5xx, always within the time limit; 200 when the request was valid."""
    TALLY.add(target, response.status_code)
    elapsed = response.elapsed.total_seconds()
    assert elapsed < ANSWER_WITHIN, f"{target} took {elapsed:.1f} s"
    assert response.status_code < 500, f"{target} answered {response.status_code}: {response.text[:500]}"
    if valid:
        assert response.status_code == 200, f"{target} refused a valid request: {response.text[:500]}"
    else:
        assert 200 <= response.status_code < 500


# -- the Open Inference Protocol's binary tensor extension -------------------------------------------------

DATATYPES = ["BOOL", "UINT8", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"]
ITEMSIZE = {"BOOL": 1, "UINT8": 1, "INT8": 1, "INT16": 2, "INT32": 4, "INT64": 8, "FP16": 2, "FP32": 4, "FP64": 8}

dims = st.one_of(
    st.integers(0, 9),
    st.sampled_from([3, 8, 2**31, 2**40, 2**62, 2**63, 2**64 + 1, -1, -(2**40)]),
)
shapes = st.one_of(st.just([1, 3, 8, 8]), st.lists(dims, max_size=5))


@dataclass
class OipBody:
    body: bytes
    headers: dict[str, str]
    valid: bool


def _bytes_elements(draw: st.DrawFn) -> bytes:
    """A BYTES tensor whose 4-byte length prefixes may lie."""
    parts = []
    for item in draw(st.lists(st.binary(max_size=12), max_size=4)):
        claimed = draw(st.one_of(st.just(len(item)), st.integers(0, 2**32 - 1)))
        parts.append(struct.pack("<I", claimed) + item)
    return b"".join(parts) + draw(st.sampled_from([b"", b"\x01", b"\xff\xff"]))


@st.composite
def oip_bodies(draw: st.DrawFn) -> OipBody:
    """A binary-extension infer request for "tiny" ([N,3,8,8] FP32) that is valid or lies somewhere."""
    valid = draw(st.booleans())
    if valid:
        batch = draw(st.integers(1, 4))
        shape, datatype, name = [batch, 3, 8, 8], "FP32", "input"
        raw = struct.pack(f"<{batch * 192}f", *[draw(st.floats(-1e3, 1e3, width=32)) for _ in range(4)] * batch * 48)
        entries = [{"name": name, "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": len(raw)}}]
        header = json.dumps({"inputs": entries}).encode()
        return OipBody(header + raw, {"Inference-Header-Content-Length": str(len(header))}, True)
    entries: list[Any] = []
    blobs = []
    for _ in range(draw(st.integers(0, 2))):
        datatype = draw(st.one_of(st.sampled_from(DATATYPES), st.text(max_size=6)))
        shape = draw(shapes)
        if datatype == "BYTES" and draw(st.booleans()):
            raw = _bytes_elements(draw)
        else:
            count = 1
            for d in shape:
                count *= max(d, 0)
            true_size = count * ITEMSIZE.get(datatype, 4)
            size = true_size if true_size <= 4096 and draw(st.booleans()) else draw(st.integers(0, 64))
            raw = draw(st.binary(min_size=size, max_size=size))
        claimed = draw(
            st.one_of(
                st.just(len(raw)),
                st.integers(-5, len(raw) + 5),
                st.sampled_from([2**40, -(2**63), 1.5, "12", None, True]),
            )
        )
        entry: dict[str, Any] = {
            "name": draw(st.sampled_from(["input", "INPUT", "", "x"])),
            "datatype": datatype,
            "shape": shape,
        }
        if draw(st.booleans()):
            entry["parameters"] = {"binary_data_size": claimed}
        else:
            entry["data"] = draw(st.one_of(st.lists(st.floats(allow_nan=True), max_size=8), st.text(max_size=8)))
        entries.append(entry)
        blobs.append(raw)
    doc: dict[str, Any] = {"inputs": entries}
    if draw(st.booleans()):
        doc["outputs"] = [{"name": draw(st.sampled_from(["logits", "nope"])), "parameters": {"binary_data": True}}]
    if draw(st.booleans()):
        doc["parameters"] = draw(st.sampled_from([{"binary_data_output": True}, [], "x", {"priority": 2**70}]))
    header = json.dumps(doc).encode()
    body = header + b"".join(blobs)
    if draw(st.booleans()):  # a truncated body
        body = body[: draw(st.integers(0, len(body)))]
    length = draw(
        st.one_of(
            st.just(str(len(header))),
            st.integers(-3, len(body) + 3).map(str),
            st.sampled_from(["abc", "1e3", "0x10", "-0", "+5", "\u00b2", "\u00b9\u00b3", str(2**70), "12 34"]),
            st.none(),
        )
    )
    headers = {"Content-Type": draw(st.sampled_from(["application/octet-stream", "application/json", "text/x"]))}
    if length is not None:
        headers["Inference-Header-Content-Length"] = length
    return OipBody(body, headers, False)


# -- multipart forms -----------------------------------------------------------------------------------------


@dataclass
class Form:
    body: bytes
    content_type: str


@st.composite
def multipart_forms(draw: st.DrawFn, image: bytes) -> Form:
    """A multipart body, broken in one or more ways: boundaries that never close or differ from the header,
    missing parts, huge part headers, parts without Content-Disposition or separator, wrong content types."""
    boundary = draw(st.sampled_from(["b0undary", "x", "----WebKitFormBoundary7MA4YWxkTrZu0gW", "a" * 80]))
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        field_name = draw(st.sampled_from(["file", "image", "other", "", 'fi"le']))
        lines = []
        if draw(st.integers(0, 5)):
            filename = draw(st.sampled_from(['; filename="p.png"', "", "; filename", '; filename="' + "a" * 300]))
            lines.append(f'Content-Disposition: form-data; name="{field_name}"{filename}')
        if draw(st.booleans()):
            lines.append("Content-Type: " + draw(st.sampled_from(["image/png", "text/plain", "x/y", "image/*"])))
        if draw(st.integers(0, 9)) == 0:
            lines.append("X-Pad: " + "h" * draw(st.sampled_from([1000, 70_000, 600_000])))
        content = draw(st.one_of(st.just(image), st.binary(max_size=64), st.just(image[: len(image) // 2])))
        separator = draw(st.sampled_from([b"\r\n\r\n"] * 5 + [b"\r\n", b"\n\n"]))
        parts.append("\r\n".join(lines).encode("latin-1") + separator + content + b"\r\n")
    delimiter = b"--" + draw(st.sampled_from([boundary, boundary[:-1], boundary + "z"])).encode()
    body = b"".join(delimiter + b"\r\n" + part for part in parts)
    body += draw(st.sampled_from([delimiter + b"--\r\n", b"", delimiter, b"--" + b"\r\n"]))
    content_type = draw(
        st.sampled_from(
            [
                f"multipart/form-data; boundary={boundary}",
                f'multipart/form-data; boundary="{boundary}"',
                "multipart/form-data",
                "multipart/form-data; boundary=",
                "multipart/mixed; boundary=other",
                "image/png",
                "application/json",
                "",
            ]
        )
    )
    return Form(body, content_type)


def valid_form(image: bytes, field_name: str = "file") -> Form:
    boundary = "fuzzbound"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; filename="p.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return Form(body, f"multipart/form-data; boundary={boundary}")
