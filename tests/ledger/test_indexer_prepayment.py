"""The read model after early repayment: a prepayment re-bases the loan's schedule on-chain (ScheduleRebased), the
indexer re-reads it, and the rows are the contract's `schedule(loanId)`, numbered as the loan's installments; a
reversal puts the loan back on its original schedule. Checked against the chain by ledger.verify as well."""

from __future__ import annotations

from dataclasses import replace

from eth_utils import keccak
from web3.logs import DISCARD

from ledger.indexer import Indexer
from ledger.store.models.chain import Loan
from ledger.verify import recomputed_state

DAY = 86_400


def oracle_send(driver, fn, at: int):
    driver.w3.provider.make_request("evm_mine", [at])
    receipt = driver.w3.eth.wait_for_transaction_receipt(
        fn.transact({"from": driver.keys["oracle"].address, "gas": 3_000_000}))  # no estimate: it runs before `at`
    assert receipt.status == 1
    return receipt


def index_and_verify(w3, stack, sessions) -> None:
    Indexer(w3, stack.manifest, sessions).run_once()
    with sessions() as session:
        result = recomputed_state(w3, stack.manifest, session)
        assert result.ok, result.details


def rows(session, loan_id: int) -> list[tuple[int, int, int, int]]:
    return [(r.number, r.due_at, r.principal, r.interest) for r in session.get(Loan, loan_id).schedule]


def test_a_prepayment_re_bases_the_read_models_schedule_as_the_book_does(w3, stack, keys, driver, sessions, loan_terms):
    book = stack.book
    terms = replace(loan_terms, installments=12)
    loan_id = driver.active_loan(keys["alice"], terms)
    original = book.functions.schedule(loan_id).call()
    for k, (due_at, principal, interest) in enumerate(original[:3]):
        oracle_send(driver, book.functions.confirmRepayment(loan_id, keccak(text=f"on-time-{k}"), principal + interest,
                                                            due_at), due_at)
    index_and_verify(w3, stack, sessions)
    with sessions() as session:
        assert [r[0] for r in rows(session, loan_id)] == list(range(1, 13))

    # 20 days into the fourth period, 30,000: interest to date and the fourth installment's principal (it is paid
    # ahead of its date), then principal; the eight installments after it recomputed.
    at = original[2][0] + 20 * DAY
    receipt = oracle_send(driver, book.functions.confirmRepayment(loan_id, keccak(text="ahead"), 30_000, at), at)
    (rebased,) = book.events.ScheduleRebased().process_receipt(receipt, errors=DISCARD)
    assert rebased.args.rebasedAt == 4
    index_and_verify(w3, stack, sessions)
    chain = book.functions.schedule(loan_id).call()
    assert chain != original[4:]
    with sessions() as session:
        row = session.get(Loan, loan_id)
        # The contract's rows, numbered from the installment the plan was re-based at.
        assert rows(session, loan_id) == [(5 + k, *item) for k, item in enumerate(chain)]
        assert (row.paid_installments, row.next_due_at) == (4, chain[0][0])

    # The prepayment is charged back: the book re-allocates what is left on the original schedule.
    (applied,) = book.events.RepaymentApplied().process_receipt(receipt, errors=DISCARD)
    paid = (applied.args.principal, applied.args.interest, applied.args.lateFee, applied.args.penalty, 0, 0)
    oracle_send(driver, book.functions.reverseRepayment(loan_id, keccak(text="ahead"), keccak(text="chargeback"), paid,
                                                        at + DAY), at + DAY)
    index_and_verify(w3, stack, sessions)
    assert book.functions.schedule(loan_id).call() == original
    with sessions() as session:
        assert rows(session, loan_id) == [(1 + k, *item) for k, item in enumerate(original)]
        assert session.get(Loan, loan_id).next_due_at == original[3][0]


def test_a_prepayment_in_the_first_period_then_a_close(w3, stack, keys, driver, sessions, loan_terms):
    # Ten days into the first period, 50,000 pays the first installment ahead of its date and re-bases the two after
    # it; the loan then repaid in full: indexed and verified at each step.
    book = stack.book
    loan_id = driver.active_loan(keys["bob"], loan_terms)
    first_due = book.functions.schedule(loan_id).call()[0][0]
    at = first_due - 20 * DAY
    oracle_send(driver, book.functions.confirmRepayment(loan_id, keccak(text="early"), 50_000, at), at)
    index_and_verify(w3, stack, sessions)
    chain = book.functions.schedule(loan_id).call()
    with sessions() as session:
        assert rows(session, loan_id) == [(2 + k, *item) for k, item in enumerate(chain)]
        assert session.get(Loan, loan_id).paid_installments == 1
        assert sum(r[2] for r in rows(session, loan_id)) < loan_terms.principal
    payoff = book.functions.payoffAmount(loan_id, at + DAY).call()
    oracle_send(driver, book.functions.confirmRepayment(loan_id, keccak(text="close"), payoff, at + DAY), at + DAY)
    index_and_verify(w3, stack, sessions)
    with sessions() as session:
        assert session.get(Loan, loan_id).status == "Repaid"
