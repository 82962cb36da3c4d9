"""Prompts the model service can cache: a long conversation with three speakers, per backend.

One channel, `turns` messages one at a time from three members in turn (so every turn has another
speaker, which the old prompts named in their instructions). The OpenAI emulator reports, per request,
the input tokens and how many of them its prompt cache served — the service's rules: the longest prefix
shared with a recent prompt under the same model and `prompt_cache_key`, from 1,024 tokens, in blocks of
128 (tests/emulators/openai/prompt_cache.py). Beside it, the same requests laid out as the bridge laid
them out before (the per-turn note — whom to address, the date — inside the instructions at the front,
no note after the history) are put through a second cache with the same rules: what those prompts would
have had cached, from the very same conversation.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from bench.report import Section
from bench.world import END, Setup, World
from tests.emulators.openai import ModelRequest, ScriptedModel
from tests.emulators.openai.model import default_reply, fit_length, prompt_pieces, text_of
from tests.emulators.openai.prompt_cache import PromptCache, cached_tokens

BACKENDS = ("responses", "chat")
ENDPOINTS = {"responses": "/v1/responses", "chat": "/v1/chat/completions"}
CACHED_TARGET = 0.90  # of input tokens, from turn 5 on
FROM_TURN = 5
NOTE_ROLES = ("developer", "system")
# A team's instructions of a realistic length (about 1,100 tokens): what comes first in every request.
HANDBOOK = ("You are the shared assistant of our product team. " + " ".join(
    f"Rule {n}: answer briefly, name who asked, keep decisions and owners in a short list, and say so when "
    "you are unsure rather than guessing." for n in range(1, 36)))


def caching(setup: Setup, turns: int, reply_length: int) -> Section:
    section = Section(f"Prompt caching: {turns} turns in one channel, three speakers in turn, per backend")
    for backend in BACKENDS:
        now, before = _conversation(setup, backend, turns, reply_length)
        later_now, later_before = now[FROM_TURN - 1:], before[FROM_TURN - 1:]
        share = _cached_share(later_now)
        section.add(f"{backend}: input tokens cached, turns {FROM_TURN}–{turns}", f"{share:.1%}",
                    f"≥ {CACHED_TARGET:.0%}", share >= CACHED_TARGET)
        section.add(f"{backend}: … with the prompts as laid out before", f"{_cached_share(later_before):.1%}")
        section.add(f"{backend}: fresh input tokens per turn (p50 / max), turns {FROM_TURN}–{turns}",
                    f"{_fresh_p50(later_now):.0f} / {max(_fresh(later_now)):.0f}  (before: "
                    f"{_fresh_p50(later_before):.0f} / {max(_fresh(later_before)):.0f})")
        section.add(f"{backend}: fresh input tokens, turns 1–{turns}, per turn",
                    " ".join(f"{value:.0f}" for value in _fresh(now)))
    section.note(__doc__.split("\n\n", 1)[1].replace("\n", " "))
    section.note(f"Instructions: a {len(HANDBOOK)}-character team handbook (ASSISTANT_INSTRUCTIONS); each user "
                 f"message about 40 characters; each answer {reply_length} characters. 'Fresh' = input tokens "
                 "minus cached ones: what is billed at the full price.")
    return section


def _conversation(setup: Setup, backend: str, turns: int,
                  reply_length: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(input tokens, cached tokens) per turn: as the bridge sends them now, and as laid out before."""
    model = ScriptedModel(ttft=setup.ttft, chunk_delay=setup.chunk_delay)
    model.reply_fn = lambda request: _reply(request, reply_length)
    env = {"ASSISTANT_BACKEND": backend, "ASSISTANT_INSTRUCTIONS": HANDBOOK}
    with World(1, setup, env=env, model=model) as world:
        for token in range(turns):
            world.say(0, token)
            world.wait(lambda t=token: world.channel_answered(0, t), setup.timeout, f"the answer to {token}", 0.01)
        seen = world.openai.model.seen
        bodies = [record.json for record in world.openai.requests() if record.method == "POST"
                  and record.path == ENDPOINTS[backend]]
        assert len(bodies) == len(seen), f"{backend}: every model request went to {ENDPOINTS[backend]}"
    now = [(request.input_tokens, request.cached_tokens) for request in seen]
    before = _as_before(seen, bodies)
    return now, before


def _reply(request: ModelRequest, length: int) -> str:
    heard = default_reply(request)
    return f"{fit_length(heard, max(length - len(END) - 1, len(heard)))} {END}"


def _as_before(seen: Sequence[Any], bodies: Sequence[dict[str, Any]]) -> list[tuple[int, int]]:
    """The same requests with the note inside the instructions at the front and no notes after the
    history — the prompts the bridge sent before — through a prompt cache of their own."""
    cache, figures = PromptCache(), []
    for request, body in zip(seen, bodies, strict=False):
        if request.endpoint == "responses":
            base = request.instructions or ""
            notes = [item for item in request.input if item.get("role") in NOTE_ROLES]
        else:  # chat: the instructions are the first system message, the notes the later ones
            base = _system(request.context)
            notes = [item for item in request.context[1:] if item.get("role") in NOTE_ROLES]
        context = [item for item in request.context if item.get("role") not in NOTE_ROLES]
        instructions = "\n".join([base, *(text_of(item.get("content")) for item in notes[-1:])])
        pieces = prompt_pieces(request.tools, instructions, context)
        chars = sum(len(text) for _, text in pieces)
        shared = cache.lookup(request.model, (body or {}).get("prompt_cache_key"), pieces)
        figures.append((request.input_tokens, cached_tokens(chars, shared)))
    return figures


def _system(context: Sequence[dict[str, Any]]) -> str:
    first = context[0] if context else {}
    return text_of(first.get("content")) if first.get("role") == "system" else ""


def _cached_share(figures: Sequence[tuple[int, int]]) -> float:
    total = sum(tokens for tokens, _ in figures)
    return sum(cached for _, cached in figures) / total if total else 0.0


def _fresh(figures: Sequence[tuple[int, int]]) -> list[float]:
    return [float(tokens - cached) for tokens, cached in figures]


def _fresh_p50(figures: Sequence[tuple[int, int]]) -> float:
    return statistics.median(_fresh(figures)) if figures else 0.0
