"""Repayment instructions with the rail's hosted checkout, for the borrower app."""

from __future__ import annotations

from pydantic import Field

from api.schemas import RepaymentInstructions

_CHECKOUT = ("http://127.0.0.1:8700/checkout?loan=1&amount=41588&currency=CNY&"
             "return=http%3A%2F%2F127.0.0.1%3A8000%2Fapp%2F%23%2Fpay%3Floan%3D1")


class RepaymentCheckout(RepaymentInstructions):
    checkout_for: str = Field(description="due (what is owed now, else the next installment) or payoff")
    checkout_amount: int = Field(description="the amount the checkout takes, from the loan book, in minor units")
    checkout_url: str | None = Field(
        description="the rail's hosted checkout for that amount, returning to `return_to` (null without return_to, "
                    "with nothing to pay, or when no provider has a checkout)")

    model_config = {"json_schema_extra": {"examples": [{
        **RepaymentInstructions.model_config["json_schema_extra"]["examples"][0],
        "checkout_for": "due", "checkout_amount": 41_588, "checkout_url": _CHECKOUT}]}}
