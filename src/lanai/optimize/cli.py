"""``lanai optimize``: the command line over :func:`lanai.optimize.optimize`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from lanai.optimize.choices import CALIBRATIONS, METRICS, MODES

if TYPE_CHECKING:
    from lanai.optimize.gguf import GgufPlan
    from lanai.optimize.pipeline import Plan
    from lanai.store import Store

__all__ = ["add_parser", "run_optimize_command"]

_EPILOG = """\
data: an .npz file with arrays x (samples in the model's input layout) and y (integer classes; leave it
out for an unlabelled set), or a folder of images (one sub-folder per class, named after its label or
index) turned into tensors with --preprocess.

GGUF language models: name a model in the store instead (options under "GGUF" above), e.g.
  lanai optimize smol --quantize q4_0 --max-perplexity-increase 0.1 --min-agreement 0.8

example (examples/digits):
  lanai optimize --name digits --model examples/digits/models.py:teacher --weights teacher.pt \\
      --train train.npz --val val.npz --labels labels.txt \\
      --distil examples/digits/models.py:student --prune 0.5 --quantize static \\
      --preprocess resize=8,crop=8,mean=0,std=255,color=L --fold-preprocess
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "optimize", help="make a trained model smaller and faster, with accuracy checked at every step",
        description="Distil, prune, export, quantise and fold a model; measure every step; store the result.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("source", nargs="?", metavar="MODEL", help="a GGUF model in the store to requantise")
    p.add_argument("--name", help="the store model the result becomes a version of (required for ONNX/PyTorch)")
    p.add_argument("--model", help="pkg.module:factory or file.py:factory, a TorchScript file, or .onnx")
    p.add_argument("--weights", type=Path, help="state-dict file for a factory --model")
    p.add_argument("--val", type=Path, dest="validation", help="validation data (.npz or image folder)")
    p.add_argument("--train", type=Path, help="training data, for --distil and --prune")
    p.add_argument("--calibration", type=Path, help="calibration data for static INT8 (default: --train, else --val)")
    p.add_argument("--labels", type=Path, help="one label per line, in output order")
    p.add_argument("--task", default="classify", choices=["classify", "infer"])
    p.add_argument("--preprocess", help="e.g. resize=256,crop=224,mean=127,std=128 (for image data and serving)")
    g = p.add_argument_group("distil")
    g.add_argument("--distil", metavar="STUDENT", help="train this factory's model against --model")
    g.add_argument("--distil-epochs", type=int, default=30)
    g.add_argument("--distil-lr", type=float, default=3e-3)
    g.add_argument("--temperature", type=float, default=4.0)
    g.add_argument("--alpha", type=float, default=0.7, help="weight of the teacher's soft targets (rest: labels)")
    g = p.add_argument_group("prune")
    g.add_argument("--prune", type=float, metavar="RATIO", help="share of channels to remove, e.g. 0.5")
    g.add_argument("--prune-epochs", type=int, default=10, help="fine-tuning epochs after pruning")
    g.add_argument("--prune-lr", type=float, default=1e-3)
    g = p.add_argument_group("quantise and fold")
    g.add_argument("--quantize", default=None, metavar="MODE",
                   help=f"{', '.join([*MODES, 'none'])} (default auto: static for conv models, dynamic for linear "
                   "ones); for a GGUF model, the llama.cpp type: q4_0, q8_0, q4_k_m…")  # fmt: skip
    g.add_argument(
        "--calibration-method",
        choices=list(CALIBRATIONS),
        default="auto",
        help="auto: try minmax and percentile, with and without float end layers; keep the best",
    )
    g.add_argument("--keep-float-ends", action="store_true", help="leave the first Conv and last dense layer in float")
    g.add_argument("--calibration-samples", type=int, default=256)
    g.add_argument("--fold-preprocess", action="store_true", help="the model takes uint8 pixels (needs --preprocess)")
    g = p.add_argument_group("gate and output")
    g.add_argument("--metric", choices=list(METRICS), default="auto")
    g.add_argument("--max-drop", type=float, default=1.0, help="accuracy points a step may lose (default 1)")
    g.add_argument("--opset", type=int, default=17)
    g.add_argument("--out", type=Path, help="folder for model.onnx and the report (default ./lanai-optimize-NAME)")
    g.add_argument("--activate", action="store_true", help="make the result the active version")
    g.add_argument("--no-store", action="store_true", help="write the model and report only")
    g.add_argument("--measure-seconds", type=float, default=2.0, help="time spent measuring each step's speed")
    g = p.add_argument_group("GGUF (lanai optimize MODEL --quantize TYPE: requantise with llama.cpp, gate on quality)")
    g.add_argument("--from-version", type=int, dest="source_version", help="the source version (default: active)")
    g.add_argument("--max-perplexity-increase", type=float, default=0.10,
                   help="relative perplexity rise allowed on the held-out text (default 0.10: +10 %%)")  # fmt: skip
    g.add_argument("--min-agreement", type=float, default=0.80,
                   help="share of the source's greedy tokens the result must choose too (default 0.8)")  # fmt: skip
    g.add_argument("--text", type=Path, help="held-out text for perplexity (default: CPython's LICENSE.txt)")
    g.add_argument("--window", type=int, default=512, help="perplexity window, in tokens (default 512)")
    g.add_argument("--text-tokens", type=int, default=4096, help="tokens of the text to score, at most")
    g.add_argument("--prompts", type=int, default=20, help="chat prompts for greedy agreement (at most 20)")
    g.add_argument("--answer-tokens", type=int, default=32, help="greedy tokens per answer compared (default 32)")
    p.add_argument("--home", type=Path, help="the model store's directory (env LANAI_HOME)")
    p.set_defaults(optimize_parser=p)
    return p


