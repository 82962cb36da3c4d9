"""Operator-provided tools: each public function defined in `BRIDGE_TOOLS_MODULE` becomes a tool.

Type hints give the JSON schema; the docstring's first paragraph the description, its `Args:` (or NumPy
`Parameters`) lines the parameters' (unless `Annotated[X, "…"]` gives one). A parameter annotated
`ToolContext` receives the turn's context and is hidden from the model. Load-time problems raise
`ToolError`; `Toolbox.call` never raises: it returns the text for the model, `{"status": "error", …}` on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import enum
import importlib
import inspect
import itertools
import json
import logging
import re
import textwrap
import threading
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

MAX_TOOL_ROUNDS = 5  # rounds of tool calls per turn; after that the model must answer without tools
TOOL_CALL_TIMEOUT = 20.0  # seconds one tool call may take
MAX_STATUS_NAMES = 3  # tool names spelled out in the live reply's status line
MAX_ERROR_TEXT = 1000  # characters of an exception's message sent back to the model

ToolFunction = Callable[..., Any]  # a sync or async function of the tools module
NO_FUNCTION = {"status": "error", "message": "No function found"}  # the original sample's answer

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what every OpenAI-compatible API accepts
_ARG_HEADERS = {"Args:", "Arguments:", "Parameters:", "Params:", "Parameters"}
_GOOGLE_SECTION = re.compile(r"^(?:Args|Arguments|Parameters|Params):[ \t]*\n((?:[ \t]+\S.*\n?|[ \t]*\n)*)", re.M)
_NUMPY_SECTION = re.compile(r"^Parameters[ \t]*\n-{3,}[ \t]*\n(.*?)(?=^\S[^\n]*\n-{3,}|\Z)", re.M | re.S)
_ITEM = re.compile(r"^\*{0,2}(?P<name>\w+)[ \t]*(?:\([^)]*\))?[ \t]*(?::[ \t]*(?P<text>.*))?$")  # x (int): …
_SUPPORTED = "str, int, float, bool, list[X], dict[str, X], X | None, Literal[…], an Enum or Annotated[X, '…']"


class ToolError(Exception):
    """The tools module cannot be used: it does not import, or a function's type hints are unusable."""


@dataclass(frozen=True)
class ToolContext:
    """What a tool may learn about the turn it serves; injected into a parameter annotated `ToolContext`."""

    channel: str
    user_ids: tuple[str, ...] = ()  # the speakers of this turn
    slack: AsyncWebClient | None = None


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the model sees it: name, description and a JSON Schema object for its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]

    def as_responses_tool(self) -> dict[str, Any]:
        """The Responses API function tool."""
        return {"type": "function", "name": self.name, "description": self.description,
                "parameters": copy.deepcopy(self.parameters), "strict": False}

    def as_chat_tool(self) -> dict[str, Any]:
        """The Chat Completions function tool."""
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": copy.deepcopy(self.parameters)}}

    def as_assistants_tool(self) -> dict[str, Any]:
        """The legacy Assistants function tool (the Chat Completions shape)."""
        return self.as_chat_tool()


class _InvalidArguments(Exception):
    """The model's arguments do not fit the schema (the text goes back to the model)."""


@dataclass(frozen=True)
class _Shape:
    """One type hint compiled: its JSON Schema and the check that validates and converts a value."""

    schema: dict[str, Any]
    check: Callable[[Any, str], Any]  # validates a value (named by a path for messages); returns it converted
    nullable: bool = False  # None is a valid value (so the parameter is not required)


def _fail(path: str, expected: str, value: Any) -> typing.NoReturn:
    raise _InvalidArguments(f"{path} must be {expected}, not {json.dumps(value, default=repr)}")


def _scalar(kind: type, json_type: str, expected: str) -> _Shape:
    def check(value: Any, path: str) -> Any:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)  # JSON has one number type: 3 is a fine float
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            _fail(path, expected, value)
        return value
    return _Shape({"type": json_type}, check)


