"""Operator tools: schemas from type hints and docstrings, loading, and what `Toolbox.call` answers."""

import asyncio
import enum
import functools
import inspect
import json
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.backends.tool_loop import chat_tool, responses_tool
from bot.conversation.example_tools import current_time
from bot.conversation.tools import (
    TOOL_CALL_TIMEOUT,
    Toolbox,
    ToolContext,
    ToolError,
    ToolSpec,
    tool_status,
)
from bot.settings import DEFAULT_MAX_TOOL_ROUNDS as MAX_TOOL_ROUNDS

CONTEXT = ToolContext(channel="C1", user_ids=("U1", "U2"))


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


def probe(annotation: Any, default: Any = inspect.Parameter.empty) -> Any:
    """A one-parameter function `probe(value)` annotated (and defaulted) as asked."""
    def probe(value):  # annotated below
        return value
    probe.__annotations__ = {"value": annotation}
    if default is not inspect.Parameter.empty:
        probe.__defaults__ = (default,)
    return probe


def parameters_of(function: Any) -> dict[str, Any]:
    return Toolbox.from_functions([function]).specs[0].parameters


# -- schemas ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("annotation", "schema", "required"),
    [
        (str, {"type": "string"}, True),
        (int, {"type": "integer"}, True),
        (float, {"type": "number"}, True),
        (bool, {"type": "boolean"}, True),
        (Any, {}, True),
        (list[int], {"type": "array", "items": {"type": "integer"}}, True),
        (list, {"type": "array", "items": {}}, True),
        (list[list[str]], {"type": "array", "items": {"type": "array", "items": {"type": "string"}}}, True),
        (dict[str, float], {"type": "object", "additionalProperties": {"type": "number"}}, True),
        (dict, {"type": "object", "additionalProperties": {}}, True),
        (str | None, {"type": ["string", "null"]}, False),
        (Optional[int], {"type": ["integer", "null"]}, False),  # noqa: UP045 — the old spelling works too
        (list[str] | None, {"type": ["array", "null"], "items": {"type": "string"}}, False),
        (Literal["a", "b"], {"type": "string", "enum": ["a", "b"]}, True),
        (Literal[1, 2], {"type": "integer", "enum": [1, 2]}, True),
        (Literal[1, "a"], {"enum": [1, "a"]}, True),
        (Literal["a"] | None, {"type": ["string", "null"], "enum": ["a", None]}, False),
        (Color, {"type": "string", "enum": ["red", "green"]}, True),
        (Size, {"type": "integer", "enum": [1, 2]}, True),
        (Annotated[str, "a city"], {"type": "string", "description": "a city"}, True),
        (Annotated[str, 42, "a city"], {"type": "string", "description": "a city"}, True),
        (Annotated[str, 42], {"type": "string"}, True),
        (Annotated[str, {"unhashable": "metadata"}], {"type": "string"}, True),
        (Annotated[int | None, "how many"], {"type": ["integer", "null"], "description": "how many"}, False),
        (Annotated[str, "a city"] | None, {"type": ["string", "null"], "description": "a city"}, False),
        (list[Annotated[str, "a tag"]], {"type": "array", "items": {"type": "string", "description": "a tag"}},
         True),
        (Annotated[Any, "anything"] | None, {"anyOf": [{"description": "anything"}, {"type": "null"}]}, False),
    ],
)
def test_schema_from_type_hint(annotation: Any, schema: dict, required: bool) -> None:
    assert parameters_of(probe(annotation)) == {
        "type": "object", "properties": {"value": schema}, "required": ["value"] if required else [],
        "additionalProperties": False,
    }


def untyped(city, days: int = 3):
    return city


def defaults(a: int, b: int = 2, *, c: str | None = None, d: bool = False, e: float | None) -> None:
    """Only `a` is required; `e` is optional because it may be None."""


def test_missing_hint_is_a_string_and_defaults_are_not_required() -> None:
    assert parameters_of(untyped)["properties"] == {"city": {"type": "string"}, "days": {"type": "integer"}}
    assert parameters_of(untyped)["required"] == ["city"]
    assert parameters_of(defaults)["required"] == ["a"]
    assert list(parameters_of(defaults)["properties"]) == ["a", "b", "c", "d", "e"]


