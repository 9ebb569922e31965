"""The loan book's vocabulary, mirrored once from contracts/interfaces/ILoanBook.sol.

The states of a loan, which of them still owe principal, which events change a loan's schedule,
and typed views of `loanOf` / `progressOf` / `amountDue` built by the ABI's output names
(tests/ledger/test_book.py checks all of it against the compiled contract). Everything else names states through here: no
status numbers, no spelled-out lists of status names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import BlockIdentifier

from ledger.typed_data import LoanTerms

DAY = 86_400  # seconds: the contracts' `1 days`, in which terms and delinquency are counted


class LoanStatus(IntEnum):
    """ILoanBook.LoanStatus, in declaration order (tests check it against the contract's source)."""

    NONE = 0
    REQUESTED = 1
    APPROVED = 2
    REJECTED = 3
    CANCELLED = 4
    ACTIVE = 5
    REPAID = 6
    DEFAULTED = 7
    WRITTEN_OFF = 8
    OVERPAID = 9  # closed with the borrower's credit held until it is refunded

    @property
    def solidity_name(self) -> str:
        return solidity_name(self)


class PaymentKind(StrEnum):
    """The money movements the book records, as the read model's `payments.kind` names them (one event each)."""

    DISBURSEMENT = "disbursement"  # LoanDisbursed: the payout
    REPAYMENT = "repayment"  # RepaymentApplied (+ OverpaymentHeld: the part held as credit)
    RECOVERY = "recovery"  # RecoveryApplied: paid on a written-off loan
    CREDIT_REFUND = "credit_refund"  # CreditRefunded: credit paid back to the borrower
    REVERSAL = "reversal"  # RepaymentReversed: a repayment the rail took back
    PAYOUT_REVERSAL = "payout_reversal"  # DisbursementReversed: a payout that bounced


def solidity_name(member: IntEnum) -> str:
    """`WRITTEN_OFF` -> `WrittenOff`: how the read model and the API name enum members."""
    return "".join(part.capitalize() for part in member.name.split("_"))


# The statuses whose principal is still owed: the loan accrues, takes repayments and can be late.
RUNNING: tuple[LoanStatus, ...] = (LoanStatus.ACTIVE, LoanStatus.DEFAULTED)
# The same, as the read model and the API spell them ("Active", "Defaulted").
RUNNING_NAMES: tuple[str, ...] = tuple(status.solidity_name for status in RUNNING)

# LoanBook events after which `schedule(loanId)` can return something else: the request fixes the
# relative schedule, the disbursement makes it absolute, a bounced payout relative again; a prepayment
# re-bases it (the installments left, recomputed), so does a hardship reschedule, and a reversal of a repayment puts the loan back on its
# original schedule.
SCHEDULE_EVENTS: frozenset[str] = frozenset({"LoanRequested", "LoanDisbursed", "DisbursementReversed",
                                             "ScheduleRebased", "RepaymentReversed", "RescheduleAccepted"})


def snake_case(name: str) -> str:
    """An ABI name as a Python field name: `disbursedAt` -> `disbursed_at`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True)
class LoanOnChain:
    """`ILoanBook.loanOf(loanId)`: the terms, the borrower, the status and the disbursement time."""

    terms: LoanTerms
    borrower: str
    status: LoanStatus
    disbursed_at: int  # 0 until disbursed

    @property
    def running(self) -> bool:
        return self.status in RUNNING

    @property
    def currency(self) -> str:
        """The terms' bytes3 ISO 4217 code as text ('CNY')."""
        return self.terms.currency.rstrip(b"\0").decode("ascii", errors="replace")


@dataclass(frozen=True)
class LoanProgress:
    """`ILoanBook.progressOf(loanId)`: a loan's running totals, field for field as the struct."""

    paid_installments: int
    accrued_at: int
    principal_repaid: int
    interest_paid: int
    late_fee_paid: int
    penalty_paid: int
    late_fee_unpaid: int
    penalty_unpaid: int
    credit_balance: int  # Overpaid: held for the borrower until refunded
    recovered: int  # WrittenOff: recoveries received since


@dataclass(frozen=True)
class AmountDue:
    """`ILoanBook.amountDue(loanId, asOf)`: what is owed at a time, split as it would be allocated."""

    principal: int
    interest: int
    late_fee: int
    penalty: int
    oldest_due_at: int  # 0 when no installment is unpaid

    @property
    def total(self) -> int:
        return self.principal + self.interest + self.late_fee + self.penalty


def _by_name(values: Sequence[Any], params: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A call result keyed by the ABI's (snake-cased) names; a count mismatch means a stale ABI."""
    return {snake_case(p["name"]): v for p, v in zip(params, values, strict=True)}


def _outputs(book: Contract, function: str) -> list[dict[str, Any]]:
    return book.get_function_by_name(function).abi["outputs"]


def loan_on_chain(book: Contract, result: Sequence[Any]) -> LoanOnChain:
    """`book.functions.loanOf(id).call()`'s tuple as a LoanOnChain, matched by the ABI's output names."""
    values = _by_name(result, _outputs(book, "loanOf"))
    return LoanOnChain(terms=LoanTerms(*values["terms"]), borrower=values["borrower"],
                       status=LoanStatus(values["status"]), disbursed_at=values["disbursed_at"])


def loan_progress(book: Contract, result: Sequence[Any]) -> LoanProgress:
    """`book.functions.progressOf(id).call()`'s struct as a LoanProgress, matched by the ABI's component names."""
    return LoanProgress(**_by_name(result, _outputs(book, "progressOf")[0]["components"]))


def amount_due(book: Contract, result: Sequence[Any]) -> AmountDue:
    """`book.functions.amountDue(id, asOf).call()`'s struct as an AmountDue, matched by the ABI's component names."""
    return AmountDue(**_by_name(result, _outputs(book, "amountDue")[0]["components"]))


Caller = Callable[[ContractFunction], Any]


def _plain_call(block: BlockIdentifier) -> Caller:
    return lambda function: function.call(block_identifier=block)


def read_loan(book: Contract, loan_id: int, *, block: BlockIdentifier = "latest",
              call: Caller | None = None) -> LoanOnChain:
    """The loan as the book holds it. `call` runs the view (e.g. `ChainClient.call`, which names reverts);
    an unknown id reverts with LoanBookUnknownLoan."""
    return loan_on_chain(book, (call or _plain_call(block))(book.functions.loanOf(loan_id)))


def read_progress(book: Contract, loan_id: int, *, block: BlockIdentifier = "latest",
                  call: Caller | None = None) -> LoanProgress:
    """The loan's running totals as the book holds them."""
    return loan_progress(book, (call or _plain_call(block))(book.functions.progressOf(loan_id)))


def read_amount_due(book: Contract, loan_id: int, as_of: int, *, block: BlockIdentifier = "latest",
                    call: Caller | None = None) -> AmountDue:
    """What the loan owes at `as_of` (unix time, not before its last accrual)."""
    return amount_due(book, (call or _plain_call(block))(book.functions.amountDue(loan_id, as_of)))
