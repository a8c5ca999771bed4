"""Regenerate lanai's gRPC modules from ``src/lanai/grpc/inference.proto``.

    pip install grpcio-tools      # the same minor release as the grpcio the extra pins
    python scripts/build_grpc.py

Writes ``inference_pb2.py``, ``inference_pb2.pyi`` and ``inference_pb2_grpc.py`` next to the proto; they
are committed, so installing lanai never needs protoc. Run it after every change to the proto, and pin
``protobuf>=`` in the ``grpc`` extra to the "Protobuf Python Version" the new ``inference_pb2.py`` names
(and ``grpcio>=`` to its ``GRPC_GENERATED_VERSION``): the generated code refuses older runtimes.

Two changes are made to what protoc writes:

- The messages are built in a descriptor pool of their own (``inference_pb2.POOL``), not in protobuf's
  default pool. ``tritonclient.grpc`` registers the same message names (``inference.ModelInferRequest``…)
  from its own file in the default pool, and protobuf refuses a second definition of a name there, so
  with the default pool a process could not import both lanai's server and Triton's client. The wire
  format does not depend on the pool.
- A header tells mypy and ruff's linter to leave the generated code (and its stub) alone; ruff format
  formats them like the rest of the tree.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "src"
PROTO = Path("lanai/grpc/inference.proto")
HEADER = "# mypy: ignore-errors\n# ruff: noqa\n"
DEFAULT_POOL = "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile("
OWN_POOL = "POOL = _descriptor_pool.DescriptorPool()\nDESCRIPTOR = POOL.AddSerializedFile("


def main() -> int:
    command = [
        sys.executable, "-m", "grpc_tools.protoc", f"-I{SOURCES}", f"--python_out={SOURCES}",
        f"--pyi_out={SOURCES}", f"--grpc_python_out={SOURCES}", str(SOURCES / PROTO),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr or "protoc failed.\n")
        if "No module named grpc_tools" in result.stderr:
            sys.stderr.write("Hint: pip install grpcio-tools\n")
        return 1
    folder = SOURCES / PROTO.parent
    messages = folder / "inference_pb2.py"
    text = messages.read_text(encoding="utf-8")
    if text.count(DEFAULT_POOL) != 1:
        sys.stderr.write(f"{messages}: protoc's output has changed shape; cannot move it to its own pool.\n")
        return 1
    messages.write_text(HEADER + text.replace(DEFAULT_POOL, OWN_POOL), encoding="utf-8")
    stub = folder / "inference_pb2.pyi"
    stub.write_text(HEADER + _declare_pool(stub.read_text(encoding="utf-8")), encoding="utf-8")
    service = folder / "inference_pb2_grpc.py"
    service.write_text(HEADER + service.read_text(encoding="utf-8"), encoding="utf-8")
    written = [messages, stub, service]
    _format(written)
    for path in written:
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


def _format(paths: list[Path]) -> None:
    """ruff format them as the rest of the tree, so that ``ruff format --check .`` stays clean."""
    result = subprocess.run([sys.executable, "-m", "ruff", "format", "--quiet", *map(str, paths)], capture_output=True)
    if result.returncode != 0:
        print("note: ruff is not installed here, so the generated files are left as protoc wrote them.")


def _declare_pool(stub: str) -> str:
    """The type stub, with ``POOL`` declared next to ``DESCRIPTOR``."""
    declared = "DESCRIPTOR: _descriptor.FileDescriptor\n"
    pool = "from google.protobuf import descriptor_pool as _descriptor_pool\n\nPOOL: _descriptor_pool.DescriptorPool\n"
    return stub.replace(declared, pool + declared, 1)


if __name__ == "__main__":
    sys.exit(main())
