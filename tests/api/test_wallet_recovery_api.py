"""Wallet recovery through the real API, the oracle's real registration worker (the `registrar` fixture) and anvil
(issue 17): a borrower with an active loan loses the wallet and proves the same identity on a new one; above the
risk threshold an operator confirms first; the old wallet ends revoked ("recovered") and linked to the new one, its
loan is still credited over the oracle's payment path, and the limit follows the identity (the new wallet cannot
borrow it again beside the old loan). Another person's record, an unknown identity and replays are refused by
name."""

from __future__ import annotations

import pytest
from api_outcomes import api_error
from eth_account import Account

from ledger.book import LoanStatus
from ledger.chain import ChainClient
from ledger.samples import sample_identity
from oracle.outbox import Outbox, OutboxWorker
from oracle.payments.webhook import Confirmation, payment_ref

LIMIT = 200_000  # room for one loan of 120,000, not two
RECOVERED = b"recovered".ljust(32, b"\0")


def recover(client, person: dict) -> dict:
    return client._request("POST", "/v1/kyc/recovery", json_body=person)


def codes(app, person: dict) -> tuple[str, str]:
    sms = app.state.sms
    return sms.last_code(person["phone"], "phone"), sms.last_code(person["phone"], "card")


@pytest.fixture
def lost(api, borrower, application, driver, keys) -> int:
    """alice (sample identity 11) with an active loan of 120,000 under a limit of 200,000: the loan's id."""
    driver.score(keys["alice"], limit=LIMIT, report_id=2)
    loan_id = borrower.apply(**application)["loan_id"]
    driver.approve(loan_id)
    driver.disburse(loan_id, application["principal"], b"payout-recovery")
    assert api[1].wait_indexed(driver.w3.eth.block_number)
    return loan_id


def pay_over_the_rail(api, driver, keys, stack, loan_id: int, amount: int, reference: str) -> None:
    """A collection confirmed by the rail, credited by the oracle's outbox worker (by loan id and reference)."""
    _, context = api
    outbox = Outbox(context.sessions)
    outbox.put(Confirmation(kind="repayment", loan_id=loan_id, reference=reference,
                            payment_ref=payment_ref("mockpay", reference), amount=amount, currency="CNY",
                            paid_at=driver.now, provider="mockpay", event_id=f"evt-{reference}"))
    worker = OutboxWorker(outbox, ChainClient(driver.w3, keys["oracle"], stack.errors), stack.book, batch_size=10,
                          interval=0.05, max_backoff=0.4)
    assert worker.drain_once().credited == 1
    assert context.wait_indexed(driver.w3.eth.block_number)


def test_a_lost_wallet_is_recovered_after_an_operator_confirms_and_its_loan_and_limit_follow(
        api, client_for, registrar, lost, operator, driver, keys, stack, application, revert_name):
    app, context = api
    registry, person = stack.registry, sample_identity(11)
    old, new = keys["alice"].address, Account.create()
    me = client_for(new)
    submitted = recover(me, person)
    assert submitted["status"] == "submitted"
    answer = me.kyc_verify(*codes(app, person))
    # The old wallet owes 120,000 (> recovery_review_principal, 0): an operator confirms first.
    assert answer["status"] == "recovery_pending" == me.kyc_status()["status"]
    assert [step["action"] for step in answer["next"]] == ["wait_for_operator"]
    assert registrar().recovered == 0 and registry.functions.isEligible(old).call()
    # Replays while it waits: the same wallet again, a third wallet with the same identity, the old wallet.
    assert api_error(recover, me, person).code == "already_verified"
    assert api_error(recover, client_for(Account.create()), person).code == "recovery_in_progress"
    assert api_error(recover, client_for(keys["alice"]), person).code == "wallet_already_used"

    held = operator._request("GET", "/v1/kyc/recoveries")
    assert [(item["borrower"], item["recovered_from"], item["outstanding_principal"]) for item in held] == [
        (new.address, old, application["principal"])]
    assert api_error(me._request, "POST", f"/v1/kyc/recoveries/{new.address}/confirm").status == 403
    confirmed = operator._request("POST", f"/v1/kyc/recoveries/{new.address}/confirm")
    assert confirmed["status"] == "pending"
    assert api_error(operator._request, "POST", f"/v1/kyc/recoveries/{new.address}/confirm").code == \
        "no_held_recovery"
    assert me.kyc_status()["status"] == "registering"

    assert registrar().recovered == 1
    assert registry.functions.successorOf(old).call() == new.address
    assert registry.functions.borrowerOf(old).call()[3] is True and not registry.functions.isEligible(old).call()
    assert registry.functions.isEligible(new.address).call()
    app.state.roles.forget(new.address)
    me.login()
    assert me.kyc_status()["status"] == "registered"
    assert registrar().recovered == 0  # nothing sent twice

    # The limit follows the identity: a fresh score for the new wallet is not a fresh limit beside the old loan.
    driver.score(new, limit=LIMIT, report_id=3)
    assert context.wait_indexed(driver.w3.eth.block_number)
    credit = me.credit()
    assert (credit["outstanding_principal"], credit["available"]) == (application["principal"],
                                                                     LIMIT - application["principal"])
    second = me.apply(**application)["loan_id"]
    assert revert_name(stack.book.functions.approve(second), keys["operator"].address) == \
        "LoanBookCreditLimitExceeded"
    # The old wallet's loan is still payable over the rail: credited by loan id and reference.
    pay_over_the_rail(api, driver, keys, stack, lost, driver.payoff(lost), "COL-RECOVERED-1")
    assert LoanStatus(stack.book.functions.loanOf(lost).call()[2]) == LoanStatus.REPAID
    driver.approve(second)  # repaid: the identity's exposure is free again


def test_below_the_threshold_no_operator_is_asked(api, client_for, registrar, kyc, keys, stack):
    app, context = api
    context.settings = context.settings.model_copy(update={"recovery_review_principal": 10**12})
    person, old = sample_identity(12), keys["bob"]
    kyc(client_for(old), 12)
    new = client_for(Account.create())
    recover(new, person)
    assert new.kyc_verify(*codes(app, person))["status"] == "registering"
    report = registrar()
    assert (report.recovered, report.set_aside) == (1, 0)
    assert stack.registry.functions.predecessorOf(new.account.address).call() == old.address
    (revoked,) = stack.registry.events.BorrowerRevoked().get_logs(argument_filters={"borrower": old.address},
                                                                 from_block=0)
    assert revoked.args.reason == RECOVERED


def test_another_persons_record_and_an_unknown_identity_are_refused_by_name(api, client_for, kyc, keys):
    app, _ = api
    kyc(client_for(keys["bob"]), 13)
    person, thief = sample_identity(13), client_for(Account.create())
    # The victim's name and ID number with the thief's own card: not the same person.
    assert api_error(recover, thief, {**person, "bank_card": sample_identity(14)["bank_card"],
                                      "phone": sample_identity(14)["phone"]}).code == "recovery_other_person"
    assert api_error(recover, thief, {**person, "name": sample_identity(14)["name"]}).code == "recovery_other_person"
    assert api_error(recover, thief, sample_identity(15)).code == "recovery_unknown_identity"
    assert app.state.sms.messages(sample_identity(14)["phone"]) == []  # refused before any code was sent
    assert thief.kyc_status()["status"] == "none"
