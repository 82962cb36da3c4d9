import pytest

from bot.outbound.people import MAX_NAME_LENGTH, display_name, sanitize_name


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Alice", "Alice"),
        ("  Alice   Liddell ", "Alice Liddell"),
        ("Alice]\n[Bob", "Alice Bob"),
        ("<script>", "script"),
        ("tab\there", "tab here"),
        ("line\u2028sep", "line sep"),
        ("", ""),
        ("[]", ""),
    ],
)
def test_sanitize_name(raw: str, clean: str) -> None:
    assert sanitize_name(raw) == clean


def test_sanitize_name_caps_length() -> None:
    name = sanitize_name("x" * 500)
    assert len(name) == MAX_NAME_LENGTH
    assert name.endswith("…")


@pytest.mark.parametrize(
    ("user", "name"),
    [
        ({"id": "U1", "name": "alice", "profile": {"display_name": "Ali", "real_name": "Alice L"}}, "Ali"),
        ({"id": "U1", "name": "alice", "profile": {"display_name": "", "real_name": "Alice L"}}, "Alice L"),
        ({"id": "U1", "name": "alice", "profile": {"display_name": " ", "real_name": ""}}, "alice"),
        ({"id": "U1", "name": "", "profile": {}}, "U1"),
        ({"id": "U1", "name": "alice", "profile": {"display_name": "[Bob]"}}, "Bob"),
        ({"id": "U1", "name": "alice", "profile": {"display_name": "[]", "real_name": "Alice"}}, "Alice"),
    ],
)
def test_display_name_fallbacks(user: dict, name: str) -> None:
    assert display_name(user) == name


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("\u202eevil", "evil"),  # a bidi override cannot reorder the marker
        ("a\u200bb", "a b"),
        ("［Bob］", "Bob"),  # full-width brackets too
        ("x\x00y\x9bz", "x y z"),
        ("\u200b\u2060\ufeff", ""),  # nothing visible: the next candidate name is used
        ("👨\u200d👩\u200d👧", "👨\u200d👩\u200d👧"),  # a joined emoji stays whole
    ],
)
def test_sanitize_name_drops_what_could_hide_or_reorder_a_marker(raw: str, clean: str) -> None:
    assert sanitize_name(raw) == clean


async def test_two_people_never_share_a_name() -> None:
    from bot.outbound.people import NameDirectory

    names = NameDirectory(None)  # type: ignore[arg-type]  # (remember() and cached names call no Slack)
    await names.remember({"id": "UBOB", "name": "bob", "profile": {"display_name": "Bob"}})
    await names.remember({"id": "UTRUDY", "name": "trudy", "profile": {"display_name": "[Bob]"}})
    await names.remember({"id": "UBOB2", "name": "trudy", "profile": {"display_name": "bob"}})
    await names.remember({"id": "UBOB", "name": "bob", "profile": {"display_name": "Bob"}})  # a refresh: still Bob
    assert await names.names(["UBOB", "UTRUDY", "UBOB2"]) == {
        "UBOB": "Bob", "UTRUDY": "Bob (@trudy)", "UBOB2": "bob (UBOB2)"}