def google(city: str, days: int, units: Annotated[str, "metric or imperial"] = "metric") -> None:
    """Forecast for a city.

    Continues the details, which the model does not need.

    Args:
        city (str): The city's name,
            in English.
        days: How many days ahead.
        units: Overridden by the Annotated text.

    Returns:
        Nothing at all.
    """


def numpy_style(city: str, days: int = 1) -> None:
    """Forecast
    for a city.

    Parameters
    ----------
    city : str
        The city's name,
        in English.
    days : int
        How many days ahead.

    Returns
    -------
    None
    """


def args_only(city: str) -> None:
    """
    Args:
        city: The city.
    """


def no_docstring(city: str) -> None:
    pass


@pytest.mark.parametrize(
    ("function", "description", "property_docs"),
    [
        (google, "Forecast for a city.",
         {"city": "The city's name, in English.", "days": "How many days ahead.", "units": "metric or imperial"}),
        (numpy_style, "Forecast for a city.", {"city": "The city's name, in English.", "days": "How many days ahead."}),
        (args_only, "", {"city": "The city."}),
        (no_docstring, "", {"city": None}),
        (defaults, "Only `a` is required; `e` is optional because it may be None.", {"a": None}),
    ],
)
def test_docstring_gives_descriptions(function: Any, description: str, property_docs: dict) -> None:
    spec = Toolbox.from_functions([function]).specs[0]
    assert spec.name == function.__name__
    assert spec.description == description
    for name, text in property_docs.items():
        assert spec.parameters["properties"][name].get("description") == text


async def who(context: ToolContext, topic: str) -> dict:
    """Who is talking about a topic."""
    return {"channel": context.channel, "users": list(context.user_ids), "topic": topic}


def renamed_context(ctx: ToolContext) -> str:
    return ctx.channel


def test_tool_context_is_not_in_the_schema() -> None:
    toolbox = Toolbox.from_functions([who, renamed_context])
    assert toolbox.specs[0].parameters == {"type": "object", "properties": {"topic": {"type": "string"}},
                                           "required": ["topic"], "additionalProperties": False}
    assert toolbox.specs[1].parameters["properties"] == {}


def test_tool_shapes_for_each_api() -> None:
    spec = Toolbox.from_functions([who]).specs[0]
    description = "Who is talking about a topic."
    assert responses_tool(spec.as_tool()) == {"type": "function", "name": "who", "description": description,
                                              "parameters": spec.parameters, "strict": False}
    chat = {"type": "function", "function": {"name": "who", "description": description,
                                             "parameters": spec.parameters}}
    assert chat_tool(spec.as_tool()) == chat  # (the legacy Assistants API takes the same shape)
    chat_tool(spec.as_tool())["function"]["parameters"]["properties"].clear()  # callers get their own copies
    assert spec.parameters["properties"] == {"topic": {"type": "string"}}
    spec.parameters["properties"]["topic"]["description"] = "changed"  # nor do specs share their schemas
    assert parameters_of(probe(str))["properties"]["value"] == {"type": "string"}
    assert isinstance(spec, ToolSpec)


# -- load errors -------------------------------------------------------------------------------------

def tuple_hint(point: tuple[int, int]) -> None: ...
def set_hint(tags: set[str]) -> None: ...
def int_keys(scores: dict[int, str]) -> None: ...
def two_types(value: int | str) -> None: ...
def bytes_hint(blob: bytes) -> None: ...
def class_hint(context: ToolSpec) -> None: ...
def nested_bad(rows: list[set[int]]) -> None: ...
def star_args(*names: str) -> None: ...
def star_kwargs(**options: str) -> None: ...
def positional_only(a: int, /) -> None: ...
def forward_ref(a: "NoSuchType") -> None: ...  # noqa: F821


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (tuple_hint, r"Parameter 'point' of the tool function .*\.tuple_hint has a type hint .*\(tuple\[int, int\]\)"),
        (set_hint, r"'tags' .* \(set\[str\]\); use str, int, float, bool"),
        (int_keys, r"'scores' .* \(dict\[int, str\]\)"),
        (two_types, r"'value' .* \(int \| str\)"),
        (bytes_hint, r"'blob' .* \(bytes\)"),
        (class_hint, r"'context' .* \(ToolSpec\)"),
        (nested_bad, r"'rows' .* \(set\[int\]\)"),
        (star_args, r"'names' .* cannot be passed by name"),
        (star_kwargs, r"'options' .* cannot be passed by name"),
        (positional_only, r"'a' .* cannot be passed by name"),
        (forward_ref, r"signature of the tool function .*forward_ref cannot be read: name 'NoSuchType'"),
    ],
)
def test_unusable_functions_fail_at_load_time(function: Any, message: str) -> None:
    with pytest.raises(ToolError, match=message):
        Toolbox.from_functions([function])


