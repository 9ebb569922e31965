"""Decisions signed by the person who makes them: the contracts take a signed request relayed through the
LoanLedgerForwarder as its signer's, check the signer's roles, name the signer in their events, and refuse
whatever the signer could not do themselves, a request not signed by its `from`, a replay, an expired one and one
changed after signing. The relayer (eve) holds no role anywhere."""

from __future__ import annotations

import pytest
from web3.logs import DISCARD

from ledger.chain import ChainClient
from ledger.errors import ContractRevert
from ledger.forwarding import build_request, is_used, relay, request_data, sign_request

DAY = 86_400
GAS = 500_000  # given explicitly where the call is meant to be refused (the default estimate would refuse it first)


@pytest.fixture
def relayer(w3, stack, keys) -> ChainClient:
    return ChainClient(w3, keys["eve"], stack.errors)


@pytest.fixture
def requested(driver, keys) -> int:
    driver.register(keys["alice"])
    driver.score(keys["alice"])
    return driver.request(keys["alice"])


def signed(driver, signer, call, *, sender=None, deadline=None, gas=GAS):
    """(typed data, signature): `signer`'s signature over a request from `sender` (default: the signer) for `call`."""
    sender = sender or signer.address
    typed = build_request(driver.stack.forwarder, sender, call, driver.now + DAY if deadline is None else deadline, gas)
    return typed, sign_request(typed, signer)


def refusal(relayer, stack, typed, signature) -> ContractRevert:
    """What `relay` raises for this request; and nothing was consumed (the signer's nonce is unchanged)."""
    sender = typed["message"]["from"]
    nonce = stack.forwarder.functions.nonces(sender).call()
    with pytest.raises(ContractRevert) as refused:
        relay(relayer, stack.forwarder, typed, signature)
    assert stack.forwarder.functions.nonces(sender).call() == nonce
    return refused.value


def test_every_contract_trusts_the_deployed_forwarder_and_it_holds_no_role(stack):
    forwarder = stack.forwarder.address
    assert stack.manifest.forwarder.address == forwarder
    for contract in stack.all:
        assert contract.functions.trustedForwarder().call() == forwarder
        roles = [contract.functions.DEFAULT_ADMIN_ROLE().call(), contract.functions.OPERATOR_ROLE().call(),
                 contract.functions.ORACLE_ROLE().call(), contract.functions.PAUSER_ROLE().call()]
        assert not any(contract.functions.hasRole(role, forwarder).call() for role in roles)
    name, version, _, verifying = stack.forwarder.functions.eip712Domain().call()[1:5]
    assert (name, version, verifying) == ("LoanLedgerForwarder", "1", forwarder)


def test_an_operators_signed_approval_relayed_by_a_roleless_relayer_is_the_operators(stack, keys, driver, relayer,
                                                                                       requested):
    operator, eve = keys["operator"], keys["eve"]
    assert not stack.book.functions.isStaff(eve.address).call()
    typed = build_request(stack.forwarder, operator.address, stack.book.functions.approve(requested), driver.now + DAY)
    receipt = relay(relayer, stack.forwarder, typed, sign_request(typed, operator))

    assert receipt["from"] == eve.address and receipt["to"] == stack.forwarder.address
    (approved,) = stack.book.events.LoanApproved().process_receipt(receipt, errors=DISCARD)
    assert approved.args.loanId == requested and approved.args.actor == operator.address
    (executed,) = stack.forwarder.events.ExecutedForwardRequest().process_receipt(receipt, errors=DISCARD)
    assert (executed.args.signer, executed.args.nonce, executed.args.success) == (operator.address, 0, True)
    assert stack.book.functions.loanOf(requested).call()[2] == 2  # Approved
    assert stack.forwarder.functions.nonces(operator.address).call() == 1


def test_the_relayer_signing_for_itself_is_refused_for_want_of_the_role(stack, keys, driver, relayer, requested):
    eve = keys["eve"]
    typed, signature = signed(driver, eve, stack.book.functions.approve(requested))
    refused = refusal(relayer, stack, typed, signature)
    assert refused.name == "AccessControlUnauthorizedAccount"
    assert refused.arguments["account"] == eve.address
    assert refused.arguments["neededRole"] == stack.book.functions.OPERATOR_ROLE().call()


