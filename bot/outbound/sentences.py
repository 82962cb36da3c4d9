"""Every sentence the bridge itself writes into Slack, in one place."""

from __future__ import annotations


def model_trouble(reason: str) -> str:
    """A transient failure, said once: the bridge keeps trying by itself."""
    return (f":hourglass: Sorry, I couldn't answer yet: {reason}. Your message is kept; "
            "I'll try again shortly.")


def model_failed(reason: str) -> str:
    """An account failure: nothing works until an admin acts; the messages wait."""
    return (f":warning: Sorry, I couldn't answer: {reason}. Your messages are kept, and I'll answer "
            "them once an admin has fixed this.")


def gave_up(user_ids: list[str], reason: str, attempts: int) -> str:
    return (f":warning: I couldn't answer {_whose(user_ids)} after {attempts} attempts ({reason}), "
            "so I've skipped it. Please ask again.")


def refused(user_ids: list[str], reason: str) -> str:
    return f":warning: I couldn't answer {_whose(user_ids)}: {reason}. I've skipped it; please rephrase."


def _whose(user_ids: list[str]) -> str:
    people = list(dict.fromkeys(user_ids))
    mentions = [f"<@{user}>" for user in people]
    owners = mentions[0] if len(mentions) == 1 else ", ".join(mentions[:-1]) + " and " + mentions[-1]
    return f"the message from {owners}" if len(user_ids) == 1 else f"the messages from {owners}"


def reset_announcement(user_id: str) -> str:
    return f"<@{user_id}> started a new conversation. I've forgotten what was said before."


def help_text(command: str) -> str:
    return (
        f"*{command}* — the channel's shared assistant\n"
        f"• Just write in the channel: everyone talks to the same assistant, and it knows who said what.\n"
        f"• `{command} reset` — start the channel's conversation afresh (for everyone).\n"
        f"• `{command} status` — show the backend, model, conversation and queue.\n"
        f"• `{command} usage` — today's use against the budgets, for this channel and for you.\n"
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


# --- budgets (bot/work/budgets.py) ---------------------------------------------------------------------


def over_budget(kind: str, limit: int, renews: str) -> str:
    """The ephemeral note to the author of a message over a budget (`kind`: user, channel or rate)."""
    what = {"user": f"you've used your {limit:,} tokens for today",
            "channel": f"this channel has used its {limit:,} tokens for today",
            "rate": f"you've sent more than {limit:,} message{'s' if limit != 1 else ''} in a minute"}[kind]
    return (f":no_entry_sign: Sorry, {what}, so I haven't passed your message on to the assistant "
            f"(it won't see it). The budget renews {renews}; please send it again then.")


def usage_text(*, day: str, renews: str, channel_used: int, channel_limit: int, user_used: int, user_limit: int,
               per_minute: int) -> str:
    """`/assistant usage`: today's use against the budgets, for the channel and for the asker."""
    def against(used: int, limit: int) -> str:
        return f"{used:,} of {limit:,} tokens" if limit else f"{used:,} tokens (no limit)"

    rate = f"at most {per_minute:,} a minute per person" if per_minute else "no limit"
    return (f"*Today's use* ({day}, UTC)\n*This channel:* {against(channel_used, channel_limit)}\n"
            f"*You:* {against(user_used, user_limit)}\n*Messages:* {rate}\n"
            f"Token budgets renew {renews}.")


# -- access (bot/inbound/access.py) and input limits ------------------------------------------------
def not_allowed() -> str:
    return ("Sorry, you're not among the people who may use the assistant here, so I won't answer your "
            "messages in this channel, and they don't become part of its conversation. If you think you "
            "should be, ask whoever runs the assistant. (I'm telling you only this once.)")


def access_unknown() -> str:
    return ("Sorry, I couldn't check just now whether you may use the assistant here (Slack didn't answer), "
            "so I didn't take your message. Please send it again in a minute.")


def reset_refused(command: str) -> str:
    return (f"Only workspace admins and the assistant's admins may use `{command} reset` here, so the "
            "conversation was not reset.")


def reset_not_allowed(command: str) -> str:
    return f"You're not among the people who may use the assistant here, so `{command} reset` does nothing."


def message_cut(limit: int, length: int) -> str:
    return (f"Your message was {length:,} characters long; the assistant reads only the first {limit:,}, "
            "so it saw your message cut there.")