def test_tool_names_must_suit_the_model_apis_and_be_unique() -> None:
    long_name = probe(str)
    long_name.__name__ = "x" * 65
    with pytest.raises(ToolError, match="at most 64"):
        Toolbox.from_functions([long_name])
    with pytest.raises(ToolError, match="Two tool functions are named 'probe'"):
        Toolbox.from_functions([probe(str), probe(int)])


@pytest.fixture
def tools_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`tools_module(name, source)` writes an importable module for one test."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
        monkeypatch.delitem(sys.modules, name, raising=False)
        return name
    yield write


def test_load_unknown_module() -> None:
    with pytest.raises(ToolError) as caught:
        Toolbox.load("no_such_pkg.tools")
    assert str(caught.value) == (
        "BRIDGE_TOOLS_MODULE 'no_such_pkg.tools' cannot be imported: No module named 'no_such_pkg'.")


def test_load_module_that_fails_on_import(tools_module: Any) -> None:
    name = tools_module("tools_broken", "RATE = 1 / 0\n")
    with pytest.raises(ToolError, match=r"'tools_broken' cannot be imported: ZeroDivisionError: division by zero\.$"):
        Toolbox.load(name)


def test_load_module_with_an_unusable_function(tools_module: Any) -> None:
    name = tools_module("tools_bad_hint", "def lookup(ids: set[int]) -> None: ...\n")
    with pytest.raises(ToolError, match=r"'ids' of the tool function tools_bad_hint\.lookup"):
        Toolbox.load(name)


@pytest.mark.parametrize("module_name", [None, ""])
def test_no_module_means_no_tools(module_name: str | None) -> None:
    toolbox = Toolbox.load(module_name)
    assert not toolbox
    assert toolbox.specs == [] and toolbox.names == []


def test_only_public_functions_defined_in_the_module_become_tools(tools_module: Any) -> None:
    source = (
        "from os.path import join\n"
        "from bot.conversation.tools import ToolContext\n"
        "LIMIT = 3\n"
        "class Helper:\n    def method(self) -> None: ...\n"
        "def _private() -> None: ...\n"
        "def first(a: int) -> int:\n    return a\n"
        "async def second(context: ToolContext) -> str:\n    return context.channel\n"
        "alias = first\n"
    )
    toolbox = Toolbox.load(tools_module("tools_mixed", source))
    assert toolbox.names == ["first", "second"]
    assert len(toolbox) == 2 and toolbox


def test_module_without_public_functions_is_an_empty_toolbox(tools_module: Any) -> None:
    assert not Toolbox.load(tools_module("tools_empty", "from json import dumps\n\ndef _hidden() -> None: ...\n"))


def test_example_module_loads() -> None:
    toolbox = Toolbox.load("bot.conversation.example_tools")
    assert toolbox.names == ["current_time", "channel_members"]  # display_name is imported, not a tool
    current, members = toolbox.specs
    assert current.description == "The current date and time in a time zone (UTC unless one is given)."
    assert current.parameters == {
        "type": "object", "required": [], "additionalProperties": False,
        "properties": {"time_zone": {"type": "string", "description": "IANA time zone, e.g. Europe/Paris"}},
    }
    assert members.parameters == {"type": "object", "properties": {}, "required": [], "additionalProperties": False}


# -- calls ---------------------------------------------------------------------------------------------

def add(a: int, b: float = 0.5) -> float:
    return a + b


async def shout(text: str, times: int = 1) -> str:
    return text.upper() * times


def paint(color: Color, shade: Literal["light", "dark"] | None = None) -> dict:
    return {"color": color.name, "is_enum": isinstance(color, Color), "shade": shade}


def maybe(n: int | None) -> dict:
    return {"n": n}


def sized(items: list[int], tags: dict[str, str] | None = None) -> int:
    return len(items) + len(tags or {})


def nothing() -> None:
    return None


@dataclass
class Point:
    x: int
    size: Size


def point() -> Point:
    return Point(x=1, size=Size.LARGE)


def circular() -> list:
    loop: list = []
    loop.append(loop)
    return loop


