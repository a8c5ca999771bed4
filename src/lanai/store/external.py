"""ONNX external data: the weight files a model names beside itself, kept with it in the store.

An ONNX model over 2 GB, or one exported that way (``model.onnx`` + ``model.onnx_data``), keeps its
tensors in files named by a relative ``location`` inside the graph. A blob is named by its digest, so
beside it those names do not exist: the store keeps each such file as a blob of its own (role
``external:<location>``) and, to load the model, links the model and its data files under their
original names into ``<store>/linked/<digest>/`` (hard links, else copies), where ONNX Runtime finds them.

The locations are read from the protobuf with a small wire-format walk (the ``onnx`` package is not a
core dependency). A location that is absolute, climbs out with ``..``, or is not a plain relative path
is refused: a model file must not make the store read or link files outside the model's own folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath

from lanai.errors import StoreError

__all__ = ["ROLE_PREFIX", "external_locations", "check_location", "linked_model"]

ROLE_PREFIX = "external:"
_MAX_LOCATIONS = 256

# Field numbers of onnx.proto (ModelProto.graph, GraphProto.node/initializer/sparse_initializer, …).
_MODEL_GRAPH, _MODEL_FUNCTIONS = 7, 25
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE = 1, 5, 15
_FUNCTION_NODE = 7
_NODE_ATTRIBUTE = 5
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE, _ATTR_SPARSES = 5, 6, 10, 11, 22, 23
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_TENSOR_EXTERNAL = 13
_ENTRY_KEY, _ENTRY_VALUE = 1, 2


def external_locations(path: Path) -> list[str]:
    """The external data files an ONNX model at ``path`` names, checked (see :func:`check_location`).

    A file that is not a protobuf at all yields no locations: loading it will say what is wrong."""
    try:
        data = memoryview(path.read_bytes())
    except OSError as err:
        raise StoreError(f"cannot read {path}: {err.strerror or err}", hint="check the file's permissions") from err
    found: dict[str, None] = {}
    try:
        for tensor in _model_tensors(data):
            location = _location(tensor)
            if location is not None:
                found[check_location(location)] = None
                if len(found) > _MAX_LOCATIONS:
                    raise StoreError(f"{path} names more than {_MAX_LOCATIONS} external data files")
    except _NotProtobuf:
        return []
    return list(found)


def check_location(location: str) -> str:
    """``location`` if it is a plain relative path below the model's folder; StoreError otherwise."""
    pure = PurePosixPath(location)
    if (
        not location
        or "\\" in location
        or "\x00" in location
        or pure.is_absolute()
        or location.startswith("~")
        or any(part in ("..", "") for part in location.split("/"))
        or ":" in pure.parts[0]
    ):
        raise StoreError(
            f"the model names external data at {location!r}, outside its own folder; lanai refuses it",
            hint="save the model with its external data as a file beside it (e.g. model.onnx_data)",
        )
    return str(pure)


def linked_model(root: Path, blob: Path, model_name: str, files: Mapping[str, Path]) -> Path:
    """The model ``blob`` as ``<root>/<digest>/<model_name>``, with each of ``files`` (location → blob)
    beside it under its location; made once, atomically (built in a temporary folder, then renamed)."""
    key = blob.name
    final = root / key
    target = final / model_name
    if _same(target, blob) and all(_same(final / loc, source) for loc, source in files.items()):
        return target
    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=root))
    try:
        _link(blob, building / model_name)
        for location, source in files.items():
            dest = building / check_location(location)
            dest.parent.mkdir(parents=True, exist_ok=True)
            _link(source, dest)
        if final.exists():  # an older or partial link folder: replace it
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(building, final)
        except OSError:  # another process won the race: use its folder
            shutil.rmtree(building, ignore_errors=True)
    except OSError as err:
        shutil.rmtree(building, ignore_errors=True)
        raise StoreError(f"cannot link the model's files under {root}: {err}", hint="check free space") from err
    return target


def _same(linked: Path, source: Path) -> bool:
    """Whether ``linked`` is ``source`` (its hard link, or a copy of the same size)."""
    try:
        return linked.samefile(source) or linked.stat().st_size == source.stat().st_size
    except OSError:
        return False


def _link(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:  # a filesystem without hard links
        shutil.copyfile(source, dest)


# -- the protobuf walk ---------------------------------------------------------------------------------


class _NotProtobuf(Exception):
    pass


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _NotProtobuf
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(data: memoryview) -> Iterator[tuple[int, memoryview | None]]:
    """(field number, bytes of a length-delimited field, or None for other wire types)."""
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, pos = _varint(data, pos)
            yield number, None
        elif wire == 1:
            pos += 8
            yield number, None
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise _NotProtobuf
            yield number, data[pos : pos + size]
            pos += size
        elif wire == 5:
            pos += 4
            yield number, None
        else:
            raise _NotProtobuf
        if pos > len(data):
            raise _NotProtobuf


def _model_tensors(model: memoryview) -> Iterator[memoryview]:
    for number, value in _fields(model):
        if value is None:
            continue
        if number == _MODEL_GRAPH:
            yield from _graph_tensors(value)
        elif number == _MODEL_FUNCTIONS:
            for field, node in _fields(value):
                if field == _FUNCTION_NODE and node is not None:
                    yield from _node_tensors(node)


def _graph_tensors(graph: memoryview) -> Iterator[memoryview]:
    for number, value in _fields(graph):
        if value is None:
            continue
        if number == _GRAPH_INITIALIZER:
            yield value
        elif number == _GRAPH_SPARSE:
            yield from _sparse_tensors(value)
        elif number == _GRAPH_NODE:
            yield from _node_tensors(value)


def _node_tensors(node: memoryview) -> Iterator[memoryview]:
    for number, attribute in _fields(node):
        if number != _NODE_ATTRIBUTE or attribute is None:
            continue
        for field, value in _fields(attribute):
            if value is None:
                continue
            if field in (_ATTR_T, _ATTR_TENSORS):
                yield value
            elif field in (_ATTR_G, _ATTR_GRAPHS):
                yield from _graph_tensors(value)
            elif field in (_ATTR_SPARSE, _ATTR_SPARSES):
                yield from _sparse_tensors(value)


def _sparse_tensors(sparse: memoryview) -> Iterator[memoryview]:
    for number, value in _fields(sparse):
        if number in (_SPARSE_VALUES, _SPARSE_INDICES) and value is not None:
            yield value


def _location(tensor: memoryview) -> str | None:
    for number, entry in _fields(tensor):
        if number != _TENSOR_EXTERNAL or entry is None:
            continue
        key = value = None
        for field, text in _fields(entry):
            if text is not None and field == _ENTRY_KEY:
                key = bytes(text).decode("utf-8", "replace")
            elif text is not None and field == _ENTRY_VALUE:
                value = bytes(text).decode("utf-8", "replace")
        if key == "location" and value is not None:
            return value
    return None
