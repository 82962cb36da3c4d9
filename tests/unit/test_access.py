"""Who may talk: the rule combining allow and block lists of users and user groups."""

import pytest

from bot.inbound.access import Verdict, listed, verdict

GROUPS = {"SDEVS": frozenset({"UBOB", "UCAROL"}), "SGONE": None}  # SGONE: Slack could not tell its members
ALLOWED, REFUSED, UNKNOWN = Verdict.ALLOWED, Verdict.REFUSED, Verdict.UNKNOWN


@pytest.mark.parametrize(
    ("user", "allowed", "blocked", "expected"),
    [
        ("UALICE", set(), set(), ALLOWED),  # no lists: everyone
        ("UALICE", {"UALICE"}, set(), ALLOWED),
        ("UBOB", {"UALICE"}, set(), REFUSED),
        ("UBOB", {"SDEVS"}, set(), ALLOWED),  # through a group
        ("UALICE", set(), {"UALICE"}, REFUSED),
        ("UBOB", set(), {"SDEVS"}, REFUSED),
        ("UBOB", {"UBOB"}, {"SDEVS"}, REFUSED),  # blocking wins
        ("UALICE", {"UALICE"}, {"SDEVS"}, ALLOWED),
        ("UALICE", {"SGONE"}, set(), UNKNOWN),  # never let through on a guess …
        ("UALICE", {"SGONE", "UALICE"}, set(), ALLOWED),  # … unless listed by ID
        ("UALICE", set(), {"SGONE"}, UNKNOWN),
        ("UBOB", set(), {"SGONE", "SDEVS"}, REFUSED),
        ("UALICE", {"UBOB"}, {"SGONE"}, REFUSED),
    ],
)
def test_verdict(user: str, allowed: set[str], blocked: set[str], expected: Verdict) -> None:
    assert verdict(user, allowed=frozenset(allowed), blocked=frozenset(blocked), members=GROUPS) is expected


def test_listed() -> None:
    assert listed("UBOB", ["SDEVS"], GROUPS) is True
    assert listed("UALICE", ["SDEVS"], GROUPS) is False
    assert listed("UALICE", ["SDEVS", "SGONE"], GROUPS) is None
    assert listed("UALICE", [], GROUPS) is False
