import pytest

from bot.outbound.markup import mentioned_users, mentions_user, to_readable

NAMES = {"U1": "Alice", "U2": "Bob Builder"}


@pytest.mark.parametrize(
    ("raw", "readable"),
    [
        ("hello", "hello"),
        ("<@U1> hi", "@Alice hi"),
        ("<@U1> and <@U2>", "@Alice and @Bob Builder"),
        ("<@U9> unknown", "@U9 unknown"),
        ("<@U9|carol> unknown with label", "@carol unknown with label"),
        ("see <#C123|general>", "see #general"),
        ("see <#C123>", "see #C123"),
        ("<https://example.com|the site>", "the site (https://example.com)"),
        ("<https://example.com>", "https://example.com"),
        ("<https://example.com|https://example.com>", "https://example.com"),
        ("<mailto:a@b.c|a@b.c>", "a@b.c (mailto:a@b.c)"),
        ("<!here> and <!channel> and <!everyone>", "@here and @channel and @everyone"),
        ("<!subteam^S123|@devs> ping", "@devs ping"),
        ("<!date^1392734382^{date}|Feb 18, 2014>", "Feb 18, 2014"),
        ("a &lt;b&gt; &amp; c", "a <b> & c"),
        ("&amp;lt;", "&lt;"),
        ("x &lt; y &gt; z", "x < y > z"),  # Slack always escapes < and >
    ],
)
def test_to_readable(raw: str, readable: str) -> None:
    assert to_readable(raw, NAMES) == readable


def test_mentioned_users_in_order_without_repeats() -> None:
    assert mentioned_users("<@U2> <@U1> <@U2> <#C1> <@W3|x>") == ["U2", "U1", "W3"]


def test_mentions_user() -> None:
    assert mentions_user("hey <@UBOT> there", "UBOT")
    assert not mentions_user("hey @UBOT there", "UBOT")
