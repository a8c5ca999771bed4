"""The names ``lanai optimize`` accepts, in a module light enough for the command line's help."""

from __future__ import annotations

__all__ = ["METRICS", "MODES", "METHODS", "CALIBRATIONS"]

METRICS = ("auto", "top1", "agreement", "fidelity", "none")
"""How a step is scored: see ``evaluate.resolve_metric``."""
MODES = ("auto", "static", "dynamic")
"""Quantisation modes: auto picks static for conv models, dynamic for linear ones."""
METHODS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}
"""Calibration methods for static quantisation, with onnxruntime's names."""
CALIBRATIONS = ("auto", *METHODS)
"""``auto`` tries several recipes and keeps the one that scores best on the validation set."""
