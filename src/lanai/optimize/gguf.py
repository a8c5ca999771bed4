"""``lanai optimize MODEL --quantize TYPE``: requantise a GGUF language model from the store with
llama.cpp's own quantiser, and keep the result only if its quality holds up against the source.

Any source type llama.cpp reads can be quantised: F32, F16 and BF16 files are quantised in the ordinary
way; an already quantised file (SmolLM2's Q4_1, say) is *requantised*: llama.cpp dequantises each tensor
and quantises it again, which it only does with ``allow_requantize`` set, because the new rounding adds
to the old. Either way the result is measured against the source (``gguf_quality``): perplexity on a
held-out text and greedy agreement on chat prompts. Like the vision pipeline, a result that loses more
than allowed is not stored: the report goes to the output folder and the command fails saying why. A
result that passes becomes a new version of the model, inactive unless asked, with the report attached.
"""

from __future__ import annotations

import ctypes
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lanai.errors import OptimizeError
from lanai.optimize.gguf_report import GgufReport, GgufStep
from lanai.optimize.report import REPORT_FILES
from lanai.store import Manifest, Store
from lanai.telemetry.cpus import usable_cpus

__all__ = ["GGUF_TYPES", "GgufPlan", "GgufOutcome", "optimize_gguf", "requantize", "file_type_name"]

log = logging.getLogger(__name__)

Inspect = Callable[[Path], Any]

GGUF_TYPES = {
    "q4_0": 2, "q4_1": 3, "q5_0": 8, "q5_1": 9, "q8_0": 7,
    "q2_k": 10, "q3_k_s": 11, "q3_k_m": 12, "q3_k_l": 13, "q4_k_s": 14, "q4_k_m": 15,
    "q5_k_s": 16, "q5_k_m": 17, "q6_k": 18, "iq4_nl": 25, "iq4_xs": 30, "f16": 1, "bf16": 32,
}  # fmt: skip
"""Target types (llama.cpp's ``llama_ftype`` numbers) that need no importance matrix. K-quants work on
rows of 256 values: tensors narrower than that fall back to a 32-wide type (llama.cpp says which)."""

_FLOAT_TYPES = {0: "f32", 1: "f16", 32: "bf16"}
_TYPE_NAMES = {**{v: k for k, v in GGUF_TYPES.items()}, **_FLOAT_TYPES}


@dataclass(frozen=True)
class GgufPlan:
    source: str
    """The store model to requantise."""
    quantize: str
    version: int | None = None
    """The source version (None: the active one)."""
    name: str | None = None
    """The model the result becomes a version of (default: the source's)."""
    max_perplexity_increase: float = 0.10
    min_agreement: float = 0.80
    text: Path | None = None
    """The held-out text for perplexity (default: see ``gguf_quality.default_text``)."""
    window: int = 512
    max_text_tokens: int = 4096
    prompts: int = 20
    answer_tokens: int = 32
    activate: bool = False
    out: Path | None = None
    threads: int = 0


@dataclass(frozen=True)
class GgufOutcome:
    report: GgufReport
    model: Path
    manifest: Manifest | None