def logged(function: Any) -> Any:
    """A plain (sync) decorator, as operators write them."""
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)
    return wrapper


@logged
async def decorated(city: str) -> str:
    return f"sunny in {city}"


def fail() -> None:
    raise ValueError("bad zone\n  see the docs")


async def fail_quietly() -> None:
    raise RuntimeError


async def upstream_timeout() -> None:
    raise TimeoutError("upstream took too long")


TOOLBOX = Toolbox.from_functions([add, shout, paint, maybe, sized, nothing, point, circular, fail, fail_quietly,
                                  upstream_timeout, who, decorated])


def error(message: str) -> dict:
    return {"status": "error", "message": message}


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("add", '{"a": 2}', 2.5),
        ("add", '{"a": 2, "b": 1}', 3.0),  # an int is a fine float
        ("add", {"a": 2, "b": 1.25}, 3.25),  # arguments already parsed
        ("add", '{"a": 1, "b": null}', 1.5),  # null where null isn't allowed: the default applies
        ("shout", '{"text": "hi", "times": 2}', "HIHI"),
        ("paint", '{"color": "red"}', {"color": "RED", "is_enum": True, "shade": None}),
        ("paint", '{"color": "green", "shade": "dark"}', {"color": "GREEN", "is_enum": True, "shade": "dark"}),
        ("paint", '{"color": "red", "shade": null}', {"color": "RED", "is_enum": True, "shade": None}),
        ("maybe", "{}", {"n": None}),  # `int | None` without a default: absent means None
        ("maybe", '{"n": 4}', {"n": 4}),
        ("sized", '{"items": [1, 2], "tags": {"k": "v"}}', 3),
        ("nothing", "", None),  # some models send "" for no arguments
        ("nothing", None, None),
        ("point", "{}", {"x": 1, "size": 2}),
        ("decorated", '{"city": "Oslo"}', "sunny in Oslo"),  # the coroutine it returns is awaited
        ("who", '{"topic": "lunch"}', {"channel": "C1", "users": ["U1", "U2"], "topic": "lunch"}),
    ],
)
async def test_call_ok(name: str, arguments: Any, expected: Any) -> None:
    result = await TOOLBOX.call(name, arguments, CONTEXT)
    assert (result if isinstance(expected, str) else json.loads(result)) == expected


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("add", '{"a": "2"}', 'Invalid arguments: a must be an integer, not "2"'),
        ("add", '{"a": true}', "Invalid arguments: a must be an integer, not true"),
        ("add", '{"a": 2.5}', "Invalid arguments: a must be an integer, not 2.5"),
        ("add", "{}", "Invalid arguments: missing required argument(s) 'a'"),
        ("add", '{"a": null}', "Invalid arguments: missing required argument(s) 'a'"),
        ("add", '{"a": 1, "c": 3, "d": 4}', "Invalid arguments: unexpected argument(s) 'c', 'd'"),
        ("add", '{"a": 1',
         "Invalid arguments: they are not valid JSON (Expecting ',' delimiter: line 1 column 8 (char 7))"),
        ("add", "[1]", "Invalid arguments: they must be a JSON object"),
        ("paint", '{"color": "blue"}', 'Invalid arguments: color must be one of "red", "green", not "blue"'),
        ("paint", '{"color": "red", "shade": "pale"}',
         'Invalid arguments: shade must be one of "light", "dark", not "pale"'),
        ("sized", '{"items": [1, "x"]}', 'Invalid arguments: items[1] must be an integer, not "x"'),
        ("sized", '{"items": [], "tags": {"k": 1}}', "Invalid arguments: tags.k must be a string, not 1"),
        ("sized", '{"items": {}}', "Invalid arguments: items must be an array, not {}"),
        ("fail", "{}", "ValueError: bad zone see the docs"),
        ("fail_quietly", "{}", "RuntimeError"),
        ("upstream_timeout", "{}", "TimeoutError: upstream took too long"),  # not our timeout
        ("circular", "{}", "The tool's result cannot be sent as JSON: Circular reference detected"),
    ],
)
async def test_call_errors_are_returned_to_the_model(name: str, arguments: str, message: str) -> None:
    result = await TOOLBOX.call(name, arguments, CONTEXT)
    assert json.loads(result) == error(message)
    assert "Traceback" not in result


