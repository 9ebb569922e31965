"""The read model after a hardship reschedule (issue 17): the indexer re-reads the re-based schedule, numbers it as the
loan's installments, keeps the replaced one in the RescheduleAccepted event it stores, and ledger.verify recomputes
the loan from its events to the chain's state."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select
from web3.logs import DISCARD

from ledger.indexer import Indexer
from ledger.products import offering
from ledger.store.models.chain import ChainEvent, Loan
from ledger.verify import recomputed_state

DAY = 86_400


def index_and_verify(w3, stack, sessions) -> None:
    Indexer(w3, stack.manifest, sessions).run_once()
    with sessions() as session:
        result = recomputed_state(w3, stack.manifest, session)
        assert result.ok, result.details


def test_an_overdue_loan_rescheduled_is_indexed_as_the_book_holds_it(w3, stack, keys, driver, sessions, loan_terms):
    book, catalog, alice = stack.book, stack.catalog, keys["alice"]
    driver.product(loan_terms)  # opens the catalogue's ceilings
    driver.by_two_operators(catalog.functions.createProduct(
        replace(offering(loan_terms, "hardship"), max_installments=12).as_tuple(catalog)))
    driver.register(alice)
    driver.score(alice)
    loan_id = driver.apply(alice, catalog.functions.productCount().call(), 1, loan_terms.principal,
                           loan_terms.installments)
    driver.approve(loan_id)
    driver.disburse(loan_id, loan_terms.principal, b"payout")
    original = book.functions.schedule(loan_id).call()
    index_and_verify(w3, stack, sessions)

    driver.advance(40 * DAY)  # the first installment is overdue
    driver.send(book.functions.offerReschedule(loan_id, 6, driver.now + DAY), keys["operator"])
    receipt = driver.send(book.functions.acceptReschedule(loan_id), alice)
    (accepted,) = book.events.RescheduleAccepted().process_receipt(receipt, errors=DISCARD)
    index_and_verify(w3, stack, sessions)
    chain = book.functions.schedule(loan_id).call()
    with sessions() as session:
        row = session.get(Loan, loan_id)
        assert [(r.number, r.due_at, r.principal, r.interest) for r in row.schedule] == \
            [(2 + k, *item) for k, item in enumerate(chain)]
        assert (row.paid_installments, row.installments, row.next_due_at) == (1, 7, chain[0][0])
        (stored,) = session.scalars(select(ChainEvent).where(ChainEvent.name == "RescheduleAccepted")).all()
        assert stored.loan_id == loan_id
        assert stored.args["previous"]["installments"] == 3
        assert stored.args["previous"]["installmentAmount"] == original[0][1] + original[0][2]
        assert stored.args["current"]["installments"] == 6 == accepted.args.current.installments

    # Paying the first new installment on its date: indexed, verified, one installment further.
    due_at = chain[0][0]
    driver.w3.provider.make_request("evm_mine", [due_at])
    amount = sum(book.functions.amountDue(loan_id, due_at).call()[:4])
    driver.send(book.functions.confirmRepayment(loan_id, b"first".ljust(32, b"\0"), amount, due_at), keys["oracle"])
    index_and_verify(w3, stack, sessions)
    with sessions() as session:
        assert session.get(Loan, loan_id).paid_installments == 2