def optimize_gguf(plan: GgufPlan, store: Store, *, inspect: Inspect | None = None) -> GgufOutcome:
    """Requantise ``plan.source`` to ``plan.quantize``, measure both, gate, and store a passing result."""
    target = plan.quantize.lower()
    if target not in GGUF_TYPES:
        raise OptimizeError(
            "quantize", f"unknown GGUF type {plan.quantize!r}.", hint=f"one of {', '.join(GGUF_TYPES)}."
        )
    if plan.window < 2 or plan.max_text_tokens < 2 or plan.prompts < 0 or plan.answer_tokens < 1:
        raise OptimizeError(
            "measure", "--window and --text-tokens must be at least 2, --answer-tokens at least 1, --prompts ≥ 0.",
            hint="leave them at their defaults unless a run must be quicker.",
        )  # fmt: skip
    source = store.manifest(plan.source, plan.version)
    if source.backend != "llamacpp":
        raise OptimizeError(
            "load",
            f"{source.name} version {source.version} is a {source.backend} model, not a GGUF language model.",
            hint="give a llama.cpp model from the store, or optimise ONNX/PyTorch models with --name, --model "
            "and --val.",
        )
    name = plan.name or source.name
    out = Path(plan.out or f"lanai-optimize-{name}")
    out.mkdir(parents=True, exist_ok=True)
    from lanai.optimize import gguf_quality as quality

    text = quality.default_text() if plan.text is None else _read_text(plan.text)
    prompts = quality.PROMPTS[: plan.prompts]
    report = GgufReport(
        name, text.source, f"greedy answers of up to {plan.answer_tokens} tokens to {len(prompts)} chat prompts",
        plan.max_perplexity_increase, plan.min_agreement,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix=".lanai-optimize-", dir=out) as tmp:
        try:
            model = _run(plan, store, source, target, report, text.text, prompts, Path(tmp))
            report.status = "passed"
            final = out / "model.gguf"
            shutil.move(model, final)
            manifest = _register(store, plan, name, source, final, report, Path(tmp), inspect)
            report.version = manifest.version
            report.write(out)
            return GgufOutcome(report, final, manifest)
        except OptimizeError as exc:
            report.status, report.failure = "failed", str(exc)
            report.write(out)
            raise
        except KeyboardInterrupt:
            report.status = "interrupted"
            report.write(out)
            raise


def _run(
    plan: GgufPlan, store: Store, source: Manifest, target: str, report: GgufReport, text: str,
    prompts: tuple[str, ...], work: Path,
) -> Path:  # fmt: skip
    threads = plan.threads or usable_cpus().count
    source_path = store.file_path(source, "model")
    source_type = file_type_name(source_path)
    if source_type == target:
        message = f"{source.name} version {source.version} is already {target.upper()}."
        raise OptimizeError("quantize", message, hint="pick another type.")
    requantise = source_type not in _FLOAT_TYPES.values()
    original = _measure(source_path, text, prompts, plan, threads, None)
    report.text = f"{report.text}, {original.scored} tokens in windows of {plan.window}"
    report.steps.append(
        GgufStep("original", f"{source.name} version {source.version}", source_type.upper(),
                 source_path.stat().st_size, original.perplexity)
    )  # fmt: skip
    log.info("original %s: perplexity %.3f", source_type, original.perplexity)
    candidate = work / "model.gguf"
    requantize(source_path, candidate, target, allow_requantize=requantise, threads=threads)
    measured = _measure(candidate, text, prompts, plan, threads, original.answers)
    assert measured.agreement is not None
    agreement = measured.agreement
    how = "requantised" if requantise else "quantised"
    notes = []
    if requantise:
        notes.append(
            f"from {source_type.upper()}: llama.cpp dequantised each tensor and quantised it again "
            "(allow_requantize); the rounding adds to the source's own"
        )
    step = GgufStep(
        "quantize", f"{how} to {target.upper()} with llama.cpp's llama_model_quantize (default parameters)",
        target.upper(), candidate.stat().st_size, measured.perplexity, agreement.token_rate, agreement.exact_rate,
        tuple(notes),
    )  # fmt: skip
    report.steps.append(step)
    log.info("%s: perplexity %.3f, agreement %.3f", target, measured.perplexity, agreement.token_rate)
    _gate(plan, original.perplexity, step)
    return candidate


def _gate(plan: GgufPlan, original: float, step: GgufStep) -> None:
    increase = step.perplexity / original - 1
    if increase > plan.max_perplexity_increase:
        raise OptimizeError(
            "quantize",
            f"perplexity rose from {original:.3f} to {step.perplexity:.3f} ({increase:+.1%}, more than "
            f"--max-perplexity-increase {plan.max_perplexity_increase:g}).",
            hint="pick a type with more bits (q5_k_m, q8_0), or allow more with --max-perplexity-increase.",
        )
    assert step.agreement is not None
    if step.agreement < plan.min_agreement:
        raise OptimizeError(
            "quantize",
            f"greedy token agreement with the source is {step.agreement:.1%}, under --min-agreement "
            f"{plan.min_agreement:g}.",
            hint="pick a type with more bits (q5_k_m, q8_0), or allow less with --min-agreement.",
        )


