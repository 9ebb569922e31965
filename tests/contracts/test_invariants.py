"""Random sequences of operations against the real loan book, with the book's invariants checked after each step.

Every operation is tried as a call first: one the contract refuses is recorded by its error name and not
sent, so the machine explores both sides of every rule. After each step, from the chain:
- a loan's repaid principal never exceeds its principal;
- no payment reference is credited twice (across all disbursement and repayment events);
- each borrower's outstanding principal equals the sum of (principal - repaid principal) over their
  approved, active and defaulted loans;
- a loan's status only ever moves along the lifecycle.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition, rule,
                                 run_state_machine_as_test)
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD

from ledger.errors import ErrorDecoder
from ledger.typed_data import Amortization

DAY = 86_400
NONE, REQUESTED, APPROVED, REJECTED, CANCELLED, ACTIVE, REPAID, DEFAULTED, WRITTEN_OFF = range(9)
LIFECYCLE = {
    REQUESTED: {APPROVED, REJECTED, CANCELLED},
    APPROVED: {ACTIVE, CANCELLED},
    ACTIVE: {REPAID, DEFAULTED},
    DEFAULTED: {REPAID, WRITTEN_OFF},  # a defaulted loan paid off in full is repaid after all
}
EXPOSED = {APPROVED, ACTIVE, DEFAULTED}
BORROWERS = ("alice", "bob", "carol")


def test_loan_book_invariants_hold_over_random_operation_sequences(w3, stack, keys, driver, loan_terms):
    book, decoder = stack.book, ErrorDecoder([stack.book.abi, stack.oracle.abi, stack.registry.abi])
    operator, oracle = keys["operator"].address, keys["oracle"].address

    class LoanBookMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
            self.start_block = w3.eth.block_number + 1
            self.loans: dict[int, int] = {}       # loan id -> last seen status
            self.refs = 0
            self.used_refs: list[bytes] = []
            self.refusals: Counter[str] = Counter()

        def teardown(self):
            w3.provider.make_request("evm_revert", [self.snapshot])

        # -- helpers
        def attempt(self, fn, sender: str) -> bool:
            """Sends `fn` if a call says it would succeed; records the refusal otherwise."""
            try:
                fn.call({"from": sender})
            except ContractCustomError as exc:
                self.refusals[decoder.from_exception(exc).name] += 1
                return False
            receipt = w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender}))
            assert receipt.status == 1
            return True

        def request_loan(self, who: str, terms) -> int | None:
            """A signed application relayed; None when refused (e.g. the borrower's KYC has expired)."""
            try:
                loan_id = driver.request(keys[who], terms)
            except ContractCustomError as exc:
                self.refusals[decoder.from_exception(exc).name] += 1
                return None
            self.loans[loan_id] = REQUESTED
            return loan_id

        def new_ref(self) -> bytes:
            self.refs += 1
            return self.refs.to_bytes(32, "big")

        def loan(self, data) -> int | None:
            return data.draw(st.sampled_from(sorted(self.loans))) if self.loans else None

        # -- rules
        @initialize()
        def borrowers(self):
            for name in BORROWERS:
                driver.register(keys[name])
            self.rescore()
            # Every run starts with loans in play, so its steps reach repayment, default and write-off.
            self.open_active_loan("alice", 90_000)
            self.open_active_loan("bob", 40_000)
            self.request_loan("carol", loan_terms)

        def rescore(self):
            report_id = stack.oracle.functions.lastReportId().call() + 1
            for name in BORROWERS:
                driver.score(keys[name], limit=300_000, report_id=report_id)
                report_id += 1

        @rule(who=st.sampled_from(BORROWERS), principal=st.integers(1_000, 200_000),
              amortization=st.sampled_from(list(Amortization)), installments=st.integers(1, 4))
        def request(self, who, principal, amortization, installments):
            terms = replace(loan_terms, principal=principal, amortization=amortization, installments=installments)
            self.request_loan(who, terms)

        @rule(who=st.sampled_from(BORROWERS), principal=st.integers(1_000, 120_000))
        def open_active_loan(self, who, principal):
            """Requested, approved and disbursed in one step, so the deeper states are reached often."""
            loan_id = self.request_loan(who, replace(loan_terms, principal=principal))
            if loan_id is not None and self.attempt(book.functions.approve(loan_id), operator):
                self.statuses_move_along_the_lifecycle()  # one step, two transitions: check each
                ref = self.new_ref()
                if self.attempt(book.functions.confirmDisbursement(loan_id, ref, principal, driver.now), oracle):
                    self.used_refs.append(ref)

        @precondition(lambda self: self.loans)
        @rule(data=st.data())
        def approve(self, data):
            if (loan_id := self.loan(data)) is not None:
                self.attempt(book.functions.approve(loan_id), operator)

        @precondition(lambda self: self.loans)
        @rule(data=st.data())
        def reject(self, data):
            if (loan_id := self.loan(data)) is not None:
                self.attempt(book.functions.reject(loan_id, b"\0" * 32), operator)

        @precondition(lambda self: self.loans)
        @rule(data=st.data())
        def cancel(self, data):
            if (loan_id := self.loan(data)) is not None:
                borrower = book.functions.loanOf(loan_id).call()[1]
                self.attempt(book.functions.cancel(loan_id), borrower)

        @precondition(lambda self: self.loans)
        @rule(data=st.data())
        def disburse(self, data):
            if (loan_id := self.loan(data)) is not None:
                principal = book.functions.loanOf(loan_id).call()[0][0]
                ref = self.new_ref()
                if self.attempt(book.functions.confirmDisbursement(loan_id, ref, principal, driver.now), oracle):
                    self.used_refs.append(ref)

        @precondition(lambda self: self.loans)
        @rule(data=st.data(), share=st.floats(0.01, 1.2))
        def repay(self, data, share):
            if (loan_id := self.loan(data)) is not None:
                payoff = book.functions.payoffAmount(loan_id, driver.now).call()
                amount = max(1, int(payoff * share)) if data.draw(st.booleans()) else payoff
                ref = self.new_ref()
                if self.attempt(book.functions.confirmRepayment(loan_id, ref, amount, driver.now), oracle):
                    self.used_refs.append(ref)

        @precondition(lambda self: self.loans)
        @rule(data=st.data())
        def repay_with_a_used_reference(self, data):
            if (loan_id := self.loan(data)) is not None and self.used_refs:
                ref = data.draw(st.sampled_from(self.used_refs))
                assert not self.attempt(book.functions.confirmRepayment(loan_id, ref, 1, driver.now), oracle)
                items = [(loan_id, ref, 1, driver.now)]
                receipt = w3.eth.wait_for_transaction_receipt(
                    book.functions.confirmRepayments(items).transact({"from": oracle}))
                assert book.events.RepaymentApplied().process_receipt(receipt, errors=DISCARD) == ()

        @rule(days=st.integers(1, 120), rescore=st.booleans())
        def advance(self, days, rescore):
            driver.advance(days * DAY)
            if rescore:  # otherwise scores go stale after 30 days and approvals are refused: both are wanted
                self.rescore()

        @precondition(lambda self: self.loans)
        @rule(data=st.data())
        def declare_default(self, data):
            if (loan_id := self.loan(data)) is not None:
                self.attempt(book.functions.declareDefault(loan_id), data.draw(st.sampled_from([operator, oracle])))

        @precondition(lambda self: self.loans)
        @rule(data=st.data())
        def write_off(self, data):
            if (loan_id := self.loan(data)) is not None:
                self.attempt(book.functions.writeOff(loan_id), operator)

        # -- invariants
        @invariant()
        def statuses_move_along_the_lifecycle(self):
            for loan_id, before in self.loans.items():
                now = book.functions.loanOf(loan_id).call()[2]
                assert now == before or now in LIFECYCLE.get(before, set()), f"loan {loan_id}: {before} -> {now}"
                self.loans[loan_id] = now

        @invariant()
        def repaid_principal_never_exceeds_principal_and_exposure_adds_up(self):
            exposure: Counter[str] = Counter()
            for loan_id in self.loans:
                terms, borrower, status, _ = book.functions.loanOf(loan_id).call()
                repaid = book.functions.progressOf(loan_id).call()[2]
                assert repaid <= terms[0]
                if status in EXPOSED:
                    exposure[borrower] += terms[0] - repaid
            for name in BORROWERS:
                address = keys[name].address
                assert book.functions.outstandingPrincipal(address).call() == exposure[address]

        @invariant()
        def no_reference_is_credited_twice(self):
            if w3.eth.block_number < self.start_block:
                return
            refs: Counter[bytes] = Counter()
            for event in (book.events.LoanDisbursed, book.events.RepaymentApplied):
                for log in event().get_logs(from_block=self.start_block):
                    refs[log.args.paymentRef] += 1
            assert not [ref for ref, n in refs.items() if n > 1]

    run_state_machine_as_test(LoanBookMachine, settings=settings(
        max_examples=8, stateful_step_count=30, deadline=None, derandomize=True, phases=[Phase.generate],
        suppress_health_check=list(HealthCheck)))
