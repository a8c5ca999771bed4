"""Wire values: dataclasses that are their own JSON shape, with the JSON Schema of each.

A wire value is a dataclass that inherits :class:`Wire`. Its fields are str, int, float, bool, ``Any``,
``X | None``, ``Literal[...]``, ``tuple[X, ...]``, ``list[X]``, ``Sequence[X]``, ``dict[str, X]`` or other wire values.
``to_dict`` and ``from_dict`` map it to and from the JSON object that the HTTP door sends and the client
reads; :func:`schema` gives the JSON Schema that the OpenAPI document publishes. So a body is described
once, by its dataclass, and the three can never drift apart. A sequence of numbers may be held as a 1-D
numpy array (an embedding): ``to_dict`` keeps it, and the HTTP door's encoder writes it as a JSON list with
float32's shortest digits.

Written here rather than taken from pydantic or msgspec: the server's hot paths must not validate per
request, the handful of shapes needs only these few rules, and the core stays free of a heavy dependency.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar, Union

__all__ = ["Wire", "doc", "schema", "WireError"]

T = TypeVar("T", bound="Wire")
Schema = dict[str, Any]


_SEQUENCES = (tuple, list, Sequence)
"""``Sequence[float]`` is for a vector that may be a numpy array; it is read back as a tuple."""


class WireError(ValueError):
    """A JSON value does not fit the wire type it was read as; the message names the field."""


def doc(description: str, *, default: Any = dataclasses.MISSING, omit_none: bool = False, **schema: Any) -> Any:
    """A dataclass field with a description for the schema. ``omit_none`` leaves the key out of
    ``to_dict`` while the value is None; ``schema`` adds JSON Schema keywords (``minimum``, ``examples``…)."""
    metadata = {"doc": description, "omit_none": omit_none, "schema": schema}
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class Wire:
    """Mixin for dataclasses that travel as JSON objects."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, plan in _plan(type(self)):
            value = getattr(self, name)
            if value is None and plan.omit_none:
                continue
            out[name] = plan.encode(value)
        return out

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        """The value in ``data``; WireError names the first field that does not fit."""
        if not isinstance(data, Mapping):
            raise WireError(f"{cls.__name__} must be a JSON object, not {type(data).__name__}.")
        values = {}
        for name, plan in _plan(cls):
            if name in data:
                values[name] = plan.decode(data[name], name)
            elif plan.required:
                raise WireError(f"{cls.__name__} has no {name!r}.")
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class _Field:
    encode: Callable[[Any], Any]
    decode: Callable[[Any, str], Any]
    omit_none: bool
    required: bool


_PLANS: dict[type, tuple[tuple[str, _Field], ...]] = {}


def _plan(cls: type) -> tuple[tuple[str, _Field], ...]:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = _make_plan(cls)
    return plan


def _make_plan(cls: Any) -> tuple[tuple[str, _Field], ...]:
    hints = typing.get_type_hints(cls)
    plan = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        kind = hints[f.name]
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        plan.append((f.name, _Field(_encoder(kind), _decoder(kind), bool(f.metadata.get("omit_none")), required)))
    return tuple(plan)


def _args(kind: Any) -> tuple[Any, Any]:
    return typing.get_origin(kind), typing.get_args(kind)


def _optional(args: tuple[Any, ...]) -> Any | None:
    rest = [a for a in args if a is not type(None)]
    return rest[0] if len(rest) == 1 else None


def _encoder(kind: Any) -> Callable[[Any], Any]:
    origin, args = _args(kind)
    if isinstance(kind, type) and issubclass(kind, Wire):
        return lambda v: v.to_dict()
    if origin in (Union, types.UnionType) and (inner := _optional(args)) is not None:
        enc = _encoder(inner)
        return lambda v: None if v is None else enc(v)
    if origin in _SEQUENCES:
        if args[0] in (str, int, float, bool):  # plain values; a numpy array (e.g. a vector) is kept as it is
            return lambda v: list(v) if isinstance(v, (tuple, list)) else v
        enc = _encoder(args[0])
        return lambda v: [enc(x) for x in v]
    if origin is dict:
        enc = _encoder(args[1])
        return lambda v: {k: enc(x) for k, x in v.items()}
    return lambda v: v


