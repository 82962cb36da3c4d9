"""Slack refuses the bot's token (revoked, the app uninstalled): the whole workspace waits — every answer
already paid for and every new message is kept, the operator is told once what to do — and everything is
delivered, exactly once, when the token works again, or after a restart with a new token."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from tests.e2e.accounting import Sent, Tally
from tests.e2e.harness import BridgeProcess, eventually, settle
from tests.e2e.model_view import input_texts, turns
from tests.e2e.replies import replies, wait_replies
from tests.e2e.test_faults import NAMES, check, say, settled
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator

TOLD = "Slack refuses the bot's token (token_revoked)"
OUTAGE = 30.0  # seconds the token is refused in the burst test


def refused_writes(slack: SlackEmulator) -> int:
    return sum(1 for call in slack.calls() if call.method == "chat.postMessage"
               and call.response.get("error") == "token_revoked")


def test_an_outage_keeps_every_answer_and_delivers_it_when_the_token_works_again(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge: BridgeProcess) -> None:
    random = slack.add_channel("random", members=[slack.users["alice"], slack.users["bob"]])
    slack.user_says("general", "alice", "before the outage")
    wait_replies(slack, "general")
    slack.revoke_bot_token()
    slack.user_says("general", "alice", "during the outage")
    eventually(lambda: refused_writes(slack) >= 1, timeout=20, message="a reply refused")
    slack.user_says(random, "bob", "also during the outage")
    slack.user_says("general", "carol", "and once more")
    settle(3.0)
    assert bridge.log.count(TOLD) == 1  # the operator is told once, with what to do
    assert "SLACK_BOT_TOKEN" in bridge.log and "skipped" not in bridge.log
    asked = len(turns(model_api))
    assert asked <= 2  # no new model turns are paid for while nothing can be delivered
    slack.restore_bot_token()
    wait_replies(slack, "general", 3, timeout=60)
    wait_replies(slack, random, 1, timeout=60)
    said = [text for seen in turns(model_api) for text in input_texts(seen)]
    assert sorted(said) == sorted(["[Alice] before the outage", "[Alice] during the outage",
                                   "[Bob Builder] also during the outage", "[Carol] and once more"])  # once each
    assert len(said) == len(set(said))
    assert all("during the outage" in text or "before" in text or "once more" in text
               for text in replies(slack, "general"))
    assert "Slack takes the bot's token again" in bridge.log


def test_a_restart_with_a_new_token_delivers_what_waited(
        slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory: Callable[..., BridgeProcess],
        fault_rows: list[Tally]) -> None:
    first = bridge_factory()
    sent: list[Sent] = []
    say(slack, "general", "bob", "a first message", sent)  # (names are cached from here on)
    wait_replies(slack, "general")
    slack.revoke_bot_token()
    say(slack, "general", "bob", "a message whose answer is paid for", sent)
    eventually(lambda: refused_writes(slack) >= 1, timeout=20, message="the reply refused")
    say(slack, "general", "alice", "while the app was uninstalled", sent)  # not even sent to the model
    eventually(lambda: TOLD in first.log, message="the operator told")
    settle(1.0)
    assert len(turns(model_api)) == 2
    assert first.stop() == 0
    slack.rotate_bot_token("xoxb-reinstalled")  # an admin reinstalled the app: a new token
    bridge_factory(env={"SLACK_BOT_TOKEN": "xoxb-reinstalled"})
    first_reply, paid, waited = wait_replies(slack, "general", 3, timeout=30)
    assert "a message whose answer is paid for" in paid
    assert "[Alice] while the app was uninstalled" in waited  # looked up afresh: the real name
    said = [text for seen in turns(model_api) for text in input_texts(seen)]
    assert said == ["[Bob Builder] a first message", "[Bob Builder] a message whose answer is paid for",
                    "[Alice] while the app was uninstalled"]  # the answer paid for is not asked again
    check(fault_rows, "Slack token revoked, restart with a new one", slack, model_api, sent)


def test_a_30_second_outage_in_a_50_message_burst(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                  bridge: BridgeProcess, fault_rows: list[Tally]) -> None:
    """Slack refuses the token for 30 s in the middle of a burst over five channels, then takes it again:
    every message is answered once, nothing is skipped."""
    users = [slack.users[name] for name in NAMES]
    channels = [slack.add_channel(f"outage-{i}", members=users) for i in range(5)]
    model_api.model.ttft = 0.05
    rng = random.Random(5)
    sent: list[Sent] = []
    revoked = 0.0
    for index in range(50):
        say(slack, rng.choice(channels), rng.choice(list(NAMES)), f"burst {index:02d}", sent)
        time.sleep(0.05)
        if index == 20:
            slack.revoke_bot_token()
            revoked = time.monotonic()
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - revoked)))
    slack.restore_bot_token()
    settled(slack, model_api, sent, timeout=90)
    check(fault_rows, "Slack token refused for 30 s during 50 msgs / 5 channels", slack, model_api, sent)
    assert bridge.log.count(TOLD) == 1 and "skipped" not in bridge.log