@dataclass(frozen=True)
class _Measured:
    perplexity: float
    scored: int
    answers: list[list[int]]
    agreement: Any = None


def _measure(
    path: Path, text: str, prompts: tuple[str, ...], plan: GgufPlan, threads: int, reference: list[list[int]] | None
) -> _Measured:
    from lanai.optimize import gguf_quality as quality

    backend = quality.load(path, n_ctx=plan.window, parallel=1, threads=threads)
    try:
        ppl, scored = quality.perplexity(backend, text, window=plan.window, max_tokens=plan.max_text_tokens)
    finally:
        backend.close()
    if not prompts:
        return _Measured(ppl, scored, [], quality.Agreement(0, 0, 0, 0))
    backend = quality.load(path, n_ctx=256 + plan.answer_tokens, parallel=len(prompts), threads=threads)
    try:
        if reference is None:
            return _Measured(ppl, scored, quality.greedy_answers(backend, prompts, plan.answer_tokens))
        return _Measured(ppl, scored, reference, quality.agreement(backend, prompts, reference))
    finally:
        backend.close()


def requantize(source: Path, target: Path, file_type: str, *, allow_requantize: bool, threads: int = 0) -> None:
    """llama.cpp's ``llama_model_quantize`` with its default parameters, to ``file_type``."""
    from lanai.backends.llamacpp import _require

    lib = _require()
    params = lib.llama_model_quantize_default_params()
    params.ftype = GGUF_TYPES[file_type]
    params.allow_requantize = allow_requantize
    params.nthread = threads
    log.info("quantize: %s → %s (%s)", source.name, file_type, "requantising" if allow_requantize else "from floats")
    status = lib.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
    if status != 0 or not target.is_file():
        raise OptimizeError(
            "quantize",
            f"llama.cpp's quantiser could not make {file_type.upper()} from {source.name} (status {status}).",
            hint="run with --log-level debug to see llama.cpp's reason; some types need an importance matrix.",
        )


def file_type_name(path: Path) -> str:
    """The GGUF's ``general.file_type`` by name (``q4_1``, ``f32``…), read without loading the weights."""
    from lanai.backends.llamacpp import _require

    lib = _require()
    params = lib.llama_model_default_params()
    params.vocab_only = True
    model = lib.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise OptimizeError("load", f"llama.cpp cannot read {path.name}.", hint="is it a GGUF file?")
    try:
        buffer = ctypes.create_string_buffer(32)
        n = lib.llama_model_meta_val_str(model, b"general.file_type", buffer, len(buffer))
        number = int(buffer.value) if n > 0 else 0  # an absent file type means all F32 (llama.cpp's default)
    finally:
        lib.llama_model_free(model)
    return _TYPE_NAMES.get(number, f"type{number}")


def _read_text(path: Path) -> Any:
    from lanai.optimize.gguf_quality import HeldOutText

    if not path.is_file():
        raise OptimizeError("data", f"{path} does not exist.", hint="give a UTF-8 text file with --text.")
    return HeldOutText(path.read_text(encoding="utf-8", errors="replace"), str(path))


def _register(
    store: Store, plan: GgufPlan, name: str, source: Manifest, model: Path, report: GgufReport, work: Path,
    inspect: Inspect | None,
) -> Manifest:  # fmt: skip
    from lanai.bundled import inspector

    report.status = "passed"
    files = report.write(work / "report")
    attachments = {REPORT_FILES[file]: path for file, path in files.items()}
    final = report.steps[-1]
    provenance = {
        "optimized_from": f"{source.name} version {source.version}",
        "source_digest": source.files["model"].sha256,
        "quantization": f"{report.steps[0].file_type} → {final.file_type} (llama_model_quantize)",
        "perplexity": round(final.perplexity, 4),
        "agreement": round(final.agreement or 0.0, 4),
    }
    return store.add(
        model,
        name=name,
        task=source.task,
        backend="llamacpp",
        inspect=inspect or inspector("llamacpp"),
        batching=source.batching,
        backend_options=dict(source.backend_options),
        provenance=provenance,
        attachments=attachments,
        activate=plan.activate,
    )
