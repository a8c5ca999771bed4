"""Import hygiene: the light layers stay light, and the package imports without cycles."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import lanai


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_config_and_the_vocabulary_do_not_pull_in_pillow_or_a_door() -> None:
    loaded = _loaded_after("import lanai.config, lanai.types, lanai.errors, lanai.protocol.v2, lanai.tasks")
    assert not {"PIL", "starlette", "uvicorn", "grpc", "onnxruntime"} & {m.split(".")[0] for m in loaded}


def test_the_data_plane_does_not_import_a_door() -> None:
    loaded = _loaded_after("import lanai.dataplane")
    assert not {m for m in loaded if m.startswith(("lanai.http", "lanai.grpc", "starlette", "grpc"))}


def test_every_module_imports_on_its_own() -> None:
    """A cycle shows up as an ImportError when the modules of a cycle are imported first, one by one."""
    skip = ("lanai.optimize", "lanai.backends.llamacpp", "lanai.backends.litert")
    names = [m.name for m in pkgutil.walk_packages(lanai.__path__, "lanai.") if not m.name.startswith(skip)]
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    for name in names:
        subprocess.run([sys.executable, "-c", code, name], check=True, capture_output=True)
