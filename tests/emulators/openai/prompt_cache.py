"""Prompt caching as OpenAI's service does it (and vLLM's prefix caching, llama.cpp's prompt cache).

The longest prefix of a prompt that is identical to a prompt seen before under the same cache key
(the request's `prompt_cache_key`, per model) is read from the cache: only for prompts of at least
1,024 tokens, and in blocks of 128 tokens beyond the first 1,024 — `usage.input_tokens_details.
cached_tokens` (Responses) and `usage.prompt_tokens_details.cached_tokens` (Chat Completions).

A prompt is read in the order the model reads it: the tools, the instructions, then every item of the
context. Any change early in it — tools in another order, instructions that differ — ends the prefix
there, and everything after it is billed afresh.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque

CHARS_PER_TOKEN = 4  # (the same estimate as the scripted model's usage)
MIN_CACHED_TOKENS = 1024
CACHE_BLOCK_TOKENS = 128
PROMPTS_PER_KEY = 16  # recent prompts remembered per cache key
MAX_KEYS = 4096

Piece = tuple[str, str]  # (what frames it: tools / instructions / an item's role and type, its text)


def common_prefix_chars(first: list[Piece], second: list[Piece]) -> int:
    """Characters of text the two prompts share from their start."""
    shared = 0
    for (frame_a, text_a), (frame_b, text_b) in zip(first, second, strict=False):
        if frame_a != frame_b:
            break
        if text_a != text_b:
            same = 0
            for char_a, char_b in zip(text_a, text_b, strict=False):
                if char_a != char_b:
                    break
                same += 1
            return shared + same
        shared += len(text_a)
    return shared


def cached_tokens(prompt_chars: int, cached_chars: int) -> int:
    """Tokens billed as cached: none under 1,024 prompt tokens, else whole blocks of the shared prefix."""
    prompt = math.ceil(prompt_chars / CHARS_PER_TOKEN)
    shared = min(cached_chars // CHARS_PER_TOKEN, prompt)
    if prompt < MIN_CACHED_TOKENS or shared < MIN_CACHED_TOKENS:
        return 0
    return MIN_CACHED_TOKENS + (shared - MIN_CACHED_TOKENS) // CACHE_BLOCK_TOKENS * CACHE_BLOCK_TOKENS


class PromptCache:
    """Recent prompts per (model, cache key); `lookup` says how much of a new prompt they cover."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._prompts: OrderedDict[tuple[str, str | None], deque[list[Piece]]] = OrderedDict()

    def lookup(self, model: str, key: str | None, pieces: list[Piece]) -> int:
        """Characters of `pieces` found cached; the prompt is remembered for the requests after it."""
        with self._lock:
            seen = self._prompts.setdefault((model, key), deque(maxlen=PROMPTS_PER_KEY))
            self._prompts.move_to_end((model, key))
            best = max((common_prefix_chars(pieces, earlier) for earlier in seen), default=0)
            seen.append(pieces)
            while len(self._prompts) > MAX_KEYS:
                self._prompts.popitem(last=False)
        return best

    def clear(self) -> None:
        with self._lock:
            self._prompts.clear()
