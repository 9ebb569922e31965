"""Random sequences of operations against the real loan book, with the book's invariants checked after each step.

Every operation is tried as a call first: one the contract refuses is recorded by its error name and not
sent, so the machine explores both sides of every rule. After each step, from the chain:
- a loan's repaid principal never exceeds its principal; a closed loan (Repaid, Overpaid) has repaid it all,
  and a loan holds credit exactly when it is Overpaid, recoveries only when written off;
- no reference is used twice (across disbursements, repayments, recoveries, refunds and reversals);
- each borrower's outstanding principal equals the sum of (principal - repaid principal) over their
  approved, active and defaulted loans;
- a loan's status only ever moves along the lifecycle;
- every repayment is split whole (principal + interest + late fee + penalty = amount), and each loan's
  running totals equal the sums of its events less what reversals took back (principal and interest
  together, since a reversal re-allocates them), its credit the overpayments less refunds and reversals,
  its recoveries the same: money is neither lost nor created.
After the run, the operations must have reached every terminal state, the reversals and refunds, and the
refusals the book exists to make (a recovery beyond the debt, a reused reference): otherwise the
invariants were checked on too little to mean anything.
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

from ledger import typed_data
from ledger.errors import ErrorDecoder
from ledger.typed_data import Amortization

DAY = 86_400
NONE, REQUESTED, APPROVED, REJECTED, CANCELLED, ACTIVE, REPAID, DEFAULTED, WRITTEN_OFF, OVERPAID = range(10)
LIFECYCLE = {
    REQUESTED: {APPROVED, REJECTED, CANCELLED},
    APPROVED: {ACTIVE, CANCELLED},
    ACTIVE: {REPAID, OVERPAID, DEFAULTED, APPROVED},  # back to approved: the payout bounced
    DEFAULTED: {REPAID, OVERPAID, WRITTEN_OFF},  # a defaulted loan paid off in full is repaid after all
    OVERPAID: {REPAID, ACTIVE},  # the credit refunded; or the overpaying repayment reversed
    REPAID: {ACTIVE},  # a repayment reversed
}
ZERO_ALLOCATION = (0, 0, 0, 0, 0, 0)
EXPOSED = {APPROVED, ACTIVE, DEFAULTED}
BORROWERS = ("alice", "bob", "carol")
# Steps of time that matter to a 30-day, 3-day-grace, 90-days-to-default product: none, inside grace,
# past a due date, past grace, past the default threshold.
ADVANCE_DAYS = (0, 1, 2, 31, 34, 45, 125)


def holding(*statuses: int):
    """Enabled only while some loan is in one of `statuses`: rules are chosen among the enabled ones,
    so the deep states are reached within a short run."""
    return precondition(lambda self: any(status in statuses for status in self.loans.values()))


def test_loan_book_invariants_hold_over_random_operation_sequences(w3, stack, keys, driver, loan_terms):
    book, decoder = stack.book, ErrorDecoder([stack.book.abi, stack.oracle.abi, stack.registry.abi, stack.catalog.abi])
    operator, oracle = keys["operator"].address, keys["oracle"].address
    # Write-offs come from FourEyes (two operators, tests/contracts/test_four_eyes.py): here the node sends as it, so
    # the book's invariants are explored without a proposal per write-off.
    four_eyes = stack.four_eyes.address
    w3.provider.make_request("anvil_impersonateAccount", [four_eyes])
    w3.provider.make_request("anvil_setBalance", [four_eyes, hex(10**18)])
    reached: set[int] = set()  # statuses seen, over every example
    refused: Counter[str] = Counter()  # refusals by error name, over every example
    applied: Counter[str] = Counter()  # transactions sent, by function, over every example

    class LoanBookMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
            self.start_block = w3.eth.block_number + 1
            self.loans: dict[int, int] = {}  # loan id -> last seen status
            self.refs = 0
            self.used_refs: list[bytes] = []
            self.entries: dict[bytes, tuple[int, tuple[int, ...]]] = {}  # repayment ref -> (loan, allocation)
            self.payouts: dict[int, bytes] = {}  # loan id -> its payout's reference
            self.views_at: tuple[int, dict] | None = None

        def teardown(self):
            w3.provider.make_request("evm_revert", [self.snapshot])

        # -- helpers
        def attempt(self, fn, sender: str):
            """Sends `fn` if a call says it would succeed (its receipt); records the refusal otherwise (None)."""
            try:
                fn.call({"from": sender})
            except ContractCustomError as exc:
                refused[decoder.from_exception(exc).name] += 1
                return None
            receipt = w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender, "gas": 3_000_000}))
            assert receipt.status == 1
            applied[fn.fn_name] += 1
            return receipt

        def record_entry(self, receipt) -> None:
            """Where a repayment went, as its events report it: what a reversal must name."""
            for log in book.events.RepaymentApplied().process_receipt(receipt, errors=DISCARD):
                a = log.args
                held = book.events.OverpaymentHeld().process_receipt(receipt, errors=DISCARD)
                credit = held[0].args.credit if held else 0
                self.entries[a.paymentRef] = (a.loanId, (a.principal, a.interest, a.lateFee, a.penalty, credit, 0))
            for log in book.events.RecoveryApplied().process_receipt(receipt, errors=DISCARD):
                self.entries[log.args.paymentRef] = (log.args.loanId, (0, 0, 0, 0, 0, log.args.amount))

        def request_loan(self, who: str, terms) -> int | None:
            """A signed application relayed; None when refused (e.g. the borrower's KYC has expired)."""
            try:
                loan_id = driver.request(keys[who], terms)
            except ContractCustomError as exc:
                refused[decoder.from_exception(exc).name] += 1
                return None
            self.loans[loan_id] = REQUESTED
            return loan_id

        def new_ref(self) -> bytes:
            self.refs += 1
            return self.refs.to_bytes(32, "big")

        def loan(self, data, *fitting: int) -> int | None:
            """Mostly a loan in a status the operation fits, so runs go deep; sometimes any loan, to be refused."""
            fit = sorted(loan_id for loan_id, status in self.loans.items() if status in fitting)
            stray = data.draw(st.integers(0, 4), label="stray") == 4
            pool = fit if fit and not stray else sorted(self.loans)
            return data.draw(st.sampled_from(pool), label="loan") if pool else None

        def later(self, data, choices: tuple[int, ...] = ADVANCE_DAYS) -> None:
            """Some time passes before an operation (rule choice is uneven, so time does not wait for `advance`)."""
            if days := data.draw(st.sampled_from(choices), label="days later"):
                driver.advance(days * DAY)

        def views(self) -> dict:
            """The book as the chain shows it now; read once per block, since only a block changes it."""
            block = w3.eth.block_number
            if self.views_at is None or self.views_at[0] != block:
                loans = {loan_id: (book.functions.loanOf(loan_id).call(), book.functions.progressOf(loan_id).call())
                         for loan_id in self.loans}
                exposure = {keys[name].address: book.functions.outstandingPrincipal(keys[name].address, b"CNY").call()
                            for name in BORROWERS}
                self.views_at = (block, {"loans": loans, "exposure": exposure})
            return self.views_at[1]

        def rescore(self):
            report_id = stack.oracle.functions.lastReportId().call() + 1
            updates = [(keys[name].address, 700, 300_000) for name in BORROWERS]
            message = typed_data.score_report(chain_id=w3.eth.chain_id, oracle=stack.oracle.address,
                                              report_id=report_id, model_version=1, updates=updates)
            signature = typed_data.sign(keys["signer"].key, message)
            w3.eth.wait_for_transaction_receipt(
                stack.oracle.functions.pushScores(report_id, 1, updates, [signature]).transact({"from": oracle}))

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
                    self.payouts[loan_id] = ref

        @holding(REQUESTED)
        @rule(data=st.data())
        def approve(self, data):
            if (loan_id := self.loan(data, REQUESTED)) is not None:
                self.attempt(book.functions.approve(loan_id), operator)

        @holding(REQUESTED)
        @rule(data=st.data())
        def reject(self, data):
            if (loan_id := self.loan(data, REQUESTED)) is not None:
                self.attempt(book.functions.reject(loan_id, b"\0" * 32), operator)

        @holding(REQUESTED, APPROVED)
        @rule(data=st.data())
        def cancel(self, data):
            if (loan_id := self.loan(data, REQUESTED, APPROVED)) is not None:
                borrower = book.functions.loanOf(loan_id).call()[1]
                self.attempt(book.functions.cancel(loan_id), borrower)

        @holding(APPROVED)
        @rule(data=st.data())
        def disburse(self, data):
            if (loan_id := self.loan(data, APPROVED)) is not None:
                principal = book.functions.loanOf(loan_id).call()[0][0]
                ref = self.new_ref()
                if self.attempt(book.functions.confirmDisbursement(loan_id, ref, principal, driver.now), oracle):
                    self.used_refs.append(ref)
                    self.payouts[loan_id] = ref

        def confirm_repayment(self, data, how: str) -> None:
            if (loan_id := self.loan(data, ACTIVE, DEFAULTED)) is not None:
                self.later(data)
                payoff = book.functions.payoffAmount(loan_id, driver.now).call()
                if how == "part":
                    amount = data.draw(st.integers(1, max(1, payoff - 1)), label="amount")
                elif how == "over":
                    amount = payoff + data.draw(st.integers(1, 10_000), label="excess")
                else:
                    amount = payoff
                ref = self.new_ref()
                if receipt := self.attempt(book.functions.confirmRepayment(loan_id, ref, amount, driver.now), oracle):
                    self.used_refs.append(ref)
                    self.record_entry(receipt)
                    if how == "over":  # the credit's refunds, at once: rule choice alone reaches them too seldom
                        self.statuses_move_along_the_lifecycle()
                        self.refund(data, loan_id)

        def refund(self, data, loan_id: int) -> None:
            balance = book.functions.progressOf(loan_id).call()[8]
            # One more than the balance: refused; then some or all of it.
            for amount in (balance + 1, data.draw(st.integers(1, max(1, balance)), label="refund")):
                ref = self.new_ref()
                if self.attempt(book.functions.confirmCreditRefund(loan_id, ref, amount, driver.now), oracle):
                    self.used_refs.append(ref)

        @holding(WRITTEN_OFF)
        @rule(data=st.data())
        def recover(self, data):
            """A payment on a written-off loan: beyond what is still owed, refused; up to it, a recovery."""
            if (loan_id := self.loan(data, WRITTEN_OFF)) is not None:
                owed = book.functions.payoffAmount(loan_id, driver.now).call()
                for amount in (owed + 1, data.draw(st.integers(1, max(1, owed)), label="recovered")):
                    ref = self.new_ref()
                    if receipt := self.attempt(book.functions.confirmRepayment(loan_id, ref, amount, driver.now),
                                               oracle):
                        self.used_refs.append(ref)
                        self.record_entry(receipt)

        @holding(OVERPAID)
        @rule(data=st.data())
        def refund_credit(self, data):
            if (loan_id := self.loan(data, OVERPAID)) is not None:
                self.refund(data, loan_id)

        @precondition(lambda self: self.entries)
        @rule(data=st.data(), forged=st.booleans())
        def reverse_a_repayment(self, data, forged):
            """The rail takes a confirmed repayment back; a forged allocation (one unit off) is refused."""
            ref = data.draw(st.sampled_from(sorted(self.entries)), label="reversed")
            loan_id, parts = self.entries[ref]
            if forged:
                parts = (parts[0] + 1,) + parts[1:]
            reversal = self.new_ref()
            fn = book.functions.reverseRepayment(loan_id, ref, reversal, parts, driver.now)
            if self.attempt(fn, oracle):
                assert not forged
                self.used_refs.append(reversal)
                del self.entries[ref]

        @holding(ACTIVE)
        @rule(data=st.data())
        def reverse_a_payout(self, data):
            """A payout bounces: only while nothing was repaid from it."""
            if (loan_id := self.loan(data, ACTIVE)) is not None and loan_id in self.payouts:
                reversal = self.new_ref()
                fn = book.functions.reverseDisbursement(loan_id, self.payouts[loan_id], reversal, driver.now)
                if self.attempt(fn, oracle):
                    self.used_refs.append(reversal)
                    del self.payouts[loan_id]

        @holding(ACTIVE, DEFAULTED)
        @rule(data=st.data(), over=st.booleans())
        def repay_part_or_too_much(self, data, over):
            self.confirm_repayment(data, "over" if over else "part")

        @holding(ACTIVE, DEFAULTED)
        @rule(data=st.data())
        def repay_in_full(self, data):
            self.confirm_repayment(data, "all")

        @precondition(lambda self: self.used_refs and any(s in (ACTIVE, DEFAULTED) for s in self.loans.values()))
        @rule(data=st.data())
        def repay_with_a_used_reference(self, data):
            if (loan_id := self.loan(data, ACTIVE, DEFAULTED)) is not None:
                ref = data.draw(st.sampled_from(self.used_refs), label="used reference")
                assert not self.attempt(book.functions.confirmRepayment(loan_id, ref, 1, driver.now), oracle)
                # In a batch the duplicate is skipped, not applied.
                items = [(loan_id, ref, 1, driver.now)]
                receipt = w3.eth.wait_for_transaction_receipt(
                    book.functions.confirmRepayments(items).transact({"from": oracle}))
                assert book.events.RepaymentApplied().process_receipt(receipt, errors=DISCARD) == ()
                assert len(book.events.PaymentSkipped().process_receipt(receipt, errors=DISCARD)) == 1

        @rule(days=st.sampled_from(ADVANCE_DAYS[1:]), rescore=st.booleans())
        def advance(self, days, rescore):
            driver.advance(days * DAY)
            if rescore:  # otherwise scores go stale after 30 days and approvals are refused: both are wanted
                self.rescore()

        @holding(ACTIVE)
        @rule(data=st.data())
        def declare_default(self, data):
            if (loan_id := self.loan(data, ACTIVE)) is not None:
                self.later(data, (0, 125))  # the threshold is 90 days past the oldest due date
                actor = data.draw(st.sampled_from([operator, oracle]), label="actor")
                declared = self.attempt(book.functions.declareDefault(loan_id), actor)
                if declared and data.draw(st.booleans(), label="write off"):
                    self.statuses_move_along_the_lifecycle()  # one step, two transitions: check each
                    self.attempt(book.functions.writeOff(loan_id), four_eyes)

        @holding(DEFAULTED)
        @rule(data=st.data())
        def write_off(self, data):
            if (loan_id := self.loan(data, DEFAULTED)) is not None and self.attempt(book.functions.writeOff(loan_id),
                                                                                   four_eyes):
                # A recovery beyond what is still owed, at once (refused): rule choice alone reaches it too seldom.
                owed = book.functions.payoffAmount(loan_id, driver.now).call()
                assert not self.attempt(book.functions.confirmRepayment(loan_id, self.new_ref(), owed + 1, driver.now),
                                        oracle)

        # -- invariants
        @invariant()
        def statuses_move_along_the_lifecycle(self):
            for loan_id, (record, _) in self.views()["loans"].items():
                before, now = self.loans[loan_id], record[2]
                assert now == before or now in LIFECYCLE.get(before, set()), f"loan {loan_id}: {before} -> {now}"
                self.loans[loan_id] = now
                reached.add(now)

        @invariant()
        def repaid_principal_never_exceeds_principal_closes_the_loan_and_exposure_adds_up(self):
            views = self.views()
            exposure: Counter[str] = Counter()
            for loan_id, ((terms, borrower, status, _), progress) in views["loans"].items():
                assert progress[2] <= terms[0]  # principalRepaid <= principal
                # A closed loan repaid all its principal and owes no charges; an open one with all its principal
                # repaid still owes charges (a reversed charges-only payment), or it would have closed.
                if status in (REPAID, OVERPAID):
                    assert progress[2] == terms[0] and progress[6:8] == (0, 0), f"loan {loan_id}: {progress}"
                elif status in (ACTIVE, DEFAULTED) and progress[2] == terms[0]:
                    assert progress[6] + progress[7] > 0, f"loan {loan_id}: {status}, {progress}"
                # progress[8:10]: creditBalance, recovered
                assert (progress[8] > 0) == (status == OVERPAID), f"loan {loan_id}: {status}, {progress}"
                assert progress[9] == 0 or status == WRITTEN_OFF, f"loan {loan_id}: {status}, {progress}"
                if status in EXPOSED:
                    exposure[borrower] += terms[0] - progress[2]
            for address, outstanding in views["exposure"].items():
                assert outstanding == exposure[address], address

        @invariant()
        def no_reference_is_credited_twice_and_every_unit_is_accounted_for(self):
            if w3.eth.block_number < self.start_block:
                return
            refs: Counter[bytes] = Counter()
            totals: dict[int, Counter[str]] = {}

            def add(loan_id: int, **parts: int) -> None:
                totals.setdefault(loan_id, Counter()).update(parts)

            def logs(event):
                return event().get_logs(from_block=self.start_block)

            for log in logs(book.events.LoanDisbursed):
                refs[log.args.paymentRef] += 1
            for log in logs(book.events.RepaymentApplied):
                refs[log.args.paymentRef] += 1
                a = log.args
                assert a.principal + a.interest + a.lateFee + a.penalty == a.amount
                add(a.loanId, scheduled=a.principal + a.interest, lateFee=a.lateFee, penalty=a.penalty)
            for log in logs(book.events.OverpaymentHeld):
                add(log.args.loanId, credit=log.args.credit)  # its reference is its RepaymentApplied's
            for log in logs(book.events.RecoveryApplied):
                refs[log.args.paymentRef] += 1
                add(log.args.loanId, recovered=log.args.amount)
            for log in logs(book.events.CreditRefunded):
                refs[log.args.refundRef] += 1
                add(log.args.loanId, credit=-log.args.amount)
            for log in logs(book.events.RepaymentReversed):
                refs[log.args.reversalRef] += 1
                p = log.args.reversed
                assert sum(p.values()) == log.args.amount
                add(log.args.loanId, scheduled=-(p["principal"] + p["interest"]), lateFee=-p["lateFee"],
                    penalty=-p["penalty"], credit=-p["credit"], recovered=-p["recovery"])
            for log in logs(book.events.DisbursementReversed):
                refs[log.args.reversalRef] += 1
            assert not [ref for ref, n in refs.items() if n > 1]
            for loan_id, (_, progress) in self.views()["loans"].items():
                t = totals.get(loan_id, Counter())
                # progress: principalRepaid + interestPaid, lateFeePaid, penaltyPaid, creditBalance, recovered
                assert (progress[2] + progress[3], progress[4], progress[5], progress[8], progress[9]) == (
                    t["scheduled"], t["lateFee"], t["penalty"], t["credit"], t["recovered"]), f"loan {loan_id}"

    run_state_machine_as_test(LoanBookMachine, settings=settings(
        max_examples=16, stateful_step_count=20, deadline=None, derandomize=True, phases=[Phase.generate],
        suppress_health_check=list(HealthCheck)))

    w3.provider.make_request("anvil_stopImpersonatingAccount", [four_eyes])
    print(f"statuses reached {sorted(reached)}; refusals {dict(refused)}; applied {dict(applied)}")
    # The runs must have gone everywhere the invariants speak about.
    assert {REPAID, OVERPAID, DEFAULTED, WRITTEN_OFF, CANCELLED, REJECTED} <= reached, f"reached only {sorted(reached)}"
    for name in ("reverseRepayment", "reverseDisbursement", "confirmCreditRefund"):
        assert applied[name], dict(applied)
    for name in ("LoanBookOverpayment", "LoanBookDuplicatePayment", "LoanBookUnknownEntry", "LoanBookCreditExceeded"):
        assert refused[name], dict(refused)
