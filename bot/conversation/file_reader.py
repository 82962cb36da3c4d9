"""Reading a message's files for its turn: which to fetch from Slack, within the limits, and what the
model gets from each (see `files.py`); the author is told, once and only them, about a file the model
could not look at."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass

from slack_sdk.web.async_client import AsyncWebClient

from bot.backends.base import SLACK_FILES_DOWN, Attachment, BackendError, FailureKind
from bot.conversation.files import FileKind, FileLimits, decoded_text, inlined, kind_of, notice, size_text, too_big
from bot.messages import FileNote, InboxItem
from bot.outbound.slack_errors import SLACK_FAILURES, reason
from bot.outbound.slack_files import FileUnreadable, SlackFiles, SlackFilesDown

log = logging.getLogger(__name__)

MAX_NOTIFIED = 10_000  # messages whose author was told about their files (so a retried turn tells nobody twice)


@dataclass(frozen=True, slots=True)
class ReadFiles:
    """What a message's files give the model: text blocks to follow its words, and attachments."""

    notes: tuple[FileNote, ...] = ()  # the files as Slack describes them (files.info filled in what events omit)
    inline: tuple[str, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    problems: tuple[tuple[str, str], ...] = ()  # (file name, why the model could not look at it)


NOTHING = ReadFiles()


class FileReader:
    """Reads files with `files` (the bot's token), within `limits`; notes go to authors by `slack`."""

    def __init__(self, files: SlackFiles, *, limits: FileLimits, slack: AsyncWebClient | None = None) -> None:
        self._files = files
        self.limits = limits
        self._slack = slack
        self._notified: OrderedDict[tuple[str, str], None] = OrderedDict()

    async def read(self, item: InboxItem, accepts: Collection[str]) -> ReadFiles:
        """The message's files: text files inlined; images and PDFs as attachments when the model takes
        that kind (`accepts`); the rest left to the description. A Slack outage raises a transient
        BackendError (the turn is tried again later); a file Slack will not give is a problem for its author."""
        notes: list[FileNote] = []
        inline: list[str] = []
        attachments: list[Attachment] = []
        problems: list[tuple[str, str]] = []
        for note in item.files:
            full, got = note, None
            try:
                full = await self._files.details(note) if note.id or note.url else note
                got = await self._content(full, accepts, used=sum(len(a.data) for a in attachments))
            except FileUnreadable as exc:
                got = str(exc)
            except SlackFilesDown as exc:
                raise BackendError(f"Slack did not hand over {note.name} ({exc})", kind=FailureKind.TRANSIENT,
                                   code=SLACK_FILES_DOWN) from exc
            notes.append(full)
            if isinstance(got, Attachment):
                attachments.append(got)
            elif isinstance(got, tuple):
                inline.append(got[0])
                if got[1]:
                    problems.append((full.name, got[1]))
            elif got:
                problems.append((full.name, got))
        return ReadFiles(tuple(notes), tuple(inline), tuple(attachments), tuple(problems))

    async def _content(self, note: FileNote, accepts: Collection[str], *,
                       used: int) -> Attachment | tuple[str, str] | str | None:
        """One file's content for the model: an attachment, an inlined text (and what to tell about it),
        a problem to tell, or None (left to the description)."""
        kind = kind_of(note)
        if kind is FileKind.OTHER or (kind is not FileKind.TEXT and kind.value not in accepts) or not note.url:
            return None
        if kind is FileKind.TEXT:
            return await self._text(note)
        why = too_big(note, self.limits, used)
        if why is not None:
            return f"{why} ({size_text(note.size or 0)})"
        got = await self._files.download(note, min(self.limits.file_bytes, self.limits.message_bytes - used))
        return Attachment(kind.value, note.name, _mimetype(note), got.data)

    async def _text(self, note: FileNote) -> tuple[str, str] | None:
        """A text file inlined (and a problem to tell if it was cut); None if it is not text after all."""
        got = await self._files.download(note, self.limits.text_bytes, partial=True)
        text = decoded_text(got.data)
        if text is None:
            return None
        if got.truncated and "\n" in text:  # end on a whole line
            text = text[:text.rfind("\n") + 1]
        block = inlined(note.name, text, truncated=got.truncated, total=note.size)
        cut = f"only its first {size_text(self.limits.text_bytes)} were shown" if got.truncated else ""
        return block, cut

    async def tell(self, channel: str, item: InboxItem, problems: tuple[tuple[str, str], ...]) -> None:
        """Tell the message's author (only them: ephemeral) which files the model could not look at —
        once per message, however often its turn is tried."""
        key = (channel, item.ts)
        if not problems or key in self._notified or self._slack is None:
            return
        self._notified[key] = None
        if len(self._notified) > MAX_NOTIFIED:
            self._notified.popitem(last=False)
        try:
            await self._slack.chat_postEphemeral(channel=channel, user=item.user, text=notice(list(problems)),
                                                 thread_ts=item.thread_ts)
        except SLACK_FAILURES as exc:  # a note is a courtesy: the turn goes on without it
            log.info("channel %s: could not tell %s about their files (%s)", channel, item.user, reason(exc))


def _mimetype(note: FileNote) -> str:
    return note.mimetype.split(";")[0].strip().lower() or "application/octet-stream"
