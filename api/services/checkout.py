"""The rail's hosted checkout for a borrower paying from the app: which page, for what amount, and back to where.

The amount is the loan book's (what is due now, else the next installment as the book will ask it, or the payoff:
api.routes.loans.due reads them from the contract); nothing here computes one. The return address is checked before
a link is handed out: only this API's own app (`/app/` on the origin the borrower reached the API at, or on the
configured `api_url`), so a checkout link made here never sends a payer elsewhere (no open redirect).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlencode, urlsplit

from api.errors import ApiError
from oracle.payments.config import provider_settings

APP_PATH = "/app/"
Purpose = Literal["due", "payoff"]


def rail_checkout_base(settings) -> str | None:
    """The URL of the provider that has a hosted checkout (the rail stand-in's layout), preferring the payout
    provider; None when no configured provider offers one."""
    entries = provider_settings(settings)
    standins = {name: entry for name, entry in entries.items() if entry.kind == "standin" and entry.url}
    chosen = standins.get(settings.payout_provider) or next(iter(standins.values()), None)
    return chosen.url.rstrip("/") if chosen else None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def checked_return(return_to: str, origins: list[str]) -> str:
    """`return_to` when it is this API's app (same scheme, host and port as one of `origins`, path /app/, no
    credentials); 422 `invalid_return_url` otherwise."""
    parts = urlsplit(return_to)
    mine = {_origin(origin) for origin in origins if origin}
    if (parts.scheme, parts.netloc.lower()) not in mine or parts.path != APP_PATH or "@" in parts.netloc \
            or "\\" in return_to or any(ord(c) < 0x21 for c in return_to):
        raise ApiError(422, "invalid_return_url", "return_to must be this API's app (<origin>/app/#/...)")
    return return_to


def amount_for(purpose: Purpose, amounts) -> int:
    """The book's amount for the purpose: what is due now (else the next installment as the book will ask it), or the
    payoff."""
    if purpose == "payoff":
        return amounts.payoff
    return amounts.total or amounts.owed_at_next_due


def link(base: str, loan_id: int, amount: int, currency: str, return_to: str) -> str:
    return f"{base}/checkout?" + urlencode({"loan": loan_id, "amount": amount, "currency": currency,
                                            "return": return_to})
