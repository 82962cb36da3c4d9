"""Parsing helpers for the settings: the configuration file, numbers, choices, lists and URLs."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

FILE_TABLES = ("channels", "hosted_tools")  # [channels.C…] respond_to = …; [hosted_tools] for Responses


def read_config_file(path: Path, known: frozenset[str], *, explicit: bool,
                      problems: list[str]) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """The file's settings (upper-cased names → text; `known` are those allowed there) and its tables."""
    if not path.is_file():
        if explicit:
            problems.append(f"The configuration file {str(path)!r} (BRIDGE_CONFIG) does not exist.")
        return {}, {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"The configuration file {str(path)!r} is not valid TOML: {exc}.")
        return {}, {}
    values: dict[str, str] = {}
    tables: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            if key in FILE_TABLES:
                tables[key] = value
            else:
                problems.append(f"{str(path)!r} has an unknown table [{key}]; the tables are "
                                f"{', '.join(f'[{t}]' for t in FILE_TABLES)}.")
            continue
        name = key.upper()
        if name not in known:
            problems.append(f"{str(path)!r} has an unknown setting {key!r}; secrets such as tokens and keys "
                            f"belong in the environment or .env, not in this file.")
            continue
        values[name] = toml_to_text(value)
    return values, tables


def hosted_tools(table: dict[str, Any], problems: list[str]) -> tuple[dict[str, Any], ...]:
    """[hosted_tools]: web_search = true; file_search = ["vs_…"]; [[hosted_tools.mcp]] server_label/url…"""
    tools: list[dict[str, Any]] = []
    for key, value in table.items():
        if key == "web_search" and isinstance(value, bool):
            tools += [{"type": "web_search"}] if value else []
        elif key == "file_search" and isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            tools.append({"type": "file_search", "vector_store_ids": list(value)})
        elif key == "mcp" and isinstance(value, list) and all(is_mcp(v) for v in value):
            tools += [{"type": "mcp", "require_approval": "never", **server} for server in value]
        else:
            problems.append(f"[hosted_tools] {key} is not understood: use web_search = true, file_search = "
                            "[\"vs_…\"] or [[hosted_tools.mcp]] tables with server_label and server_url.")
    return tuple(tools)


def is_mcp(server: Any) -> bool:
    return (isinstance(server, dict) and isinstance(server.get("server_label"), str)
            and isinstance(server.get("server_url"), str) and is_http_url(server["server_url"]))


def toml_to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def check_choice(problems: list[str], name: str, value: str, choices: tuple[str, ...],
                  available: tuple[str, ...]) -> None:
    if value not in choices:
        problems.append(f"{name} must be one of {', '.join(choices)}, not {value!r}.")
    elif value not in available:
        problems.append(f"{name}={value} is not available in this version yet; use "
                        f"{' or '.join(available)}.")


def number(problems: list[str], name: str, text: str, default: float, low: float, high: float) -> float:
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        problems.append(f"{name} must be a number from {low:g} to {high:g}, not {text!r}.")
        return default
    return value


def parse_channels(text: str, problems: list[str]) -> frozenset[str]:
    ids = [part.strip() for part in text.replace(" ", ",").split(",") if part.strip()]
    bad = [i for i in ids if not (i[:1] in ("C", "G", "D") and i.isalnum() and i.isupper())]
    if bad:
        problems.append(f"BRIDGE_CHANNELS must be a comma-separated list of channel IDs like C0123ABCD "
                        f"(not names); these are not: {', '.join(bad)}.")
    return frozenset(ids)


def is_http_url(text: str) -> bool:
    parsed = urlparse(text)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def redact_url(url: str) -> str:
    """Hide a password in a database URL before it is printed."""
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(parsed.password, "***")
    return url


def port_number(problems: list[str], name: str, text: str) -> int | None:
    if not text.isdigit() or not 0 < int(text) < 65536:
        problems.append(f"{name} must be a number between 1 and 65535, not {text!r}.")
        return None
    return int(text)


ChannelSettings = tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]


def channel_tables(channels: dict[str, Any], keys: Mapping[str, tuple[Callable[[Any], Any], str]],
                   problems: list[str]) -> ChannelSettings:
    """[channels.C0123ABCD] respond_to = "mentions" → (("C0123ABCD", (("respond_to", "mentions"),)),)."""
    found = []
    for channel, table in channels.items():
        if not isinstance(table, dict):
            problems.append(f"[channels.{channel}] must be a table of per-channel settings "
                            f"({', '.join(keys)}).")
            continue
        values = []
        for key, raw in table.items():
            if key not in keys:
                problems.append(f"[channels.{channel}] has an unknown setting {key!r}; a channel may set "
                                f"{', '.join(keys)}.")
                continue
            parse, takes = keys[key]
            value = parse(raw)
            if value is None:
                problems.append(f"[channels.{channel}] {key} must be {takes}, not {raw!r}.")
                continue
            values.append((key, value))
        found.append((channel, tuple(values)))
    return tuple(found)
