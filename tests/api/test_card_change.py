"""A registered borrower changes their bank card (issue 17): a step-up code bound to the new card, then the bank's own
code, texted by the payment rail's card verification to the new card's reserved phone. Against the real API and the
rail stand-in as a process (`loanledger rail`, the `rail` fixture): the bank, not LoanLedger, checks the card is the
borrower's and texts the code. Every refusal is named and changes nothing; an automatic-debit mandate on the old card
refuses the change until the borrower revokes it.
"""

from __future__ import annotations

import pytest
from api_outcomes import api_error
from eth_account import Account
from sqlalchemy import func, select
from step_up_codes import code_for

from api.services.card_binding import CardRail
from api.sms import DevOutbox
from ledger.samples import sample_identity, sample_second_card
from ledger.store.models.card_changes import CardChange
from oracle.payments.card_verifications import BANK, MAX_ATTEMPTS

ALICE = 11  # the `borrower` fixture's sample identity
NEW_CARD = sample_second_card(ALICE)
OLD_CARD = sample_identity(ALICE)["bank_card"]


@pytest.fixture
def bank(api, rail):
    """The API's card verification over HTTP to the stand-in process; the bank's texts, as the rail writes them."""
    _, context = api
    context.settings = context.settings.model_copy(update={"rail_url": rail.url})
    context.card_rail = CardRail(timeout=5)
    return DevOutbox(rail.home / "sms-outbox.jsonl")


def _pending(context) -> int:
    with context.sessions() as session:
        return session.scalar(select(func.count()).select_from(CardChange))


def _bound(context, address: str) -> str:
    return context.vault.get(address).bank_card


def test_a_borrower_changes_their_card_with_a_step_up_code_and_the_banks_code(api, borrower, bank):
    _, context = api
    phone = sample_identity(ALICE)["phone"]
    before = borrower.kyc_status()
    assert before["status"] == "registered" and before["record"]["bank_card"].endswith(OLD_CARD[-4:])
    commitment = context.vault.commitment(borrower.account.address)

    started = borrower.change_card(NEW_CARD)  # the SDK asks for a step-up code and reads it off the phone
    assert started["status"] == "registered" and started["record"]["bank_card"].endswith(OLD_CARD[-4:])
    (text,) = [m for m in bank.messages(phone) if "(card)" in m["text"]]
    assert text["sender"] == BANK and text["text"].startswith(f"【{BANK}】") and NEW_CARD[-4:] in text["text"]
    assert _bound(context, borrower.account.address) == OLD_CARD and _pending(context) == 1

    done = borrower.verify_card(bank.last_code(phone, "card"))
    assert done["status"] == "registered"
    shown = borrower.kyc_status()
    assert shown["record"]["bank_card"] == "****" + NEW_CARD[-4:] and shown["status"] == "registered"
    assert _bound(context, borrower.account.address) == NEW_CARD and _pending(context) == 0
    assert context.vault.commitment(borrower.account.address) == commitment  # the chain needs no update
    head = context.action_log.head()
    actions = [context.action_log.entry(seq).action for seq in range(1, head.seq + 1)]
    assert actions[-2:] == ["kyc.card_change_requested", "kyc.card_changed"]
    # The same code again: nothing waits for it.
    again = api_error(borrower.verify_card, bank.last_code(phone, "card"))
    assert (again.status, again.code) == (409, "no_pending_card_change")


def test_step_up_refusals_change_nothing(api, borrower, bank):
    app, context = api
    address = borrower.account.address
    missing = api_error(borrower._request, "POST", "/v1/kyc/card", json_body={"bank_card": NEW_CARD})
    assert (missing.status, missing.code) == (428, "step_up_required")
    code = code_for(app, borrower, "card_change", bank_card=NEW_CARD)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    assert api_error(borrower.change_card, NEW_CARD, step_up_code=wrong).code == "step_up_wrong"
    other = code_for(app, borrower, "card_change", bank_card=sample_second_card(12))  # bound to another card
    assert api_error(borrower.change_card, NEW_CARD, step_up_code=other).code == "step_up_other_action"
    assert _bound(context, address) == OLD_CARD and _pending(context) == 0
    assert bank.messages() == []  # the bank was never asked
    code = code_for(app, borrower, "card_change", bank_card=NEW_CARD)
    # The code is bound to the card as stored: spaces typed in it are the same card.
    spaced = " ".join(NEW_CARD[i:i + 4] for i in range(0, len(NEW_CARD), 4))
    borrower.change_card(spaced, step_up_code=code)
    used = api_error(borrower.change_card, NEW_CARD, step_up_code=code)
    assert (used.status, used.code) == (422, "step_up_used")
    assert _bound(context, address) == OLD_CARD


