"""A borrower's loan application: relay the borrower's signed application for a product version (the automatic
policy's own process, or an operator, decides it after), or their signed cancellation. The API never signs for a
borrower: it checks the EIP-712 signature first, so a bad one costs no gas, and the loan book checks it again.

The relayed transaction's hash is handed to the caller before it is sent (`record_tx`), and `reconcile`
answers from it after a crash: the loan it made, or nothing if it was never mined. A signed request is
good for one loan, ever: the loan book spends its nonce, and one relayed before is answered 409 with the
loan it made rather than refused as a bad signature.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from web3.exceptions import TransactionNotFound
from web3.logs import DISCARD

from api.errors import ApiError
from api.idempotency import IN_FLIGHT
from api.schemas.applications import ApplicationDraftOut, ApplicationSummary, CancelDraftOut, CancelSummary
from api.services import products
from api.services.decision_requests import money
from api.services.transactions import Sent, record
from ledger import typed_data
from ledger.book import LoanStatus, read_loan
from ledger.encoding import to_0x_hex
from ledger.store.models.chain import Loan

log = logging.getLogger(__name__)

REPLAY_LOOKBACK = 32  # earlier nonces a replayed signature is checked against
DRAFT_VALIDITY = 3600  # seconds a draft's signature stays good (as /v1/loans/request-params suggests)
CANCELLABLE = (LoanStatus.REQUESTED, LoanStatus.APPROVED)  # LoanBook._cancel: before the payout only


@dataclass(frozen=True)
class Signed:
    """What the borrower signs (with their nonce and a deadline): a product version, a principal and a number of
    installments. The loan book takes every other term from that version."""

    product_id: int
    product_version: int
    principal: int
    installments: int

    def as_tuple(self) -> tuple:
        """The ABI tuple of ILoanBook.Application."""
        return self.product_id, self.product_version, self.principal, self.installments

    def message(self, context, borrower: str, nonce: int, deadline: int) -> dict:
        return typed_data.loan_application(
            chain_id=context.w3.eth.chain_id, book=context.bindings.book.address, borrower=borrower,
            product_id=self.product_id, product_version=self.product_version, principal=self.principal,
            installments=self.installments, nonce=nonce, deadline=deadline)


@dataclass(frozen=True)
class Application:
    loan_id: int
    tx_hash: str  # the relayed LoanRequested transaction
    decision: str | None  # None: Requested (the policy or an operator decides it); a reconciled one: what it became
    block_number: int  # the block of the request

    @property
    def status(self) -> str:
        """The loan's status as answered (Requested, unless a reconciled application was decided since)."""
        if self.decision == "approved":
            return "Approved"
        return "Rejected" if (self.decision or "").startswith("rejected") else "Requested"


def draft(context, borrower: str, signed: Signed) -> ApplicationDraftOut:
    """The LoanApplication `borrower` would sign for `signed` (their nonce, a deadline an hour of chain time away),
    as eth_signTypedData_v4 takes it, with what it commits them to: the quote's numbers (the loan book's schedule).
    The catalogue's refusals come first, named, as the application's would (a changed version, out of range...):
    nothing is offered for signing that the book would refuse for its terms."""
    quote = products.quote(context, signed.product_id, signed.principal, signed.installments, signed.product_version)
    nonce = context.bindings.book.functions.nonces(borrower).call()
    deadline = context.chain_time() + DRAFT_VALIDITY
    amounts = [row.principal + row.interest for row in quote.schedule]
    currency = quote.currency
    days, seconds = divmod(quote.interval, 86_400)
    every = "monthly" if quote.frequency == "Monthly" else \
        f"every {days} days" if not seconds else f"every {quote.interval} seconds"
    each = money(min(amounts), currency) if min(amounts) == max(amounts) else \
        f"{money(min(amounts), currency)} to {money(max(amounts), currency)}"
    text = (f"Borrow {money(quote.principal, currency)} in {quote.installments} installments ({every}) of {each}; "
            f"total cost {money(quote.total_cost, currency)} (interest {money(quote.total_interest, currency)}, "
            f"service fee {money(quote.service_fee, currency)}); paid out {money(quote.net_paid_out, currency)}")
    summary = ApplicationSummary(
        currency=currency, principal=quote.principal, installments=quote.installments, frequency=quote.frequency,
        interval=quote.interval, first_installment=amounts[0], smallest_installment=min(amounts),
        largest_installment=max(amounts), total_interest=quote.total_interest, service_fee=quote.service_fee,
        total_cost=quote.total_cost, net_paid_out=quote.net_paid_out, total_repaid=quote.total_repaid, text=text)
    return ApplicationDraftOut(typed_data=signed.message(context, borrower, nonce, deadline), deadline=deadline,
                               nonce=nonce, summary=summary)


