"""Slack's message markup (`<@U…>`, `<#C…|name>`, `<url|label>`, `&amp;`) into text a model reads well."""

from __future__ import annotations

import re
from collections.abc import Mapping

_ANGLE = re.compile(r"<([^<>\n]+)>")
_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_SPECIAL = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}


def mentioned_users(text: str) -> list[str]:
    """User IDs mentioned in `text`, in order, without repeats."""
    return list(dict.fromkeys(_USER_MENTION.findall(text)))


def mentions_user(text: str, user_id: str) -> bool:
    return user_id in _USER_MENTION.findall(text)


def to_readable(text: str, names: Mapping[str, str]) -> str:
    """Render Slack markup as plain text; `names` maps user IDs to display names."""

    def replace(match: re.Match[str]) -> str:
        body = match.group(1)
        target, _, label = body.partition("|")
        if target.startswith("@"):
            user_id = target[1:]
            return "@" + (names.get(user_id) or label or user_id)
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            keyword = target[1:]
            if keyword in _SPECIAL:
                return _SPECIAL[keyword]
            if keyword.startswith("subteam^"):
                return label or "@" + keyword.removeprefix("subteam^")
            return label or keyword  # <!date^…|fallback> and friends
        if label and label != target:
            return f"{label} ({target})"
        return target.removeprefix("mailto:")

    return _unescape(_ANGLE.sub(replace, text))


def _unescape(text: str) -> str:
    # Slack escapes only these three; &amp; last so "&amp;lt;" stays "&lt;".
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
