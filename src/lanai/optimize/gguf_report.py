"""The report of ``lanai optimize`` on a GGUF language model: the same files and roles as the vision
pipeline's (report.md, report.json, report.png; ``lanai models show`` prints report.md), with the
measures that fit a language model: perplexity and greedy agreement instead of accuracy."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lanai.optimize.report import _machine, _size, bar_chart, report_head, steps_section, write_report

__all__ = ["GgufStep", "GgufReport"]


@dataclass(frozen=True)
class GgufStep:
    step: str
    """original or quantize."""
    description: str
    file_type: str
    size_bytes: int
    perplexity: float
    agreement: float | None = None
    """Share of the original's greedy tokens the model chose too (None for the original)."""
    exact: float | None = None
    """Share of prompts answered token for token as the original did."""
    notes: tuple[str, ...] = ()


@dataclass
class GgufReport:
    name: str
    text: str
    """The held-out text and how many tokens of it were scored."""
    prompts: str
    max_perplexity_increase: float
    min_agreement: float
    steps: list[GgufStep] = field(default_factory=list)
    status: str = "running"
    failure: str | None = None
    version: int | None = None
    machine: str = field(default_factory=lambda: _machine())

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "gguf", **asdict(self)}

    def markdown(self) -> str:
        passed = (f"perplexity within +{self.max_perplexity_increase:.0%} of the original's, "
                  f"greedy agreement at least {self.min_agreement:.0%}")  # fmt: skip
        lines = report_head(self.name, self.status, passed, self.failure, self.version)
        lines += [
            f"Perplexity: {self.text}. Agreement: {self.prompts}. Measured with llama.cpp on {self.machine}.",
            "",
            "| step | type | size | perplexity | change | token agreement | exact answers |",
            "|---|---|---|---|---|---|---|",
        ]
        first = self.steps[0] if self.steps else None
        for s in self.steps:
            ratio = ""
            if first is not None and s is not first:
                factor = first.size_bytes / s.size_bytes
                ratio = f" ({factor:.2f}× smaller)" if factor >= 1 else f" ({1 / factor:.2f}× larger)"
            change = "" if first is None or s is first else f"{s.perplexity / first.perplexity - 1:+.1%}"
            agree = "—" if s.agreement is None else f"{s.agreement:.1%}"
            exact = "—" if s.exact is None else f"{s.exact:.0%}"
            lines.append(
                f"| {s.step} | {s.file_type} | {_size(s.size_bytes)}{ratio} | {s.perplexity:.3f} | {change} "
                f"| {agree} | {exact} |"
            )
        return "\n".join(lines + steps_section(self.steps)) + "\n"

    def write(self, folder: Path) -> dict[str, Path]:
        """Write report.md, report.json and (with matplotlib) report.png; return them by file name."""
        return write_report(folder, self.markdown(), self.to_dict(), self._chart if self.steps else None)

    def _chart(self, path: Path) -> bool:
        labels = [f"{s.step}\n{s.file_type}" for s in self.steps]
        panels = [
            ("size (MB)", [s.size_bytes / 1e6 for s in self.steps]),
            ("perplexity", [s.perplexity for s in self.steps]),
            ("greedy token agreement (%)", [100.0 if s.agreement is None else 100 * s.agreement for s in self.steps]),
        ]
        return bar_chart(path, labels, panels, f"lanai optimize: {self.name}")