def apply(context, borrower: str, signed: Signed, deadline: int, signature: bytes, request_id: str,
          record_tx: Callable[[str], None] | None = None) -> Application:
    """Relays `borrower`'s signed application; 422 `invalid_signature` if they did not sign it, 409
    `loan_request_replayed` if they did but it was relayed before. The catalogue's refusals (an unknown, retired or
    changed product version, a principal or count out of range, a cost above the cap) and the book's come back as
    their custom errors, before any gas is spent (the relay estimates first). `record_tx(hash)` runs before sending."""
    book = context.bindings.book
    nonce = book.functions.nonces(borrower).call()
    if not _signed_by(context, borrower, signed, nonce, deadline, signature):
        _refuse_replay(context, borrower, signed, nonce, deadline, signature)
        raise ApiError(422, "invalid_signature", "the signature is not the signed-in borrower's over this product "
                                                 f"version, principal and count, nonce {nonce} and deadline {deadline}")
    _fault(context, "before_send")
    receipt = context.signer("relayer").transact(
        book.functions.requestLoan(signed.as_tuple(), borrower, deadline, signature), before_send=record_tx)
    _fault(context, "after_send")
    return _requested(context, borrower, receipt, request_id,
                      {"product_id": signed.product_id, "product_version": signed.product_version,
                       "principal": signed.principal, "installments": signed.installments})


def reconcile(context, borrower: str, tx_hash: str, request_id: str) -> Application | str | None:
    """What a crashed application's recorded transaction did: the Application, IN_FLIGHT while the node holds
    it unmined, None if it was never mined."""
    receipt = _mined(context, tx_hash)
    if receipt is None or receipt is IN_FLIGHT:
        return receipt
    if receipt["status"] != 1 or not context.bindings.book.events.LoanRequested().process_receipt(
            receipt, errors=DISCARD):
        return None  # reverted: no loan was made
    log.warning("application %s was interrupted after its transaction was sent; answering from the chain",
                tx_hash)
    return _requested(context, borrower, receipt, request_id, {"reconciled": True})


def _requested(context, borrower: str, receipt, request_id: str, details: dict) -> Application:
    """The loan a mined requestLoan made, logged. The API decides nothing: the automatic policy (its own process,
    oracle/policy.py) decides shortly after if the product lets it (the event's `autoApprovable`), an operator
    otherwise; a reconciled application answers what became of the loan since."""
    book = context.bindings.book
    event = book.events.LoanRequested().process_receipt(receipt, errors=DISCARD)[0]
    loan_id = event["args"]["loanId"]
    tx_hash = to_0x_hex(receipt["transactionHash"])
    context.action_log.append(borrower, "loan.request", request_id, {"loan_id": loan_id, "tx": tx_hash, **details})
    decision = None  # a new application is Requested
    if details.get("reconciled"):
        status = read_loan(book, loan_id).status
        decision = {LoanStatus.REQUESTED: None, LoanStatus.CANCELLED: None,
                    LoanStatus.REJECTED: "rejected"}.get(status, "approved")
    return Application(loan_id, tx_hash, decision, receipt["blockNumber"])


def _signed_by(context, borrower: str, signed: Signed, nonce: int, deadline: int, signature: bytes) -> bool:
    message = signed.message(context, borrower, nonce, deadline)
    try:
        signer = typed_data.recover(message, signature)
    except Exception:  # noqa: BLE001 - a malformed signature recovers to nothing
        return False
    return signer.lower() == borrower.lower()


