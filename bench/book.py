"""A book of active loans on a fresh node, for the benchmarks: borrowers registered and scored,
their signed requests relayed, approved and paid out, every step through ChainClient batches."""

from __future__ import annotations

from eth_utils import keccak

from ledger import four_eyes, typed_data
from ledger.chain import ChainClient
from ledger.node import DEV_SECOND_OPERATOR, dev_account
from ledger.products import offering
from ledger.typed_data import Amortization, LoanTerms

DAY = 86_400
TERMS = LoanTerms(1_200_000, b"CNY", 2400, Amortization.ANNUITY, 12, 30 * DAY, 3 * DAY, 500, 1200, 90 * DAY)
FIRST_BORROWER = 10  # development accounts 0-4 hold the roles
SECOND_OPERATOR = DEV_SECOND_OPERATOR  # FourEyes' second operator (deploy_stack's second_operator)


def active_book(w3, stack, operator: ChainClient, oracle: ChainClient, signer, loans: int) -> list[int]:
    """`loans` disbursed loans of TERMS, one per borrower (development accounts from FIRST_BORROWER)."""
    borrowers = [dev_account(FIRST_BORROWER + i) for i in range(loans)]
    catalog = stack.catalog
    # Products need two operators (FourEyes): the deploy names SECOND_OPERATOR as the second.
    four_eyes.carry_out(w3, stack.four_eyes, catalog.functions.createProduct(offering(TERMS, "12 months").as_tuple(catalog)),
                        operator.address, dev_account(SECOND_OPERATOR).address)
    product_id = catalog.functions.productCount().call()
    now = w3.eth.get_block("latest").timestamp
    for start in range(0, loans, 100):
        chunk = borrowers[start:start + 100]
        operator.transact_many([stack.registry.functions.registerBorrower(b.address, keccak(text=b.address),
                                                                          now + 365 * DAY) for b in chunk])
        updates = [(b.address, 700, 10 * TERMS.principal) for b in chunk]
        report_id = start // 100 + 1
        message = typed_data.score_report(chain_id=w3.eth.chain_id, oracle=stack.oracle.address,
                                          report_id=report_id, model_version=1, updates=updates)
        oracle.transact(stack.oracle.functions.pushScores(report_id, 1, updates, [typed_data.sign(signer.key, message)]))
        requests = []
        for borrower in chunk:
            signed = typed_data.loan_application(
                chain_id=w3.eth.chain_id, book=stack.book.address, borrower=borrower.address, product_id=product_id,
                product_version=1, principal=TERMS.principal, installments=TERMS.installments, nonce=0,
                deadline=now + DAY)
            requests.append(stack.book.functions.requestLoan((product_id, 1, TERMS.principal, TERMS.installments),
                                                             borrower.address, now + DAY,
                                                             typed_data.sign(borrower.key, signed)))
        operator.transact_many(requests)
    loan_ids = list(range(1, loans + 1))
    for start in range(0, loans, 100):
        operator.transact_many([stack.book.functions.approve(i) for i in loan_ids[start:start + 100]])
    paid_at = w3.eth.get_block("latest").timestamp
    for start in range(0, loans, 50):
        oracle.transact(stack.book.functions.confirmDisbursements(
            [(i, keccak(text=f"payout-{i}"), TERMS.principal, paid_at) for i in loan_ids[start:start + 50]]))
    return loan_ids
