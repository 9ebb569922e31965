"""Signed applications on the real contract, and the ways they are refused."""

from __future__ import annotations

import pytest
from web3.exceptions import ContractCustomError

from ledger import typed_data
from ledger.errors import ErrorDecoder
from ledger.typed_data import Amortization, LoanTerms

DAY = 86_400
TERMS = LoanTerms(120_000, b"CNY", 2400, Amortization.ANNUITY, 12, 30 * DAY, 3 * DAY, 500, 1800, 90 * DAY)


def _send(w3, fn, sender):
    return w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender}))


def _error_name(stack, exc: ContractCustomError) -> str:
    decoded = ErrorDecoder([stack.book.abi, stack.registry.abi, stack.oracle.abi]).from_exception(exc)
    assert decoded is not None, f"not one of our custom errors: {exc!r}"
    return decoded.name


def _sign_request(w3, book, key, nonce, deadline, terms=TERMS, chain_id=None):
    message = typed_data.loan_request(chain_id=chain_id or w3.eth.chain_id, book=book.address, borrower=key.address,
                                      terms=terms, nonce=nonce, deadline=deadline)
    return typed_data.sign(key.key, message)


@pytest.fixture
def registered(w3, stack, keys):
    now = w3.eth.get_block("latest").timestamp
    _send(w3, stack.registry.functions.registerBorrower(keys["alice"].address, b"\x11" * 32, now + 365 * DAY),
          keys["operator"].address)
    return keys["alice"]


def test_signed_request_then_replay_wrong_chain_stale_score_and_role_are_refused(w3, stack, keys, registered):
    book, relayer = stack.book, keys["eve"].address
    deadline = w3.eth.get_block("latest").timestamp + DAY
    sig = _sign_request(w3, book, registered, 0, deadline)
    _send(w3, book.functions.requestLoan(TERMS.as_tuple(), registered.address, deadline, sig), relayer)
    assert book.functions.loanCount().call() == 1

    # The same signed request again: a replay, refused with its own error.
    with pytest.raises(ContractCustomError) as replay:
        book.functions.requestLoan(TERMS.as_tuple(), registered.address, deadline, sig).call({"from": relayer})
    assert _error_name(stack, replay.value) == "LoanBookRequestReplayed"

    # Signed for another chain: not the borrower's signature here.
    other = _sign_request(w3, book, registered, 1, deadline, chain_id=1)
    with pytest.raises(ContractCustomError) as wrong_chain:
        book.functions.requestLoan(TERMS.as_tuple(), registered.address, deadline, other).call({"from": relayer})
    assert _error_name(stack, wrong_chain.value) == "LoanBookInvalidSignature"

    # No score yet: approval refused; a stranger cannot approve at all.
    with pytest.raises(ContractCustomError) as stale:
        book.functions.approve(1).call({"from": keys["operator"].address})
    assert _error_name(stack, stale.value) == "LoanBookStaleScore"
    with pytest.raises(ContractCustomError) as stranger:
        book.functions.approve(1).call({"from": relayer})
    assert _error_name(stack, stranger.value) == "AccessControlUnauthorizedAccount"


@pytest.mark.parametrize("field,value", [("principal", 0), ("principal", 10**15 + 1), ("installments", 0),
                                         ("interval", 60), ("defaultAfter", 0), ("lateFeeBps", 10_001)])
def test_terms_out_of_bounds_are_refused_by_name(w3, stack, keys, registered, field, value):
    from dataclasses import replace

    terms = replace(TERMS, **{field: value})
    deadline = w3.eth.get_block("latest").timestamp + DAY
    sig = _sign_request(w3, stack.book, registered, 0, deadline, terms=terms)
    with pytest.raises(ContractCustomError) as refused:
        stack.book.functions.requestLoan(terms.as_tuple(), registered.address, deadline, sig).call({"from": keys["eve"].address})
    decoded = ErrorDecoder([stack.book.abi]).from_exception(refused.value)
    assert (decoded.name, decoded.arguments["field"].rstrip(b"\0").decode()) == ("LoanBookInvalidTerms", field)
