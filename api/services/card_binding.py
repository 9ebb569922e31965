"""The API's client of the payment rail's card verification (the stand-in: oracle.payments.card_verifications).

The bank, not LoanLedger, texts the card-binding code to the card's reserved phone; LoanLedger starts the
verification when a KYC application is submitted and relays the borrower's code at verify.

A start is sent with an idempotency key derived from the sealed pending application (stored before calling out),
so it is the same for every retry of that application: a timeout is not "it did not happen", and the same key
again answers the verification the rail made (no second one, no second text). The verification's id is therefore
never lost: asking again with the key answers it. A new submission seals a new application: a new key, a new code.

Refusals are ApiErrors by name: 422 `card_not_verified` (the bank refused the card; the message names the bank's
reason: `card_unknown`, `card_holder_mismatch`, `card_phone_mismatch`); a wrong, locked or expired card code is
refused with the one-time codes' names (422 `otp_wrong`, `otp_locked`, `otp_expired`, the message naming the card);
the rail away or failing answers 503 `rail_unavailable` with Retry-After, and nothing is changed.

Tests give a context its own client (`context.card_rail = CardRail(http=...)`, e.g. on the stand-in's ASGI app);
otherwise one is made on first use for `settings.rail_url`.
"""

from __future__ import annotations

import hashlib

import httpx

from api.errors import ApiError
from ledger.identity import KycRecord

RETRY_AFTER = "5"
START_ATTEMPTS = 3  # a start cut off (timeout, connection reset) is sent again with the same key this often


def _unavailable(detail: str) -> ApiError:
    return ApiError(503, "rail_unavailable", f"the bank could not be reached to verify the card ({detail}); "
                                             "nothing changed: try again shortly", headers={"Retry-After": RETRY_AFTER})


def idempotency_key(address: str, sealed: bytes) -> str:
    """The start's key: one per pending application (its sealed bytes are stored before the rail is called)."""
    return "kyc-card-" + hashlib.sha256(address.lower().encode() + b"|" + sealed).hexdigest()[:40]


class CardRail:
    def __init__(self, url: str | None = None, *, http: httpx.Client | None = None, timeout: float = 5.0):
        self.url = url
        self.http = http or httpx.Client(timeout=timeout)  # a client given (tests: the ASGI app) has its own

    def _post(self, base: str, path: str, body: dict, headers: dict | None = None) -> httpx.Response:
        return self.http.post(f"{(self.url or base).rstrip('/')}{path}", json=body, headers=headers or {})

    def start(self, base: str, key: str, record: KycRecord) -> str:
        """The verification id; the bank texts its code to the card's reserved phone (once per key)."""
        body = {"card_number": record.bank_card, "holder_name": record.name, "id_number": record.id_number,
                "phone": record.phone}
        last = ""
        for _ in range(START_ATTEMPTS):
            try:
                response = self._post(base, "/v1/card-verifications", body, {"idempotency-key": key})
            except httpx.HTTPError as exc:  # maybe taken, maybe not: the same key again finds out
                last = type(exc).__name__
                continue
            if response.status_code >= 500:
                last = f"HTTP {response.status_code}"
                continue
            if response.status_code in (200, 201):
                return response.json()["id"]
            detail = _detail(response)
            raise ApiError(422, "card_not_verified", f"the bank refused the card: {detail.get('message', '')} "
                                                     f"({detail.get('code', response.status_code)})")
        raise _unavailable(last)

    def confirm(self, base: str, verification_id: str, code: str) -> None:
        """Returns when the bank confirms the code; raises the refusal by name otherwise."""
        try:
            response = self._post(base, f"/v1/card-verifications/{verification_id}/confirm", {"code": code})
        except httpx.HTTPError as exc:
            raise _unavailable(type(exc).__name__) from None
        if response.status_code == 200 and response.json().get("status") == "verified":
            return
        if response.status_code >= 500:
            raise _unavailable(f"HTTP {response.status_code}")
        detail = _detail(response)
        code_name = detail.get("code")
        if code_name == "wrong_code":
            left = detail.get("attempts_left")
            raise ApiError(422, "otp_wrong", f"wrong card code (the bank's); {left} tries left")
        if code_name == "too_many_attempts":
            raise ApiError(422, "otp_locked", "too many wrong card codes: submit the application again for a new "
                                              "code from the bank")
        if code_name == "code_expired":
            raise ApiError(422, "otp_expired", "the bank's card code expired: submit the application again")
        raise ApiError(422, "card_not_verified",
                       f"the bank refused the card code ({code_name or response.status_code})")


def _detail(response: httpx.Response) -> dict:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return {}
    return detail if isinstance(detail, dict) else {"message": str(detail)}


def card_rail(context) -> CardRail:
    """The context's client of the rail's card verification (made on first use)."""
    found = getattr(context, "card_rail", None)
    if found is None:
        found = context.card_rail = CardRail()
    return found
