"""The record of an optimisation run: one row per step, written as Markdown, JSON and a PNG chart."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lanai.optimize.evaluate import Accuracy, Speed

__all__ = ["StepResult", "Report", "REPORT_FILES"]

REPORT_FILES = {"report.md": "report_md", "report.json": "report_json", "report.png": "report_png"}
"""File name → the role it has among a store version's files."""


@dataclass(frozen=True)
class StepResult:
    step: str
    """original, distil, prune, quantize or fold."""
    description: str
    accuracy: Accuracy
    speed: Speed
    drop: float | None = None
    """Accuracy points lost against the step before (None for the first step, or with no metric)."""
    notes: tuple[str, ...] = ()


@dataclass
class Report:
    name: str
    metric: str
    max_drop: float
    validation: str
    steps: list[StepResult] = field(default_factory=list)
    status: str = "running"
    """running, passed, failed (a step lost too much, or could not run) or interrupted."""
    failure: str | None = None
    version: int | None = None
    """The store version the final model became."""
    machine: str = field(default_factory=lambda: _machine())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # -- Markdown ------------------------------------------------------------------------------------

    def markdown(self) -> str:
        passed = f"every step kept within {self.max_drop:g} point(s) of the one before"
        lines = report_head(self.name, self.status, passed, self.failure, self.version)
        lines += [
            f"Accuracy: {_metric_text(self.metric)} on {self.validation}. Speed: onnxruntime CPU on {self.machine}; "
            "latency at batch 1, throughput at batch 8.",
            "",
            "| step | size | parameters | latency p50 / p95 | throughput | accuracy | change |",
            "|---|---|---|---|---|---|---|",
        ]
        first = self.steps[0] if self.steps else None
        for s in self.steps:
            smaller = (
                f" ({first.speed.size_bytes / s.speed.size_bytes:.1f}× smaller)" if first and s is not first else ""
            )
            lines.append(
                f"| {s.step} | {_size(s.speed.size_bytes)}{smaller} | {s.speed.parameters:,} "
                f"| {s.speed.latency_p50_ms:.3f} / {s.speed.latency_p95_ms:.3f} ms | {s.speed.throughput:,.0f}/s "
                f"| {_accuracy(s.accuracy)} | {_drop(s.drop)} |"
            )
        return "\n".join(lines + steps_section(self.steps)) + "\n"

    # -- files ---------------------------------------------------------------------------------------

    def write(self, folder: Path) -> dict[str, Path]:
        """Write report.md, report.json and (with matplotlib) report.png; return them by file name."""
        return write_report(folder, self.markdown(), self.to_dict(), self._chart if self.steps else None)

    def _chart(self, path: Path) -> bool:
        panels = [
            ("size (kB)", [s.speed.size_bytes / 1e3 for s in self.steps]),
            ("latency p50, batch 1 (ms)", [s.speed.latency_p50_ms for s in self.steps]),
            ("throughput, batch 8 (samples/s)", [s.speed.throughput for s in self.steps]),
            (f"{self.metric} (%)", [s.accuracy.value or 0.0 for s in self.steps]),
        ]
        title = f"lanai optimize: {self.name}"
        return bar_chart(path, [s.step for s in self.steps], panels, title, rotate=True, zoom_percent=True)


def bar_chart(path: Path, labels: list[str], panels: list[tuple[str, list[float]]], title: str, *,
              rotate: bool = False, zoom_percent: bool = False) -> bool:  # fmt: skip
    """One bar panel per figure, the first bar (the source model) grey, as report.png; False without
    matplotlib. ``rotate`` slants the labels; ``zoom_percent`` scales a panel titled "… (%)" to its
    values' range below 100."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4), constrained_layout=True)
    for ax, (name, values) in zip(axes, panels):
        bars = ax.bar(labels, values, color=["#8c8c8c"] + ["#2a7ab9"] * (len(values) - 1))
        ax.set_title(name, fontsize=10)
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        ax.tick_params(axis="x", labelrotation=30 if rotate else 0, labelsize=8)
        if zoom_percent and name.endswith("(%)"):
            ax.set_ylim(max(0.0, min(values) - 5), 100.5)
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, Python {platform.python_version()}"
    )


def _metric_text(metric: str) -> str:
    return {
        "top1": "top-1 accuracy (top-5 in brackets)",
        "agreement": "agreement with the original model's top-1",
        "fidelity": "cosine similarity with the original model's outputs",
        "none": "not measured",
    }.get(metric, metric)


def report_head(name: str, status: str, passed: str, failure: str | None, version: int | None) -> list[str]:
    """A report's first Markdown lines: its title, the verdict, and the version it was stored as."""
    verdict = {"passed": f"**passed**: {passed}", "failed": f"**failed**: {failure}",
               "interrupted": "**interrupted**", "running": "running"}[status]  # fmt: skip
    lines = [f"# lanai optimize: {name}", "", f"Result: {verdict}.", ""]
    if version is not None:
        lines += [f"Stored as {name} version {version}.", ""]
    return lines


def steps_section(steps: Any) -> list[str]:
    """A report's last Markdown lines: what each step did, with its notes."""
    lines = ["", "## Steps", ""]
    for step in steps:
        lines.append(f"- **{step.step}**: {step.description}")
        lines += [f"  - note: {note}" for note in step.notes]
    return lines


def write_report(folder: Path, markdown: str, data: dict[str, Any], chart: Any = None) -> dict[str, Path]:
    """A report's files in ``folder``: report.md, report.json and, when ``chart(path)`` draws one (it needs
    matplotlib), report.png. The vision and GGUF reports are stored the same way, by these names."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {"report.md": folder / "report.md", "report.json": folder / "report.json"}
    written["report.md"].write_text(markdown, encoding="utf-8")
    written["report.json"].write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if chart is not None and chart(folder / "report.png"):
        written["report.png"] = folder / "report.png"
    return written


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _accuracy(a: Accuracy) -> str:
    if a.value is None:
        return "—"
    return f"{a.value:.2f} %" + (f" ({a.top5:.2f} %)" if a.top5 is not None else "")


def _drop(drop: float | None) -> str:
    if drop is None:
        return ""
    change = -drop
    return "±0.00 points" if abs(change) < 0.005 else f"{change:+.2f} points"