def _decoder(kind: Any) -> Callable[[Any, str], Any]:  # noqa: C901 - one branch per kind reads best
    origin, args = _args(kind)
    if isinstance(kind, type) and issubclass(kind, Wire):

        def nested(v: Any, where: str) -> Any:
            try:
                return kind.from_dict(v)
            except WireError as exc:
                raise WireError(f"{where}: {exc}") from None

        return nested
    if origin in (Union, types.UnionType) and (inner := _optional(args)) is not None:
        dec = _decoder(inner)
        return lambda v, where: None if v is None else dec(v, where)
    if origin in _SEQUENCES:
        dec = _decoder(args[0])
        made = list if origin is list else tuple

        def sequence(v: Any, where: str) -> Any:
            if not isinstance(v, list):
                raise WireError(f"{where} must be a list.")
            return made(dec(x, f"{where}[{i}]") for i, x in enumerate(v))

        return sequence
    if origin is dict:
        dec = _decoder(args[1])

        def mapping(v: Any, where: str) -> Any:
            if not isinstance(v, Mapping):
                raise WireError(f"{where} must be an object.")
            return {str(k): dec(x, f"{where}.{k}") for k, x in v.items()}

        return mapping
    if origin is Literal:
        return lambda v, where: v if v in args else _wrong(where, f"one of {', '.join(map(repr, args))}", v)
    if kind is bool:
        return lambda v, where: v if isinstance(v, bool) else _wrong(where, "true or false", v)
    if kind is int:
        return lambda v, where: v if isinstance(v, int) and not isinstance(v, bool) else _wrong(where, "an integer", v)
    if kind is float:
        ok = (int, float)
        return lambda v, where: (
            float(v) if isinstance(v, ok) and not isinstance(v, bool) else _wrong(where, "a number", v)
        )
    if kind is str:
        return lambda v, where: v if isinstance(v, str) else _wrong(where, "a string", v)
    return lambda v, where: v


def _wrong(where: str, expected: str, value: Any) -> Any:
    raise WireError(f"{where} must be {expected}, not {value!r}.")


# -- JSON Schema --------------------------------------------------------------------------------------


def schema(cls: Any, ref: Callable[[str], Schema] | None = None) -> Schema:
    """The JSON Schema (OpenAPI 3.1) of ``cls``. Nested wire values become ``ref(name)`` when ``ref`` is
    given (for a components section), else they are inlined."""
    hints = typing.get_type_hints(cls)
    properties, required = {}, []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        prop = _type_schema(hints[f.name], ref)
        extra = f.metadata.get("schema") or {}
        if f.metadata.get("doc"):
            prop = {**prop, "description": f.metadata["doc"]}
        properties[f.name] = {**prop, **extra}
        if not f.metadata.get("omit_none"):
            required.append(f.name)
    out: Schema = {"type": "object"}
    description = _summary(cls)
    if description:
        out["description"] = description
    out["properties"] = properties
    if required:
        out["required"] = required
    return out


def _summary(cls: type) -> str:
    text = cls.__doc__ or ""
    if text.startswith(f"{cls.__name__}("):  # dataclass's generated signature, not a description
        return ""
    return " ".join(text.strip().split("\n\n")[0].split())


def _type_schema(kind: Any, ref: Callable[[str], Schema] | None) -> Schema:
    origin, args = _args(kind)
    if isinstance(kind, type) and issubclass(kind, Wire):
        return ref(kind.__name__) if ref is not None else schema(kind)
    if origin in (Union, types.UnionType) and (inner := _optional(args)) is not None:
        inner_schema = _type_schema(inner, ref)
        if "type" in inner_schema and "$ref" not in inner_schema:
            kinds = inner_schema["type"] if isinstance(inner_schema["type"], list) else [inner_schema["type"]]
            if "enum" in inner_schema:
                inner_schema = {**inner_schema, "enum": [*inner_schema["enum"], None]}
            return {**inner_schema, "type": [*kinds, "null"]}
        return {"oneOf": [inner_schema, {"type": "null"}]}
    if origin in _SEQUENCES:
        return {"type": "array", "items": _type_schema(args[0], ref)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1], ref)}
    if origin in (Union, types.UnionType):
        return {"oneOf": [_type_schema(a, ref) for a in args]}
    if origin is Literal:
        names = {str: "string", int: "integer", bool: "boolean"}
        return {"type": names[type(args[0])], "enum": list(args)}
    if kind is None or kind is type(None):
        return {"type": "null"}
    simple = {str: {"type": "string"}, bool: {"type": "boolean"}, int: {"type": "integer", "format": "int64"},
              float: {"type": "number", "format": "double"}}  # fmt: skip
    return dict(simple.get(kind, {}))