def test_a_borrowers_signed_approval_is_refused_naming_the_borrower(stack, keys, driver, relayer, requested):
    alice = keys["alice"]
    typed, signature = signed(driver, alice, stack.book.functions.approve(requested))
    refused = refusal(relayer, stack, typed, signature)
    assert (refused.name, refused.arguments["account"]) == ("AccessControlUnauthorizedAccount", alice.address)
    assert stack.book.functions.loanOf(requested).call()[2] == 1  # still Requested


def test_a_request_signed_by_someone_else_than_its_sender_is_refused(stack, keys, driver, relayer, requested):
    operator, alice = keys["operator"], keys["alice"]
    # alice signs a request that says it is from the operator
    typed, signature = signed(driver, alice, stack.book.functions.approve(requested), sender=operator.address)
    refused = refusal(relayer, stack, typed, signature)
    assert refused.name == "ERC2771ForwarderInvalidSigner"
    assert (refused.arguments["signer"], refused.arguments["from"]) == (alice.address, operator.address)
    # a signature that is no signature at all
    refused = refusal(relayer, stack, typed, "0x" + "00" * 65)
    assert refused.name == "ERC2771ForwarderInvalidSigner"


def test_a_signed_request_is_executed_once(stack, keys, driver, relayer, requested):
    operator = keys["operator"]
    typed, signature = signed(driver, operator, stack.book.functions.reject(requested, b"\x01".rjust(32, b"\0")))
    assert not is_used(stack.forwarder, typed)
    relay(relayer, stack.forwarder, typed, signature)
    assert stack.forwarder.functions.nonces(operator.address).call() == 1
    assert is_used(stack.forwarder, typed)
    refused = refusal(relayer, stack, typed, signature)
    # Its nonce is used: the signature now recovers to another address than the operator's.
    assert refused.name == "ERC2771ForwarderInvalidSigner"
    assert refused.arguments["from"] == operator.address and refused.arguments["signer"] != operator.address


def test_an_expired_request_is_refused(stack, keys, driver, relayer, requested):
    typed, signature = signed(driver, keys["operator"], stack.book.functions.approve(requested), deadline=driver.now + 60)
    driver.advance(120)
    refused = refusal(relayer, stack, typed, signature)
    assert refused.name == "ERC2771ForwarderExpiredRequest"
    assert refused.arguments["deadline"] == typed["message"]["deadline"]


def test_a_request_changed_after_signing_is_refused(stack, keys, driver, relayer, requested):
    operator = keys["operator"]
    typed, signature = signed(driver, operator, stack.book.functions.reject(requested, b"\x01".rjust(32, b"\0")))
    # The relayer turns the signed rejection into an approval of the same loan.
    changed = {**typed, "message": {**typed["message"],
                                    "data": stack.book.functions.approve(requested)._encode_transaction_data()}}
    refused = refusal(relayer, stack, changed, signature)
    assert refused.name == "ERC2771ForwarderInvalidSigner" and refused.arguments["from"] == operator.address
    # ... or gives the call less gas than was signed for
    fewer = {**typed, "message": {**typed["message"], "gas": typed["message"]["gas"] - 1}}
    assert refusal(relayer, stack, fewer, signature).name == "ERC2771ForwarderInvalidSigner"
    assert stack.book.functions.loanOf(requested).call()[2] == 1  # still Requested


def test_the_targets_own_refusal_comes_back_by_name(stack, keys, driver, relayer, requested):
    operator = keys["operator"]
    driver.approve(requested)
    typed, signature = signed(driver, operator, stack.book.functions.approve(requested))
    refused = refusal(relayer, stack, typed, signature)
    assert refused.name == "LoanBookInvalidStatus" and refused.arguments["loanId"] == requested


