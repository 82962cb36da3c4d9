"""Every sentence the bridge itself writes into Slack, in one place."""

from __future__ import annotations

from bot.backends.base import BackendError


def model_failed(error: BackendError) -> str:
    later = ("I'll try again with the next message." if error.transient
             else "An admin needs to fix this; I'll answer once it works again.")
    return f":warning: Sorry, I couldn't answer: {error.message}. Your message is kept. {later}"


def reset_announcement(user_id: str) -> str:
    return f"<@{user_id}> started a new conversation. I've forgotten what was said before."


def help_text(command: str) -> str:
    return (
        f"*{command}* — the channel's shared assistant\n"
        f"• Just write in the channel: everyone talks to the same assistant, and it knows who said what.\n"
        f"• `{command} reset` — start the channel's conversation afresh (for everyone).\n"
        f"• `{command} status` — show the backend, model, conversation and queue.\n"
        f"• `{command} help` — this help."
    )


def status_text(*, backend: str, model: str, conversation_id: str | None, pending: int) -> str:
    conversation = f"`{conversation_id}`" if conversation_id else "none yet (starts with the next message)"
    return (
        f"*Backend:* {backend}\n*Model:* {model}\n*Conversation:* {conversation}\n"
        f"*Queue:* {pending} message{'s' if pending != 1 else ''} waiting"
    )


def unknown_subcommand(command: str, text: str) -> str:
    return f"I don't know `{command} {text}`.\n\n{help_text(command)}"


def channel_not_served(command: str) -> str:
    return f"I'm not set up to serve this channel, so `{command}` does nothing here."
