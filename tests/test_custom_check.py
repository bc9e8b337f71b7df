"""The architecture lint rules catch their bad examples and pass their good ones."""

from __future__ import annotations

import pytest

from tools.custom_check import RULES, Rule, check_text

SAMPLE_PATH = {
    "one-clock": "yakuba/rooms/actions.py",
    "one-config-reader": "yakuba/rooms/actions.py",
    "thin-views": "yakuba/rooms/views.py",
    "events-after-commit": "yakuba/rooms/actions.py",
}


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.id)
def test_it_flags_the_bad_example_and_passes_the_good_one(rule: Rule) -> None:
    path = SAMPLE_PATH[rule.id]
    assert [f.rule.id for f in check_text(path, rule.bad)] == [rule.id]
    assert not [f for f in check_text(path, rule.good) if f.rule.id == rule.id]


def test_it_honours_an_explicit_allow_comment() -> None:
    line = "now = timezone.now()  # custom-check: allow one-clock (Django needs it here)"
    assert list(check_text("yakuba/rooms/actions.py", line)) == []


def test_it_exempts_the_clock_itself() -> None:
    assert list(check_text("yakuba/lib/clock.py", "return dt.datetime.now(dt.UTC)")) == []
