"""Gas used per operation on a fresh anvil: `make gas` prints the table and writes bench/results/gas.json.

Each figure is the gasUsed of a real transaction's receipt (a batch of 50 score updates divided by 50).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from eth_utils import keccak
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger import four_eyes, typed_data  # noqa: E402
from ledger.book import LoanStatus, read_loan  # noqa: E402
from ledger.deploy import deploy_stack  # noqa: E402
from ledger.node import EphemeralNode, dev_account  # noqa: E402
from ledger.products import offering  # noqa: E402
from ledger.typed_data import Amortization, DayCount, Frequency, LoanTerms  # noqa: E402

DAY = 86_400
TERMS = LoanTerms(120_000, b"CNY", 2400, Amortization.ANNUITY, 12, 30 * DAY, 3 * DAY, 500, 1200, 90 * DAY)
# The same loan repaid monthly on the payout's day of the month (30/360): interval 0, the calendar spaces it.
MONTHLY = LoanTerms(120_000, b"CNY", 2400, Amortization.ANNUITY, 12, 0, 3 * DAY, 500, 1200, 90 * DAY,
                    frequency=Frequency.MONTHLY, dayCount=DayCount.THIRTY_360)
# Before loan products (issue 15) a borrower-terms application cost 187,344 and an installment 90,732: applying
# by product, and a repayment with fair early repayment, may cost at most 10 % more (docs/contracts.md#gas).
BEFORE_PRODUCTS = {"request_loan_product": 187_344, "repay_installment": 90_732}
TARGETS = {**{name: used * 110 // 100 for name, used in BEFORE_PRODUCTS.items()}, "repay_full": 91_000,
           "push_score_batch50_per_item": 30_000,
           # A monthly installment, on time: within 10 % of the same installment before products, as a fixed one.
           "repay_installment_monthly": BEFORE_PRODUCTS["repay_installment"] * 110 // 100}
EXTRA: tuple[str, ...] = ()
RESULTS = ROOT / "bench" / "results" / "gas.json"


def main() -> dict[str, int]:
    with EphemeralNode(accounts=60, extra=EXTRA) as node:
        w3 = node.w3
        admin, operator, oracle, pauser, signer = (dev_account(i) for i in range(5))
        operator2 = dev_account(59)  # FourEyes' second operator: products need two
        stack = deploy_stack(w3, admin.address, operator=operator.address, oracle=oracle.address,
                             pauser=pauser.address, score_signer=signer.address, second_operator=operator2.address)
        borrowers = [dev_account(i) for i in range(5, 57)]
        now = lambda: w3.eth.get_block("latest").timestamp  # noqa: E731

        def gas(fn, sender) -> int:
            receipt = w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender}))
            assert receipt.status == 1, fn.fn_name
            return receipt.gasUsed

        def push(report_id: int, accounts) -> int:
            updates = [(a.address, 700, 1_000_000) for a in accounts]
            message = typed_data.score_report(chain_id=w3.eth.chain_id, oracle=stack.oracle.address,
                                              report_id=report_id, model_version=1, updates=updates)
            fn = stack.oracle.functions.pushScores(report_id, 1, updates, [typed_data.sign(signer.key, message)])
            return gas(fn, oracle.address)

        def by_two_operators(fn) -> tuple[int, int]:
            """Gas of FourEyes.propose by the operator and of the confirmation (with the call) by the second."""
            made = w3.eth.wait_for_transaction_receipt(four_eyes.propose(stack.four_eyes, fn, now() + DAY)
                                                       .transact({"from": operator.address}))
            confirm = four_eyes.confirm(stack.four_eyes, four_eyes.proposed(stack.four_eyes, made))
            return made.gasUsed, gas(confirm, operator2.address)

        catalog = stack.catalog
        results: dict[str, int] = {}
        results["four_eyes_propose"], results["four_eyes_confirm_create_product"] = by_two_operators(
            catalog.functions.createProduct(offering(TERMS, "12 months").as_tuple(catalog)))
        product_id = catalog.functions.productCount().call()
        by_two_operators(catalog.functions.createProduct(offering(MONTHLY, "12 months, monthly").as_tuple(catalog)))
        monthly_id = catalog.functions.productCount().call()

        def request(borrower, product_id: int = product_id) -> tuple[int, int]:
            nonce = stack.book.functions.nonces(borrower.address).call()
            deadline = now() + DAY
            message = typed_data.loan_application(
                chain_id=w3.eth.chain_id, book=stack.book.address, borrower=borrower.address, product_id=product_id,
                product_version=1, principal=TERMS.principal, installments=TERMS.installments, nonce=nonce,
                deadline=deadline)
            fn = stack.book.functions.requestLoan((product_id, 1, TERMS.principal, TERMS.installments), borrower.address,
                                                  deadline, typed_data.sign(borrower.key, message))
            used = gas(fn, borrowers[-1].address)  # any relayer
            return used, stack.book.functions.loanCount().call()

        registrations = [gas(stack.registry.functions.registerBorrower(b.address, keccak(text=b.address), now() + 365 * DAY),
                             operator.address) for b in borrowers[:52]]
        results["register_borrower"] = registrations[-1]
        results["push_score_1"] = push(1, borrowers[:1])
        results["push_score_batch50_per_item"] = push(2, borrowers[1:51]) // 50

        first, second = borrowers[1], borrowers[2]
        results["request_loan_product"], loan_a = request(first)
        _, loan_b = request(second)
        _, loan_c = request(borrowers[3], monthly_id)
        results["approve"] = gas(stack.book.functions.approve(loan_a), operator.address)
        gas(stack.book.functions.approve(loan_b), operator.address)
        gas(stack.book.functions.approve(loan_c), operator.address)
        results["disburse"] = gas(stack.book.functions.confirmDisbursement(loan_a, keccak(text="payout-a"), TERMS.principal, now()),
                                  oracle.address)
        gas(stack.book.functions.confirmDisbursement(loan_b, keccak(text="payout-b"), TERMS.principal, now()), oracle.address)

        w3.provider.make_request("evm_increaseTime", [30 * DAY])
        w3.provider.make_request("evm_mine", [])
        _, principal, interest = stack.book.functions.schedule(loan_a).call()[0]
        results["repay_installment"] = gas(stack.book.functions.confirmRepayment(
            loan_a, keccak(text="repay-a-1"), principal + interest, now()), oracle.address)
        payoff = stack.book.functions.payoffAmount(loan_b, now()).call()
        results["repay_full"] = gas(stack.book.functions.confirmRepayment(loan_b, keccak(text="repay-b"), payoff, now()),
                                    oracle.address)
        assert read_loan(stack.book, loan_b).status is LoanStatus.REPAID

        # The monthly loan, paid out now and its first installment repaid on its date (28 to 31 days on).
        gas(stack.book.functions.confirmDisbursement(loan_c, keccak(text="payout-c"), MONTHLY.principal, now()),
            oracle.address)
        due_at, principal, interest = stack.book.functions.schedule(loan_c).call()[0]
        w3.provider.make_request("evm_mine", [due_at])
        results["repay_installment_monthly"] = gas(stack.book.functions.confirmRepayment(
            loan_c, keccak(text="repay-c-1"), principal + interest, due_at), oracle.address)
        assert stack.book.functions.progressOf(loan_c).call()[0] == 1

    table = Table(title="Gas used per operation (solc 0.8.37, via-IR, 200 runs; 12-installment annuity)")
    table.add_column("operation")
    table.add_column("gas", justify="right")
    table.add_column("target", justify="right")
    table.add_column("")
    for name, used in results.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else ("ok" if used <= target else "OVER")
        table.add_row(name, f"{used:,}", f"<= {target:,}" if target else "", verdict)
    Console().print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return results


if __name__ == "__main__":
    main()
