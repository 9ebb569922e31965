"""The notice catalogue: every kind in both languages, amounts in yuan from minor units, dates in the borrower's
time zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.notices.catalogue import KINDS, TEMPLATES, local_date, render, yuan

FACTS = {"kind": "overdue_warning", "loan_id": 7, "installment": 2, "due_at": 0, "amount_due": 123_456_789,
         "currency": "CNY", "detail": {"late_fee": 5, "penalty": 1_000, "days_past_due": 12}}


def test_amounts_are_yuan_with_two_decimals_exactly():
    assert [yuan(v) for v in (0, 5, 100, 123_456_789, 2**96 - 1)] == [
        "0.00", "0.05", "1.00", "1,234,567.89", "792,281,625,142,643,375,935,439,503.35"]
    with pytest.raises(TypeError):
        yuan(1.5)


def test_dates_are_the_borrowers_calendar_day():
    late_evening_utc = int(datetime(2026, 12, 31, 20, 0, tzinfo=UTC).timestamp())  # 04:00 next day in Shanghai
    assert local_date(late_evening_utc, "zh-CN") == "2027年1月1日"
    assert local_date(late_evening_utc, "en") == "1 Jan 2027"
    assert local_date(late_evening_utc, "en", "Europe/London") == "31 Dec 2026"
    assert local_date(late_evening_utc, "en", "Not/AZone") == "1 Jan 2027"  # unknown: the default zone


@pytest.mark.parametrize("language", ["zh-CN", "en"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_written_in_both_languages(kind, language):
    text = render(kind, language, {**FACTS, "kind": kind, "due_at": 1_800_000_000})
    assert "1,234,567.89" in text and "7" in text and "{" not in text
    assert set(TEMPLATES) == {"zh-CN", "en"} and set(TEMPLATES[language]) == set(KINDS)


def test_an_unknown_language_falls_back_to_chinese():
    assert render("reminder", "fr", FACTS) == render("reminder", "zh-CN", FACTS)
    assert render("reminder", None, FACTS).startswith("【LoanLedger】")
    warning = render("overdue_warning", "en", FACTS)
    assert "12 days overdue" in warning and "late fee of CNY 0.05" in warning and "CNY 10.00" in warning
