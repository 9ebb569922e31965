"""Card binding proved by the bank (issue 17): the payment rail's card verification (oracle/payments/
card_verifications.py) checks the card and texts ITS code to the card's reserved phone; the API (api/services/
card_binding.py) starts it at submission and has the rail confirm the borrower's code. Against the real API and the
stand-in as a process (`loanledger rail`) or, as the `api` fixture wires it, its ASGI app in-process."""

from __future__ import annotations

import httpx
from api_outcomes import api_error
from conftest import Rail
from eth_account import Account
from sqlalchemy import func, select
from stdnum import luhn

from api.services.card_binding import CardRail
from ledger.samples import sample_identity
from ledger.store.models.api import KycApplication, OtpChallenge
from ledger.store.models.pii import KycVaultRecord
from oracle.payments.card_verifications import BANK, MAX_ATTEMPTS


def _stored(context) -> tuple[int, int]:
    with context.sessions() as session:
        return (session.scalar(select(func.count()).select_from(KycVaultRecord)),
                session.scalar(select(func.count()).select_from(KycApplication)))


def _card_texts(app, phone: str) -> list[dict]:
    return [m for m in app.state.sms.messages(phone) if "(card)" in m["text"]]


def test_the_card_code_comes_from_the_bank_to_the_cards_reserved_phone(api, client_for, tmp_path):
    app, context = api
    rail = Rail(tmp_path / "rail-home", tmp_path / "rail.log", sms_outbox=context.settings.sms_outbox_path).start()
    try:
        context.settings = context.settings.model_copy(update={"rail_url": rail.url})
        context.card_rail = CardRail(timeout=5)  # over HTTP to the stand-in process
        me, person = client_for(Account.create()), sample_identity(61)
        assert me.kyc_submit(**person)["status"] == "submitted"
        texts = _card_texts(app, person["phone"])
        assert len(texts) == 1 and texts[0]["sender"] == BANK and texts[0]["to"] == "+86" + person["phone"]
        assert texts[0]["text"].startswith(f"【{BANK}】")
        with context.sessions() as session:  # LoanLedger made no card code of its own
            assert session.scalar(select(func.count()).select_from(OtpChallenge).where(
                OtpChallenge.purpose == "card")) == 0
        verification = httpx.get(f"{rail.url}/v1/card-verifications/nope", timeout=5)
        assert verification.status_code == 404 and verification.json()["detail"]["code"] == "verification_unknown"
        sms = app.state.sms
        answer = me.kyc_verify(sms.last_code(person["phone"], "phone"), sms.last_code(person["phone"], "card"))
        assert answer["status"] == "registering"
    finally:
        rail.stop()


def test_a_card_reserved_with_another_phone_or_unknown_is_refused_by_name_and_nothing_is_stored(api, client_for):
    app, context = api
    me, person = client_for(Account.create()), sample_identity(62)
    other_phone = sample_identity(63)["phone"]
    texts = len(app.state.sms.messages())
    error = api_error(me.kyc_submit, **{**person, "phone": other_phone})
    assert (error.status, error.code) == (422, "card_not_verified") and "card_phone_mismatch" in error.message
    unknown = "62220212345678900" + luhn.calc_check_digit("62220212345678900")  # valid, but no bank issued it
    error = api_error(me.kyc_submit, **{**person, "bank_card": unknown})
    assert (error.status, error.code) == (422, "card_not_verified") and "card_unknown" in error.message
    assert _stored(context) == (0, 0) and len(app.state.sms.messages()) == texts  # no code to anyone
    assert me.kyc_status()["status"] == "none"
    # A refused resubmission leaves the pending application as it was: its codes still confirm it.
    me.kyc_submit(**person)
    api_error(me.kyc_submit, **{**person, "phone": other_phone})
    sms = app.state.sms
    assert me.kyc_verify(sms.last_code(person["phone"], "phone"),
                         sms.last_code(person["phone"], "card"))["status"] == "registering"


def test_wrong_card_codes_are_refused_and_limited_by_the_bank(api, client_for):
    app, context = api
    me, person = client_for(Account.create()), sample_identity(64)
    me.kyc_submit(**person)
    sms = app.state.sms
    phone_code, card_code = sms.last_code(person["phone"], "phone"), sms.last_code(person["phone"], "card")
    wrong = f"{(int(card_code) + 1) % 10**6:06d}"
    refused = [api_error(me.kyc_verify, phone_code, wrong) for _ in range(MAX_ATTEMPTS)]
    assert [e.code for e in refused] == ["otp_wrong"] * (MAX_ATTEMPTS - 1) + ["otp_locked"]
    assert "card" in refused[0].message
    assert api_error(me.kyc_verify, phone_code, card_code).code == "otp_locked"  # locked: even the right one
    assert me.kyc_status()["status"] == "phone_verified" and _stored(context)[0] == 0
    me.kyc_submit(**person)  # a new application: a new verification, a new code from the bank
    answer = me.kyc_verify(sms.last_code(person["phone"], "phone"), sms.last_code(person["phone"], "card"))
    assert answer["status"] == "registering"


class LosesFirstAnswer:
    """The rail takes the first start but its answer is lost (a read timeout); what follows goes through."""

    def __init__(self, inner):
        self.inner, self.keys = inner, []

    def post(self, url: str, **kwargs):
        response = self.inner.post(url, **kwargs)
        if url.endswith("/v1/card-verifications"):
            self.keys.append(kwargs["headers"]["idempotency-key"])
            if len(self.keys) == 1:
                raise httpx.ReadTimeout("the answer was lost")
        return response


def test_a_start_cut_off_by_a_timeout_is_retried_with_the_same_key_and_makes_one_verification(api, client_for):
    app, context = api
    flaky = LosesFirstAnswer(context.card_rail.http)
    context.card_rail = CardRail(http=flaky)
    me, person = client_for(Account.create()), sample_identity(65)
    assert me.kyc_submit(**person)["status"] == "submitted"
    assert len(flaky.keys) == 2 and flaky.keys[0] == flaky.keys[1]
    assert len(app.state.bank.verifications) == 1 and len(_card_texts(app, person["phone"])) == 1
    sms = app.state.sms
    answer = me.kyc_verify(sms.last_code(person["phone"], "phone"), sms.last_code(person["phone"], "card"))
    assert answer["status"] == "registering" and len(app.state.bank.verifications) == 1
    assert len(set(flaky.keys)) == 1  # verify asked again with the application's key: the same verification


def test_the_rail_down_answers_503_with_retry_after_and_the_application_resumes(api, client_for, http):
    app, context = api
    in_process = context.card_rail
    context.card_rail = CardRail("http://127.0.0.1:9", timeout=1)  # nothing listens there
    me, person = client_for(Account.create()), sample_identity(66)
    response = http.post("/v1/kyc", json=person, headers={"authorization": f"Bearer {me.token}"})
    assert response.status_code == 503 and response.json()["error"]["code"] == "rail_unavailable"
    assert int(response.headers["retry-after"]) > 0
    assert _stored(context) == (0, 1)  # kept pending
    context.card_rail = in_process
    me.kyc_submit(**person)
    sms = app.state.sms
    phone_code, card_code = sms.last_code(person["phone"], "phone"), sms.last_code(person["phone"], "card")
    context.card_rail = CardRail("http://127.0.0.1:9", timeout=1)  # away again when the codes are confirmed
    assert api_error(me.kyc_verify, phone_code, card_code).code == "rail_unavailable"
    assert me.kyc_status()["status"] == "phone_verified" and _stored(context)[0] == 0
    context.card_rail = in_process
    assert me.kyc_verify(phone_code, card_code)["status"] == "registering"
