"""Structured output: a JSON Schema (or "any JSON object") as a GBNF grammar that constrains decoding, so
the answer is JSON that matches the schema whatever the model would rather say.

The grammar comes from llama.cpp's own JSON-Schema converter (shipped with llama-cpp-python as
``llama_cpp.llama_grammar``). That converter enforces only part of JSON Schema and quietly drops the rest,
so a schema is checked first: every keyword must be one the converter enforces or a pure annotation, and
anything else is refused with its name and where it sits — an answer that does not validate against the
schema the client sent would be worse than a clear 400.

Enforced: ``type`` (one or a list), ``properties``, ``required``, ``additionalProperties`` (false, true or
a schema; left out, no other properties are generated), ``items``, ``prefixItems``, ``minItems``,
``maxItems``, ``enum``, ``const``, ``anyOf``, local ``$ref`` with ``$defs``/``definitions``, ``pattern``
(the converter's regular-expression subset), ``minLength``, ``maxLength``, and ``format`` date, time,
date-time and uuid.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lanai.errors import BadInput

__all__ = ["json_grammar", "check_schema", "json_strings", "ENFORCED", "ANNOTATIONS"]

ENFORCED = frozenset({
    "type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems",
    "enum", "const", "anyOf", "$ref", "$defs", "definitions", "pattern", "minLength", "maxLength", "format",
})  # fmt: skip
ANNOTATIONS = frozenset({
    "title", "description", "$schema", "$id", "$comment", "default", "examples", "deprecated", "readOnly",
    "writeOnly",
})  # fmt: skip
_FORMATS = frozenset({"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5"})
_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
_HINTS = {
    "oneOf": "use anyOf (decoding cannot keep the branches exclusive)",
    "allOf": "merge the parts into one schema",
    "minimum": "leave numeric bounds out and check them in the application",
    "maximum": "leave numeric bounds out and check them in the application",
    "exclusiveMinimum": "leave numeric bounds out and check them in the application",
    "exclusiveMaximum": "leave numeric bounds out and check them in the application",
    "multipleOf": "leave it out and check it in the application",
}


def json_grammar(schema: Mapping[str, Any] | None, *, where: str = "schema") -> str:
    """The GBNF grammar (root rule ``root``) of JSON answers matching ``schema``; None: any JSON object.
    A schema that uses what cannot be enforced raises BadInput naming it (``where`` prefixes the path)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    if schema is None:
        schema = {"type": "object"}
    if not isinstance(schema, Mapping):
        raise BadInput(f"{where} must be a JSON Schema object.", hint='e.g. {"type": "object", "properties": {…}}.')
    try:
        _check(schema, where)
        return json_strings(str(json_schema_to_gbnf(json.dumps(schema))))
    except (ValueError, KeyError, TypeError, AssertionError, RecursionError) as exc:
        raise BadInput(
            f"{where} cannot be turned into a grammar: {exc or type(exc).__name__}.",
            hint="simplify that part of the schema (a regular expression the converter supports, local $refs only).",
        ) from None


# llama-cpp-python's port of the converter lets a string hold raw control characters (llama.cpp's own
# converter does not), and JSON forbids them: a model's raw newline inside a string would not parse
_LOOSE_CHAR = r'char ::= [^"\\] |'
_JSON_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'


def json_strings(grammar: str) -> str:
    """``grammar`` with its JSON strings held to JSON's characters (no raw control characters)."""
    return grammar.replace(_LOOSE_CHAR, _JSON_CHAR)


def check_schema(schema: Any, where: str = "schema") -> None:
    """Raise BadInput naming the first keyword of ``schema`` that decoding would not enforce."""
    try:
        _check(schema, where)
    except RecursionError:
        raise BadInput(f"{where} is nested too deeply.", hint="flatten it, or use $defs and $ref.") from None


def _check(schema: Any, path: str) -> None:
    """Refuse every keyword under ``schema`` that decoding would not enforce."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, Mapping):
        raise BadInput(f"{path} must be a schema object, not {type(schema).__name__}.")
    for key, value in schema.items():
        here = f"{path}.{key}"
        if key in ANNOTATIONS:
            continue
        if key not in ENFORCED:
            hint = _HINTS.get(key, "remove it, or check it in the application")
            raise BadInput(f"{here}: '{key}' cannot be enforced while decoding.", hint=f"{hint}.")
        if key == "type":
            names = value if isinstance(value, list) else [value]
            unknown = [t for t in names if t not in _TYPES]
            if unknown or not names:
                raise BadInput(f"{here}: unknown type {unknown[0] if unknown else value!r}.",
                               hint=f"use {', '.join(sorted(_TYPES))}.")  # fmt: skip
        elif key == "format" and value not in _FORMATS:
            raise BadInput(f"{here}: format {value!r} cannot be enforced while decoding.",
                           hint=f"formats enforced: {', '.join(sorted(_FORMATS))}; or leave it out.")  # fmt: skip
        elif key == "$ref" and not (isinstance(value, str) and value.startswith("#")):
            raise BadInput(f"{here}: only references inside the schema ('#/$defs/…') are followed.")
        elif key in ("properties", "$defs", "definitions"):
            if not isinstance(value, Mapping):
                raise BadInput(f"{here} must be an object of schemas.")
            for name, sub in value.items():
                _check(sub, f"{here}.{name}")
        elif key in ("items", "additionalProperties") and not isinstance(value, bool):
            if isinstance(value, list):
                for i, sub in enumerate(value):
                    _check(sub, f"{here}[{i}]")
            else:
                _check(value, here)
        elif key in ("prefixItems", "anyOf"):
            if not isinstance(value, list) or not value:
                raise BadInput(f"{here} must be a non-empty list of schemas.")
            for i, sub in enumerate(value):
                _check(sub, f"{here}[{i}]")
        elif key == "required" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise BadInput(f"{here} must be a list of property names.")
        elif key == "enum" and not (isinstance(value, list) and value):
            raise BadInput(f"{here} must be a non-empty list.")
        elif key in ("minItems", "maxItems", "minLength", "maxLength") and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise BadInput(f"{here} must be a whole number ≥ 0.")
