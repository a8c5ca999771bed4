"""The bundled model is imported with its batch size left to lanai (sized at load to the memory a row
takes: dataplane.batch_size), and the rest of its batching at the server's defaults."""

from __future__ import annotations

from pathlib import Path

from lanai.bundled import DEFAULT_BATCHING, DEFAULT_MODEL, ensure_default_model
from lanai.store import Store
from lanai.types import BatchingConfig


def test_bundled_model_leaves_its_batch_size_to_the_load(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert ensure_default_model(store)
    batching = store.manifest(DEFAULT_MODEL).batching
    assert batching == DEFAULT_BATCHING == BatchingConfig()
    assert (batching.max_batch_size, batching.instances, batching.max_queue_size) == (0, 0, 256)
