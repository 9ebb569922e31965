"""The KYC vocabulary: the statuses a wallet's real-name verification can be in, and the way out of each.

As ledger.book names the loan states, this module names the KYC ones: everything else (the API's service, its
schema's enum, the client, docs/borrower.md's table) names them through here. tests check the docs' table and the
OpenAPI enum against `KycStatus`.

    none --submit--> submitted --phone code--> phone_verified --card code--> card_verified --(vault)--> registering
    registering --the oracle's registerBorrower / updateBorrower, indexed--> registered
    registered --within `kyc_expiring_days` of kycExpiresAt--> expiring --kycExpiresAt passed--> expired
    registered | expiring | expired --submit again (renewal; within `kyc_renewal_days` or expired)--> submitted ...
    registered | expiring --POST /v1/kyc/phone--> reverification_needed --new number's code--> registered
    registering --the registry refused it / holds another commitment--> reverification_needed --submit--> ...
    any registered status --an operator's revokeBorrower--> revoked (an operator's decision to undo)
    none (a new wallet) --POST /v1/kyc/recovery, codes--> recovery_pending (above the risk threshold: an operator
        confirms) --confirmed--> registering --the oracle's recoverBorrower, indexed--> registered
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class KycStatus(StrEnum):
    NONE = "none"  # never submitted (or the application's codes lapsed)
    SUBMITTED = "submitted"  # the record is sealed and the two codes are sent
    PHONE_VERIFIED = "phone_verified"  # the phone's code is confirmed; the card's is still awaited
    CARD_VERIFIED = "card_verified"  # both codes confirmed; the record is not stored yet (retrying completes it)
    REGISTERING = "registering"  # verified and in the vault; the registry does not hold it (or its renewal) yet
    REGISTERED = "registered"  # the registry holds it, valid for more than kyc_expiring_days
    EXPIRING = "expiring"  # registered, expiring within kyc_expiring_days: renewal is open
    EXPIRED = "expired"  # kycExpiresAt passed: no new applications until renewed
    REVOKED = "revoked"  # an operator revoked the borrower: no new applications
    REVERIFICATION_NEEDED = "reverification_needed"  # a new phone awaits its code, or vault and chain disagree
    RECOVERY_PENDING = "recovery_pending"  # a wallet recovery verified, waiting for an operator's confirmation


# The statuses an application (a submitted record awaiting its codes) shows, by the codes confirmed so far.
APPLICATION_STATUSES: tuple[KycStatus, ...] = (KycStatus.SUBMITTED, KycStatus.PHONE_VERIFIED, KycStatus.CARD_VERIFIED)
# The statuses in which the registry holds the borrower (its kycExpiresAt is known).
ON_CHAIN: tuple[KycStatus, ...] = (KycStatus.REGISTERED, KycStatus.EXPIRING, KycStatus.EXPIRED, KycStatus.REVOKED)


@dataclass(frozen=True)
class NextStep:
    """What the borrower can do next: an action, the route that does it, and what it does."""

    action: str
    route: str
    description: str


SUBMIT = NextStep("submit", "POST /v1/kyc", "submit name, ID number, phone and bank card; codes go to the phone")
VERIFY = NextStep("verify", "POST /v1/kyc/verify", "confirm the codes sent to the phone")
RENEW = NextStep("renew", "POST /v1/kyc", "renew: submit your record again (same ID number); new codes go to the phone")
CHANGE_PHONE = NextStep("change_phone", "POST /v1/kyc/phone", "change the phone number: a code goes to the new one")
VERIFY_PHONE = NextStep("verify_phone", "POST /v1/kyc/phone/verify", "confirm the code sent to the new number")
WAIT = NextStep("wait", "GET /v1/kyc", "nothing to do: the oracle registers it on-chain (retried if the node is away)")
APPLY = NextStep("apply", "POST /v1/loans", "apply for a loan")
SUPPORT = NextStep("contact_support", "", "an operator decides: contact support")
AWAIT_OPERATOR = NextStep("wait_for_operator", "GET /v1/kyc",
                          "an operator confirms this wallet recovery (loans are open); then the oracle moves it")

# The way out of each status (renew is offered in `registered` only once the renewal window opens: see `next_steps`).
WAYS_OUT: dict[KycStatus, tuple[NextStep, ...]] = {
    KycStatus.NONE: (SUBMIT,),
    KycStatus.SUBMITTED: (VERIFY, SUBMIT),
    KycStatus.PHONE_VERIFIED: (VERIFY, SUBMIT),
    KycStatus.CARD_VERIFIED: (VERIFY, SUBMIT),
    KycStatus.REGISTERING: (WAIT,),
    KycStatus.REGISTERED: (APPLY, CHANGE_PHONE),
    KycStatus.EXPIRING: (RENEW, APPLY, CHANGE_PHONE),
    KycStatus.EXPIRED: (RENEW,),
    KycStatus.REVOKED: (SUPPORT,),
    KycStatus.REVERIFICATION_NEEDED: (VERIFY_PHONE, RENEW, SUPPORT),
    KycStatus.RECOVERY_PENDING: (AWAIT_OPERATOR,),
}


def next_steps(status: KycStatus, *, renewal_open: bool = False, phone_change_pending: bool = False,
               operator_registers: bool = False) -> tuple[NextStep, ...]:
    """The ways out of `status` for this borrower: renewal once its window is open, the new phone's code only while
    one is awaited, an operator when no automatic registration will come."""
    steps = WAYS_OUT[status]
    if status is KycStatus.REGISTERED and renewal_open:
        steps = (RENEW, *steps)
    if status is KycStatus.REVERIFICATION_NEEDED and not phone_change_pending:
        steps = tuple(step for step in steps if step is not VERIFY_PHONE)
    if status is KycStatus.REGISTERING and operator_registers:
        steps = (SUPPORT,)
    return steps


def description() -> str:
    """The statuses as one line for an OpenAPI description."""
    return " | ".join(status.value for status in KycStatus)
