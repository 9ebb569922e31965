"""Sign-in and KYC refusals: each bad input gets its own code and changes nothing."""

from __future__ import annotations

import time

import jwt
import pytest
from api_outcomes import api_error
from eth_account import Account
from eth_account.messages import encode_defunct
from sqlalchemy import func, select

from api.auth import siwe_message
from api.client import LoanLedgerClient
from ledger.identity import normalize_phone
from ledger.samples import sample_identity
from ledger.store.models.api import KycApplication
from ledger.store.models.pii import KycVaultRecord


def _login_body(http, account, *, domain=None, signer=None, chain_id=None):
    nonce = http.post("/v1/auth/nonce").json()
    message = siwe_message(domain or nonce["domain"], nonce["uri"], account.address, chain_id or nonce["chain_id"],
                           nonce["nonce"])
    signature = (signer or account).sign_message(encode_defunct(text=message)).signature
    return {"message": message, "signature": "0x" + bytes(signature).hex()}


def test_a_forged_signature_a_replayed_nonce_and_a_foreign_domain_are_refused(http, keys):
    alice = keys["alice"]
    forged = _login_body(http, alice, signer=keys["bob"])
    assert http.post("/v1/auth/login", json=forged).json()["error"]["code"] == "invalid_signature"
    good = _login_body(http, alice)
    assert http.post("/v1/auth/login", json=good).status_code == 200
    replay = http.post("/v1/auth/login", json=good)
    assert (replay.status_code, replay.json()["error"]["code"]) == (401, "invalid_nonce")
    foreign = _login_body(http, alice, domain="evil.example")
    assert http.post("/v1/auth/login", json=foreign).json()["error"]["code"] == "invalid_signature"
    other_chain = _login_body(http, alice, chain_id=1)
    assert http.post("/v1/auth/login", json=other_chain).json()["error"]["code"] == "wrong_chain"
    garbage = http.post("/v1/auth/login", json={"message": "hello", "signature": "0x" + "00" * 65})
    assert garbage.json()["error"]["code"] == "invalid_siwe_message"
    # The longest body the route takes, not shaped like a SIWE message: refused before siwe's slow parser runs.
    junk = http.post("/v1/auth/login", json={"message": "0" * 4000, "signature": "0x" + "00" * 65})
    assert (junk.status_code, junk.json()["error"]["code"]) == (400, "invalid_siwe_message")
    assert "must open with" in junk.json()["error"]["message"]


