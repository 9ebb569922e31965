"""EIP-712 messages the contracts verify: one definition, used by the API, the SDK, the oracle and the tests.

The type strings mirror the typehashes in contracts/LoanBook.sol and contracts/CreditOracle.sol;
tests sign with these and the contracts accept them, which is what keeps the two in step.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from enum import IntEnum

from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data

LOAN_BOOK_DOMAIN = ("LoanLedger LoanBook", "1")
CREDIT_ORACLE_DOMAIN = ("LoanLedger CreditOracle", "1")

_DOMAIN_TYPE = [
    {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"},
]


class Amortization(IntEnum):
    ANNUITY = 0
    EQUAL_PRINCIPAL = 1
    BULLET = 2


class Frequency(IntEnum):
    FIXED_INTERVAL = 0
    MONTHLY = 1


class DayCount(IntEnum):
    THIRTY_360 = 0
    ACTUAL_365_FIXED = 1


class EarlyRepayment(IntEnum):
    REDUCE_INSTALLMENTS = 0
    REDUCE_INSTALLMENT_AMOUNT = 1


@dataclass(frozen=True)
class LoanTerms:
    """The contract's LoanTerms struct, field for field and in order: a loan's terms as copied from its product
    version at application (the last six fields say which version, and what it charges and does besides)."""

    principal: int
    currency: bytes
    annualRateBps: int
    amortization: int
    installments: int
    interval: int
    gracePeriod: int
    lateFeeBps: int
    penaltyRateBps: int
    defaultAfter: int
    serviceFee: int = 0
    productId: int = 0
    productVersion: int = 0
    frequency: int = Frequency.FIXED_INTERVAL
    dayCount: int = DayCount.ACTUAL_365_FIXED
    earlyRepayment: int = EarlyRepayment.REDUCE_INSTALLMENTS

    def as_tuple(self) -> tuple:
        """The ABI tuple web3 expects for a `LoanTerms` argument."""
        return astuple(self)


LOAN_APPLICATION_TYPE = [
    {"name": "borrower", "type": "address"}, {"name": "productId", "type": "uint256"},
    {"name": "productVersion", "type": "uint32"}, {"name": "principal", "type": "uint96"},
    {"name": "installments", "type": "uint16"}, {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]


def _domain(name_version: tuple[str, str], chain_id: int, contract: str) -> dict:
    return {"name": name_version[0], "version": name_version[1], "chainId": chain_id, "verifyingContract": contract}


def _typed(domain: dict, primary: str, fields: list[dict], message: dict, **nested: list[dict]) -> dict:
    """A full EIP-712 message (what eth_signTypedData_v4 and eth-account's `full_message` take): the domain, the
    primary type's fields and any nested struct types, the message."""
    return {"types": {"EIP712Domain": _DOMAIN_TYPE, primary: fields, **nested}, "primaryType": primary,
            "domain": domain, "message": message}


def loan_application(*, chain_id: int, book: str, borrower: str, product_id: int, product_version: int,
                     principal: int, installments: int, nonce: int, deadline: int) -> dict:
    """The full EIP-712 message a borrower signs to apply for a loan: this product version, principal and
    number of installments (the loan book derives the terms from the version they consented to)."""
    return _typed(_domain(LOAN_BOOK_DOMAIN, chain_id, book), "LoanApplication", LOAN_APPLICATION_TYPE, {
        "borrower": borrower, "productId": product_id, "productVersion": product_version, "principal": principal,
        "installments": installments, "nonce": nonce, "deadline": deadline})


def cancel_loan(*, chain_id: int, book: str, loan_id: int, nonce: int, deadline: int) -> dict:
    """The full EIP-712 message a borrower signs to cancel a loan before disbursement."""
    return _typed(_domain(LOAN_BOOK_DOMAIN, chain_id, book), "CancelLoan", [
        {"name": "loanId", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"}], {"loanId": loan_id, "nonce": nonce, "deadline": deadline})


def reschedule_acceptance(*, chain_id: int, book: str, loan_id: int, offer_id: int, installments: int,
                          expires_at: int, nonce: int, deadline: int) -> dict:
    """The full EIP-712 message a borrower signs to accept a hardship reschedule offer: the offer's number on the
    loan, its installments and expiry (the book checks them against the offer it holds), nonce and deadline."""
    return _typed(_domain(LOAN_BOOK_DOMAIN, chain_id, book), "RescheduleAcceptance", [
        {"name": "loanId", "type": "uint256"}, {"name": "offerId", "type": "uint32"},
        {"name": "installments", "type": "uint16"}, {"name": "expiresAt", "type": "uint40"},
        {"name": "nonce", "type": "uint256"}, {"name": "deadline", "type": "uint256"}], {
        "loanId": loan_id, "offerId": offer_id, "installments": installments, "expiresAt": expires_at,
        "nonce": nonce, "deadline": deadline})


DEBIT_MANDATE_DOMAIN = ("LoanLedger DebitMandate", "1")  # off-chain: the API checks it, the rail is authorised by it


def debit_mandate(*, chain_id: int, book: str, borrower: str, loan_id: int, card: str, max_amount: int,
                  valid_until: int, nonce: int) -> dict:
    """The full EIP-712 message a borrower signs to let the rail debit `card` (masked: "**** 1234", never the full
    number) for loan `loan_id` on its due dates, at most `max_amount` per debit, until `valid_until`. No contract
    verifies it (the debit is an order to the rail); the domain names the loan book so it holds for one deployment."""
    return _typed(_domain(DEBIT_MANDATE_DOMAIN, chain_id, book), "DebitMandate", [
        {"name": "borrower", "type": "address"}, {"name": "loanId", "type": "uint256"},
        {"name": "card", "type": "string"}, {"name": "maxAmount", "type": "uint96"},
        {"name": "validUntil", "type": "uint40"}, {"name": "nonce", "type": "uint256"}], {
        "borrower": borrower, "loanId": loan_id, "card": card, "maxAmount": max_amount, "validUntil": valid_until,
        "nonce": nonce})


def revoke_debit_mandate(*, chain_id: int, book: str, borrower: str, loan_id: int, nonce: int) -> dict:
    """The full EIP-712 message a borrower signs to revoke the debit mandate with `nonce` on loan `loan_id`."""
    return _typed(_domain(DEBIT_MANDATE_DOMAIN, chain_id, book), "RevokeDebitMandate", [
        {"name": "borrower", "type": "address"}, {"name": "loanId", "type": "uint256"},
        {"name": "nonce", "type": "uint256"}], {"borrower": borrower, "loanId": loan_id, "nonce": nonce})


def score_report(*, chain_id: int, oracle: str, report_id: int, model_version: int,
                 updates: list[tuple[str, int, int]]) -> dict:
    """The full EIP-712 message each score signer signs over a batch of (borrower, score, creditLimit)."""
    return _typed(_domain(CREDIT_ORACLE_DOMAIN, chain_id, oracle), "ScoreReport", [
        {"name": "reportId", "type": "uint64"}, {"name": "modelVersion", "type": "uint32"},
        {"name": "updates", "type": "ScoreUpdate[]"}], {
        "reportId": report_id, "modelVersion": model_version,
        "updates": [{"borrower": b, "score": s, "creditLimit": c} for b, s, c in updates]},
        ScoreUpdate=[{"name": "borrower", "type": "address"}, {"name": "score", "type": "uint16"},
                     {"name": "creditLimit", "type": "uint96"}])


def sign(private_key, message: dict) -> bytes:
    """65-byte signature (r, s, v) over a full EIP-712 message."""
    return Account.sign_typed_data(private_key, full_message=message).signature


def digest(message: dict) -> bytes:
    """The 32-byte EIP-712 hash a signature over `message` signs (what a contract's `_hashTypedDataV4` gives)."""
    return _hash_eip191_message(encode_typed_data(full_message=message))


def recover(message: dict, signature: bytes) -> str:
    """The address that signed `message`, for checking a client's signature before relaying it."""
    return Account.recover_message(encode_typed_data(full_message=message), signature=signature)
