"""Signed applications on the real contract, and the ways they are refused."""

from __future__ import annotations

import pytest
from eth_account import Account
from web3.exceptions import ContractCustomError

DAY = 86_400
TERMS = (120_000, b"CNY", 2400, 0, 12, 30 * DAY, 3 * DAY, 500, 1800, 90 * DAY)
TERMS_TYPES = [
    {"name": "principal", "type": "uint96"}, {"name": "currency", "type": "bytes3"},
    {"name": "annualRateBps", "type": "uint16"}, {"name": "amortization", "type": "uint8"},
    {"name": "installments", "type": "uint16"}, {"name": "interval", "type": "uint32"},
    {"name": "gracePeriod", "type": "uint32"}, {"name": "lateFeeBps", "type": "uint16"},
    {"name": "penaltyRateBps", "type": "uint16"}, {"name": "defaultAfter", "type": "uint32"},
]


def _send(w3, fn, sender):
    return w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender}))


def _error_name(stack, exc: ContractCustomError) -> str:
    selector = exc.data[:10] if isinstance(exc.data, str) else exc.message[:10]
    for item in stack.book.abi:
        if item["type"] == "error":
            sig = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
            if "0x" + stack.book.w3.keccak(text=sig).hex().removeprefix("0x")[:8] == selector:
                return item["name"]
    return selector


def _sign_request(w3, book, key, nonce, deadline, terms=TERMS, chain_id=None):
    names = [t["name"] for t in TERMS_TYPES]
    message = {"borrower": key.address, "terms": dict(zip(names, terms)), "nonce": nonce, "deadline": deadline}
    data = {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
            "LoanRequest": [{"name": "borrower", "type": "address"}, {"name": "terms", "type": "LoanTerms"},
                            {"name": "nonce", "type": "uint256"}, {"name": "deadline", "type": "uint256"}],
            "LoanTerms": TERMS_TYPES,
        },
        "primaryType": "LoanRequest",
        "domain": {"name": "LoanLedger LoanBook", "version": "1", "chainId": chain_id or w3.eth.chain_id,
                   "verifyingContract": book.address},
        "message": message,
    }
    return Account.sign_typed_data(key.key, full_message=data).signature


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
    _send(w3, book.functions.requestLoan(TERMS, registered.address, deadline, sig), relayer)
    assert book.functions.loanCount().call() == 1

    # The same signed request again: a replay, refused with its own error.
    with pytest.raises(ContractCustomError) as replay:
        book.functions.requestLoan(TERMS, registered.address, deadline, sig).call({"from": relayer})
    assert _error_name(stack, replay.value) == "LoanBookRequestReplayed"

    # Signed for another chain: not the borrower's signature here.
    other = _sign_request(w3, book, registered, 1, deadline, chain_id=1)
    with pytest.raises(ContractCustomError) as wrong_chain:
        book.functions.requestLoan(TERMS, registered.address, deadline, other).call({"from": relayer})
    assert _error_name(stack, wrong_chain.value) == "LoanBookInvalidSignature"

    # No score yet: approval refused; a stranger cannot approve at all.
    with pytest.raises(ContractCustomError) as stale:
        book.functions.approve(1).call({"from": keys["operator"].address})
    assert _error_name(stack, stale.value) == "LoanBookStaleScore"
    with pytest.raises(ContractCustomError) as stranger:
        book.functions.approve(1).call({"from": relayer})
    assert _error_name(stack, stranger.value) == "AccessControlUnauthorizedAccount"
