"""ledger/book.py against the contract it mirrors: the status enum, the typed views, due dates from schedule rows."""

from __future__ import annotations

import os
from dataclasses import fields, replace

import pytest
import solcx

from ledger.artifacts import ROOT, SOLC_VERSION, compile_contracts, standard_input
from ledger.book import (
    RUNNING,
    RUNNING_NAMES,
    AmountDue,
    LoanOnChain,
    LoanProgress,
    LoanStatus,
    read_amount_due,
    read_loan,
    read_progress,
    snake_case,
    solidity_name,
)
from ledger.store.models.chain import Loan, ScheduleRow
from ledger.store.projection import update_delinquency
from ledger.typed_data import Amortization, LoanTerms

DAY = 86_400


@pytest.fixture(scope="module")
def loan_book_abi() -> list[dict]:
    return compile_contracts()["LoanBook"]["abi"]


@pytest.fixture(scope="module")
def solidity_enums() -> dict[str, list[str]]:
    """Every enum declared in contracts/, by qualified name ("ILoanBook.LoanStatus"), members in declaration
    order: read from the compiler's AST (the ABI carries enums as uint8 and names them only in internalType)."""
    os.environ.setdefault("SOLCX_BINARY_PATH", str(ROOT / ".venv" / "solcx"))
    output = solcx.compile_standard(standard_input(outputs=(), ast=True), solc_version=SOLC_VERSION,
                                    allow_paths=[str(ROOT)], base_path=str(ROOT))
    enums: dict[str, list[str]] = {}

    def walk(node, scope: str) -> None:
        if isinstance(node, dict):
            if node.get("nodeType") == "EnumDefinition":
                enums[f"{scope}.{node['name']}"] = [m["name"] for m in node["members"]]
            inner = node["name"] if node.get("nodeType") == "ContractDefinition" else scope
            for value in node.values():
                walk(value, inner)
        elif isinstance(node, list):
            for value in node:
                walk(value, scope)

    for path, source in output["sources"].items():
        if path.startswith("contracts/"):
            walk(source["ast"], "")
    return enums


def _function(abi: list[dict], name: str) -> dict:
    return next(f for f in abi if f.get("type") == "function" and f["name"] == name)


def test_loan_status_is_the_contracts_enum_member_for_member(solidity_enums, loan_book_abi):
    status = _function(loan_book_abi, "loanOf")["outputs"][2]
    assert (status["name"], status["type"], status["internalType"]) == ("status", "uint8", "enum ILoanBook.LoanStatus")
    declared = solidity_enums["ILoanBook.LoanStatus"]
    assert [member.solidity_name for member in LoanStatus] == declared
    assert [member.value for member in LoanStatus] == list(range(len(declared)))
    assert [member.solidity_name for member in map(LoanStatus, range(len(declared)))] == declared
    assert [solidity_name(a) for a in Amortization] == solidity_enums["ILoanBook.Amortization"]


def test_the_typed_views_follow_the_abis_output_names(loan_book_abi):
    outputs = _function(loan_book_abi, "loanOf")["outputs"]
    assert [f.name for f in fields(LoanOnChain)] == [snake_case(o["name"]) for o in outputs]
    assert outputs[0]["internalType"] == "struct ILoanBook.LoanTerms"
    assert [f.name for f in fields(LoanTerms)] == [c["name"] for c in outputs[0]["components"]]
    (progress,) = _function(loan_book_abi, "progressOf")["outputs"]
    assert progress["internalType"] == "struct ILoanBook.LoanProgress"
    assert [f.name for f in fields(LoanProgress)] == [snake_case(c["name"]) for c in progress["components"]]
    (due,) = _function(loan_book_abi, "amountDue")["outputs"]
    assert due["internalType"] == "struct ILoanBook.AmountDue"
    assert [f.name for f in fields(AmountDue)] == [snake_case(c["name"]) for c in due["components"]]


def test_running_is_active_and_defaulted():
    assert RUNNING == (LoanStatus.ACTIVE, LoanStatus.DEFAULTED)
    assert RUNNING_NAMES == ("Active", "Defaulted")


def test_read_loan_and_progress_on_a_real_loan(w3, stack, keys, driver, loan_terms):
    loan_id = driver.active_loan(keys["alice"])
    driver.repay(loan_id, 10_000, b"repay-1")
    loan = read_loan(stack.book, loan_id)
    assert loan.status is LoanStatus.ACTIVE and loan.running
    # The terms are the product version's, which says where they came from.
    assert (loan.borrower, loan.terms, loan.currency) == (
        keys["alice"].address, replace(loan_terms, productId=1, productVersion=1), "CNY")
    assert loan.disbursed_at == stack.book.functions.loanOf(loan_id).call()[3] > 0
    progress = read_progress(stack.book, loan_id)
    assert progress.principal_repaid + progress.interest_paid == 10_000 and progress.paid_installments == 0
    assert progress.principal_repaid == stack.book.functions.progressOf(loan_id).call()[2]
    due = read_amount_due(stack.book, loan_id, driver.now + 31 * DAY)  # the first installment, less what was paid
    assert due.total == sum(stack.book.functions.amountDue(loan_id, driver.now + 31 * DAY).call()[:4]) > 0
    assert due.oldest_due_at == stack.book.functions.schedule(loan_id).call()[0][0]
    requested = driver.request(keys["alice"])
    waiting = read_loan(stack.book, requested)
    assert waiting.status is LoanStatus.REQUESTED and not waiting.running


def _loan(status: str, paid: int, due_dates: list[int]) -> Loan:
    return Loan(id=1, status=status, paid_installments=paid, installments=len(due_dates), disbursed_at=1_000,
                interval=30 * DAY, schedule=[ScheduleRow(number=k, due_at=due, principal=1, interest=1)
                                             for k, due in enumerate(due_dates, start=1)])


def test_the_next_due_date_is_the_oldest_unpaid_schedule_row_not_a_formula():
    # Irregular due dates (a monthly calendar, a rescheduled installment): not disbursed_at + k * interval.
    due_dates = [2_000_000, 4_700_000, 9_000_000]
    loan = _loan("Active", 1, due_dates)
    update_delinquency(loan, 4_700_000 + 3 * DAY + 5)
    assert (loan.next_due_at, loan.days_past_due) == (4_700_000, 3)
    loan = _loan("Defaulted", 0, due_dates)
    update_delinquency(loan, 1_000)
    assert (loan.next_due_at, loan.days_past_due) == (2_000_000, 0)
    for finished in (_loan("Active", 3, due_dates), _loan("Repaid", 3, due_dates), _loan("WrittenOff", 1, due_dates)):
        update_delinquency(finished, 10_000_000)
        assert (finished.next_due_at, finished.days_past_due) == (None, 0)
