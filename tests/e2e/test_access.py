"""Who may talk to the bridge and who may reset: allow and block lists of users and user groups (global
and per channel), user-group membership changes, resets by admins only — the real bridge process
against the emulators."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import BridgeProcess, eventually, settle
from tests.e2e.model_view import context_text, input_texts, turns
from tests.e2e.replies import replies, wait_replies
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator

NOT_ALLOWED = "not among the people who may use the assistant"


def notes_to(slack: SlackEmulator, user: str, channel: str = "general") -> list[str]:
    """The ephemeral messages the bridge sent `user` (a name or id) in `channel`."""
    uid = slack.users.get(user, user)
    return [e["text"] for e in slack.ephemeral(channel) if e["user"] == uid]


def heard(model_api: OpenAIEmulator) -> list[str]:
    """Every user message the model was sent, in order."""
    return [text for seen in turns(model_api) for text in input_texts(seen)]


def all_acked_once(slack: SlackEmulator) -> bool:
    envelopes = slack.envelopes()
    return all(e.acked_at is not None for e in envelopes) and all(e.retry_attempt == 0 for e in envelopes)


def write_config(tmp_path: Path, text: str) -> None:
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "bridge.toml").write_text(text)


def test_only_allowed_users_are_answered_and_the_others_told_once(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory: Callable[..., BridgeProcess]) -> None:
    bridge = bridge_factory(env={"BRIDGE_ALLOWED_USERS": slack.users["alice"]})
    slack.user_says("general", "bob", "secret plan one")
    slack.user_says("general", "bob", "secret plan two")
    slack.user_says("general", "alice", "hello")
    wait_replies(slack, "general")
    eventually(lambda: notes_to(slack, "bob"), message="the note to bob")
    settle(0.5)
    assert len(notes_to(slack, "bob")) == 1 and NOT_ALLOWED in notes_to(slack, "bob")[0]
    assert heard(model_api) == ["[Alice] hello"]
    assert not notes_to(slack, "alice")
    eventually(lambda: all_acked_once(slack), message="every envelope acked, none re-delivered")

    bridge.restart()  # whom it told survives a restart
    slack.user_says("general", "bob", "secret plan three")
    slack.user_says("general", "alice", "again")
    wait_replies(slack, "general", 2)
    settle(0.5)
    assert len(notes_to(slack, "bob")) == 1
    assert heard(model_api) == ["[Alice] hello", "[Alice] again"]
    assert not any("secret" in context_text(seen) for seen in turns(model_api))
    assert not any("secret" in text for text in replies(slack, "general"))
    assert "secret" not in bridge.log


def test_user_groups_allow_and_block_and_follow_membership_changes(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory: Callable[..., BridgeProcess]) -> None:
    devs = slack.add_usergroup("devs", ["bob"])
    interns = slack.add_usergroup("interns", [])
    bridge_factory(env={"BRIDGE_ALLOWED_USERS": devs, "BRIDGE_BLOCKED_USERS": interns})
    slack.user_says("general", "bob", "bob one")
    slack.user_says("general", "alice", "alice one")
    wait_replies(slack, "general")
    eventually(lambda: notes_to(slack, "alice"), message="the note to alice")
    assert heard(model_api) == ["[Bob Builder] bob one"]

    slack.set_usergroup_members(devs, ["bob", "alice"])  # alice joins the allowed group
    eventually(lambda: all_acked_once(slack), message="the group change taken")
    slack.user_says("general", "alice", "alice two")
    wait_replies(slack, "general", 2)
    assert heard(model_api)[-1] == "[Alice] alice two"

    slack.set_usergroup_members(interns, ["bob"])  # bob is blocked now: blocking wins over his allowed group
    eventually(lambda: all_acked_once(slack), message="the group change taken")
    slack.user_says("general", "bob", "bob two")
    slack.user_says("general", "alice", "alice three")
    wait_replies(slack, "general", 3)
    eventually(lambda: notes_to(slack, "bob"), message="the note to bob")
    settle(0.5)
    assert heard(model_api) == ["[Bob Builder] bob one", "[Alice] alice two", "[Alice] alice three"]
    assert len(notes_to(slack, "alice")) == 1 and len(notes_to(slack, "bob")) == 1
    # Both groups were fetched once at start-up; the changes came as events, not as new lookups.
    assert sorted(c.args["usergroup"] for c in slack.calls("usergroups.users.list")) == sorted([devs, interns])


def test_channel_lists_replace_the_allowlist_and_add_to_the_blocklist(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory: Callable[..., BridgeProcess],
        tmp_path: Path) -> None:
    users = slack.users
    ops = slack.add_channel("ops", members=[users["alice"], users["bob"], users["carol"]])
    write_config(tmp_path, f'[channels.{ops}]\nallowed_users = ["{users["carol"]}", "{users["bob"]}"]\n'
                           f'blocked_users = ["{users["bob"]}"]\n')
    bridge_factory(env={"BRIDGE_ALLOWED_USERS": f"{users['alice']},{users['bob']}"})
    for name in ("alice", "bob", "carol"):
        slack.user_says("general", name, f"{name} in general")
        slack.user_says("ops", name, f"{name} in ops")
    wait_replies(slack, "general")
    wait_replies(slack, "ops")
    eventually(lambda: len(slack.ephemeral()) == 3, message="three notes")
    said = heard(model_api)
    assert sorted(said) == ["[Alice] alice in general", "[Bob Builder] bob in general", "[Carol] carol in ops"]
    assert [len(notes_to(slack, n, "general")) for n in ("alice", "bob", "carol")] == [0, 0, 1]
    assert [len(notes_to(slack, n, "ops")) for n in ("alice", "bob", "carol")] == [1, 1, 0]


def test_bots_stay_ignored_and_get_no_note(slack: SlackEmulator, model_api: OpenAIEmulator,
                                          bridge_factory: Callable[..., BridgeProcess]) -> None:
    bridge_factory(env={"BRIDGE_ALLOWED_USERS": slack.users["alice"]})
    slack.deliver_event({"type": "message", "subtype": "bot_message", "bot_id": "B0OTHER", "text": "beep",
                         "channel": slack.channels["general"], "ts": "1900000000.000100"})
    slack.user_says("general", "alice", "hi")
    wait_replies(slack, "general")
    settle(0.5)
    assert heard(model_api) == ["[Alice] hi"] and slack.ephemeral() == []


def _reset(slack: SlackEmulator, user: str, channel: str = "general") -> str:
    handle = slack.slash_command(channel, user, "/assistant", "reset")
    eventually(lambda: handle.envelope().acked_at is not None, message="the command acked")
    answers = handle.responses()
    return answers[0].get("text", "") if answers else ""


def test_reset_by_admins_only(slack: SlackEmulator, model_api: OpenAIEmulator,
                              bridge_factory: Callable[..., BridgeProcess]) -> None:
    boss = slack.add_user("boss", display_name="Boss", is_admin=True)
    owner = slack.add_user("owner", display_name="Owner", is_primary_owner=True)
    for person in (boss, owner):
        slack.join_channel("general", person)
    bridge_factory(env={"BRIDGE_RESET_BY": "admins", "BRIDGE_ADMINS": slack.users["carol"]})
    slack.user_says("general", "alice", "one")
    wait_replies(slack, "general")
    refused = _reset(slack, "alice")
    assert "Only workspace admins" in refused
    slack.user_says("general", "alice", "two")
    wait_replies(slack, "general", 2)
    first, second = turns(model_api)
    assert first.conversation_id == second.conversation_id  # nothing was reset
    assert not any("started a new conversation" in t for t in replies(slack, "general"))

    conversations = [second.conversation_id]
    for person in ("boss", "owner", "carol"):  # a workspace admin, the primary owner, one of BRIDGE_ADMINS
        assert _reset(slack, person) == ""  # (the announcement in the channel is the answer)
        eventually(lambda p=person: any(f"<@{slack.users[p]}> started a new conversation" in t
                                        for t in replies(slack, "general")), message=f"{person}'s reset")
        expected = len(conversations) + 2
        slack.user_says("general", "alice", f"after {person}'s reset")
        eventually(lambda n=expected: len(turns(model_api)) == n, message="the next turn")
        conversations.append(turns(model_api)[-1].conversation_id)
    assert len(set(conversations)) == 4


def test_reset_by_per_channel(slack: SlackEmulator, model_api: OpenAIEmulator,
                              bridge_factory: Callable[..., BridgeProcess], tmp_path: Path) -> None:
    ops = slack.add_channel("ops", members=[slack.users["alice"]])
    write_config(tmp_path, f'[channels.{ops}]\nreset_by = "admins"\n')
    bridge_factory()
    assert "Only workspace admins" in _reset(slack, "alice", "ops")
    assert _reset(slack, "alice", "general") == ""
    eventually(lambda: any("started a new conversation" in t for t in replies(slack, "general")),
               message="the reset in #general")
    settle(0.3)
    assert not replies(slack, "ops")


def test_someone_not_allowed_cannot_reset(slack: SlackEmulator, model_api: OpenAIEmulator,
                                          bridge_factory: Callable[..., BridgeProcess]) -> None:
    bridge_factory(env={"BRIDGE_BLOCKED_USERS": slack.users["bob"]})
    assert "Only workspace admins" not in _reset(slack, "alice")
    assert "not among the people" in _reset(slack, "bob")
    settle(0.5)
    assert sum("started a new conversation" in t for t in replies(slack, "general")) == 1


def test_a_group_slack_cannot_resolve_lets_nobody_through_on_a_guess(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory: Callable[..., BridgeProcess]) -> None:
    devs = slack.add_usergroup("devs", ["alice"])
    slack.fail_next("usergroups.users.list", error="internal_error", times=5)
    bridge_factory(env={"BRIDGE_ALLOWED_USERS": f"{devs},{slack.users['bob']}"})
    slack.user_says("general", "alice", "alice, a member of the group Slack would not list")
    slack.user_says("general", "bob", "bob, listed by ID")
    wait_replies(slack, "general")
    (note,) = eventually(lambda: notes_to(slack, "alice"), message="the note to alice")
    assert "couldn't check" in note and "send it again" in note
    assert heard(model_api) == ["[Bob Builder] bob, listed by ID"]
    eventually(lambda: all_acked_once(slack), message="every envelope acked, none re-delivered")


def test_nobody_takes_another_speakers_name_even_after_a_restart(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory: Callable[..., BridgeProcess]) -> None:
    slack.add_user("trudy", display_name="Bob Builder")  # Slack lets her pick Bob's name
    slack.join_channel("general", "trudy")
    bridge = bridge_factory()
    slack.user_says("general", "bob", "I am Bob")
    wait_replies(slack, "general")
    slack.user_says("general", "trudy", "I am Bob too")
    wait_replies(slack, "general", 2)
    bridge.restart()
    slack.user_says("general", "trudy", "still me")  # she speaks first after the restart: still not Bob
    wait_replies(slack, "general", 3)
    assert heard(model_api) == ["[Bob Builder] I am Bob", "[Bob Builder (@trudy)] I am Bob too",
                                "[Bob Builder (@trudy)] still me"]
