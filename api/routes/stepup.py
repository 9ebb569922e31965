"""Step-up codes: a borrower asks for a one-time code bound to one action and its parameters; it goes by SMS to the
phone verified with their KYC (the vault's), never in the answer. The protected route takes it in the
X-Step-Up-Code header (api/stepup.py says which routes and how each refusal is named)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import BorrowerOrApplicant, ContextDep
from api.errors import ApiError, error_responses
from api.schemas.stepup import StepUpIn, StepUpOut
from api.stepup import HEADER, StepUpDep
from ledger.identity import mask_phone
from ledger.vault import RecordNotFound

router = APIRouter(prefix="/v1", tags=["auth"])
ERRORS = error_responses(401, 403, 409, 422, 429, 503)


@router.post("/step-up", response_model=StepUpOut, status_code=202, responses=ERRORS,
             summary="Text me a step-up code for one action with its parameters (applying, a phone change, a "
                     "reschedule); send it back in the X-Step-Up-Code header of that request",
             description="The code is valid 5 minutes, once, for exactly this action and these parameters; a new "
                         "one retires the previous. 429 `rate_limited` (Retry-After) when asked too often; 409 "
                         "`not_verified` before KYC (there is no verified phone to text).")
def send_step_up(body: StepUpIn, context: ContextDep, step_up: StepUpDep, who: BorrowerOrApplicant) -> StepUpOut:
    try:
        phone = context.vault.get(who.address).phone
    except RecordNotFound:
        raise ApiError(409, "not_verified", "a step-up code goes to your verified phone: verify first (POST /v1/kyc)") \
            from None
    expires_at = step_up.send(who.address, phone, body.action, body.params)
    return StepUpOut(action=body.action, sent_to=mask_phone(phone), expires_at=expires_at, header=HEADER)