_VISION_ONLY = ("model", "validation", "weights", "train", "calibration", "labels", "distil", "prune", "preprocess")


def gguf_plan_from_args(args: argparse.Namespace) -> GgufPlan:
    from lanai.optimize.gguf import GgufPlan

    return GgufPlan(
        source=args.source, quantize=args.quantize, version=args.source_version, name=args.name,
        max_perplexity_increase=args.max_perplexity_increase, min_agreement=args.min_agreement, text=args.text,
        window=args.window, max_text_tokens=args.text_tokens, prompts=args.prompts,
        answer_tokens=args.answer_tokens, activate=args.activate, out=args.out,
    )  # fmt: skip


def _flag(dest: str) -> str:
    return "--val" if dest == "validation" else f"--{dest.replace('_', '-')}"


def _check_args(args: argparse.Namespace) -> None:
    """What argparse cannot say: which options each kind of run needs (a usage error, exit status 2)."""
    parser: argparse.ArgumentParser = args.optimize_parser
    if args.source is not None:
        extra = [_flag(o) for o in _VISION_ONLY if getattr(args, o) not in (None, False)]
        if extra:
            parser.error(f"{', '.join(extra)}: for ONNX/PyTorch models, not with a store MODEL to requantise")
        if args.quantize is None:
            parser.error("a GGUF MODEL needs --quantize TYPE (e.g. q4_0, q8_0, q4_k_m)")
        return
    missing = [flag for flag, dest in (("--name", "name"), ("--model", "model"), ("--val", "validation"))
               if getattr(args, dest) is None]  # fmt: skip
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)} (or a GGUF MODEL from the store)")
    if args.quantize is None:
        args.quantize = "auto"
    if args.quantize not in (*MODES, "none"):
        choices = ", ".join(repr(m) for m in (*MODES, "none"))
        parser.error(f"argument --quantize: invalid choice: {args.quantize!r} (choose from {choices})")


