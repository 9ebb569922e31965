"""LoanLedgerClient: the Python SDK. It signs with its user's own key (from an encrypted keystore); the server
never sees the key, only signatures: the SIWE sign-in, a borrower's EIP-712 loan applications, and a staff
member's decisions (EIP-2771 ForwardRequests the server prepares, the client signs and the server relays).

It imports nothing of the server (tests/api/test_client.py checks): HTTP with httpx, signing with
eth_account, the EIP-712 messages from ledger.typed_data, the bodies from api.client.models.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_account.signers.local import LocalAccount

from api.client.models import (
    ApplyIn,
    AuditorIn,
    CancelIn,
    CodeIn,
    CodesIn,
    KycIn,
    LoginIn,
    NonceIn,
    NonceOut,
    PhoneIn,
    PolicyIn,
    PreparedOut,
    PrepareIn,
    RequestParams,
    SignedRequestIn,
    TokenOut,
)
from ledger import typed_data
from ledger.encoding import to_0x_hex


class ApiError(Exception):
    """The API answered with an error: `status`, stable `code`, human `message`, and for a 429 `retry_after`
    (seconds to wait before trying again, from the Retry-After header)."""

    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


def _role_body(role: str, account: str, contracts: list[str] | None) -> dict:
    return {"role": role, "account": account, **({} if contracts is None else {"contracts": contracts})}


def load_wallet(path: Path, passphrase: str) -> LocalAccount:
    return Account.from_key(Account.decrypt(json.loads(Path(path).read_text()), passphrase))


Review = Callable[[PreparedOut], bool]  # shown a prepared decision before signing; False: do not sign
# Reads the step-up code the API texted for (action, params) off the borrower's phone (the CLI asks its user).
StepUpCodes = Callable[[str, dict], str]
STEP_UP_HEADER = "x-step-up-code"


class DecisionDeclined(Exception):
    """The client's `review` declined to sign a prepared decision: nothing was signed or sent."""


