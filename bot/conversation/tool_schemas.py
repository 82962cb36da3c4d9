"""Tool functions' type hints and docstrings → JSON Schema, and the checks that validate a model's
arguments against it (used by `bot.conversation.tools`)."""

from __future__ import annotations

import dataclasses
import enum
import itertools
import json
import re
import textwrap
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

_ARG_HEADERS = {"Args:", "Arguments:", "Parameters:", "Params:", "Parameters"}
_GOOGLE_SECTION = re.compile(r"^(?:Args|Arguments|Parameters|Params):[ \t]*\n((?:[ \t]+\S.*\n?|[ \t]*\n)*)", re.M)
_NUMPY_SECTION = re.compile(r"^Parameters[ \t]*\n-{3,}[ \t]*\n(.*?)(?=^\S[^\n]*\n-{3,}|\Z)", re.M | re.S)
_ITEM = re.compile(r"^\*{0,2}(?P<name>\w+)[ \t]*(?:\([^)]*\))?[ \t]*(?::[ \t]*(?P<text>.*))?$")  # x (int): …
_SUPPORTED = "str, int, float, bool, list[X], dict[str, X], X | None, Literal[…], an Enum or Annotated[X, '…']"


class ToolError(Exception):
    """The tools module cannot be used: it does not import, or a function's type hints are unusable."""


class InvalidArguments(Exception):
    """The model's arguments do not fit the schema (the text goes back to the model)."""


@dataclass(frozen=True)
class Shape:
    """One type hint compiled: its JSON Schema and the check that validates and converts a value."""

    schema: dict[str, Any]
    check: Callable[[Any, str], Any]  # validates a value (named by a path for messages); returns it converted
    nullable: bool = False  # None is a valid value (so the parameter is not required)


def _fail(path: str, expected: str, value: Any) -> typing.NoReturn:
    raise InvalidArguments(f"{path} must be {expected}, not {json.dumps(value, default=repr)}")


def _scalar(kind: type, json_type: str, expected: str) -> Shape:
    def check(value: Any, path: str) -> Any:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)  # JSON has one number type: 3 is a fine float
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            _fail(path, expected, value)
        return value
    return Shape({"type": json_type}, check)


_SCALARS = {kind: _scalar(kind, json_type, expected) for kind, json_type, expected in (
    (str, "string", "a string"), (int, "integer", "an integer"), (float, "number", "a number"),
    (bool, "boolean", "true or false"))}
_ANY = Shape({}, lambda value, path: value)


def _choices(values: Sequence[Any], convert: Callable[[Any], Any]) -> Shape:
    """An enum: the value must equal one of `values` and be of the same JSON type."""
    kinds = {type(v) for v in values}
    schema: dict[str, Any] = {"enum": list(values)}
    if len(kinds) == 1 and (kind := next(iter(kinds))) in _SCALARS:
        schema = {**_SCALARS[kind].schema, **schema}

    def check(value: Any, path: str) -> Any:
        for choice in values:
            if type(choice) is type(value) and choice == value:
                return convert(value)
        _fail(path, "one of " + ", ".join(json.dumps(v) for v in values), value)
    return Shape(schema, check)


def _array(item: Shape) -> Shape:
    def check(value: Any, path: str) -> Any:
        if not isinstance(value, list):
            _fail(path, "an array", value)
        return [item.check(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return Shape({"type": "array", "items": item.schema}, check)


def _object(item: Shape) -> Shape:
    def check(value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            _fail(path, "an object", value)
        return {k: item.check(v, f"{path}.{k}") for k, v in value.items()}
    return Shape({"type": "object", "additionalProperties": item.schema}, check)


def _nullable(shape: Shape) -> Shape:
    """`X | None`: null is allowed too, and the parameter is not required."""
    schema = shape.schema
    if isinstance(schema.get("type"), str):
        schema = {**schema, "type": [schema["type"], "null"]}
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    else:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return Shape(schema, lambda value, path: None if value is None else shape.check(value, path), nullable=True)


def with_description(shape: Shape, text: str | None) -> Shape:
    """The shape with this description, unless it has one already (`Annotated` wins over `Args:`)."""
    if text and "description" not in shape.schema:
        shape = dataclasses.replace(shape, schema={**shape.schema, "description": text})
    return shape


def shape_of(hint: Any, where: str) -> Shape:
    """Compile a type hint; `where` names the function and parameter for the error message."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(hint, type) and hint in _SCALARS:
        return _SCALARS[hint]
    if hint is Any:
        return _ANY
    if origin is typing.Annotated:
        text = next((m for m in hint.__metadata__ if isinstance(m, str)), None)
        return with_description(shape_of(args[0], where), text)
    if origin is typing.Literal:
        return _choices(args, lambda value: value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _choices([member.value for member in hint], hint)
    if hint is list or origin is list:
        return _array(shape_of(args[0], where) if args else _ANY)
    if hint is dict or (origin is dict and args[0] is str):
        return _object(shape_of(args[1], where) if args else _ANY)
    if origin in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        return _nullable(shape_of(next(a for a in args if a is not type(None)), where))
    name = hint.__qualname__ if isinstance(hint, type) else repr(hint)
    raise ToolError(f"{where} has a type hint the model cannot fill in ({name}); use {_SUPPORTED}.")


def summary(doc: str) -> str:
    """The docstring's first paragraph (up to a blank line or the `Args:` section), on one line."""
    lines = re.split(r"\n\s*\n", doc, maxsplit=1)[0].splitlines()
    return " ".join(line.strip() for line in itertools.takewhile(lambda line: line.strip() not in _ARG_HEADERS, lines))


def argument_docs(doc: str) -> dict[str, str]:
    """Parameter name → description, from a Google `Args:` or a NumPy `Parameters` section."""
    google = _GOOGLE_SECTION.search(doc)
    section = google or _NUMPY_SECTION.search(doc)
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in textwrap.dedent(section.group(1)).splitlines() if section else ():
        if line[:1].isspace() and current is not None:
            current.append(line.strip())  # a continuation of the item above
        elif match := _ITEM.match(line):
            current = found.setdefault(match["name"], [(match["text"] or "") if google else ""])
    return {name: " ".join(filter(None, parts)) for name, parts in found.items()}
