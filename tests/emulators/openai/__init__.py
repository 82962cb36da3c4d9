"""An emulator of the OpenAI API for tests: real wire protocol (JSON + SSE), state, platform rules,
injected faults, and every request checked against the official OpenAPI spec.

    from tests.emulators.openai import OpenAIEmulator

    with OpenAIEmulator() as emu:
        client = openai.AsyncOpenAI(base_url=emu.base_url, api_key=emu.api_key)
        ...
"""

from .emulator import DEFAULT_API_KEY, DEFAULT_MODELS, OpenAIEmulator
from .model import ModelReply, ModelRequest, ScriptedModel, Seen, ToolCall, ToolResult
from .state import Recorded

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_MODELS",
    "ModelReply",
    "ModelRequest",
    "OpenAIEmulator",
    "Recorded",
    "ScriptedModel",
    "Seen",
    "ToolCall",
    "ToolResult",
]