async def test_unknown_function_gets_the_samples_answer() -> None:
    assert await TOOLBOX.call("get_weather", '{"city": "Paris"}', CONTEXT) == (
        '{"status": "error", "message": "No function found"}')
    empty = Toolbox()
    assert json.loads(await empty.call("x", "{}", CONTEXT)) == {"status": "error", "message": "No function found"}


async def test_slow_async_tool_times_out() -> None:
    async def dawdle() -> str:
        await asyncio.sleep(5)
        return "late"

    toolbox = Toolbox.from_functions([dawdle], call_timeout=0.05)
    started = asyncio.get_running_loop().time()
    assert json.loads(await toolbox.call("dawdle", "{}", CONTEXT)) == error(
        "The tool did not finish within 0.05 seconds")
    assert asyncio.get_running_loop().time() - started < 2


async def test_slow_sync_tool_times_out() -> None:
    release = threading.Event()

    def stuck() -> str:
        release.wait(5)
        return "late"

    toolbox = Toolbox.from_functions([stuck], call_timeout=0.05)
    try:
        assert json.loads(await toolbox.call("stuck", "{}", CONTEXT)) == error(
            "The tool did not finish within 0.05 seconds")
    finally:
        release.set()  # let the worker thread end


async def test_sync_tool_does_not_block_the_event_loop() -> None:
    released = threading.Event()

    def wait_for_the_loop() -> str:
        return "the loop kept running" if released.wait(2) else "the loop was blocked"

    async def release_soon() -> None:
        await asyncio.sleep(0.01)
        released.set()

    call = asyncio.create_task(Toolbox.from_functions([wait_for_the_loop]).call("wait_for_the_loop", "{}", CONTEXT))
    await release_soon()
    assert await call == "the loop kept running"


def test_constants() -> None:
    assert MAX_TOOL_ROUNDS == 5
    assert TOOL_CALL_TIMEOUT == 20.0
    assert Toolbox().call_timeout == TOOL_CALL_TIMEOUT


@pytest.mark.parametrize(
    ("names", "status"),
    [
        ([], "Using a tool…"),
        (["get_time"], "Using get_time…"),
        (["get_time", "channel_members"], "Using get_time and channel_members…"),
        (["get_time", "get_time", "channel_members"], "Using get_time and channel_members…"),
        (["a", "b", "c"], "Using a, b and c…"),
        (["a", "b", "c", "d", "e"], "Using a, b, c and 2 more…"),
    ],
)
def test_tool_status(names: list[str], status: str) -> None:
    assert tool_status(names) == status


# -- the example tools -------------------------------------------------------------------------------------

async def test_current_time_in_a_zone() -> None:
    toolbox = Toolbox.load("bot.conversation.example_tools")
    now = json.loads(await toolbox.call("current_time", '{"time_zone": "Asia/Tokyo"}', CONTEXT))
    assert set(now) == {"time_zone", "date", "time", "weekday", "utc_offset"}
    assert now["time_zone"] == "Asia/Tokyo" and now["utc_offset"] == "+0900"  # Japan has no summer time
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", now["date"]) and re.fullmatch(r"\d{2}:\d{2}", now["time"])
    assert current_time()["time_zone"] == "UTC" and current_time()["utc_offset"] == "+0000"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../etc/passwd", ""])
async def test_current_time_in_an_unknown_zone(zone: str) -> None:
    answer = json.loads(await Toolbox.load("bot.conversation.example_tools").call(
        "current_time", json.dumps({"time_zone": zone}), CONTEXT))
    assert answer["status"] == "error"
    assert answer["message"].startswith(f"ValueError: Unknown time zone {zone!r}: use an IANA name")


async def test_channel_members_through_slack(slack: Any) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.base_url)
    context = ToolContext(channel=slack.channels["general"], user_ids=(slack.users["alice"],), slack=client)
    answer = json.loads(await Toolbox.load("bot.conversation.example_tools").call("channel_members", "{}", context))
    # bob has no display name, so his real name; the assistant itself is not listed.
    assert answer == {"members": ["Alice", "Bob Builder", "Carol"], "more_not_listed": False}
    assert [call.args.get("limit") for call in slack.calls("conversations.members")] in (["50"], [50])


async def test_channel_members_without_slack() -> None:
    answer = json.loads(await Toolbox.load("bot.conversation.example_tools").call("channel_members", "{}", CONTEXT))
    assert answer == error("RuntimeError: Slack is not available to tools here.")