_SCALARS = {kind: _scalar(kind, json_type, expected) for kind, json_type, expected in (
    (str, "string", "a string"), (int, "integer", "an integer"), (float, "number", "a number"),
    (bool, "boolean", "true or false"))}
_ANY = _Shape({}, lambda value, path: value)


def _choices(values: Sequence[Any], convert: Callable[[Any], Any]) -> _Shape:
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
    return _Shape(schema, check)


def _array(item: _Shape) -> _Shape:
    def check(value: Any, path: str) -> Any:
        if not isinstance(value, list):
            _fail(path, "an array", value)
        return [item.check(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return _Shape({"type": "array", "items": item.schema}, check)


def _object(item: _Shape) -> _Shape:
    def check(value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            _fail(path, "an object", value)
        return {k: item.check(v, f"{path}.{k}") for k, v in value.items()}
    return _Shape({"type": "object", "additionalProperties": item.schema}, check)


def _nullable(shape: _Shape) -> _Shape:
    """`X | None`: null is allowed too, and the parameter is not required."""
    schema = shape.schema
    if isinstance(schema.get("type"), str):
        schema = {**schema, "type": [schema["type"], "null"]}
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    else:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return _Shape(schema, lambda value, path: None if value is None else shape.check(value, path), nullable=True)


def _with_description(shape: _Shape, text: str | None) -> _Shape:
    """The shape with this description, unless it has one already (`Annotated` wins over `Args:`)."""
    if text and "description" not in shape.schema:
        shape = dataclasses.replace(shape, schema={**shape.schema, "description": text})
    return shape


def _shape(hint: Any, where: str) -> _Shape:
    """Compile a type hint; `where` names the function and parameter for the error message."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(hint, type) and hint in _SCALARS:
        return _SCALARS[hint]
    if hint is Any:
        return _ANY
    if origin is typing.Annotated:
        text = next((m for m in hint.__metadata__ if isinstance(m, str)), None)
        return _with_description(_shape(args[0], where), text)
    if origin is typing.Literal:
        return _choices(args, lambda value: value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _choices([member.value for member in hint], hint)
    if hint is list or origin is list:
        return _array(_shape(args[0], where) if args else _ANY)
    if hint is dict or (origin is dict and args[0] is str):
        return _object(_shape(args[1], where) if args else _ANY)
    if origin in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        return _nullable(_shape(next(a for a in args if a is not type(None)), where))
    name = hint.__qualname__ if isinstance(hint, type) else repr(hint)
    raise ToolError(f"{where} has a type hint the model cannot fill in ({name}); use {_SUPPORTED}.")


def _summary(doc: str) -> str:
    """The docstring's first paragraph (up to a blank line or the `Args:` section), on one line."""
    lines = re.split(r"\n\s*\n", doc, maxsplit=1)[0].splitlines()
    return " ".join(line.strip() for line in itertools.takewhile(lambda line: line.strip() not in _ARG_HEADERS, lines))


def _argument_docs(doc: str) -> dict[str, str]:
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


@dataclass(frozen=True)
class _Tool:
    spec: ToolSpec
    function: ToolFunction
    parameters: dict[str, _Shape]
    defaulted: frozenset[str]  # parameters with a default value
    context_parameters: tuple[str, ...]


def _compile(function: ToolFunction) -> _Tool:
    """Read a function's signature, type hints and docstring; raise ToolError if the model can't call it."""
    label = f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', function)}"
    name = getattr(function, "__name__", "")
    if not _TOOL_NAME.match(name):
        raise ToolError(f"The tool function {label}'s name is refused by model APIs (at most 64 of A-Za-z0-9_-).")
    try:
        hints = typing.get_type_hints(function, include_extras=True)
        signature = inspect.signature(function)
    except Exception as exc:  # an unresolvable forward reference, a callable without a signature
        raise ToolError(f"The signature of the tool function {label} cannot be read: {exc}.") from exc
    doc = inspect.getdoc(function) or ""
    docs = _argument_docs(doc)
    parameters: dict[str, _Shape] = {}
    context: list[str] = []
    for param in signature.parameters.values():
        where = f"Parameter {param.name!r} of the tool function {label}"
        hint = hints.get(param.name, str)  # no type hint: the model passes text
        if hint is ToolContext:
            context.append(param.name)
            continue
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            raise ToolError(f"{where} cannot be passed by name; a tool takes named parameters only.")
        parameters[param.name] = _with_description(_shape(hint, where), docs.get(param.name))
    defaulted = frozenset(p.name for p in signature.parameters.values() if p.default is not p.empty)
    required = [n for n, shape in parameters.items() if not (n in defaulted or shape.nullable)]
    schema = {"type": "object", "properties": {n: copy.deepcopy(shape.schema) for n, shape in parameters.items()},
              "required": required, "additionalProperties": False}
    return _Tool(ToolSpec(name, _summary(doc), schema), function, parameters, defaulted, tuple(context))


def _parse(arguments: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if isinstance(arguments, str):
        try:  # some models send "" for a function without parameters
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            raise _InvalidArguments(f"they are not valid JSON ({exc})") from None
    if not isinstance(arguments, Mapping | None):
        raise _InvalidArguments("they must be a JSON object")
    return dict(arguments or {})


def _bind(tool: _Tool, arguments: str | Mapping[str, Any] | None, context: ToolContext) -> dict[str, Any]:
    """The keyword arguments for the function, checked against its schema and converted (enums)."""
    given = _parse(arguments)
    unexpected = [name for name in given if name not in tool.parameters]
    if unexpected:
        raise _InvalidArguments(f"unexpected argument(s) {', '.join(map(repr, unexpected))}")
    kwargs: dict[str, Any] = {}
    missing: list[str] = []
    for name, shape in tool.parameters.items():
        value = given.get(name)
        if value is not None or (name in given and shape.nullable):
            kwargs[name] = shape.check(value, name)
        elif shape.nullable and name not in tool.defaulted:
            kwargs[name] = None  # `X | None` without a default: leaving it out means None
        elif name not in tool.defaulted:
            missing.append(name)  # absent, or null where null isn't allowed (else the default applies)
    if missing:
        raise _InvalidArguments(f"missing required argument(s) {', '.join(map(repr, missing))}")
    return kwargs | dict.fromkeys(tool.context_parameters, context)


def _error(message: str) -> str:
    return json.dumps({"status": "error", "message": message}, ensure_ascii=False)


def _describe(exc: BaseException) -> str:
    """`ValueError: bad zone` — the kind and message of an exception, never its traceback."""
    text = str(exc).strip()
    return textwrap.shorten(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, MAX_ERROR_TEXT)


def _jsonable(value: Any) -> Any:
    """What `json.dumps` can't encode by itself: dataclasses, enums; anything else (dates, sets) as text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        return value.value
    return str(value)


def _encode(result: Any) -> str:
    """A text result goes to the model as it is; anything else as JSON."""
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result, default=_jsonable, ensure_ascii=False)
    except (TypeError, ValueError) as exc:  # a circular structure, keys JSON can't have
        return _error(f"The tool's result cannot be sent as JSON: {exc}")


def _public_functions(module: types.ModuleType) -> list[ToolFunction]:
    """The functions defined in the module (not imported into it) whose names don't start with `_`."""
    return list(dict.fromkeys(
        value for name, value in vars(module).items()
        if inspect.isfunction(value) and not name.startswith("_") and value.__module__ == module.__name__))


class Toolbox:
    """The operator's tools: their specs to offer the model, and `call()` to run what the model asks for."""

    def __init__(self, functions: Iterable[ToolFunction] = (), *, call_timeout: float = TOOL_CALL_TIMEOUT) -> None:
        self.call_timeout = call_timeout
        self._tools: dict[str, _Tool] = {}
        for function in functions:
            tool = _compile(function)
            if tool.spec.name in self._tools:
                raise ToolError(f"Two tool functions are named {tool.spec.name!r}; tool names must be unique.")
            self._tools[tool.spec.name] = tool

    @classmethod
    def from_functions(cls, functions: Iterable[ToolFunction], *, call_timeout: float = TOOL_CALL_TIMEOUT) -> Toolbox:
        """A toolbox of these functions (tests, embedding)."""
        return cls(functions, call_timeout=call_timeout)

    @classmethod
    def load(cls, module_name: str | None, *, call_timeout: float = TOOL_CALL_TIMEOUT) -> Toolbox:
        """The tools of `BRIDGE_TOOLS_MODULE` (None or "": no tools). Raises ToolError."""
        if not module_name:
            return cls(call_timeout=call_timeout)
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # ImportError, or whatever the module's own code raised
            detail = str(exc) if isinstance(exc, ImportError) else _describe(exc)
            raise ToolError(f"BRIDGE_TOOLS_MODULE {module_name!r} cannot be imported: {detail}.") from exc
        return cls(_public_functions(module), call_timeout=call_timeout)

    @property
    def specs(self) -> list[ToolSpec]:
        """The tools as the model sees them, in the module's order."""
        return [tool.spec for tool in self._tools.values()]

    @property
    def names(self) -> list[str]:
        """The tools' names (the functions' names)."""
        return list(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    async def call(self, name: str, arguments: str | Mapping[str, Any] | None, context: ToolContext) -> str:
        """Run one tool call of the model; always the text to send back (see the module docstring)."""
        tool = self._tools.get(name)
        if tool is None:
            log.warning("The model called an unknown tool %r", name[:80])
            return json.dumps(NO_FUNCTION)
        try:
            kwargs = _bind(tool, arguments, context)
        except _InvalidArguments as exc:
            return _error(f"Invalid arguments: {exc}")
        return await self._run(tool, kwargs)

    async def _run(self, tool: _Tool, kwargs: dict[str, Any]) -> str:
        deadline = asyncio.timeout(self.call_timeout)
        try:
            async with deadline:
                if any(map(inspect.iscoroutinefunction, (tool.function, inspect.unwrap(tool.function)))):
                    result = await tool.function(**kwargs)
                else:  # in a thread: a slow sync tool must not stall every channel
                    result = await _in_daemon_thread(tool.function, kwargs)
        except Exception as exc:
            if isinstance(exc, TimeoutError) and deadline.expired():
                # A sync tool's thread can't be stopped; it finishes in the background.
                log.warning("Tool %s did not finish within %g s", tool.spec.name, self.call_timeout)
                return _error(f"The tool did not finish within {self.call_timeout:g} seconds")
            log.warning("Tool %s raised %s", tool.spec.name, type(exc).__name__,
                        exc_info=log.isEnabledFor(logging.DEBUG))  # the traceback only when debugging
            return _error(_describe(exc))
        return _encode(result)


async def _in_daemon_thread(function: ToolFunction, kwargs: dict[str, Any]) -> Any:
    """Run a sync tool in a thread of its own. A daemon thread: a tool that hangs can neither keep the
    process from exiting (SIGTERM must exit within seconds) nor use up the loop's shared executor."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def work() -> None:
        try:
            result = function(**kwargs)
            outcome: Callable[[], None] = lambda: future.set_result(result)  # noqa: E731
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            outcome = lambda error=exc: future.set_exception(error)  # noqa: E731
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=work, name="tool", daemon=True).start()
    return await future


def tool_status(names: Sequence[str]) -> str:
    """The live reply's status line while tools run: "Using get_time…", "Using a, b and c…"."""
    unique = list(dict.fromkeys(names)) or ["a tool"]
    parts = unique[:MAX_STATUS_NAMES]
    if len(unique) > MAX_STATUS_NAMES:
        parts.append(f"{len(unique) - MAX_STATUS_NAMES} more")
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"Using {text}…"
