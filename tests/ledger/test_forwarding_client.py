"""ledger.forwarding on the real node: the typed data a person signs, the signature, relaying, and `describe`
(what the API checks and a person reads before signing)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from sqlalchemy import select

from ledger import manifest as manifests
from ledger.chain import ChainClient
from ledger.contracts import bind
from ledger.encoding import to_0x_hex
from ledger.errors import ContractRevert
from ledger.forwarding import (
    UnknownCall,
    build_request,
    describe,
    relay,
    request_data,
    sign_request,
)
from ledger.indexer import Indexer
from ledger.products import offering
from ledger.store import open_store
from ledger.store.models.chain import ChainEvent, Loan

DAY = 86_400


@pytest.fixture
def requested(driver, keys) -> int:
    driver.register(keys["alice"])
    driver.score(keys["alice"])
    return driver.request(keys["alice"])


def test_the_typed_data_is_the_forwarders_own_domain_and_the_senders_next_nonce(w3, stack, keys, driver, requested):
    operator = keys["operator"]
    call = stack.book.functions.approve(requested)
    typed = build_request(stack.forwarder, operator.address.lower(), call, 1_900_000_000, gas=123_456)

    assert typed["primaryType"] == "ForwardRequest"
    assert typed["domain"] == {"name": "LoanLedgerForwarder", "version": "1", "chainId": w3.eth.chain_id,
                               "verifyingContract": stack.forwarder.address}
    assert [f["name"] for f in typed["types"]["EIP712Domain"]] == ["name", "version", "chainId", "verifyingContract"]
    assert typed["message"] == {"from": operator.address, "to": stack.book.address, "value": 0, "gas": 123_456,
                                "nonce": 0, "deadline": 1_900_000_000, "data": call._encode_transaction_data()}
    assert json.loads(json.dumps(typed)) == typed  # what the dashboard's wallet gets, as it is

    signature = sign_request(typed, operator)
    assert signature.startswith("0x") and len(signature) == 2 + 65 * 2
    assert Account.recover_message(encode_typed_data(full_message=typed), signature=signature) == operator.address
    assert stack.forwarder.functions.verify(request_data(typed, signature)).call()

    relay(ChainClient(w3, keys["eve"], stack.errors), stack.forwarder, typed, signature)
    again = build_request(stack.forwarder, operator.address, stack.book.functions.reject(requested, b"\0" * 32),
                          1_900_000_000, gas=1)
    assert again["message"]["nonce"] == 1


def test_the_default_gas_is_the_calls_estimate_and_a_call_refused_now_is_refused_before_signing(w3, stack, keys,
                                                                                                driver, requested):
    operator, alice = keys["operator"], keys["alice"]
    typed = build_request(stack.forwarder, operator.address, stack.book.functions.approve(requested), driver.now + DAY)
    assert 30_000 < typed["message"]["gas"] < 500_000
    with pytest.raises(ContractRevert) as refused:
        build_request(stack.forwarder, alice.address, stack.book.functions.approve(requested), driver.now + DAY)
    assert (refused.value.name, refused.value.arguments["account"]) == ("AccessControlUnauthorizedAccount",
                                                                         alice.address)
    # The estimate's gas is enough: relayed, it goes through.
    receipt = relay(ChainClient(w3, keys["eve"], stack.errors), stack.forwarder, typed, sign_request(typed, operator))
    assert receipt["status"] == 1


def test_describe_reads_the_request_in_the_contracts_own_words(stack, keys, driver, requested, loan_terms):
    operator, deadline = keys["operator"].address, driver.now + DAY

    def described(call):
        return describe(stack, build_request(stack.forwarder, operator, call, deadline, gas=100_000))

    assert described(stack.book.functions.approve(requested)) == ("LoanBook", "approve", {"loanId": requested})
    # writeOff is the extension's: the book's ABI holds it
    assert described(stack.book.functions.writeOff(7)) == ("LoanBook", "writeOff", {"loanId": 7})
    assert described(stack.book.functions.reject(requested, b"\x05".rjust(32, b"\0"))) == \
        ("LoanBook", "reject", {"loanId": requested, "reason": "0x" + "00" * 31 + "05"})
    product = offering(replace(loan_terms, principal=50_000), "small loan")
    contract, function, args = described(stack.catalog.functions.createProduct(product.as_tuple(stack.catalog)))
    assert (contract, function) == ("ProductCatalog", "createProduct")
    assert args["p"]["minPrincipal"] == args["p"]["maxPrincipal"] == 50_000
    assert args["p"]["currency"] == "0x434e59" and bytes.fromhex(args["p"]["name"][2:]).rstrip(b"\0") == b"small loan"
    assert described(stack.registry.functions.revokeBorrower(keys["alice"].address, b"\0" * 32))[:2] == \
        ("BorrowerRegistry", "revokeBorrower")
    assert described(stack.catalog.functions.pause()) == ("ProductCatalog", "pause", {})


def test_describe_refuses_an_unknown_target_or_function(stack, keys, driver):
    typed = build_request(stack.forwarder, keys["operator"].address, stack.book.functions.approve(1),
                          driver.now + DAY, gas=100_000)
    elsewhere = {**typed, "message": {**typed["message"], "to": keys["eve"].address}}
    with pytest.raises(UnknownCall, match="not a LoanLedger contract"):
        describe(stack, elsewhere)
    itself = {**typed, "message": {**typed["message"], "to": stack.forwarder.address}}
    with pytest.raises(UnknownCall):
        describe(stack, itself)
    no_function = {**typed, "message": {**typed["message"], "data": "0xdeadbeef" + "00" * 32}}
    with pytest.raises(UnknownCall, match="no function of LoanBook"):
        describe(stack, no_function)


def test_the_manifest_carries_the_forwarder_and_bind_exposes_it(w3, stack, tmp_path):
    path = manifests.save(stack.manifest, tmp_path / "local.json")
    loaded = manifests.load(path)
    assert loaded == stack.manifest and loaded.forwarder == stack.manifest.forwarder
    bound = bind(w3, loaded)
    assert bound.forwarder.address == stack.forwarder.address
    assert bound.by_name("LoanLedgerForwarder").address == stack.forwarder.address
    # The deployment's error decoder (every ChainClient's) knows the forwarder's errors too.
    expired = keccak(text="ERC2771ForwarderExpiredRequest(uint48)")[:4] + abi_encode(["uint48"], [5])
    decoded = bound.errors.decode(expired)
    assert (decoded.name, decoded.arguments) == ("ERC2771ForwarderExpiredRequest", {"deadline": 5})
    older = json.loads(loaded.to_json())
    del older["forwarder"]
    with pytest.raises(ValueError, match="no address for LoanLedgerForwarder: redeploy"):
        bind(w3, manifests.Manifest.from_json(json.dumps(older)))


def test_the_index_keeps_who_signed_a_relayed_decision_and_not_the_relayer(w3, stack, keys, driver, requested,
                                                                            tmp_path):
    """The auditor's loan history is the loan's stored events: a relayed approval's names the operator."""
    sessions = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    operator = keys["operator"]
    typed = build_request(stack.forwarder, operator.address, stack.book.functions.approve(requested), driver.now + DAY)
    receipt = relay(ChainClient(w3, keys["eve"], stack.errors), stack.forwarder, typed, sign_request(typed, operator))
    Indexer(w3, stack.manifest, sessions).run_once()
    with sessions() as session:
        approved = session.scalars(select(ChainEvent).where(ChainEvent.loan_id == requested,
                                                            ChainEvent.name == "LoanApproved")).one()
        assert approved.args["actor"] == operator.address
        assert approved.tx_hash == to_0x_hex(receipt["transactionHash"])
        assert session.get(Loan, requested).status == "Approved"
    sessions.kw["bind"].dispose()
