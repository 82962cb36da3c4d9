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
