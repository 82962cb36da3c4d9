"""Settings for files people share: whether images and PDFs reach the model (BRIDGE_VISION), and how
much of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.settings.parsing import check_choice, number

VISION_MODES = ("auto", "on", "off")
DEFAULT_FILE_MAX_MB = 10  # an image or PDF larger than this is described, not sent
DEFAULT_MESSAGE_FILES_MAX_MB = 20  # all the images and PDFs of one message together
DEFAULT_TEXT_FILE_MAX_KB = 100  # a text file is inlined up to this much (about 25,000 tokens)
SHARED_FILE_SETTINGS = frozenset({"BRIDGE_VISION", "BRIDGE_FILE_MAX_MB", "BRIDGE_MESSAGE_FILES_MAX_MB",
                                  "BRIDGE_TEXT_FILE_MAX_KB"})


def file_settings(get: Callable[..., str], problems: list[str]) -> dict[str, Any]:
    """What the model gets of shared files: images at all (BRIDGE_VISION), and how much."""
    vision = get("BRIDGE_VISION", "auto").lower()
    check_choice(problems, "BRIDGE_VISION", vision, VISION_MODES, VISION_MODES)
    per_file = number(problems, "BRIDGE_FILE_MAX_MB", get("BRIDGE_FILE_MAX_MB"), DEFAULT_FILE_MAX_MB, 0.1, 500)
    per_message = number(problems, "BRIDGE_MESSAGE_FILES_MAX_MB", get("BRIDGE_MESSAGE_FILES_MAX_MB"),
                         DEFAULT_MESSAGE_FILES_MAX_MB, 0.1, 1000)
    text = number(problems, "BRIDGE_TEXT_FILE_MAX_KB", get("BRIDGE_TEXT_FILE_MAX_KB"), DEFAULT_TEXT_FILE_MAX_KB,
                  1, 10_000)
    return {"vision": vision, "file_max_bytes": int(per_file * 1024 * 1024),
            "message_files_max_bytes": int(per_message * 1024 * 1024), "text_file_max_bytes": int(text * 1024)}