def plan_from_args(args: argparse.Namespace) -> Plan:
    from lanai.models_cli import parse_preprocess
    from lanai.optimize.pipeline import DistilStep, Plan, PruneStep
    from lanai.optimize.quantize import QuantizeConfig
    from lanai.optimize.train import TrainConfig

    distil = prune = None
    if args.distil:
        config = TrainConfig(args.distil_epochs, args.distil_lr, temperature=args.temperature, alpha=args.alpha)
        distil = DistilStep(args.distil, config)
    if args.prune is not None:
        config = TrainConfig(args.prune_epochs, args.prune_lr, temperature=args.temperature, alpha=args.alpha)
        prune = PruneStep(args.prune, config)
    quantize = None
    if args.quantize != "none":
        quantize = QuantizeConfig(
            args.quantize, args.calibration_method, args.calibration_samples, args.keep_float_ends
        )
    return Plan(
        name=args.name, model=args.model, validation=args.validation, weights=args.weights, train=args.train,
        calibration=args.calibration, labels=args.labels, task=args.task,
        preprocess=parse_preprocess(args.preprocess) if args.preprocess else None,
        distil=distil, prune=prune, quantize=quantize, fold_preprocess=args.fold_preprocess, metric=args.metric,
        max_drop=args.max_drop, opset=args.opset, activate=args.activate, out=args.out,
        measure_seconds=args.measure_seconds,
    )  # fmt: skip


class EpochBar:
    """``distil [########------------] 12/30  loss 0.0412`` on one line of stderr, when it is a terminal."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.active = stream.isatty()

    def __call__(self, what: str, done: int, total: int, note: str) -> None:
        if not self.active:
            return
        filled = round(20 * done / total)
        end = "\n" if done == total else ""
        self.stream.write(f"\r{what} [{'#' * filled}{'-' * (20 - filled)}] {done}/{total}  {note}\033[K{end}")
        self.stream.flush()


def run_optimize_command(args: argparse.Namespace) -> int:
    from lanai.config import load_settings
    from lanai.store import Store

    _check_args(args)
    if args.source is not None:
        if args.no_store:
            args.optimize_parser.error("--no-store: a GGUF run always stores a passing result (inactive)")
        return _run_gguf(gguf_plan_from_args(args), Store(load_settings(cli={"home": args.home}).home))
    from lanai.optimize.pipeline import optimize

    plan = plan_from_args(args)
    store = None if args.no_store else Store(load_settings(cli={"home": args.home}).home)
    try:
        outcome = optimize(plan, store, progress=EpochBar())
    except KeyboardInterrupt:
        print("interrupted: nothing was added to the store.", file=sys.stderr)
        raise
    except ModuleNotFoundError as exc:  # an optional dependency of a step the plan asked for
        print(f"error: this run needs {exc.name}: pip install 'lanai[optimize]'", file=sys.stderr)
        return 1
    sys.stdout.write(outcome.report.markdown())
    where = outcome.model.parent
    print(f"\nmodel and report: {where}/ (model.onnx, report.md, report.json, report.png)")
    if outcome.manifest is not None:
        m = outcome.manifest
        state = "active" if plan.activate else f"not active: lanai models activate {m.name} {m.version}"
        print(f"stored as {m.name} version {m.version} ({state})")
    return 0


def _run_gguf(plan: GgufPlan, store: Store) -> int:
    from lanai.optimize.gguf import optimize_gguf

    try:
        outcome = optimize_gguf(plan, store)
    except KeyboardInterrupt:
        print("interrupted: nothing was added to the store.", file=sys.stderr)
        raise
    sys.stdout.write(outcome.report.markdown())
    print(f"\nmodel and report: {outcome.model.parent}/ (model.gguf, report.md, report.json, report.png)")
    if outcome.manifest is not None:
        m = outcome.manifest
        state = "active" if plan.activate else f"not active: lanai models activate {m.name} {m.version}"
        print(f"stored as {m.name} version {m.version} ({state})")
    return 0
