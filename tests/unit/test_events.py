import pytest

from bot.inbound.events import human_message
from bot.messages import FileNote

BOT = "UBOT"


def message(**fields):
    return {"type": "message", "channel": "C1", "user": "U1", "text": "hi", "ts": "100.000001", **fields}


def test_plain_message_normalised() -> None:
    msg = human_message(message(channel_type="channel"), bot_user_id=BOT)
    assert msg is not None
    assert (msg.channel, msg.user, msg.text, msg.ts, msg.thread_ts) == ("C1", "U1", "hi", "100.000001", None)
    assert not msg.mentions_bot


def test_thread_reply_keeps_thread_and_parent_is_top_level() -> None:
    assert human_message(message(thread_ts="99.1"), bot_user_id=BOT).thread_ts == "99.1"
    assert human_message(message(thread_ts="100.000001"), bot_user_id=BOT).thread_ts is None


def test_mentions_and_app_mention() -> None:
    assert human_message(message(text="<@UBOT> hey"), bot_user_id=BOT).mentions_bot
    mention = {**message(text="<@UBOT> hey"), "type": "app_mention"}
    assert human_message(mention, bot_user_id=BOT).mentions_bot


def test_files_become_notes() -> None:
    event = message(subtype="file_share", text="", files=[{"name": "a.png", "mimetype": "image/png", "size": 5}])
    assert human_message(event, bot_user_id=BOT).files == (FileNote("a.png", "image/png", 5),)


def test_dm_channel_type_inferred() -> None:
    assert human_message(message(channel="D1"), bot_user_id=BOT).channel_type == "im"


@pytest.mark.parametrize(
    "event",
    [
        message(bot_id="B1"),
        message(subtype="bot_message", bot_id="B2"),
        message(user=BOT),
        message(subtype="message_changed"),
        message(subtype="message_deleted"),
        message(subtype="channel_join"),
        message(subtype="channel_topic"),
        message(subtype="channel_purpose"),
        message(text="   "),
        message(user=None),
        {"type": "reaction_added", "user": "U1"},
    ],
)
def test_not_for_the_model(event) -> None:
    assert human_message(event, bot_user_id=BOT) is None


def test_a_long_message_is_cut_and_marked() -> None:
    from bot.inbound.events import cut_message

    msg = human_message(message(text="word " * 100), bot_user_id=BOT)
    assert msg is not None
    cut, length = cut_message(msg, 50)
    assert length == 500
    assert cut.text == ("word " * 10).strip() + " [… message cut at 50 characters]"
    assert cut_message(msg, 500) == (msg, None)


def test_lone_surrogates_become_replacement_characters() -> None:
    msg = human_message(message(text="a\ud800b \ud83d\ude00", files=[{"name": "f\udfff.txt"}]), bot_user_id=BOT)
    assert msg is not None
    assert msg.text == "a\ufffdb 😀" and msg.files[0].name == "f\ufffd.txt"
    msg.text.encode("utf-8")  # storable and sendable
