"""A borrower's loan application: relay the borrower's signed request (then the automatic policy), or their
signed cancellation. The API never signs for a borrower: it checks the EIP-712 signature first, so a bad
one costs no gas, and the loan book checks it again."""

from __future__ import annotations

from dataclasses import dataclass

from web3.logs import DISCARD

from api.errors import ApiError
from api.services.decisions import apply_policy
from api.services.transactions import Sent, record
from ledger import typed_data
from ledger.encoding import to_0x_hex
from ledger.typed_data import LoanTerms


@dataclass(frozen=True)
class Application:
    loan_id: int
    tx_hash: str  # the relayed LoanRequested transaction
    decision: str | None  # what the automatic policy did: approved, rejected:<reason>, or None
    block_number: int  # the last block the request and the decision wrote

    @property
    def status(self) -> str:
        """The loan's status after the automatic policy."""
        if self.decision == "approved":
            return "Approved"
        return "Rejected" if (self.decision or "").startswith("rejected") else "Requested"


def apply(context, borrower: str, terms: LoanTerms, deadline: int, signature: bytes, request_id: str) -> Application:
    """Relays `borrower`'s signed request for `terms`; 422 `invalid_signature` if they did not sign it."""
    book = context.bindings.book
    nonce = book.functions.nonces(borrower).call()
    message = typed_data.loan_request(chain_id=context.w3.eth.chain_id, book=book.address, borrower=borrower,
                                      terms=terms, nonce=nonce, deadline=deadline)
    try:
        signer = typed_data.recover(message, signature)
    except Exception:  # noqa: BLE001 - a malformed signature recovers to nothing
        signer = None
    if signer is None or signer.lower() != borrower.lower():
        raise ApiError(422, "invalid_signature", "the signature is not the signed-in borrower's over these terms, "
                                                 f"nonce {nonce} and deadline {deadline}")
    receipt = context.signer("relayer").transact(
        book.functions.requestLoan(terms.as_tuple(), borrower, deadline, signature))
    event = book.events.LoanRequested().process_receipt(receipt, errors=DISCARD)[0]
    loan_id = event["args"]["loanId"]
    tx_hash = to_0x_hex(receipt["transactionHash"])
    context.action_log.append(borrower, "loan.request", request_id,
                              {"loan_id": loan_id, "tx": tx_hash, "principal": terms.principal})
    decision, block = apply_policy(context, loan_id, request_id=request_id)
    return Application(loan_id, tx_hash, decision, max(receipt["blockNumber"], block or 0))


def cancel(context, borrower: str, loan_id: int, deadline: int, signature: bytes, request_id: str) -> Sent:
    """Relays the borrower's signed cancellation (the loan book checks it is theirs and not yet disbursed)."""
    receipt = context.signer("relayer").transact(
        context.bindings.book.functions.cancelWithSignature(loan_id, deadline, signature))
    return record(context, borrower, "loan.cancel", request_id, {"loan_id": loan_id}, receipt)