def test_a_default_declared_through_the_forwarder_runs_in_the_extension_as_the_operator(stack, keys, driver, relayer):
    """The book delegates declareDefault to its extension: the extension trusts the same forwarder, so the operator's
    role is checked and named there too. (A write-off, also the extension's, needs two operators through FourEyes:
    tests/contracts/test_four_eyes.py relays one.)"""
    operator, alice = keys["operator"], keys["alice"]
    loan_id = driver.active_loan(alice)
    driver.advance(200 * DAY)
    typed, signature = signed(driver, keys["eve"], stack.book.functions.declareDefault(loan_id))
    refused = refusal(relayer, stack, typed, signature)
    assert (refused.name, refused.arguments["caller"]) == ("LoanBookUnauthorizedDefault", keys["eve"].address)

    typed = build_request(stack.forwarder, operator.address, stack.book.functions.declareDefault(loan_id),
                          driver.now + DAY)
    receipt = relay(relayer, stack.forwarder, typed, sign_request(typed, operator))
    (defaulted,) = stack.book.events.LoanDefaulted().process_receipt(receipt, errors=DISCARD)
    assert defaulted.args.loanId == loan_id and defaulted.args.actor == operator.address


def test_a_borrower_cancels_through_the_forwarder_and_nobody_else_can_in_their_name(stack, keys, driver, relayer,
                                                                                      requested):
    alice, bob = keys["alice"], keys["bob"]
    typed, signature = signed(driver, bob, stack.book.functions.cancel(requested))
    refused = refusal(relayer, stack, typed, signature)
    assert (refused.name, refused.arguments["caller"]) == ("LoanBookNotBorrower", bob.address)
    typed, signature = signed(driver, alice, stack.book.functions.cancel(requested))
    receipt = relay(relayer, stack.forwarder, typed, signature)
    (cancelled,) = stack.book.events.LoanCancelled().process_receipt(receipt, errors=DISCARD)
    assert cancelled.args.actor == alice.address


def test_pause_through_the_forwarder_by_the_pauser_works_and_by_an_operator_is_refused(stack, keys, driver, relayer):
    operator, pauser = keys["operator"], keys["pauser"]
    typed, signature = signed(driver, operator, stack.catalog.functions.pause())
    refused = refusal(relayer, stack, typed, signature)
    assert (refused.name, refused.arguments["account"]) == ("AccessControlUnauthorizedAccount", operator.address)
    assert not stack.catalog.functions.paused().call()

    typed, signature = signed(driver, pauser, stack.catalog.functions.pause())
    receipt = relay(relayer, stack.forwarder, typed, signature)
    (paused,) = stack.catalog.events.Paused().process_receipt(receipt, errors=DISCARD)
    assert paused.args.account == pauser.address and stack.catalog.functions.paused().call()


def test_a_request_to_a_contract_that_does_not_trust_the_forwarder_is_refused(w3, stack, keys, driver, relayer):
    typed, signature = signed(driver, keys["operator"], stack.forwarder.functions.nonces(keys["alice"].address))
    refused = refusal(relayer, stack, typed, signature)
    assert refused.name == "ERC2771UntrustfulTarget" and refused.arguments["target"] == stack.forwarder.address


def test_direct_calls_by_role_holders_are_unchanged_and_name_the_caller(stack, keys, driver, requested):
    receipt = driver.send(stack.book.functions.approve(requested), keys["operator"])
    (approved,) = stack.book.events.LoanApproved().process_receipt(receipt, errors=DISCARD)
    assert approved.args.actor == keys["operator"].address


def test_the_forwarder_executes_only_the_value_signed_for(w3, stack, keys, driver, requested):
    """The book takes no ether; a request is for value 0, and the forwarder refuses a transaction that sends some."""
    typed, signature = signed(driver, keys["operator"], stack.book.functions.approve(requested))
    execute = stack.forwarder.functions.execute(request_data(typed, signature))
    with pytest.raises(ContractRevert) as refused:
        ChainClient(w3, keys["eve"], stack.errors).transact(execute, value=1)
    assert refused.value.name == "ERC2771ForwarderMismatchedValue"
