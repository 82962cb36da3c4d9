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

from bot.backends.base import NO_FUNCTION
from bot.conversation.tool_schemas import (
    InvalidArguments,
    Shape,
    ToolError,
    argument_docs,
    shape_of,
    summary,
    with_description,
)
from bot.settings import DEFAULT_TOOL_TIMEOUT

log = logging.getLogger(__name__)

TOOL_CALL_TIMEOUT = DEFAULT_TOOL_TIMEOUT  # seconds one tool call may take (BRIDGE_TOOL_TIMEOUT)
MAX_STATUS_NAMES = 3  # tool names spelled out in the live reply's status line
MAX_ERROR_TEXT = 1000  # characters of an exception's message sent back to the model

ToolFunction = Callable[..., Any]  # a sync or async function of the tools module

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what every OpenAI-compatible API accepts


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

    def as_tool(self) -> dict[str, Any]:
        """The function tool every backend shapes for its API: name, description, a copy of the schema."""
        return {"name": self.name, "description": self.description, "parameters": copy.deepcopy(self.parameters)}


@dataclass(frozen=True)
class _Tool:
    spec: ToolSpec
    function: ToolFunction
    parameters: dict[str, Shape]
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
    docs = argument_docs(doc)
    parameters: dict[str, Shape] = {}
    context: list[str] = []
    for param in signature.parameters.values():
        where = f"Parameter {param.name!r} of the tool function {label}"
        hint = hints.get(param.name, str)  # no type hint: the model passes text
        if hint is ToolContext:
            context.append(param.name)
            continue
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            raise ToolError(f"{where} cannot be passed by name; a tool takes named parameters only.")
        parameters[param.name] = with_description(shape_of(hint, where), docs.get(param.name))
    defaulted = frozenset(p.name for p in signature.parameters.values() if p.default is not p.empty)
    required = [n for n, shape in parameters.items() if not (n in defaulted or shape.nullable)]
    schema = {"type": "object", "properties": {n: copy.deepcopy(shape.schema) for n, shape in parameters.items()},
              "required": required, "additionalProperties": False}
    return _Tool(ToolSpec(name, summary(doc), schema), function, parameters, defaulted, tuple(context))


def _parse(arguments: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if isinstance(arguments, str):
        try:  # some models send "" for a function without parameters
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            raise InvalidArguments(f"they are not valid JSON ({exc})") from None
    if not isinstance(arguments, Mapping | None):
        raise InvalidArguments("they must be a JSON object")
    return dict(arguments or {})


def _bind(tool: _Tool, arguments: str | Mapping[str, Any] | None, context: ToolContext) -> dict[str, Any]:
    """The keyword arguments for the function, checked against its schema and converted (enums)."""
    given = _parse(arguments)
    unexpected = [name for name in given if name not in tool.parameters]
    if unexpected:
        raise InvalidArguments(f"unexpected argument(s) {', '.join(map(repr, unexpected))}")
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
        raise InvalidArguments(f"missing required argument(s) {', '.join(map(repr, missing))}")
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
            return NO_FUNCTION
        try:
            kwargs = _bind(tool, arguments, context)
        except InvalidArguments as exc:
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
