"""Responses/Conversations items: how input becomes stored items, and how tool calls pair up."""

from __future__ import annotations

from typing import Any

from . import errors
from .model import ToolCall, ToolResult, text_of
from .state import new_id


def item_id(kind: str) -> str:
    prefix = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}.get(kind, "item")
    return new_id(prefix, hex_chars=48)


def stored_items(raw: Any) -> list[dict[str, Any]]:
    """Input (`"text"` or a list of input items) as the platform stores it: typed, with ids and status."""
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    return [_stored(item) for item in raw]


def _stored(item: dict[str, Any]) -> dict[str, Any]:
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role", "user")
        content = item.get("content", [])
        if isinstance(content, str):
            content = [_text_part(role, content)]
        else:
            content = [dict(part) for part in content]
        return {"id": item.get("id") or item_id("message"), "type": "message", "status": "completed",
                "role": role, "content": content}
    if kind == "function_call_output":
        return {"id": item.get("id") or item_id(kind), "type": kind, "call_id": item.get("call_id"),
                "output": item.get("output"), "status": "completed"}
    if kind == "function_call":
        return {"id": item.get("id") or item_id(kind), "type": kind, "call_id": item.get("call_id"),
                "name": item.get("name"), "arguments": item.get("arguments", ""), "status": "completed"}
    stored = dict(item)
    stored.setdefault("id", item_id(kind))
    return stored


def _text_part(role: str, text: str) -> dict[str, Any]:
    if role == "assistant":
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"type": "input_text", "text": text}


def resolve_references(items: list[dict[str, Any]], known: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace `item_reference` items by the items they name."""
    by_id = {item["id"]: item for item in known if "id" in item}
    out = []
    for item in items:
        if item.get("type") == "item_reference":
            target = by_id.get(item.get("id", ""))
            if target is None:
                raise errors.item_not_found(item.get("id", ""))
            out.append(target)
        else:
            out.append(item)
    return out


def heard(items: list[dict[str, Any]]) -> list[str]:
    """The text of each user message among `items` (the speaker, if any, is part of the text)."""
    return [text_of(item.get("content")) for item in items
            if item.get("type") == "message" and item.get("role") == "user"]


def tool_results(history: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[ToolResult]:
    """Pair each function_call_output in `new` with its call; enforce the platform's pairing rules."""
    calls = {item["call_id"]: item for item in history + new if item.get("type") == "function_call"}
    answered = {item["call_id"] for item in history + new if item.get("type") == "function_call_output"}
    for call_id in calls:
        if call_id not in answered:
            raise errors.no_tool_output_for_call(call_id)
    results = []
    for item in new:
        if item.get("type") != "function_call_output":
            continue
        call = calls.get(item.get("call_id"))
        if call is None:
            raise errors.no_tool_call_for_output(str(item.get("call_id")))
        output = item.get("output")
        results.append(ToolResult(item["call_id"], call.get("name"),
                                  output if isinstance(output, str) else text_of(output)))
    return results


def output_message(text: str, *, status: str = "completed", msg_id: str | None = None) -> dict[str, Any]:
    return {"id": msg_id or item_id("message"), "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def function_call_item(call: ToolCall, *, status: str = "completed", fc_id: str | None = None,
                       arguments: str | None = None) -> dict[str, Any]:
    return {"id": fc_id or item_id("function_call"), "type": "function_call", "status": status,
            "arguments": call.arguments if arguments is None else arguments, "call_id": call.call_id,
            "name": call.name}


def page(items: list[dict[str, Any]], *, limit: int, order: str, after: str | None,
         before: str | None = None) -> dict[str, Any]:
    """OpenAI's cursor list: `{"object": "list", "data", "first_id", "last_id", "has_more"}`."""
    ordered = list(items) if order == "asc" else list(reversed(items))
    if before:
        ids = [item.get("id") for item in ordered]
        ordered = ordered[:ids.index(before)] if before in ids else []
    if after:
        ids = [item.get("id") for item in ordered]
        ordered = ordered[ids.index(after) + 1:] if after in ids else []
    chosen = ordered[:limit]
    return {"object": "list", "data": chosen,
            "first_id": chosen[0]["id"] if chosen else None,
            "last_id": chosen[-1]["id"] if chosen else None,
            "has_more": len(ordered) > len(chosen)}


def list_params(query: Any, *, default_order: str = "desc") -> tuple[int, str, str | None]:
    try:
        limit = int(query.get("limit", 20))
    except ValueError:
        raise errors.invalid_value("limit", "expected an integer.") from None
    if not 1 <= limit <= 100:
        raise errors.invalid_value("limit", "integer above maximum value, expected a value <= 100.")
    order = query.get("order", default_order)
    return limit, order, query.get("after")
