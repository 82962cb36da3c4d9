"""What the runner's pieces share: the services they act through, and each channel's state."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.conversation.service import ConversationService
from bot.outbound.replies import ReplyFactory
from bot.outbound.slack_auth import SlackAuthGate
from bot.outbound.writer import SlackWriter
from bot.store import Inbox, TurnJournal
from bot.work.budget_gate import BudgetGate
from bot.work.retry import RetryPolicy


@dataclass
class ChannelState:
    """What the runner remembers about one channel between its steps (lost on restart, on purpose:
    the journal holds everything that must survive one)."""

    solo: bool = False  # the next turn takes one message (hunting a refused one)
    reported: str | None = None  # the account failure already told to the channel
    undelivered_tries: int = 0  # failed attempts to write its last reply
    settled: bool = False  # its last turn finished here: no unfinished turn to look up
    lookups_failed: int = 0  # failed looks for an unfinished turn's answer


@dataclass
class Parts:
    """The services a channel's work is carried out through, and every channel's `ChannelState`."""

    inbox: Inbox
    journal: TurnJournal
    conversations: ConversationService
    replies: ReplyFactory
    writer: SlackWriter
    policy: RetryPolicy
    reply_in_thread: bool
    auth: SlackAuthGate
    budgets: BudgetGate | None = None  # the spending budgets (None: no limits)
    channels: dict[str, ChannelState] = field(default_factory=dict)
    model_refusal: str | None = None  # the model service refuses us until an admin acts (workspace-wide)

    def state(self, channel: str) -> ChannelState:
        """The channel's state (a fresh one the first time a channel is seen)."""
        state = self.channels.get(channel)
        if state is None:
            state = self.channels[channel] = ChannelState()
        return state
