"""KYC as a state machine (ledger/kyc_status.py): each status reached through the real API, the real oracle worker
(the `registrar` fixture) and real anvil (time moved with evm_increaseTime), and its way out: renewal before and
after expiry ending with a new on-chain kycExpiresAt and a borrower able to apply again, a renewal asked too early
refused by name and changing nothing, a registration resumed after a node outage, a phone change."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from api_outcomes import api_error
from eth_account import Account
from sqlalchemy import func, select
from web3 import Web3

from ledger.chain import ChainClient
from ledger.kyc_status import KycStatus
from ledger.samples import sample_identity
from ledger.store.models.api import KycApplication
from ledger.store.models.registrations import RegistrationIntent
from oracle.registrations import RegistrationWorker

DAY = 86_400
YEAR = 365 * DAY


def actions(answer: dict) -> list[str]:
    return [step["action"] for step in answer["next"]]


def codes(app, person: dict) -> tuple[str, str]:
    sms = app.state.sms
    return sms.last_code(person["phone"], "phone"), sms.last_code(person["phone"], "card")


def on_chain_expiry(stack, address: str) -> int:
    return stack.registry.functions.borrowerOf(address).call()[1]


def test_every_answer_is_one_of_the_documented_statuses_with_its_ways_out(api, client_for, registrar, stack):
    app, _ = api
    me = client_for(Account.create())
    person = sample_identity(41)
    assert (me.kyc_status()["status"], actions(me.kyc_status())) == ("none", ["submit"])
    submitted = me.kyc_submit(**person)
    assert submitted == me.kyc_status() and submitted["status"] == "submitted"
    assert actions(submitted)[0] == "verify" and submitted["codes_expire_at"] > time.time()
    phone_code, card_code = codes(app, person)
    wrong = "000000" if card_code != "000000" else "111111"
    assert api_error(me.kyc_verify, phone_code, wrong).code == "otp_wrong"
    assert me.kyc_status()["status"] == "phone_verified"  # the phone's code is spent: only the card's is awaited
    answer = me.kyc_verify(wrong, card_code)  # the phone's code is not asked again
    assert answer["status"] == "registering" and actions(answer) == ["wait"]
    assert me.kyc_verify(wrong, wrong) == answer == me.kyc_status()  # repeated: the same answer, nothing spent
    assert registrar().registered == 1
    shown = me.kyc_status()
    assert shown["status"] == "registered" and actions(shown) == ["apply", "change_phone"]
    assert shown["kyc_expires_at"] == on_chain_expiry(stack, me.account.address)
    assert shown["kyc_expires_at_iso"] == datetime.fromtimestamp(shown["kyc_expires_at"], UTC).isoformat().replace(
        "+00:00", "Z")
    assert shown["renewal_opens_at"] == shown["kyc_expires_at"] - 30 * DAY
    assert {status.value for status in KycStatus} >= {answer["status"] for answer in (submitted, shown)}


def test_card_verified_when_the_record_could_not_be_stored_and_its_way_out(api, client_for):
    """Both codes right, but another wallet verified the same phone meanwhile: the record is not stored, the status
    says how far it got, and submitting again (with the borrower's own phone) goes on."""
    app, _ = api
    first, second = client_for(Account.create()), client_for(Account.create())
    mine, theirs = sample_identity(42), sample_identity(43)
    shared = {**mine, "phone": theirs["phone"]}
    app.state.bank.reserve_phone(mine["bank_card"], theirs["phone"])  # her card's reserved phone is that one too
    first.kyc_submit(**shared)
    first_codes = codes(app, shared)
    second.kyc_submit(**theirs)
    assert second.kyc_verify(*codes(app, theirs))["status"] == "registering"
    assert api_error(first.kyc_verify, *first_codes).code == "duplicate_phone"
    stuck = first.kyc_status()
    assert stuck["status"] == "card_verified" and actions(stuck) == ["verify", "submit"]
    app.state.bank.reserve_phone(mine["bank_card"], mine["phone"])  # she reserves her own number with the bank
    assert first.kyc_submit(**mine)["status"] == "submitted"
    assert first.kyc_verify(*codes(app, mine))["status"] == "registering"


def test_expiring_then_expired_then_renewed_after_expiry_and_applying_again(api, client_for, keys, kyc, driver,
                                                                           registrar, stack, application):
    app, _ = api
    alice = client_for(keys["alice"])
    person = sample_identity(44)
    kyc(alice, 44)
    alice.login()
    driver.score(keys["alice"])
    first_expiry = on_chain_expiry(stack, keys["alice"].address)

    driver.advance(first_expiry - driver.now - 20 * DAY)
    expiring = alice.kyc_status()
    assert expiring["status"] == "expiring" and actions(expiring)[0] == "renew"

    driver.advance(21 * DAY)
    expired = alice.kyc_status()
    assert expired["status"] == "expired" and actions(expired) == ["renew"]
    driver.score(keys["alice"], report_id=2)  # a fresh score: what is refused is the KYC
    assert api_error(alice.apply, **application).code == "loan_book_borrower_not_eligible"

    renewing = alice.kyc_submit(**person)  # no longer `already_verified`
    assert (renewing["status"], renewing["renewal"]) == ("submitted", True)
    assert renewing["kyc_expires_at"] == first_expiry
    answer = alice.kyc_verify(*codes(app, person))
    assert answer["status"] == "registering" and answer == alice.kyc_status()
    report = registrar()
    assert (report.updated, report.registered) == (1, 0)
    renewed = alice.kyc_status()
    new_expiry = on_chain_expiry(stack, keys["alice"].address)
    assert renewed["status"] == "registered" and renewed["kyc_expires_at"] == new_expiry
    assert new_expiry >= driver.now + YEAR - DAY and new_expiry > first_expiry
    assert stack.registry.functions.isEligible(keys["alice"].address).call()
    assert alice.apply(**application)["status"] == "Requested"


def test_renewal_before_expiry_with_a_new_phone_and_another_persons_id_refused(api, client_for, keys, kyc, driver,
                                                                               registrar, stack):
    app, context = api
    bob = client_for(keys["bob"])
    person = sample_identity(45)
    kyc(bob, 45)
    kyc(client_for(keys["carol"]), 46)
    expiry = on_chain_expiry(stack, keys["bob"].address)
    commitment = bob.kyc_status()["commitment"]
    driver.advance(expiry - driver.now - 10 * DAY)

    someone_else = {**sample_identity(47), "phone": person["phone"]}
    refused = api_error(bob.kyc_submit, **someone_else)
    assert (refused.status, refused.code) == (409, "renewal_other_person")
    carols = api_error(bob.kyc_submit, **{**sample_identity(46), "phone": person["phone"]})
    assert carols.code == "renewal_other_person"
    assert bob.kyc_status()["status"] == "expiring"

    new_phone = sample_identity(48)["phone"]
    renewal = {**person, "phone": new_phone}
    app.state.bank.reserve_phone(person["bank_card"], new_phone)  # she told her bank the new number too
    assert bob.kyc_submit(**renewal)["renewal"] is True
    assert bob.kyc_verify(*codes(app, renewal))["status"] == "registering"
    assert registrar().updated == 1
    renewed = bob.kyc_status()
    assert renewed["status"] == "registered" and renewed["record"]["phone"].endswith(new_phone[-4:])
    assert renewed["commitment"] == commitment  # the same person, the same salt: only the expiry moved
    record = stack.registry.functions.borrowerOf(keys["bob"].address).call()
    assert ("0x" + record[0].hex(), record[1]) == (commitment, renewed["kyc_expires_at"])
    assert record[1] > expiry
    assert context.vault.find_by_phone(new_phone) == keys["bob"].address


def test_renewing_too_early_is_refused_by_name_and_changes_nothing(api, client_for, keys, kyc, stack):
    app, context = api
    dave = client_for(keys["dave"])
    person = sample_identity(49)
    kyc(dave, 49)
    before, sent = dave.kyc_status(), len(app.state.sms.messages(person["phone"]))
    error = api_error(dave.kyc_submit, **person)
    opens = datetime.fromtimestamp(before["renewal_opens_at"], UTC).date().isoformat()
    assert (error.status, error.code) == (409, "renewal_not_open") and opens in error.message
    assert dave.kyc_status() == before
    assert len(app.state.sms.messages(person["phone"])) == sent  # no codes sent
    with context.sessions() as session:
        assert session.get(KycApplication, keys["dave"].address) is None
        assert session.get(RegistrationIntent, keys["dave"].address).kind == "register"
    assert on_chain_expiry(stack, keys["dave"].address) == before["kyc_expires_at"]


def test_a_registration_cut_off_by_a_node_outage_resumes_without_an_operator(api, client_for, keys, stack, registrar,
                                                                            w3):
    """The oracle's node is down between the verification and the registration: the intent stays, the status says
    registering (never no_pending_kyc / already_verified contradictions), and the worker finishes once it is back."""
    app, context = api
    eve = client_for(keys["eve"])
    person = sample_identity(50)
    eve.kyc_submit(**person)
    phone_code, card_code = codes(app, person)
    assert eve.kyc_verify(phone_code, card_code)["status"] == "registering"
    dead = Web3(Web3.HTTPProvider("http://127.0.0.1:9", request_kwargs={"timeout": 2}))
    down = RegistrationWorker(context.sessions, ChainClient(dead, keys["oracle"], stack.errors), stack.registry)
    report = down.run_once()
    assert report.node_error and report.registered == 0
    with context.sessions() as session:
        intent = session.get(RegistrationIntent, keys["eve"].address)
    assert (intent.status, intent.attempts) == ("pending", 1)
    assert eve.kyc_status()["status"] == "registering"
    assert eve.kyc_verify(phone_code, card_code)["status"] == "registering"  # a retried verify: the same answer
    assert api_error(eve.kyc_submit, **person).code == "already_verified"  # nothing to do but wait
    assert not stack.registry.functions.isEligible(keys["eve"].address).call()

    deadline = time.time() + 30
    while registrar().registered == 0:  # the node is back: the worker's own back-off, no operator
        assert time.time() < deadline, "the registration was not resumed"
        time.sleep(0.5)
    assert eve.kyc_status()["status"] == "registered"
    assert stack.registry.functions.isEligible(keys["eve"].address).call()


def test_a_set_aside_registration_needs_reverification_and_resubmitting_registers(api, client_for, keys, driver,
                                                                                 registrar):
    app, context = api
    me = client_for(Account.create())
    person = sample_identity(51)
    me.kyc_submit(**person)
    me.kyc_verify(*codes(app, person))
    with context.sessions.begin() as session:  # an expiry the registry will not take
        session.get(RegistrationIntent, me.account.address).kyc_expires_at = driver.now - 1
    assert registrar().set_aside == 1
    stuck = me.kyc_status()
    assert stuck["status"] == "reverification_needed" and "renew" in actions(stuck)
    assert me.kyc_submit(**person)["status"] == "submitted"
    assert me.kyc_verify(*codes(app, person))["status"] == "registering"
    assert registrar().registered == 1
    assert me.kyc_status()["status"] == "registered"


def test_a_phone_change_needs_reverification_until_the_new_number_is_confirmed(api, client_for, keys, kyc, stack):
    app, context = api
    alice = client_for(keys["alice"])
    kyc(alice, 52)
    before = alice.kyc_status()
    new_phone = sample_identity(53)["phone"]
    changing = alice.change_phone(new_phone)
    assert changing["status"] == "reverification_needed" and changing == alice.kyc_status()
    assert actions(changing)[0] == "verify_phone" and changing["record"]["phone"].endswith(new_phone[-4:])
    answer = alice.verify_phone(app.state.sms.last_code(new_phone, "phone_change"))
    assert answer["status"] == "registered" and answer == alice.kyc_status()  # the real status, not "verified"
    assert context.vault.get(keys["alice"].address).phone.endswith(new_phone)
    # The commitment covers name and ID number only: the chain already agrees, nothing is sent.
    assert answer["commitment"] == before["commitment"]
    assert "0x" + stack.registry.functions.borrowerOf(keys["alice"].address).call()[0].hex() == before["commitment"]
    with context.sessions() as session:
        assert session.scalar(select(func.count()).select_from(RegistrationIntent)
                              .where(RegistrationIntent.status == "pending")) == 0


def test_revoked_has_support_as_its_way_out_and_cannot_renew(api, client_for, keys, kyc, operator):
    _, context = api
    carol = client_for(keys["carol"])
    kyc(carol, 54)
    assert context.wait_indexed(operator.revoke_borrower(keys["carol"].address, "fraud")["block_number"])
    revoked = carol.kyc_status()
    assert revoked["status"] == "revoked" and actions(revoked) == ["contact_support"]
    assert api_error(carol.kyc_submit, **sample_identity(54)).code == "borrower_revoked"


def test_a_chain_holding_another_commitment_needs_reverification_and_renewing_reconciles_it(api, client_for, keys,
                                                                                           driver, registrar, stack):
    """The registry already holds the wallet with another commitment than the vault's record (an operator's manual
    registration): the oracle sets its registration aside, the status says so, and a renewal's updateBorrower
    brings the vault's commitment on-chain."""
    app, _ = api
    bob = client_for(keys["bob"])
    person = sample_identity(55)
    driver.register(keys["bob"], b"\x11" * 32)
    bob.kyc_submit(**person)
    verified = bob.kyc_verify(*codes(app, person))
    assert registrar().set_aside == 1
    stuck = bob.kyc_status()
    assert stuck["status"] == "reverification_needed" and "renew" in actions(stuck)
    assert bob.kyc_submit(**person)["renewal"] is True
    assert bob.kyc_verify(*codes(app, person))["status"] == "registering"
    assert registrar().updated == 1
    reconciled = bob.kyc_status()
    assert reconciled["status"] == "registered" and reconciled["commitment"] == verified["commitment"]
    assert "0x" + stack.registry.functions.borrowerOf(keys["bob"].address).call()[0].hex() == verified["commitment"]


def test_a_verify_cut_off_after_the_record_was_stored_completes_when_repeated(api, client_for, registrar,
                                                                              monkeypatch):
    """The API stops after the record and its intent were stored, before the application was cleared: the status
    is card_verified (both codes spent), and the verify repeated (the codes are not asked again) completes it."""
    from api.services import kyc as service

    app, _ = api
    me = client_for(Account.create())
    person = sample_identity(56)
    me.kyc_submit(**person)
    real = service._forget_application

    def crash(context, address):
        raise RuntimeError("the API process stopped here")
    monkeypatch.setattr(service, "_forget_application", crash)
    phone_code, card_code = codes(app, person)
    with pytest.raises(RuntimeError):  # the in-process app re-raises what a real process would die of
        me.kyc_verify(phone_code, card_code)
    assert me.kyc_status()["status"] == "card_verified"
    monkeypatch.setattr(service, "_forget_application", real)
    assert me.kyc_verify("000000", "000000")["status"] == "registering"
    assert registrar().registered == 1
    assert me.kyc_status()["status"] == "registered"
