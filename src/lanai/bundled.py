"""The default model that ships inside the package, and the inspect hook the store calls on import."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from lanai.backends import BackendOptions, backend_class, canary
from lanai.store import Store
from lanai.tasks import get_task
from lanai.types import BatchingConfig, ImagePreprocess, ModelInfo, TensorSpec

__all__ = ["DEFAULT_MODEL", "DEFAULT_BATCHING", "bundled_model_dir", "ensure_default_model", "inspector"]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "efficientnet-lite0"
# EfficientNet-Lite0 scales pixels to [-1, 1) with (x - 127) / 128, not ImageNet mean/std.
DEFAULT_PREPROCESS = ImagePreprocess(resize=256, crop=224, mean=(127.0,) * 3, std=(128.0,) * 3)
# The batch is sized at load to the memory a row takes (max_batch_size 0: dataplane.batch_size): about
# 3 MB a row with its inputs, so 5 rows on 2 cores' three instances, 8 on one. Stores made before kept the
# 4 rows written then (measured on 2 cores: peak RSS 219 → 185 MB at c16 against 8 rows, at the same speed).
DEFAULT_BATCHING = BatchingConfig()


def bundled_model_dir() -> Path:
    return Path(str(resources.files("lanai") / "assets" / DEFAULT_MODEL))


def inspector(backend: str, task: str | None = None, timeout: float = 900.0):  # type: ignore[no-untyped-def]
    """The store's import hook: load the file on ``backend`` (CPU) and report its inputs and outputs;
    with ``task``, also check that the model fits that task (ModelLoadError says why not). The file is
    loaded in a child process first (``backends.canary``), within ``timeout`` seconds."""

    # a language model is checked with a small context: loading is the test, not its size
    extra = {"n_ctx": 256, "parallel": 1} if backend == "llamacpp" else {}

    def inspect(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        options = BackendOptions(providers=("cpu",), intra_op_threads=1, extra=extra)
        canary.check(path, backend, options, timeout=timeout)  # a runtime that crashes on it crashes there
        loaded = backend_class(backend).load(path, options)
        try:
            inputs, outputs = getattr(loaded, "inputs", ()), getattr(loaded, "outputs", ())  # tensor models only
            if task is not None:
                info = ModelInfo(path.name, "0", task, backend, loaded.platform, inputs, outputs, "cpu", 1)
                get_task(task).check(info)
            return inputs, outputs
        finally:
            loaded.close()

    return inspect


def ensure_default_model(store: Store) -> bool:
    """On first run (an empty store), import and activate the bundled model. True if it did."""
    if store.list():
        return False
    source = bundled_model_dir()
    log.info("first run: adding the bundled model %s to %s", DEFAULT_MODEL, store.root)
    store.add(
        source / "model.onnx",
        name=DEFAULT_MODEL,
        task="classify",
        backend="onnx",
        labels=source / "labels.txt",
        preprocess=DEFAULT_PREPROCESS,
        batching=DEFAULT_BATCHING,
        provenance={"source": "bundled with lanai", "details": "see PROVENANCE.md in lanai/assets"},
        inspect=inspector("onnx", "classify"),
        activate=True,
    )
    return True
