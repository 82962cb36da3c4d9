"""`/assistant` and its subcommands."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.conversation.service import ConversationService
from bot.inbound.intake import Intake
from bot.outbound import sentences
from bot.settings import Settings
from bot.store import Inbox
from bot.work.budget_gate import BudgetGate


class SlashCommands:
    """Answers the slash command; `handle()` returns the ephemeral text for the invoker (or None)."""

    def __init__(self, *, settings: Settings, intake: Intake, inbox: Inbox,
                 conversations: ConversationService, budgets: BudgetGate | None = None) -> None:
        self._settings = settings
        self._intake = intake
        self._inbox = inbox
        self._conversations = conversations
        self._budgets = budgets

    async def handle(self, command: Mapping[str, Any]) -> str | None:
        name = self._settings.command
        words = str(command.get("text") or "").split()
        sub = words[0].lower() if words else "help"
        channel = str(command.get("channel_id") or "")
        if sub == "help":
            return sentences.help_text(name)
        if sub not in ("reset", "status", "usage"):
            return sentences.unknown_subcommand(name, " ".join(words))
        if not self._settings.serves_channel(channel):
            return sentences.channel_not_served(name)
        if sub == "reset":
            refusal = await self._intake.access.reset_refusal(channel, str(command.get("user_id") or ""), name)
            if refusal is not None:
                return refusal  # (ephemeral, like every answer to the command); nothing is reset
            key = str(command.get("trigger_id") or f"{command.get('user_id')}:{command.get('command_ts', '')}")
            await self._intake.reset(channel=channel, user=str(command.get("user_id")), key=key)
            return None  # the announcement in the channel is the answer
        if sub == "usage" and self._budgets is not None:
            return await self._budgets.report(channel, str(command.get("user_id") or ""))
        backend = self._conversations.backend
        return sentences.status_text(backend=backend.name, model=backend.model,
                                 conversation_id=await self._conversations.current(channel),
                                 pending=await self._inbox.pending_count(channel))
