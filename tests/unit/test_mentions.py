"""Broadcast mentions in the model's replies are shown but notify nobody, whole or streamed in pieces."""

import random

import pytest

from bot.outbound.mentions import WORD_JOINER as J
from bot.outbound.mentions import MentionGuard, escape_broadcasts


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("hello", "hello"),
        ("<!channel> look", f"@{J}channel look"),
        ("<!here|here> and <!everyone>", f"@{J}here and @{J}everyone"),
        ("<!channel|@channel>", f"@{J}channel"),
        ("<!subteam^S0123|@devs> please", f"@{J}devs please"),
        ("<!subteam^S0123>", f"@{J}S0123"),
        ("plain @channel, @Here and @EVERYONE", f"plain @{J}channel, @{J}Here and @{J}EVERYONE"),
        ("<@U0123> is a person, not a broadcast", "<@U0123> is a person, not a broadcast"),
        ("<!date^1392734382^{date}|Feb 18>", "<!date^1392734382^{date}|Feb 18>"),
        ("a < b and <!chan", "a < b and <!chan"),  # never closed: Slack sees no mention
        ("`<!here>` in code too", f"`@{J}here` in code too"),
        ("me@here.example", f"me@{J}here.example"),
    ],
)
def test_escape_broadcasts(text: str, shown: str) -> None:
    assert escape_broadcasts(text) == shown
    assert escape_broadcasts(shown) == shown  # escaping twice changes nothing


TEXTS = [
    "Attention <!channel> and <!here|here>! Also @everyone and <!subteam^S0DEVS01|@devs>: green.",
    "<!here><!here>@here@channel<!everyone>",
    "ends with a partial @chan",
    "ends with <!subteam^S1|@dev",
    "nothing to see < here >",
]


@pytest.mark.parametrize("text", TEXTS)
def test_streamed_pieces_add_up_to_the_escaped_whole(text: str) -> None:
    rng = random.Random(text)
    for _ in range(200):
        guard, shown, at = MentionGuard(), [], 0
        while at < len(text):
            size = rng.randint(1, 6)
            shown.append(guard.feed(text[at:at + size]))
            at += size
            assert escape_broadcasts(text).startswith("".join(shown))  # what went out is never taken back
        assert "".join(shown) + guard.flush() == escape_broadcasts(text)


def test_a_mention_split_across_pieces_is_held_back_until_it_is_whole() -> None:
    guard = MentionGuard()
    assert guard.feed("Hi <!chan") == "Hi "
    assert guard.feed("nel> and @he") == f"@{J}channel and "
    assert guard.feed("re!") == f"@{J}here!"
    assert guard.flush() == ""