class LoanLedgerClient:
    """`review(prepared)` (optional) is shown each decision the server prepared, with its summary, before the
    client signs it; returning False declines it (DecisionDeclined).

    `step_up_codes(action, params)` (optional) reads a step-up code off the borrower's phone: a protected call
    (apply, change_phone, change_card, request_reschedule, accept_reschedule) given no `step_up_code` asks the API
    to text one (`step_up`) and sends what it returns. Without it, pass `step_up_code=` from your own `step_up` call."""

    def __init__(self, base_url: str, account: LocalAccount | None = None, *, http: httpx.Client | None = None,
                 token: str | None = None, timeout: float = 30.0, review: Review | None = None,
                 step_up_codes: StepUpCodes | None = None):
        self.account, self.token, self.review, self.step_up_codes = account, token, review, step_up_codes
        self.http = http or httpx.Client(base_url=base_url, timeout=timeout)
        if http is None:
            self.base_url = base_url
        else:
            self.base_url = str(http.base_url)

    # -- plumbing ----------------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, json_body: Any = None, params: dict | None = None,
                 idempotency_key: str | None = None, raw: bool = False, step_up_code: str | None = None) -> Any:
        headers = {}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        if idempotency_key:
            headers["idempotency-key"] = idempotency_key
        if step_up_code:
            headers[STEP_UP_HEADER] = step_up_code
        response = self.http.request(method, path, json=json_body, params=params, headers=headers)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
            except Exception:  # noqa: BLE001 - not our JSON: report the status
                error = {"code": "http_error", "message": response.text[:200]}
            retry_after = response.headers.get("retry-after")
            raise ApiError(response.status_code, error["code"], error["message"],
                           int(retry_after) if retry_after and retry_after.isdigit() else None)
        return response if raw else response.json()

    @staticmethod
    def new_key() -> str:
        return str(uuid.uuid4())

    # -- auth --------------------------------------------------------------------------------------

    def login(self) -> dict:
        if self.account is None:
            raise ValueError("a wallet is needed to sign in")
        asked = NonceIn(address=self.account.address)
        nonce = NonceOut.model_validate(self._request("POST", "/v1/auth/nonce", json_body=asked.model_dump()))
        message = nonce.message
        if message is None:  # the server builds the message (once, for every client); an older server does not
            raise ApiError(502, "no_sign_in_message", "the API did not return a message to sign: upgrade the server")
        signature = self.account.sign_message(encode_defunct(text=message)).signature
        body = LoginIn(message=message, signature=to_0x_hex(signature))
        answer = self._request("POST", "/v1/auth/login", json_body=body.model_dump())
        self.token = TokenOut.model_validate(answer).token
        return answer

    def me(self) -> dict:
        return self._request("GET", "/v1/auth/me")

    # -- step-up codes ----------------------------------------------------------------------------

    def step_up(self, action: str, **params: Any) -> dict:
        """Asks the API to text a step-up code for `action` with exactly `params` to the verified phone; the
        protected call with the same parameters then carries it (`step_up_code=`)."""
        return self._request("POST", "/v1/step-up", json_body={"action": action, "params": params})

    def _step_up_code(self, given: str | None, action: str, **params: Any) -> str | None:
        """The code to send: the one given, else one asked for now and read by `step_up_codes`, else none (the
        API then answers 428 step_up_required if the action is protected)."""
        if given or self.step_up_codes is None:
            return given
        try:
            self.step_up(action, **params)
        except ApiError as exc:
            if exc.code != "not_verified":
                raise
            return None  # no verified phone yet (a phone change before KYC): the API refuses the call itself
        return self.step_up_codes(action, params)

    # -- KYC ---------------------------------------------------------------------------------------

    def kyc_status(self) -> dict:
        return self._request("GET", "/v1/kyc")

    def kyc_submit(self, name: str, id_number: str, phone: str, bank_card: str) -> dict:
        return self._request("POST", "/v1/kyc", json_body=KycIn(name=name, id_number=id_number, phone=phone,
                                                                bank_card=bank_card).model_dump())

    def kyc_renew(self, name: str, id_number: str, phone: str, bank_card: str) -> dict:
        """A renewal is a submission by a verified wallet (the same ID number), taken within the renewal window
        (`renewal_opens_at`) or after expiry; then `kyc_verify` with the new codes."""
        return self.kyc_submit(name, id_number, phone, bank_card)

    def kyc_verify(self, phone_code: str, card_code: str) -> dict:
        body = CodesIn(phone_code=phone_code, card_code=card_code)
        return self._request("POST", "/v1/kyc/verify", json_body=body.model_dump())

    def change_phone(self, phone: str, *, step_up_code: str | None = None) -> dict:
        code = self._step_up_code(step_up_code, "phone_change", phone=phone)
        return self._request("POST", "/v1/kyc/phone", json_body=PhoneIn(phone=phone).model_dump(),
                             step_up_code=code)

    def verify_phone(self, code: str) -> dict:
        return self._request("POST", "/v1/kyc/phone/verify", json_body=CodeIn(code=code).model_dump())

    def change_card(self, bank_card: str, *, step_up_code: str | None = None) -> dict:
        """Starts changing the bound bank card: the bank texts its code to the new card's reserved phone."""
        code = self._step_up_code(step_up_code, "card_change", bank_card=bank_card)
        return self._request("POST", "/v1/kyc/card", json_body={"bank_card": bank_card}, step_up_code=code)

    def verify_card(self, code: str) -> dict:
        """Confirms the card change with the bank's code: the new card is bound."""
        return self._request("POST", "/v1/kyc/card/verify", json_body={"code": code})

    # -- loans -------------------------------------------------------------------------------------

    def quote(self, product_id: int, principal: int, installments: int, version: int | None = None) -> dict:
        """What applying for `principal` in `installments` gives (the latest version unless `version`): the terms,
        the service fee and net paid out, the loan book's schedule and totals. Public: no sign-in needed."""
        params = {"principal": principal, "installments": installments}
        if version is not None:
            params["version"] = version
        return self._request("GET", f"/v1/products/{product_id}/quote", params=params)

    def apply(self, product_id: int, principal: int, installments: int, version: int | None = None, *,
              idempotency_key: str | None = None, step_up_code: str | None = None) -> dict:
        """Applies for a product: signs (EIP-712 `LoanApplication`, with the loan book's nonce and a deadline) the
        product version (the latest unless `version`), the principal and the number of installments."""
        if version is None:
            version = self.product(product_id)["latest_version"]
        params = RequestParams.model_validate(self._request("GET", "/v1/loans/request-params"))
        message = typed_data.loan_application(
            chain_id=params.chain_id, book=params.loan_book, borrower=self.account.address, product_id=product_id,
            product_version=version, principal=principal, installments=installments, nonce=params.nonce,
            deadline=params.deadline)
        signature = typed_data.sign(self.account.key, message)
        body = ApplyIn(product_id=product_id, product_version=version, principal=principal, installments=installments,
                       deadline=params.deadline, signature=to_0x_hex(signature))
        code = self._step_up_code(step_up_code, "apply", product_id=product_id, principal=principal,
                                  installments=installments)
        return self._request("POST", "/v1/loans", idempotency_key=idempotency_key or self.new_key(),
                             json_body=body.model_dump(mode="json"), step_up_code=code)

    def cancel(self, loan_id: int, *, idempotency_key: str | None = None) -> dict:
        params = RequestParams.model_validate(self._request("GET", "/v1/loans/request-params"))
        message = typed_data.cancel_loan(chain_id=params.chain_id, book=params.loan_book, loan_id=loan_id,
                                         nonce=params.nonce, deadline=params.deadline)
        signature = typed_data.sign(self.account.key, message)
        body = CancelIn(deadline=params.deadline, signature=to_0x_hex(signature))
        return self._request("POST", f"/v1/loans/{loan_id}/cancel", idempotency_key=idempotency_key or self.new_key(),
                             json_body=body.model_dump())

    def credit(self) -> dict:
        return self._request("GET", "/v1/credit")

    # -- products (public: no sign-in needed) --------------------------------------------------------

    def products(self) -> list[dict]:
        """The live loan products: the latest version of each that is not retired."""
        return self._request("GET", "/v1/products")["products"]

    def product(self, product_id: int, version: int | None = None) -> dict:
        """One product: its latest version, or `version` (retired products included)."""
        params = {"version": version} if version is not None else None
        return self._request("GET", f"/v1/products/{product_id}", params=params)

    def loans(self) -> list[dict]:
        return self._request("GET", "/v1/loans")["loans"]

    def loan(self, loan_id: int) -> dict:
        return self._request("GET", f"/v1/loans/{loan_id}")

    def wait_for_decision(self, loan_id: int, timeout: float = 30.0, interval: float = 0.25) -> dict:
        """The loan once it is no longer Requested (the automatic policy decides shortly after an application its
        product lets it decide; an operator any other); TimeoutError if it still is after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while (loan := self.loan(loan_id))["status"] == "Requested":
            if time.monotonic() > deadline:
                raise TimeoutError(f"loan {loan_id} is still Requested after {timeout:.0f}s")
            time.sleep(interval)
        return loan

    def due(self, loan_id: int) -> dict:
        return self._request("GET", f"/v1/loans/{loan_id}/due")

    def repayment_instructions(self, loan_id: int) -> dict:
        return self._request("GET", f"/v1/loans/{loan_id}/repayment-instructions")

    # -- signed decisions (operators, admins, pausers) ----------------------------------------------

    def prepare(self, action: str, **params: Any) -> PreparedOut:
        """What to sign for `action` (`POST /v1/operator/requests`): ForwardRequest typed data and its summary."""
        answer = self._request("POST", "/v1/operator/requests",
                               json_body=PrepareIn(action=action, params=params).model_dump(mode="json"))
        return PreparedOut.model_validate(answer)

    def sign_prepared(self, prepared: PreparedOut) -> list[dict]:
        """Signs each prepared request with this client's key, after checking it is this key's to sign and after
        `review` accepted it; the `{request, signature}` bodies, in order."""
        if self.account is None:
            raise ValueError("a wallet is needed to sign a decision")
        if self.review is not None and not self.review(prepared):
            raise DecisionDeclined(prepared.summary)
        signed = []
        for item in prepared.requests:
            message = item.typed_data["message"]
            if message["from"].lower() != self.account.address.lower():
                raise ApiError(502, "not_my_request", f"the API prepared a request from {message['from']}, "
                                                      f"not from this wallet ({self.account.address})")
            signature = self.account.sign_message(encode_typed_data(full_message=item.typed_data)).signature
            body = SignedRequestIn.model_validate({"request": message, "signature": to_0x_hex(signature)})
            signed.append(body.model_dump(by_alias=True))
        return signed

    def decide(self, action: str, path: str, params: dict | None = None, body: dict | None = None, *,
               several: bool = False, idempotent: bool = True, idempotency_key: str | None = None) -> Any:
        """Prepares `action` with `params`, signs it and sends it to the decision's route `path` with `body`
        (one `{request, signature}`, or `requests: [...]` when the decision takes `several`)."""
        signed = self.sign_prepared(self.prepare(action, **{**(params or {}), **(body or {})}))
        if several:
            payload = {**(body or {}), "requests": signed}
        else:
            if len(signed) != 1:
                raise ApiError(502, "unexpected_requests", f"{action} was prepared as {len(signed)} requests, not 1")
            payload = {**(body or {}), **signed[0]}
        key = (idempotency_key or self.new_key()) if idempotent else None
        return self._request("POST", path, json_body=payload, idempotency_key=key)

    # -- operators ---------------------------------------------------------------------------------

    # What moves or forgives money (a write-off, an approval above the payout threshold, a product change) is
    # proposed by one operator and confirmed by a second (FourEyes): these answer the proposal, awaiting
    # confirmation; the second operator's client confirms it with `confirm(proposal["proposal_id"])`.

    def create_product(self, product: dict, *, idempotency_key: str | None = None) -> dict:
        """Proposes publishing a product (the body of `POST /v1/operator/products`: every term), signed with this
        wallet; the proposal (a second operator confirms it)."""
        return self.decide("product.create", "/v1/operator/products", body=product, idempotency_key=idempotency_key)

    def change_product(self, product_id: int, product: dict, *, idempotency_key: str | None = None) -> dict:
        """Publishes a product's new version."""
        return self.decide("product.change", f"/v1/operator/products/{product_id}/versions",
                           {"product_id": product_id}, product, idempotency_key=idempotency_key)

    def retire_product(self, product_id: int, *, idempotency_key: str | None = None) -> dict:
        return self.decide("product.retire", f"/v1/operator/products/{product_id}/retire", {"product_id": product_id},
                           idempotency_key=idempotency_key)

    def approve(self, loan_id: int, *, idempotency_key: str | None = None) -> dict:
        """Approves (or, if the loan book would refuse for the score, the limit or eligibility, rejects with that
        reason: the server prepares that instead, and the summary says so). Above the payout threshold it proposes
        the approval instead (the answer is the proposal: a second operator confirms it)."""
        return self.decide("loan.approve", f"/v1/operator/loans/{loan_id}/approve", {"loan_id": loan_id},
                           idempotency_key=idempotency_key)

    def reject(self, loan_id: int, reason: str, *, idempotency_key: str | None = None) -> dict:
        return self.decide("loan.reject", f"/v1/operator/loans/{loan_id}/reject", {"loan_id": loan_id},
                           {"reason": reason}, idempotency_key=idempotency_key)

    def write_off(self, loan_id: int, *, idempotency_key: str | None = None) -> dict:
        """Proposes writing off a defaulted loan; the proposal (a second operator confirms it)."""
        return self.decide("loan.write_off", f"/v1/operator/loans/{loan_id}/write-off", {"loan_id": loan_id},
                           idempotency_key=idempotency_key)

    def declare_default(self, loan_id: int, *, idempotency_key: str | None = None) -> dict:
        return self.decide("loan.declare_default", f"/v1/operator/loans/{loan_id}/declare-default",
                           {"loan_id": loan_id}, idempotency_key=idempotency_key)

    def offer_reschedule(self, loan_id: int, installments: int, expires_at: int, *,
                         idempotency_key: str | None = None) -> dict:
        """Offers the loan's borrower a hardship reschedule over `installments` installments (operator)."""
        return self.decide("loan.reschedule_offer", f"/v1/operator/loans/{loan_id}/reschedule-offer",
                           {"loan_id": loan_id}, {"installments": installments, "expires_at": expires_at},
                           idempotency_key=idempotency_key)

    def request_reschedule(self, loan_id: int, installments: int = 0, reason: str = "other", *,
                           step_up_code: str | None = None) -> dict:
        """Asks for a hardship reschedule of one's own active loan (borrower); `reason` is a code (income_loss,
        illness, family, disaster, other)."""
        code = self._step_up_code(step_up_code, "reschedule_request", loan_id=loan_id, installments=installments)
        return self._request("POST", f"/v1/loans/{loan_id}/reschedule-requests",
                             json_body={"installments": installments, "reason": reason}, step_up_code=code)

    def reschedule_requests(self) -> list[dict]:
        """Every borrower's reschedule requests, oldest first (operators, admins and auditors)."""
        return self._request("GET", "/v1/operator/reschedule-requests")["requests"]

    def reschedule(self, loan_id: int) -> dict:
        """The loan's reschedule offer, what to sign to accept it, and its reschedules so far."""
        return self._request("GET", f"/v1/loans/{loan_id}/reschedule")

    def accept_reschedule(self, loan_id: int, *, expect_installments: int | None = None,
                          idempotency_key: str | None = None, step_up_code: str | None = None) -> dict:
        """Signs the RescheduleAcceptance the API prepared for the loan's open offer, after checking it is for this
        loan, this book and (if given) the installments the borrower expects, and sends it."""
        status = self.reschedule(loan_id)
        to_sign = status.get("to_sign")
        if not to_sign:
            raise ApiError(409, "no_open_offer", f"loan {loan_id} has no open reschedule offer")
        message = to_sign["message"]
        offer = status["offer"]
        if message["loanId"] != loan_id or message["installments"] != offer["installments"] or \
                (expect_installments is not None and message["installments"] != expect_installments):
            raise ApiError(409, "unexpected_offer", "the acceptance to sign is not for the offer expected")
        signature = typed_data.sign(self.account.key, to_sign)
        code = self._step_up_code(step_up_code, "reschedule_accept", loan_id=loan_id)
        return self._request("POST", f"/v1/loans/{loan_id}/reschedule/accept",
                             idempotency_key=idempotency_key or self.new_key(),
                             json_body={"deadline": message["deadline"], "signature": to_0x_hex(signature)},
                             step_up_code=code)

    # -- automatic debit (issue 17) -----------------------------------------------------------------

    def debit_mandate(self, loan_id: int) -> dict:
        """The loan's debit mandate in force, and what a new one (sign_params) or a revocation signs."""
        return self._request("GET", f"/v1/loans/{loan_id}/debit-mandate")

    def sign_debit_mandate(self, loan_id: int, max_amount: int, valid_until: int, *,
                           step_up_code: str | None = None) -> dict:
        """Signs a DebitMandate for the loan and the card the API says is bound (masked), at most `max_amount` per
        debit until `valid_until`, and sends it with a step-up code for debit_mandate {loan_id}."""
        params = self.debit_mandate(loan_id)["sign_params"]
        message = typed_data.debit_mandate(chain_id=params["chain_id"], book=params["loan_book"],
                                           borrower=self.account.address, loan_id=loan_id, card=params["card"],
                                           max_amount=max_amount, valid_until=valid_until, nonce=params["nonce"])
        signature = typed_data.sign(self.account.key, message)
        code = self._step_up_code(step_up_code, "debit_mandate", loan_id=loan_id)
        return self._request("POST", f"/v1/loans/{loan_id}/debit-mandate", step_up_code=code,
                             json_body={"card": params["card"], "max_amount": max_amount, "valid_until": valid_until,
                                        "nonce": params["nonce"], "signature": to_0x_hex(signature)})

    def revoke_debit_mandate(self, loan_id: int) -> dict:
        """Signs the RevokeDebitMandate the API shows for the loan's mandate in force, after checking it names this
        loan and this wallet, and sends it."""
        to_sign = self.debit_mandate(loan_id).get("revocation_to_sign")
        if not to_sign:
            raise ApiError(404, "no_active_mandate", f"loan {loan_id} has no debit mandate in force")
        message = to_sign["message"]
        if message["loanId"] != loan_id or message["borrower"].lower() != self.account.address.lower():
            raise ApiError(409, "unexpected_revocation", "the revocation to sign is not for this loan and wallet")
        signature = typed_data.sign(self.account.key, to_sign)
        return self._request("DELETE", f"/v1/loans/{loan_id}/debit-mandate",
                             json_body={"signature": to_0x_hex(signature)})

    def proposals(self) -> list[dict]:
        """The proposals awaiting a second person's confirmation (operators and admins), oldest first."""
        return self._request("GET", "/v1/operator/proposals")["proposals"]

    def proposal(self, proposal_id: str) -> dict:
        return self._request("GET", f"/v1/operator/proposals/{proposal_id}")

    def confirm(self, proposal_id: str, *, idempotency_key: str | None = None) -> dict:
        """Confirms someone else's proposal, signed with this wallet (`review` is shown what it does and who
        proposed it first); FourEyes then makes the call. The answer's `result` holds the call's events."""
        return self.decide("proposal.confirm", f"/v1/operator/proposals/{proposal_id}/confirm",
                           {"proposal_id": proposal_id}, idempotency_key=idempotency_key)

    def cancel_proposal(self, proposal_id: str) -> dict:
        """Cancels a proposal (its proposer, or an admin)."""
        return self.decide("proposal.cancel", f"/v1/operator/proposals/{proposal_id}/cancel",
                           {"proposal_id": proposal_id}, idempotent=False)

    def revoke_borrower(self, address: str, reason: str) -> dict:
        return self.decide("borrower.revoke", f"/v1/operator/borrowers/{address}/revoke", {"address": address},
                           {"reason": reason}, idempotent=False)

    def pause(self) -> list:
        """Pauses every contract (pauser): one signed request per contract not paused yet."""
        return self.decide("system.pause", "/v1/operator/pause", several=True, idempotent=False)

    def unpause(self) -> list:
        return self.decide("system.unpause", "/v1/operator/unpause", several=True, idempotent=False)

    def grant_role(self, role: str, account: str, contracts: list[str] | None = None) -> dict:
        """Grants `role` (admin): where a contract checks it unless `contracts` are named."""
        return self.decide("role.grant", "/v1/operator/roles/grant", body=_role_body(role, account, contracts),
                           several=True, idempotent=False)

    def revoke_role(self, role: str, account: str, contracts: list[str] | None = None) -> dict:
        return self.decide("role.revoke", "/v1/operator/roles/revoke", body=_role_body(role, account, contracts),
                           several=True, idempotent=False)

    def rotate_signer(self, old: str, new: str) -> list:
        """Admits `new` as the credit oracle's score signer, then retires `old` (admin): one change for each, its
        transactions, or its proposals (where the admin renounced the oracle's admin role, the default deploy) that a
        second admin confirms with `confirm(proposal["proposal_id"])` before they take effect."""
        return self.decide("oracle_signer.rotate", "/v1/operator/oracle-signer/rotate", body={"old": old, "new": new},
                           several=True, idempotent=False)

    def disburse(self, loan_id: int) -> dict:
        return self._request("POST", f"/v1/operator/loans/{loan_id}/disburse", idempotency_key=self.new_key())

    def notices(self, status: str | None = None, kind: str | None = None, loan_id: int | None = None) -> list[dict]:
        """The notices the risk monitor recorded, with their delivery status (operators, admins, auditors)."""
        params = {k: v for k, v in {"status": status, "kind": kind, "loan_id": loan_id}.items() if v is not None}
        return self._request("GET", "/v1/operator/notices", params=params)["notices"]

    def language(self) -> dict:
        """The language and time zone of your notices."""
        return self._request("GET", "/v1/me/language")

    def set_language(self, language: str, time_zone: str | None = None) -> dict:
        body = {"language": language} | ({"time_zone": time_zone} if time_zone else {})
        return self._request("PUT", "/v1/me/language", json_body=body)

    def suspense(self, state: str | None = None) -> list[dict]:
        params = {} if state is None else {"state": state}
        return self._request("GET", "/v1/operator/suspense", params=params)["items"]

    def refund_suspense(self, item_id: int, idempotency_key: str | None = None) -> dict:
        return self._request("POST", f"/v1/operator/suspense/{item_id}/refund",
                             idempotency_key=idempotency_key or self.new_key())

    def apply_suspense(self, item_id: int, loan_id: int, idempotency_key: str | None = None) -> dict:
        return self._request("POST", f"/v1/operator/suspense/{item_id}/apply", json_body={"loan_id": loan_id},
                             idempotency_key=idempotency_key or self.new_key())

    def refund_credit(self, loan_id: int, idempotency_key: str | None = None) -> dict:
        """Pays an Overpaid loan's credit back over the rail (once; asking again answers the same refund)."""
        return self._request("POST", f"/v1/operator/loans/{loan_id}/credit-refund",
                             idempotency_key=idempotency_key or self.new_key())

    def credit_refunds(self, loan_id: int | None = None) -> list[dict]:
        params = {} if loan_id is None else {"loan_id": loan_id}
        return self._request("GET", "/v1/operator/credit-refunds", params=params)["orders"]

    def debits(self, state: str | None = None, loan_id: int | None = None, *, cursor: str | None = None,
               limit: int = 100) -> dict:
        """One page of every automatic-debit attempt, oldest first: {"debits": [...], "next_cursor": ...}
        (operators, admins and auditors); `state="set_aside"` lists what needs a person."""
        params = {"limit": limit, **{k: v for k, v in (("state", state), ("loan_id", loan_id), ("cursor", cursor))
                                     if v is not None}}
        return self._request("GET", "/v1/operator/debits", params=params)

    def set_auto_approve(self, enabled: bool) -> dict:
        return self._request("PUT", "/v1/operator/policy", json_body=PolicyIn(auto_approve=enabled).model_dump())

    def register_borrower(self, address: str) -> dict:
        """Registers a KYC-verified borrower on-chain (when automatic registration is off), signed by this wallet."""
        return self.decide("borrower.register", f"/v1/operator/borrowers/{address}/register", {"address": address},
                           idempotent=False)

    def add_auditor(self, address: str) -> dict:
        return self._request("POST", "/v1/operator/auditors", json_body=AuditorIn(address=address).model_dump())

    # -- auditors ----------------------------------------------------------------------------------

    def audit(self, path: str, **params) -> Any:
        """GET /v1/audit/<path> with query parameters (None values dropped)."""
        return self._request("GET", f"/v1/audit/{path}", params={k: v for k, v in params.items() if v is not None})

    def portfolio(self) -> dict:
        return self.audit("report/portfolio")

    def verify(self, check: str, **params) -> dict:
        return self.audit(f"verify/{check}", **params)
