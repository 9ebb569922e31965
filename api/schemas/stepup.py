"""Step-up codes (issue 17): ask for a one-time code bound to one action and its parameters (api/stepup.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

StepUpAction = Literal["apply", "phone_change", "card_change", "debit_mandate", "reschedule_request",
                       "reschedule_accept"]


class StepUpIn(BaseModel):
    action: StepUpAction = Field(description="what the code will authorise")
    params: dict[str, int | str] = Field(description="exactly the parameters the protected request will carry: apply "
                                                     "{product_id, principal, installments}; phone_change {phone}; "
                                                     "card_change {bank_card}; debit_mandate {loan_id}; "
                                                     "reschedule_request {loan_id, installments}; "
                                                     "reschedule_accept {loan_id}")

    model_config = {"json_schema_extra": {"examples": [
        {"action": "apply", "params": {"product_id": 1, "principal": 100_000, "installments": 3}}]}}


class StepUpOut(BaseModel):
    action: StepUpAction
    sent_to: str = Field(description="the verified phone the code went to, masked")
    expires_at: int = Field(description="unix seconds: the code is refused (step_up_expired) after it")
    header: str = Field("X-Step-Up-Code", description="the header the protected request carries the code in")

    model_config = {"json_schema_extra": {"examples": [
        {"action": "apply", "sent_to": "139****5678", "expires_at": 1_769_212_800, "header": "X-Step-Up-Code"}]}}
