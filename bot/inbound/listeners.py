"""Bolt listeners: a few lines each — normalise, hand over, return (Bolt acks when they return)."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.inbound.intake import Intake
from bot.inbound.slash_command import SlashCommands

# The events the bridge listens for; manifest.yml subscribes to exactly these (message as
# message.channels, message.groups and message.im). tests/test_manifest.py keeps the two in step.
EVENTS = ("message", "app_mention", "user_change", "subteam_members_changed", "member_joined_channel",
          "channel_rename", "group_rename")


def register(app: AsyncApp, *, intake: Intake, commands: SlashCommands, command_name: str) -> None:
    """Attach the bridge's listeners to `app`."""

    async def on_message(event: dict[str, Any], context: AsyncBoltContext) -> None:
        await intake.event(event, bot_user_id=context.bot_user_id)

    async def on_user_change(event: dict[str, Any]) -> None:
        await intake.user_changed(event.get("user") or {})

    async def on_group_change(event: dict[str, Any]) -> None:
        intake.access.group_changed(event)

    async def on_member_joined(event: dict[str, Any], context: AsyncBoltContext) -> None:
        intake.member_joined(event, bot_user_id=context.bot_user_id)

    async def on_rename(event: dict[str, Any]) -> None:
        intake.channel_renamed(event.get("channel") or {})

    async def on_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        text = await commands.handle(command)
        if text:
            await ack(text=text)
        else:
            await ack()

    async def on_anything_else() -> None:
        """Every event gets its ack, or Slack delivers it again (Bolt answers 404 to unmatched ones)."""

    app.event("message")(on_message)
    app.event("app_mention")(on_message)
    app.event("user_change")(on_user_change)
    app.event("subteam_members_changed")(on_group_change)
    app.event("member_joined_channel")(on_member_joined)
    app.event("channel_rename")(on_rename)
    app.event("group_rename")(on_rename)
    app.command(command_name)(on_command)
    app.event(re.compile(".*"))(on_anything_else)
