"""Example tools: run the bridge with `BRIDGE_TOOLS_MODULE=bot.conversation.example_tools`.

Every public function defined here becomes a tool the assistant may call. The type hints are the
arguments the model fills in, the docstring tells the model what the tool is for, and a parameter
annotated `ToolContext` receives the channel, the speakers and the Slack client (the model never
sees it). Raise an exception to tell the model something went wrong.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.conversation.tools import ToolContext
from bot.outbound.people import display_name

MAX_MEMBERS = 50  # people listed by channel_members


def current_time(time_zone: Annotated[str, "IANA time zone, e.g. Europe/Paris"] = "UTC") -> dict[str, str]:
    """The current date and time in a time zone (UTC unless one is given)."""
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"Unknown time zone {time_zone!r}: use an IANA name such as 'Europe/Paris', "
                         f"'America/New_York' or 'UTC'.") from None
    now = datetime.now(zone)
    return {"time_zone": time_zone, "date": now.date().isoformat(), "time": now.strftime("%H:%M"),
            "weekday": now.strftime("%A"), "utc_offset": now.strftime("%z")}


async def channel_members(context: ToolContext) -> dict[str, object]:
    """The names of the people in this channel (at most 50; bots are left out)."""
    if context.slack is None:
        raise RuntimeError("Slack is not available to tools here.")
    page = await context.slack.conversations_members(channel=context.channel, limit=MAX_MEMBERS)
    answers = await asyncio.gather(*(context.slack.users_info(user=uid) for uid in page["members"][:MAX_MEMBERS]))
    people = [a["user"] for a in answers if not a["user"].get("is_bot") and not a["user"].get("deleted")]
    more = bool((page.get("response_metadata") or {}).get("next_cursor"))
    return {"members": [display_name(person) for person in people], "more_not_listed": more}