def test_tokens_expire_and_cannot_be_forged(api, http, keys):
    _, context = api
    now = int(time.time())
    expired = jwt.encode({"sub": keys["alice"].address, "iat": now - 100, "exp": now - 10}, context.jwt_secret, "HS256")
    answer = http.get("/v1/auth/me", headers={"authorization": f"Bearer {expired}"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, "token_expired")
    forged = jwt.encode({"sub": keys["admin"].address, "iat": now, "exp": now + 60}, b"x" * 32, "HS256")
    answer = http.get("/v1/auth/me", headers={"authorization": f"Bearer {forged}"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, "invalid_token")
    assert http.get("/v1/auth/me").json()["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize("field,value,code", [
    ("id_number", "11010519491231002", "invalid_id_number"),        # 17 digits
    ("id_number", "110105194912310021", "invalid_id_number"),       # wrong check digit
    ("id_number", "110105203012310028", "invalid_id_number"),       # born in the future
    ("phone", "12345", "invalid_phone"),
    ("bank_card", "6222020000000000001", "invalid_bank_card"),      # fails Luhn
    ("name", "", "invalid_request"),
])
def test_malformed_kyc_fields_are_refused_by_name_and_store_nothing(api, client_for, keys, field, value, code):
    _, context = api
    client = client_for(keys["carol"])
    person = {**sample_identity(3), field: value}
    error = api_error(client.kyc_submit, **person)
    assert (error.status, error.code) == (422, code)
    with context.sessions() as session:
        assert session.scalar(select(func.count()).select_from(KycApplication)) == 0
    assert api[0].state.sms.messages() == []


def test_wrong_code_then_right_code_then_codes_are_single_use(api, client_for, keys, registrar):
    app, context = api
    client = client_for(keys["carol"])
    person = sample_identity(4)
    client.kyc_submit(**person)
    phone_code = app.state.sms.last_code(person["phone"], "phone")
    card_code = app.state.sms.last_code(person["phone"], "card")
    wrong = "000000" if phone_code != "000000" else "111111"
    error = api_error(client.kyc_verify, wrong, card_code)
    assert (error.status, error.code) == (422, "otp_wrong")
    with context.sessions() as session:
        assert session.scalar(select(func.count()).select_from(KycVaultRecord)) == 0
    assert client.kyc_verify(phone_code, card_code)["status"] == "registering"  # the oracle registers it
    # Repeated (a retry after a lost answer), it answers the status again; the codes are not spent twice.
    assert client.kyc_verify(phone_code, card_code)["status"] == "registering"
    assert client.kyc_status()["status"] == "registering"
    registrar()
    assert client.kyc_status()["status"] == "registered"
    # Nothing personal in clear in what the owner sees back.
    shown = client.kyc_status()["record"]
    assert person["id_number"] not in str(shown) and person["bank_card"] not in str(shown)
    assert shown["bank_card"].endswith(person["bank_card"][-4:])


def test_five_wrong_codes_lock_the_code(api, client_for, keys):
    app, _ = api
    client = client_for(keys["dave"])
    person = sample_identity(5)
    client.kyc_submit(**person)
    right = app.state.sms.last_code(person["phone"], "phone")
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    codes = [api_error(client.kyc_verify, wrong, "123456").code for _ in range(5)]
    assert codes == ["otp_wrong"] * 5
    assert api_error(client.kyc_verify, right, "123456").code == "otp_locked"


def test_codes_sent_to_one_phone_are_rate_limited(api, client_for, keys):
    client = client_for(keys["eve"])
    person = sample_identity(6)
    for _ in range(3):  # two codes each (phone + card): six, the most one phone gets in 10 minutes
        client.kyc_submit(**person)
    error = api_error(client.kyc_submit, **person)
    assert (error.status, error.code) == (429, "rate_limited")


def test_an_id_number_verified_for_one_wallet_is_refused_for_another(api, client_for, keys, kyc):
    kyc(client_for(keys["alice"]), 7)
    bob = client_for(keys["bob"])
    error = api_error(bob.kyc_submit, **{**sample_identity(8), "id_number": sample_identity(7)["id_number"]})
    assert (error.status, error.code) == (409, "duplicate_id_number")


def test_phone_change_is_confirmed_by_a_code_to_the_new_number(api, client_for, keys, kyc):
    app, context = api
    alice = client_for(keys["alice"])
    before = kyc(alice, 9)["commitment"]
    new_phone = "13712345678"
    alice.change_phone(new_phone)
    assert context.vault.get(keys["alice"].address).phone != normalize_phone(new_phone)  # not until confirmed
    error = api_error(alice.verify_phone, "000000" if app.state.sms.last_code(new_phone, "phone_change") != "000000"
                   else "111111")
    assert error.code == "otp_wrong"
    changed = alice.verify_phone(app.state.sms.last_code(new_phone, "phone_change"))
    assert context.vault.get(keys["alice"].address).phone == normalize_phone(new_phone)
    assert changed["commitment"] == before  # the on-chain commitment does not depend on the phone
    assert changed["record"]["phone"].endswith(new_phone[-4:])


def test_sms_code_is_never_in_an_api_response(api, http, client_for, keys):
    app, _ = api
    client = client_for(keys["carol"])
    person = sample_identity(10)
    response = http.post("/v1/kyc", json=person, headers={"authorization": f"Bearer {client.token}"})
    code = app.state.sms.last_code(person["phone"], "phone")
    assert response.status_code == 202 and code not in response.text


def test_a_fresh_wallet_signs_in_as_an_applicant(http):
    client = LoanLedgerClient("http://testserver", Account.create(), http=http)
    assert client.login()["roles"] == ["applicant"]
