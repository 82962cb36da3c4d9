"""What becomes of a shared file (pure): an image the model looks at, a PDF it reads, a text file inlined
with its name, or — anything else, too big, unreadable, or a model that cannot take it — the description
by name, type and size the text of every message carries anyway."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath

from bot.messages import FileNote
from bot.settings import DEFAULT_FILE_MAX_MB, DEFAULT_MESSAGE_FILES_MAX_MB, DEFAULT_TEXT_FILE_MAX_KB

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})  # what the APIs take
PDF_TYPE = "application/pdf"
TEXT_APPLICATION_TYPES = frozenset({
    "application/json", "application/xml", "application/x-yaml", "application/yaml", "application/toml",
    "application/javascript", "application/x-javascript", "application/typescript", "application/sql",
    "application/x-sh", "application/x-shellscript", "application/x-python", "application/csv",
    "application/x-ndjson", "application/graphql",
})
TEXT_EXTENSIONS = frozenset({
    ".txt", ".text", ".md", ".markdown", ".rst", ".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".yaml", ".yml",
    ".toml", ".ini", ".cfg", ".conf", ".env", ".xml", ".html", ".htm", ".css", ".scss", ".log", ".diff",
    ".patch", ".sql", ".graphql", ".py", ".pyi", ".ipynb", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx",
    ".java", ".kt", ".kts", ".scala", ".groovy", ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".cs", ".go",
    ".rs", ".rb", ".php", ".pl", ".pm", ".lua", ".r", ".swift", ".m", ".dart", ".ex", ".exs", ".erl",
    ".hs", ".clj", ".elm", ".sh", ".bash", ".zsh", ".fish", ".ps1", ".bat", ".vue", ".svelte", ".tf",
    ".proto", ".gradle", ".cmake", ".mk", ".dockerfile", ".gitignore", ".tex", ".bib", ".srt", ".vtt",
})
# Slack's `filetype` words for text it recognises (snippets, code), when the mimetype says little.
TEXT_FILETYPES = frozenset({
    "text", "markdown", "post", "csv", "tsv", "json", "yaml", "xml", "html", "css", "javascript", "typescript",
    "python", "java", "kotlin", "c", "cpp", "csharp", "go", "rust", "ruby", "php", "perl", "lua", "r", "swift",
    "shell", "bash", "powershell", "sql", "diff", "dockerfile", "toml", "ini", "scala", "groovy", "haskell",
    "elixir", "erlang", "clojure", "dart", "objc", "latex", "vb", "matlab", "apex", "puppet", "smalltalk",
})

DEFAULT_FILE_BYTES = DEFAULT_FILE_MAX_MB * 1024 * 1024
DEFAULT_MESSAGE_BYTES = DEFAULT_MESSAGE_FILES_MAX_MB * 1024 * 1024
DEFAULT_TEXT_BYTES = DEFAULT_TEXT_FILE_MAX_KB * 1024
_MARKER_AT_LINE_START = re.compile(r"^(\s*)\[", re.MULTILINE)


class FileKind(StrEnum):
    IMAGE = "image"
    PDF = "pdf"
    TEXT = "text"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class FileLimits:
    """How much of people's files the model gets (BRIDGE_FILE_MAX_MB, BRIDGE_MESSAGE_FILES_MAX_MB,
    BRIDGE_TEXT_FILE_MAX_KB)."""

    file_bytes: int = DEFAULT_FILE_BYTES
    message_bytes: int = DEFAULT_MESSAGE_BYTES
    text_bytes: int = DEFAULT_TEXT_BYTES


def kind_of(note: FileNote) -> FileKind:
    """Which kind of file this is, by mimetype, then Slack's filetype, then the name's extension."""
    mimetype = note.mimetype.split(";")[0].strip().lower()
    if mimetype in IMAGE_TYPES:
        return FileKind.IMAGE
    if mimetype == PDF_TYPE or (not mimetype and note.filetype == "pdf"):
        return FileKind.PDF
    if mimetype.startswith("text/") or mimetype in TEXT_APPLICATION_TYPES or mimetype.endswith(("+json", "+xml")):
        return FileKind.TEXT
    if note.filetype.lower() in TEXT_FILETYPES or _extension(note.name) in TEXT_EXTENSIONS:
        return FileKind.TEXT
    return FileKind.OTHER


def _extension(name: str) -> str:
    path = PurePosixPath(name.lower())
    return path.suffix or (f".{path.name}" if path.name in ("dockerfile", "makefile") else "")


def decoded_text(data: bytes) -> str | None:
    """A text file's content as text; None for what is not text after all (binary bytes)."""
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3:  # a character cut by the size limit
            return data[:exc.start].decode("utf-8-sig", errors="ignore")
        return data.decode("latin-1") if _mostly_printable(data) else None


def _mostly_printable(data: bytes) -> bool:
    sample = data[:4096]
    printable = sum(1 for byte in sample if 32 <= byte < 127 or byte >= 160 or byte in (9, 10, 13))  # no C1 controls
    return printable >= len(sample) * 0.95


def inlined(name: str, text: str, *, truncated: bool, total: int | None) -> str:
    """A text file as the model reads it after the message: between lines naming it. A line in it that
    opens with `[` is escaped, as in the message itself, so a file cannot forge another speaker's line."""
    body = _MARKER_AT_LINE_START.sub(r"\1\\[", text.rstrip("\n"))
    cut = f" (only the first {size_text(len(text.encode()))}" + (f" of {size_text(total)})" if total else ")")
    return f"--- {name}{cut if truncated else ''} ---\n{body}\n--- end of {name} ---"


def size_text(size: int) -> str:
    """"512 bytes", "2.0 KB", "1.5 MB"."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def too_big(note: FileNote, limits: FileLimits, used: int) -> str | None:
    """Why a file (by its declared size) cannot be sent as it is, given `used` bytes of the message's
    budget already taken; None if it can."""
    if note.size is None:
        return None
    if note.size > limits.file_bytes:
        return f"it is larger than the {size_text(limits.file_bytes)} limit per file"
    if used + note.size > limits.message_bytes:
        return f"the message's files are larger than the {size_text(limits.message_bytes)} limit together"
    return None


def notice(names: list[tuple[str, str]]) -> str:
    """The ephemeral note to a message's author: which of their files the assistant could not see, and why."""
    lines = [f"• *{name}*: {why}" for name, why in names]
    head = ("The assistant could not look at this file; it only knows its name, type and size:" if len(names) == 1
            else "The assistant could not look at these files; it only knows their names, types and sizes:")
    return "\n".join([head, *lines])