def test_the_banks_refusals_and_wrong_codes_change_nothing(api, borrower, bank):
    _, context = api
    address, phone = borrower.account.address, sample_identity(ALICE)["phone"]
    # Another person's card (Bob's): the bank refuses it, naming why; no text, nothing pending.
    refused = api_error(borrower.change_card, sample_identity(12)["bank_card"])
    assert (refused.status, refused.code) == (422, "card_not_verified") and "card_holder_mismatch" in refused.message
    assert bank.messages() == [] and _pending(context) == 0
    unchanged = api_error(borrower.change_card, OLD_CARD)
    assert (unchanged.status, unchanged.code) == (409, "card_unchanged")
    typo = NEW_CARD[:-1] + str((int(NEW_CARD[-1]) + 1) % 10)  # the check digit does not match
    assert api_error(borrower.change_card, typo).code == "invalid_step_up_params"  # no code is sent for it
    refused = api_error(borrower.change_card, typo, step_up_code="123456")  # nor is one asked of the route
    assert (refused.status, refused.code) == (422, "invalid_bank_card")
    assert api_error(borrower.verify_card, "123456").code == "no_pending_card_change"

    borrower.change_card(NEW_CARD)
    code = bank.last_code(phone, "card")
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    refusals = [api_error(borrower.verify_card, wrong).code for _ in range(MAX_ATTEMPTS)]
    assert refusals == ["otp_wrong"] * (MAX_ATTEMPTS - 1) + ["otp_locked"]
    assert api_error(borrower.verify_card, code).code == "otp_locked"  # locked: even the right one
    assert _bound(context, address) == OLD_CARD
    assert borrower.kyc_status()["record"]["bank_card"] == "****" + OLD_CARD[-4:]
    borrower.change_card(NEW_CARD)  # started again: a new verification, a new code from the bank
    assert borrower.verify_card(bank.last_code(phone, "card"))["record"]["bank_card"] == "****" + NEW_CARD[-4:]


def test_an_unverified_wallet_has_no_card_to_change(api, client_for, bank):
    stranger = client_for(Account.create())
    refused = api_error(stranger.change_card, NEW_CARD, step_up_code="123456")
    assert (refused.status, refused.code) == (409, "not_verified")


def test_an_active_debit_mandate_on_the_old_card_refuses_the_change_until_revoked(api, borrower, application,
                                                                                  driver, bank):
    _, context = api
    loan_id = borrower.apply(**application)["loan_id"]
    driver.approve(loan_id)
    driver.disburse(loan_id, application["principal"], b"payout-card-change")
    assert context.wait_indexed(driver.w3.eth.block_number)
    made = borrower.sign_debit_mandate(loan_id, 50_000, 2**39)
    assert made["card"] == "**** " + OLD_CARD[-4:]
    refused = api_error(borrower.change_card, NEW_CARD)
    assert (refused.status, refused.code) == (409, "card_change_mandate_active") and str(loan_id) in refused.message
    assert bank.messages() == [] and _pending(context) == 0
    assert _bound(context, borrower.account.address) == OLD_CARD

    borrower.revoke_debit_mandate(loan_id)
    borrower.change_card(NEW_CARD)
    borrower.verify_card(bank.last_code(sample_identity(ALICE)["phone"], "card"))
    assert _bound(context, borrower.account.address) == NEW_CARD
    # A new mandate names the new card.
    assert borrower.sign_debit_mandate(loan_id, 50_000, 2**39)["card"] == "**** " + NEW_CARD[-4:]
