"""What the model saw, whatever the backend (Responses, Chat Completions, Assistants)."""

from __future__ import annotations

from typing import Any

from tests.emulators.openai import OpenAIEmulator

ENDPOINTS = {"responses": "/v1/responses", "chat": "/v1/chat/completions", "assistants": "/v1/threads"}


def turns(model_api: OpenAIEmulator) -> list[Any]:
    """Every model request, as the scripted model saw it, oldest first."""
    return list(model_api.model.seen)


def input_texts(seen: Any) -> list[str]:
    """The text of each new user message of one request (the turn's input), as the model read it."""
    texts = []
    for item in seen.input:
        if item.get("role", "user") != "user":  # the turn's note (developer/system) is not a message
            continue
        content = item.get("content")
        if isinstance(content, str):
            texts.append(content)
        else:
            texts.extend(part.get("text", "") for part in content or ()
                         if part.get("type") in ("input_text", "text"))
    return texts


def turn_facts(seen: Any) -> str:
    """What told the model about this turn: the instructions and the turn's note (a developer message
    in Responses, a system message in Chat Completions, part of the instructions in Assistants)."""
    notes = [str(item.get("content")) for item in seen.input if item.get("role") in ("developer", "system")]
    return "\n".join([seen.instructions or "", *notes])


def context_text(seen: Any) -> str:
    """Everything the model had in front of it for one request (history and input), as one string."""
    return str(seen.context)


def never_overlapping(model_api: OpenAIEmulator, backend: str) -> bool:
    """No two model requests were in flight at once (one channel: one conversation at a time)."""
    spans = sorted((r.time_received, r.time_done or r.time_received)
                   for r in model_api.requests(ENDPOINTS[backend]) if r.method == "POST")
    return all(end <= next_start + 0.005 for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False))


FILE_PARTS = {"responses": ("input_image", "input_file"), "chat": ("image_url", "file"),
              "assistants": ("image_file", "image_url")}


def file_parts(seen: Any) -> list[dict[str, Any]]:
    """The image and file parts of the new user messages of one request (what the model could look at)."""
    parts = []
    for item in seen.input:
        content = item.get("content") if item.get("role", "user") == "user" else None
        if isinstance(content, list):
            parts.extend(part for part in content if part.get("type") in FILE_PARTS.get(seen.endpoint, ()))
    return parts


def context_file_parts(seen: Any) -> list[dict[str, Any]]:
    """The image and file parts anywhere in what the model had in front of it (history included)."""
    return [part for item in seen.context if isinstance(item.get("content"), list)
            for part in item["content"] if part.get("type") in FILE_PARTS.get(seen.endpoint, ())]


def in_use(model_api: OpenAIEmulator) -> list[str]:
    """The Conversations holding any item (the empty spares made ahead left out)."""
    return [conversation_id for conversation_id, items in model_api.conversations.items() if items]
