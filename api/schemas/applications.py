"""The application a borrower is about to sign (issue 18): the EIP-712 LoanApplication typed data, ready for
`eth_signTypedData_v4`, and what it commits them to in numbers (the product quote's, so the loan book's)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas import EXAMPLE_BORROWER, EXAMPLE_LOAN_BOOK, UINT96

_MESSAGE = {"borrower": EXAMPLE_BORROWER, "productId": 1, "productVersion": 1, "principal": 120_000,
            "installments": 3, "nonce": 0, "deadline": 1_767_228_600}
_TYPED = {
    "types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                               {"name": "chainId", "type": "uint256"},
                               {"name": "verifyingContract", "type": "address"}],
              "LoanApplication": [{"name": "borrower", "type": "address"}, {"name": "productId", "type": "uint256"},
                                  {"name": "productVersion", "type": "uint32"},
                                  {"name": "principal", "type": "uint96"}, {"name": "installments", "type": "uint16"},
                                  {"name": "nonce", "type": "uint256"}, {"name": "deadline", "type": "uint256"}]},
    "primaryType": "LoanApplication",
    "domain": {"name": "LoanLedger LoanBook", "version": "1", "chainId": 31337,
               "verifyingContract": EXAMPLE_LOAN_BOOK},
    "message": _MESSAGE,
}
# Product 1 version 1 (24% a year, no fee, three annuity installments 30 days apart): api.schemas' example loan.
_SUMMARY = {"currency": "CNY", "principal": 120_000, "installments": 3, "frequency": "FixedInterval",
            "interval": 2_592_000, "first_installment": 41_588, "smallest_installment": 41_588,
            "largest_installment": 41_589, "total_interest": 4_765, "service_fee": 0, "total_cost": 4_765,
            "net_paid_out": 120_000, "total_repaid": 124_765,
            "text": "Borrow CNY 1200.00 in 3 installments (every 30 days) of CNY 415.88 to CNY 415.89; "
                    "total cost CNY 47.65 (interest CNY 47.65, service fee CNY 0.00); paid out CNY 1200.00"}


class ApplicationDraftIn(BaseModel):
    """What the borrower means to apply for: the product version quoted, the principal and the installments."""

    product_id: int = Field(ge=1, le=2**32 - 1, description="the product (GET /v1/products)")
    product_version: int = Field(ge=1, le=2**32 - 1, description="the version quoted: the latest (an older one is "
                                                                  "refused product_catalog_version_changed)")
    principal: int = Field(gt=0, le=UINT96, description="minor units, within the product's range")
    installments: int = Field(ge=1, le=2**16 - 1, description="within the product's allowed numbers")

    model_config = {"json_schema_extra": {"examples": [
        {"product_id": 1, "product_version": 1, "principal": 120_000, "installments": 3}]}}


class ApplicationSummary(BaseModel):
    """The application in numbers, every one from the product's quote (the loan book's schedule): what a borrower
    reads before signing."""

    currency: str
    principal: int = Field(description="minor units")
    installments: int
    frequency: str = Field(description="FixedInterval (every `interval` seconds) or Monthly")
    interval: int = Field(description="seconds between installments (FixedInterval; 0 for Monthly)")
    first_installment: int = Field(description="the first installment's principal and interest")
    smallest_installment: int = Field(description="the smallest installment of the schedule")
    largest_installment: int = Field(description="the largest (equal to the smallest when every one is the same)")
    total_interest: int
    service_fee: int = Field(description="charged up front, deducted from the payout")
    total_cost: int = Field(description="interest plus the service fee")
    net_paid_out: int = Field(description="what the borrower receives")
    total_repaid: int = Field(description="every installment: principal plus interest")
    text: str = Field(description="the same in plain English (the app says it in the borrower's language)")

    model_config = {"json_schema_extra": {"examples": [_SUMMARY]}}


class ApplicationDraftOut(BaseModel):
    """The LoanApplication to sign with the borrower's nonce and a deadline, as eth_signTypedData_v4 takes it; sign
    it and send it to POST /v1/loans with the same product, version, principal, installments and this deadline."""

    typed_data: dict = Field(description="{domain, types (with EIP712Domain), primaryType, message} "
                                         "(ledger/typed_data.py's loan_application)")
    deadline: int = Field(description="unix seconds (chain time) the signature is good until: send it as signed")
    nonce: int = Field(description="the borrower's next nonce on the loan book")
    summary: ApplicationSummary

    model_config = {"json_schema_extra": {"examples": [
        {"typed_data": _TYPED, "deadline": 1_767_228_600, "nonce": 0, "summary": _SUMMARY}]}}


_CANCEL_TYPED = {
    "types": {"EIP712Domain": _TYPED["types"]["EIP712Domain"],
              "CancelLoan": [{"name": "loanId", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                             {"name": "deadline", "type": "uint256"}]},
    "primaryType": "CancelLoan", "domain": _TYPED["domain"],
    "message": {"loanId": 1, "nonce": 1, "deadline": 1_767_228_600},
}
_CANCEL_SUMMARY = {"loan_id": 1, "status": "Approved", "principal": 120_000, "currency": "CNY",
                   "text": "Cancel the application for loan 1 (¥1,200.00, Approved): nothing is paid out and "
                           "nothing is owed"}


class CancelSummary(BaseModel):
    """The application being cancelled, as the borrower reads it before signing."""

    loan_id: int
    status: str = Field(description="Requested or Approved: only a loan not yet paid out is cancelled")
    principal: int = Field(description="minor units")
    currency: str
    text: str = Field(description="the same in plain English (the app says it in the borrower's language)")

    model_config = {"json_schema_extra": {"examples": [_CANCEL_SUMMARY]}}


class CancelDraftOut(BaseModel):
    """The CancelLoan to sign with the borrower's nonce and a deadline, as eth_signTypedData_v4 takes it; sign it and
    send it to POST /v1/loans/{loan_id}/cancel with this deadline."""

    typed_data: dict = Field(description="{domain, types (with EIP712Domain), primaryType, message} "
                                         "(ledger/typed_data.py's cancel_loan)")
    deadline: int = Field(description="unix seconds (chain time) the signature is good until: send it as signed")
    nonce: int = Field(description="the borrower's next nonce on the loan book")
    summary: CancelSummary

    model_config = {"json_schema_extra": {"examples": [
        {"typed_data": _CANCEL_TYPED, "deadline": 1_767_228_600, "nonce": 1, "summary": _CANCEL_SUMMARY}]}}
