"""Every notice text a borrower can receive, in Simplified Chinese and English: the one place they are written.

A template is filled from the notice's facts as the risk monitor recorded them (amounts in minor units computed by
the loan book, a due time in unix seconds): amounts are shown in yuan with two decimals, dates in the borrower's
time zone. Nothing here computes an amount.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ledger.store.models.notices import DEFAULT_LANGUAGE, DEFAULT_TIME_ZONE, LANGUAGES

KINDS = ("reminder", "overdue_warning", "default_notice", "debit_scheduled", "debit_failed")

TEMPLATES: Mapping[str, Mapping[str, str]] = {
    "zh-CN": {
        "reminder": "【LoanLedger】您的借款（编号{loan_id}）第{installment}期应还{amount}元，还款日为{due_date}。"
                    "请按时还款。",
        "overdue_warning": "【LoanLedger】您的借款（编号{loan_id}）第{installment}期已逾期{days_past_due}天"
                           "（还款日{due_date}），当前应还{amount}元，其中滞纳金{late_fee}元、罚息{penalty}元。"
                           "请尽快还款。",
        "default_notice": "【LoanLedger】您的借款（编号{loan_id}）已被认定为违约，当前欠款{amount}元。"
                          "请尽快与我们联系，协商还款。",
        "debit_scheduled": "【LoanLedger】您的借款（编号{loan_id}）第{installment}期应还{amount}元将于{due_date}"
                           "从您绑定的银行卡自动扣款，请确保余额充足。",
        "debit_failed": "【LoanLedger】您的借款（编号{loan_id}）第{installment}期自动扣款{amount}元因余额不足未成功"
                        "（还款日{due_date}）。我们将再次扣款，您也可以主动还款。",
    },
    "en": {
        "reminder": "LoanLedger: installment {installment} of your loan {loan_id}, CNY {amount}, is due on "
                    "{due_date}. Please repay on time.",
        "overdue_warning": "LoanLedger: installment {installment} of your loan {loan_id} is {days_past_due} days "
                           "overdue (due {due_date}). Now due: CNY {amount}, including a late fee of CNY {late_fee} "
                           "and penalty interest of CNY {penalty}. Please repay as soon as possible.",
        "default_notice": "LoanLedger: your loan {loan_id} has been declared in default; CNY {amount} is owed. "
                          "Please contact us to arrange repayment.",
        "debit_scheduled": "LoanLedger: installment {installment} of your loan {loan_id}, CNY {amount}, will be "
                           "debited from your bound card on {due_date}. Please keep enough funds on it.",
        "debit_failed": "LoanLedger: the automatic debit of CNY {amount} for installment {installment} of your loan "
                        "{loan_id} (due {due_date}) was declined for insufficient funds. We will try again; you can "
                        "also repay yourself.",
    },
}

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def yuan(minor_units: int) -> str:
    """1234567 -> "12,345.67": minor units (fen) shown as yuan, two decimals, exact (no float on the way)."""
    if not isinstance(minor_units, int):
        raise TypeError(f"amounts are int minor units, not {type(minor_units).__name__}")
    whole, fen = divmod(abs(minor_units), 100)  # integer maths: exact at any size (a Decimal rounds past 28 digits)
    return f"{'-' if minor_units < 0 else ''}{whole:,}.{fen:02d}"


def time_zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TIME_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIME_ZONE)


def local_date(timestamp: int, language: str, zone: str | None = None) -> str:
    """The calendar day of `timestamp` in the borrower's time zone: "2026年12月4日" or "4 Dec 2026"."""
    day = datetime.fromtimestamp(timestamp, time_zone(zone))
    if language == "zh-CN":
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def language_or_default(language: str | None) -> str:
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def render(kind: str, language: str | None, facts: Mapping, zone: str | None = None) -> str:
    """The text of notice `kind` for a borrower reading `language`, filled from the notice's recorded facts."""
    language = language_or_default(language)
    detail = facts.get("detail") or {}
    return TEMPLATES[language][kind].format(
        loan_id=facts["loan_id"], installment=facts["installment"], amount=yuan(facts["amount_due"]),
        due_date=local_date(facts["due_at"], language, zone), days_past_due=detail.get("days_past_due", 0),
        late_fee=yuan(detail.get("late_fee", 0)), penalty=yuan(detail.get("penalty", 0)))
