"""The auditor's response bodies, with the examples /docs shows: events, payments, borrowers as the chain knows
them (pseudonymous), a loan with its whole history, and verification results.

Each body reads its read-model row by field name (`from_attributes`): `EventOut.model_validate(row)`.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import (
    EXAMPLE_BORROWER,
    EXAMPLE_LOAN,
    EXAMPLE_LOAN_BOOK,
    EXAMPLE_TX,
    LoanOut,
)
from ledger import book

# Loan 1 of the schemas' examples: paid out in block 118, its first installment repaid on time in block 140.
_REPAYMENT_TX = "0x74fbbb3eb7c5f1739180ad00882878b8e5dcb3fde4fd0cf8d0c601f090714d65"
_ORACLE = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
_EXAMPLE_EVENT = {
    "id": 9, "contract": "LoanBook", "address": EXAMPLE_LOAN_BOOK, "name": "RepaymentApplied",
    "args": {"loanId": 1, "paymentRef": "0xc7b0a2673ad673a431c557e43e2ec61731d82a300024eb1da1fed1a7fbba7c9b",
             "amount": 41_588, "principal": 39_221, "interest": 2_367, "lateFee": 0, "penalty": 0,
             "paidAt": 1_769_817_600, "paidInstallments": 1, "actor": _ORACLE},
    "block_number": 140, "block_hash": "0x5e5d6a4656578ad54442961513502097eba8c9bc0e30f8b9205bf20c090fc240",
    "block_time": 1_769_817_612, "tx_hash": _REPAYMENT_TX, "log_index": 1, "loan_id": 1, "borrower": EXAMPLE_BORROWER}
_EXAMPLE_PAYMENTS = [  # payment_ref = keccak256("<provider>:<rail_reference>")
    {"payment_ref": "0x9ab55d85b6154fd742cc3a87800671df2d54090e664635a7ed18e41e0b309ca9", "provider": "mockpay",
     "rail_reference": "PAY-00000001-3f9a2c", "kind": "disbursement",
     "loan_id": 1, "amount": 120_000, "principal": 0, "interest": 0, "late_fee": 0, "penalty": 0,
     "paid_at": 1_767_225_600, "tx_hash": EXAMPLE_TX, "block_number": 118, "log_index": 0},
    {"payment_ref": _EXAMPLE_EVENT["args"]["paymentRef"], "provider": "mockpay",
     "rail_reference": "COL-00000002-9b04e1", "kind": "repayment", "loan_id": 1, "amount": 41_588,
     "principal": 39_221, "interest": 2_367, "late_fee": 0, "penalty": 0, "paid_at": 1_769_817_600,
     "tx_hash": _REPAYMENT_TX, "block_number": 140, "log_index": 1}]
_EXAMPLE_SCORE = {"score": 700, "credit_limit": 1_000_000, "model_version": 1, "report_id": 1,
                  "block_time": 1_767_139_200, "block_number": 12,
                  "tx_hash": "0x47bb006c91539ecb9ba52283ff2cf92af350004d720305f9f6a019b073a950b7", "log_index": 0}


class EventOut(BaseModel):
    id: int
    contract: str
    address: str
    name: str
    args: dict[str, Any] = Field(description="decoded arguments: integers as integers, bytes as 0x-hex")
    block_number: int
    block_hash: str
    block_time: int
    tx_hash: str
    log_index: int
    loan_id: int | None
    borrower: str | None

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [_EXAMPLE_EVENT]})


class EventPage(BaseModel):
    events: list[EventOut]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page; null on the last")

    model_config = {"json_schema_extra": {"examples": [{"events": [_EXAMPLE_EVENT], "next_cursor": "WzE0MCwxXQ"}]}}


class PaymentOut(BaseModel):
    payment_ref: str = Field(description="the on-chain payment reference (bytes32, `paymentRef` in the events), "
                                         "credited once ever: keccak256 of \"<provider>:<rail_reference>\"")
    provider: str | None = Field(description="the payment provider that moved the money; null when the payment "
                                             "was not confirmed through this oracle")
    rail_reference: str | None = Field(description="the provider's own reference, as its statement shows it "
                                                   "(for reconciliation); null when the provider is")
    kind: str = Field(description=" | ".join(book.PaymentKind))
    credit: int = Field(0, description="repayment: the part beyond the payoff, held as the borrower's credit")
    recovery: int = Field(0, description="recovery: the amount recovered on a written-off loan")
    reverses: str | None = Field(None, description="reversal, payout_reversal: the payment_ref it undoes")
    loan_id: int
    amount: int
    principal: int
    interest: int
    late_fee: int
    penalty: int
    paid_at: int
    tx_hash: str
    block_number: int
    log_index: int

    model_config = {"from_attributes": True, "json_schema_extra": {"examples": [_EXAMPLE_PAYMENTS[1]]}}


class PaymentPage(BaseModel):
    payments: list[PaymentOut]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page; null on the last")

    model_config = {"json_schema_extra": {"examples": [{"payments": _EXAMPLE_PAYMENTS, "next_cursor": None}]}}


class AuditLoanOut(LoanOut):
    events: list[EventOut] = Field(description="every event of the loan, in chain order")
    payments: list[PaymentOut] = Field(description="its disbursement and repayments, in chain order")

    # Shortened: the real answer lists every event (LoanRequested, LoanApproved, LoanDisbursed, ...).
    model_config = {"json_schema_extra": {"examples": [{
        **EXAMPLE_LOAN, "events": [_EXAMPLE_EVENT], "payments": _EXAMPLE_PAYMENTS}]}}


class ScoreOut(BaseModel):
    score: int
    credit_limit: int = Field(description="minor units")
    model_version: int
    report_id: int
    block_time: int
    block_number: int
    tx_hash: str
    log_index: int

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [_EXAMPLE_SCORE]})


class BorrowerOut(BaseModel):
    """A borrower as the chain knows them: pseudonymous (no name, ID, phone or card)."""

    # Read from a read-model Borrower overlaid with what the row lacks (api.audit_queries.borrower_bodies):
    # the revocation reason as text, the score history and the loan ids.

    address: str
    registered: bool
    identity_commitment: str | None = Field(description="salted hash of the KYC record")
    kyc_expires_at: int | None
    registered_at: int | None
    revoked: bool
    revoked_reason: str | None
    score: int | None
    credit_limit: int | None
    model_version: int | None
    score_updated_at: int | None
    score_age: int | None = Field(None, description="seconds from the latest score to the newest indexed block; "
                                  "past the credit oracle's maxScoreAge the loan book approves nothing on it")
    score_history: list[ScoreOut]
    loan_ids: list[int]

    model_config = {"from_attributes": True, "json_schema_extra": {"examples": [{
        "address": EXAMPLE_BORROWER, "registered": True,
        "identity_commitment": "0x38f78745b82e6b53762316d8a03d9d7dce0e3dcbb2ee692f46bbb5364734dce2",
        "kyc_expires_at": 1_798_675_200, "registered_at": 1_767_139_200, "revoked": False, "revoked_reason": None,
        "score": 700, "credit_limit": 1_000_000, "model_version": 1, "score_updated_at": 1_767_139_200,
        "score_age": 86_400, "score_history": [_EXAMPLE_SCORE], "loan_ids": [1]}]}}


class BorrowerPage(BaseModel):
    borrowers: list[BorrowerOut]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page; null on the last")

    model_config = {"json_schema_extra": {"examples": [{
        "borrowers": BorrowerOut.model_config["json_schema_extra"]["examples"],
        "next_cursor": "WyIweDk5NjU1MDdEMWE1NWJjQzI2OTVDNThiYTE2RkIzN2Q4MTlCMEE0ZGMiXQ"}]}}


class VerificationOut(BaseModel):
    check: str
    ok: bool
    checked: int = Field(description="how many items were compared")
    details: list[str] = Field(description="one line per discrepancy (or, when ok, what matched)")
    commitment: str | None = Field(None, description="identity: the commitment the vault's record opens to")
    first_bad_seq: int | None = Field(None, description="log: the lowest entry the log can no longer vouch for")
    anchors: int | None = Field(None, description="log: on-chain anchors compared")

    model_config = {"json_schema_extra": {"examples": [
        {"check": "index", "ok": True, "checked": 120, "details": []},
        {"check": "state", "ok": False, "checked": 3,
         "details": ["loan 2 (from events) progress: {...} != node {...}"]},
        {"check": "identity", "ok": True, "checked": 1,
         "details": [f"{EXAMPLE_BORROWER}: commitment matches the registry (KYC expires at 1798675200)"],
         "commitment": "0x38f78745b82e6b53762316d8a03d9d7dce0e3dcbb2ee692f46bbb5364734dce2"}]}}


class Check(str, Enum):
    index = "index"
    state = "state"
    identity = "identity"
    log = "log"


PaymentKind = book.PaymentKind  # the query parameter takes the read model's own names


_RECONCILIATION_ROW = {
    "category": "rail_only", "provider": "mockpay", "reference": "COL-00000007-a41b9e",
    "payment_ref": "0x8f2c1d7a0b3e45f69a1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6", "direction": "collection",
    "kind": None, "loan_id": 1, "rail_amount": 24_394, "ledger_amount": None, "currency": "CNY",
    "paid_at": 1_767_225_600, "outbox_status": "rejected", "outbox_reason": "LoanBookOverpayment",
    "suspense_item_id": 1, "suspense_state": "open"}
_RECONCILIATION_REPORT = {"provider": "mockpay", "date": "2026-11-29", "statement_lines": 2, "unmatched": 1,
                          "balanced": False,
                          "counts": {"matched": 1, "amount_differs": 0, "rail_only": 1, "chain_only": 0},
                          "rows": [_RECONCILIATION_ROW]}


class ReconciliationRowOut(BaseModel):
    """One statement line, or one on-chain payment no line explains (oracle.payments.reconcile)."""

    category: str = Field(description="matched | amount_differs | rail_only (on the rail, not on-chain) | "
                                      "chain_only (on-chain, not on the rail)")
    provider: str | None = None
    reference: str | None = Field(None, description="the rail's reference; null for a chain-only payment no "
                                                    "outbox row explains")
    payment_ref: str = Field(description="keccak256(\"<provider>:<reference>\"), as on-chain")
    direction: str | None = Field(None, description="the rail's: payout | collection | refund")
    kind: str | None = Field(None, description="the ledger's: disbursement | repayment")
    loan_id: int | None = None
    rail_amount: int | None = Field(None, description="minor units, as the statement says")
    ledger_amount: int | None = Field(None, description="minor units, as confirmed on-chain")
    currency: str | None = None
    paid_at: int | None = Field(None, description="unix seconds")
    outbox_status: str | None = Field(None, description="rail-only lines the oracle received: why they are not "
                                                        "on-chain (rejected, set_aside, pending...)")
    outbox_reason: str | None = None
    suspense_item_id: int | None = Field(None, description="the payment held in suspense, if it is or was")
    suspense_state: str | None = None

    model_config = {"from_attributes": True, "json_schema_extra": {"examples": [_RECONCILIATION_ROW]}}


class ReconciliationReportOut(BaseModel):
    provider: str
    date: str = Field(description="the UTC day of the statement, YYYY-MM-DD")
    counts: dict[str, int] = Field(description="rows per category")
    statement_lines: int = Field(description="lines of the provider's statement (= matched + amount_differs + "
                                             "rail_only)")
    unmatched: int
    balanced: bool = Field(description="every line matched and no chain-only payment")
    rows: list[ReconciliationRowOut]

    model_config = {"json_schema_extra": {"examples": [_RECONCILIATION_REPORT]}}


class ReconciliationOut(BaseModel):
    date: str = Field(description="the UTC day reconciled, YYYY-MM-DD")
    reports: list[ReconciliationReportOut] = Field(description="one per provider that publishes statements")
    skipped: dict[str, str] = Field(description="providers whose adapter reads no statements, and why")

    model_config = {"json_schema_extra": {"examples": [{"date": "2026-11-29", "skipped": {},
                                                        "reports": [_RECONCILIATION_REPORT]}]}}