def _refuse_replay(context, borrower: str, signed: Signed, nonce: int, deadline: int, signature: bytes) -> None:
    """409 when the borrower signed this application with a nonce the book already spent (the same signed request
    relayed again, e.g. under a new Idempotency-Key): it names the loan that nonce made, if one did."""
    for spent in range(nonce - 1, max(-1, nonce - 1 - REPLAY_LOOKBACK), -1):
        if _signed_by(context, borrower, signed, spent, deadline, signature):
            with context.sessions() as session:
                loan_id = session.scalar(select(Loan.id).where(Loan.borrower == borrower,
                                                               Loan.request_nonce == spent))
            made = f": it made loan {loan_id}" if loan_id is not None else ""
            raise ApiError(409, "loan_request_replayed",
                           f"this signed request (nonce {spent}) was relayed before{made}; a signed request makes "
                           f"one loan. Retry with its first Idempotency-Key for the answer, or sign a new request")


def _fault(context, point: str) -> None:
    """The `api_fault` setting (LOANLEDGER_API_FAULT, tests only): exit on the spot (no cleanup) at `point`, or
    stop (SIGSTOP) there for the crash test to SIGKILL the process, so the crash tests can end the API between
    claiming an application and sending it, or between sending it and storing its answer."""
    fault = context.settings.api_fault  # the setting's type allows only the points that exist
    if fault == point:
        log.warning("fault injection: exiting at %s", point)
        os._exit(70)
    if fault == f"stop_{point}":
        log.warning("fault injection: stopping at %s", point)
        os.kill(os.getpid(), signal.SIGSTOP)


def refuse_unless_cancellable(context, loan_id: int) -> LoanStatus:
    """The loan's status on the chain if it may still be cancelled; 409 `loan_not_cancellable` once paid out
    (or decided otherwise), before anything is signed or relayed."""
    status = read_loan(context.bindings.book, loan_id).status
    if status not in CANCELLABLE:
        raise ApiError(409, "loan_not_cancellable", f"loan {loan_id} is {status.solidity_name}: only an application "
                                                    "not yet paid out (Requested or Approved) is cancelled")
    return status


def cancel_draft(context, borrower: str, loan: Loan) -> CancelDraftOut:
    """The CancelLoan `borrower` would sign for `loan` (their nonce, a deadline an hour of chain time away), as
    eth_signTypedData_v4 takes it, with what it does in words; 409 `loan_not_cancellable` once paid out."""
    status = refuse_unless_cancellable(context, loan.id)
    nonce = context.bindings.book.functions.nonces(borrower).call()
    deadline = context.chain_time() + DRAFT_VALIDITY
    typed = typed_data.cancel_loan(chain_id=context.w3.eth.chain_id, book=context.bindings.book.address,
                                   loan_id=loan.id, nonce=nonce, deadline=deadline)
    text = (f"Cancel the application for loan {loan.id} ({money(loan.principal, loan.currency)}, "
            f"{status.solidity_name}): nothing is paid out and nothing is owed")
    summary = CancelSummary(loan_id=loan.id, status=status.solidity_name, principal=loan.principal,
                            currency=loan.currency, text=text)
    return CancelDraftOut(typed_data=typed, deadline=deadline, nonce=nonce, summary=summary)


def cancel(context, borrower: str, loan_id: int, deadline: int, signature: bytes, request_id: str,
           record_tx: Callable[[str], None] | None = None) -> Sent:
    """Relays the borrower's signed cancellation (the loan book checks it is theirs and not yet disbursed)."""
    receipt = context.signer("relayer").transact(
        context.bindings.book.functions.cancelWithSignature(loan_id, deadline, signature), before_send=record_tx)
    return record(context, borrower, "loan.cancel", request_id, {"loan_id": loan_id}, receipt)


def reconcile_cancel(context, borrower: str, loan_id: int, tx_hash: str, request_id: str) -> Sent | str | None:
    """What a crashed cancellation's recorded transaction did: the Sent once mined, IN_FLIGHT, or None."""
    receipt = _mined(context, tx_hash)
    if receipt is None or receipt is IN_FLIGHT:
        return receipt
    if receipt["status"] != 1:
        return None  # reverted: nothing was cancelled, the request may run again
    return record(context, borrower, "loan.cancel", request_id, {"loan_id": loan_id, "reconciled": True}, receipt)


def _mined(context, tx_hash: str):
    """The transaction's receipt; IN_FLIGHT while the node holds it unmined; None if the node never saw it."""
    try:
        return context.w3.eth.get_transaction_receipt(tx_hash)
    except TransactionNotFound:
        pass
    try:
        context.w3.eth.get_transaction(tx_hash)
    except TransactionNotFound:
        return None  # never sent, or dropped: nobody else holds its signed bytes
    return IN_FLIGHT
