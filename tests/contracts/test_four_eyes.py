"""Maker-checker on-chain: what FourEyes lets two different people do, and everything it refuses.

Each test proposes a real call on the deployed stack and confirms it (or fails to) from the session's accounts:
operator and operator2 are FourEyes' two operators, admin and admin2 its two admins.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from web3 import Web3
from web3.logs import DISCARD

from ledger import four_eyes
from ledger.chain import ChainClient
from ledger.deploy import RENOUNCED_BY_ADMIN, Settings, deploy_stack, role_id
from ledger.errors import ContractRevert
from ledger.forwarding import build_request, relay, sign_request
from ledger.four_eyes import Call, ProposalState
from ledger.products import offering, read_product, read_status
from ledger.samples import SAMPLE_PRODUCT

HOUR = 3_600
DAY = 86_400
APPROVED, DEFAULTED, WRITTEN_OFF = 2, 7, 8  # ILoanBook.LoanStatus
OPERATOR_ROLE = role_id("OPERATOR_ROLE")
ADMIN_ROLE = role_id("DEFAULT_ADMIN_ROLE")


@pytest.fixture
def fe(stack):
    return stack.four_eyes


@pytest.fixture
def now(w3):
    return lambda: w3.eth.get_block("latest").timestamp


def propose(w3, fe, function, proposer, expires_at):
    receipt = w3.eth.wait_for_transaction_receipt(four_eyes.propose(fe, function, expires_at).transact({"from": proposer}))
    assert receipt.status == 1
    return four_eyes.proposed(fe, receipt)


def grant_dave_operator(stack, keys):
    return stack.registry.functions.grantRole(OPERATOR_ROLE, keys["dave"].address)


def test_a_role_grant_needs_two_admins_and_the_events_name_both(w3, stack, keys, fe, now, revert_name):
    admin, admin2, dave = keys["admin"].address, keys["admin2"].address, keys["dave"].address
    made = propose(w3, fe, grant_dave_operator(stack, keys), admin, now() + HOUR)
    assert made.proposer == admin and made.state == ProposalState.PENDING
    assert four_eyes.describe(stack, made.call) == ("BorrowerRegistry", "grantRole",
                                                    {"role": OPERATOR_ROLE, "account": dave})
    # The proposer cannot confirm their own proposal, and nothing has happened yet.
    assert revert_name(four_eyes.confirm(fe, made), admin) == "FourEyesSamePerson"
    assert not stack.registry.functions.hasRole(OPERATOR_ROLE, dave).call()

    receipt = w3.eth.wait_for_transaction_receipt(four_eyes.confirm(fe, made).transact({"from": admin2}))
    assert receipt.status == 1
    assert stack.registry.functions.hasRole(OPERATOR_ROLE, dave).call()
    (confirmed,) = fe.events.Confirmed().process_receipt(receipt, errors=DISCARD)
    (executed,) = fe.events.Executed().process_receipt(receipt, errors=DISCARD)
    assert confirmed.args.confirmer == admin2
    assert (executed.args.proposer, executed.args.confirmer) == (admin, admin2)
    (granted,) = stack.registry.events.RoleGranted().process_receipt(receipt, errors=DISCARD)
    assert granted.args.sender == fe.address  # on the target, FourEyes made the call
    assert four_eyes.proposal(fe, made.proposal_id).state == ProposalState.EXECUTED


def test_an_operator_cannot_propose_or_confirm_an_admin_call_nor_a_stranger_anything(w3, stack, keys, fe, now,
                                                                                      revert_name):
    grant = four_eyes.propose(fe, grant_dave_operator(stack, keys), now() + HOUR)
    assert revert_name(grant, keys["operator"].address) == "FourEyesMissingRole"
    assert revert_name(grant, keys["alice"].address) == "FourEyesMissingRole"
    made = propose(w3, fe, grant_dave_operator(stack, keys), keys["admin"].address, now() + HOUR)
    assert revert_name(four_eyes.confirm(fe, made), keys["operator"].address) == "FourEyesMissingRole"
    write_off = four_eyes.propose(fe, stack.book.functions.writeOff(1), now() + HOUR)
    assert revert_name(write_off, keys["alice"].address) == "FourEyesMissingRole"
    assert revert_name(write_off, keys["admin"].address) == "FourEyesMissingRole"  # an operators' decision


def test_a_call_not_on_the_allow_list_cannot_be_proposed(stack, keys, fe, now, revert_name):
    operator, admin = keys["operator"].address, keys["admin"].address
    register = stack.registry.functions.registerBorrower(keys["alice"].address, b"\x11" * 32, now() + HOUR)
    assert revert_name(four_eyes.propose(fe, register, now() + HOUR), operator) == "FourEyesCallNotAllowed"
    assert revert_name(four_eyes.propose(fe, stack.book.functions.pause(), now() + HOUR), admin) == \
        "FourEyesCallNotAllowed"
    # No data at all: no function to look up.
    assert revert_name(fe.functions.propose(stack.book.address, b"", now() + HOUR), admin) == "FourEyesCallNotAllowed"


def test_an_expired_proposal_is_refused_and_an_expiry_must_be_in_the_future(w3, driver, stack, keys, fe, now,
                                                                          revert_name):
    admin, admin2 = keys["admin"].address, keys["admin2"].address
    assert revert_name(four_eyes.propose(fe, grant_dave_operator(stack, keys), now()), admin) == "FourEyesExpired"
    made = propose(w3, fe, grant_dave_operator(stack, keys), admin, now() + HOUR)
    driver.advance(HOUR + 1)
    assert revert_name(four_eyes.confirm(fe, made), admin2) == "FourEyesExpired"
    assert four_eyes.proposal(fe, made.proposal_id).expired(now())


def test_a_changed_proposal_is_refused(w3, stack, keys, fe, now, revert_name):
    admin, admin2 = keys["admin"].address, keys["admin2"].address
    made = propose(w3, fe, grant_dave_operator(stack, keys), admin, now() + HOUR)
    other_account = Call.of(stack.registry.functions.grantRole(OPERATOR_ROLE, keys["eve"].address), made.call.expires_at)
    other_target = Call(stack.anchor.address, made.call.data, made.call.expires_at)
    later = Call(made.call.target, made.call.data, made.call.expires_at + 1)
    for changed in (other_account, other_target, later):
        assert revert_name(four_eyes.confirm(fe, (made.proposal_id, changed)), admin2) == "FourEyesUnknownProposal"
    assert revert_name(four_eyes.confirm(fe, (b"\x07" * 32, made.call)), admin2) == "FourEyesUnknownProposal"
    assert not stack.registry.functions.hasRole(OPERATOR_ROLE, keys["eve"].address).call()


def test_an_executed_proposal_cannot_be_replayed_but_the_same_call_can_be_proposed_again(w3, stack, keys, fe, now,
                                                                                       revert_name):
    admin, admin2, dave = keys["admin"].address, keys["admin2"].address, keys["dave"].address
    made = propose(w3, fe, grant_dave_operator(stack, keys), admin, now() + HOUR)
    four_eyes.confirm(fe, made).transact({"from": admin2})
    assert revert_name(four_eyes.confirm(fe, made), admin2) == "FourEyesNotPending"
    assert revert_name(four_eyes.confirm(fe, made), keys["admin"].address) == "FourEyesNotPending"
    # Revoked, then the very same grant again: a new nonce, a new id.
    four_eyes.carry_out(w3, fe, stack.registry.functions.revokeRole(OPERATOR_ROLE, dave), admin2, admin)
    again = propose(w3, fe, grant_dave_operator(stack, keys), admin, made.call.expires_at)
    assert again.call == made.call and again.proposal_id != made.proposal_id
    four_eyes.confirm(fe, again).transact({"from": admin2})
    assert stack.registry.functions.hasRole(OPERATOR_ROLE, dave).call()


def test_cancel_by_the_proposer_or_an_admin_only_and_a_cancelled_proposal_cannot_be_confirmed(w3, stack, keys, fe,
                                                                                              now, revert_name):
    admin, admin2 = keys["admin"].address, keys["admin2"].address
    made = propose(w3, fe, grant_dave_operator(stack, keys), admin, now() + HOUR)
    assert revert_name(four_eyes.cancel(fe, made.proposal_id), keys["operator"].address) == "FourEyesNotProposer"
    receipt = w3.eth.wait_for_transaction_receipt(four_eyes.cancel(fe, made.proposal_id).transact({"from": admin}))
    (cancelled,) = fe.events.Cancelled().process_receipt(receipt, errors=DISCARD)
    assert cancelled.args.actor == admin
    assert revert_name(four_eyes.confirm(fe, made), admin2) == "FourEyesNotPending"
    assert revert_name(four_eyes.cancel(fe, made.proposal_id), admin) == "FourEyesNotPending"
    # An admin may withdraw another's proposal.
    second = propose(w3, fe, grant_dave_operator(stack, keys), admin, now() + HOUR)
    assert four_eyes.awaiting_confirmation(fe, now()) == [second]
    four_eyes.cancel(fe, second.proposal_id).transact({"from": admin2})
    assert four_eyes.proposal(fe, second.proposal_id).state == ProposalState.CANCELLED
    assert four_eyes.awaiting_confirmation(fe, now()) == []


def test_the_targets_revert_comes_back_and_leaves_the_proposal_pending(w3, stack, keys, fe, now, revert_name):
    admin, admin2 = keys["admin"].address, keys["admin2"].address
    made = propose(w3, fe, stack.catalog.functions.setCostCap(0), admin, now() + HOUR)
    assert revert_name(four_eyes.confirm(fe, made), admin2) == "ProductCatalogInvalidSetting"
    assert four_eyes.proposal(fe, made.proposal_id).state == ProposalState.PENDING


def test_four_eyes_administers_itself_only_through_its_own_proposals(w3, stack, keys, fe, now, revert_name):
    admin, admin2, dave = keys["admin"].address, keys["admin2"].address, keys["dave"].address
    # An admin alone cannot name a second operator of their own, nor change what may be proposed.
    assert revert_name(fe.functions.grantRole(OPERATOR_ROLE, dave), admin) == "FourEyesOnlySelf"
    assert revert_name(fe.functions.revokeRole(OPERATOR_ROLE, keys["operator"].address), admin) == "FourEyesOnlySelf"
    register = (stack.registry.address, stack.registry.functions.registerBorrower(dave, b"\x11" * 32, 1)
                ._encode_transaction_data()[:10], OPERATOR_ROLE)
    register = (register[0], Web3.to_bytes(hexstr=register[1]), register[2])
    assert revert_name(fe.functions.setAllowedCall(register, True), admin) == "FourEyesOnlySelf"

    four_eyes.carry_out(w3, fe, fe.functions.grantRole(OPERATOR_ROLE, dave), admin, admin2)
    assert fe.functions.hasRole(OPERATOR_ROLE, dave).call()
    four_eyes.carry_out(w3, fe, fe.functions.setAllowedCall(register, True), admin2, admin)
    assert fe.functions.allowedCall(register[0], register[1]).call() == [True, OPERATOR_ROLE]


def test_paused_four_eyes_takes_no_proposal_nor_confirmation_but_a_cancel(w3, stack, keys, fe, now, revert_name):
    admin, admin2 = keys["admin"].address, keys["admin2"].address
    made = propose(w3, fe, grant_dave_operator(stack, keys), admin, now() + HOUR)
    w3.eth.wait_for_transaction_receipt(fe.functions.pause().transact({"from": keys["pauser"].address}))
    assert revert_name(four_eyes.propose(fe, grant_dave_operator(stack, keys), now() + HOUR), admin) == "EnforcedPause"
    assert revert_name(four_eyes.confirm(fe, made), admin2) == "EnforcedPause"
    four_eyes.cancel(fe, made.proposal_id).transact({"from": admin})


def test_the_deploy_allow_list_is_on_chain(stack, fe):
    from ledger.deploy import FOUR_EYES_CALLS, selector

    for call in FOUR_EYES_CALLS:
        target = stack.by_name(call.contract).address
        assert fe.functions.allowedCall(target, selector(call.contract, call.function)).call() == \
            [True, role_id(call.role)], call


# ---- what the contracts leave to FourEyes: write-offs, large payouts, products; and the automatic policy -----


def defaulted_loan(driver, keys, loan_terms) -> int:
    loan_id = driver.active_loan(keys["alice"], loan_terms)
    driver.advance(30 * DAY + loan_terms.defaultAfter + DAY)
    driver.send(driver.stack.book.functions.declareDefault(loan_id), keys["oracle"])
    return loan_id


def test_one_operator_cannot_write_off_alone_two_can(w3, driver, stack, keys, fe, now, loan_terms, revert_name):
    operator, operator2 = keys["operator"].address, keys["operator2"].address
    loan_id = defaulted_loan(driver, keys, loan_terms)
    write_off = stack.book.functions.writeOff(loan_id)
    for alone in (operator, operator2, keys["admin"].address):
        assert revert_name(write_off, alone) == "AccessControlUnauthorizedAccount"
    made = propose(w3, fe, write_off, operator, now() + HOUR)
    assert revert_name(four_eyes.confirm(fe, made), operator) == "FourEyesSamePerson"
    assert stack.book.functions.loanOf(loan_id).call()[2] == DEFAULTED

    receipt = w3.eth.wait_for_transaction_receipt(four_eyes.confirm(fe, made).transact({"from": operator2}))
    assert stack.book.functions.loanOf(loan_id).call()[2] == WRITTEN_OFF
    (executed,) = fe.events.Executed().process_receipt(receipt, errors=DISCARD)
    assert (executed.args.proposer, executed.args.confirmer) == (operator, operator2)
    (written,) = stack.book.events.LoanWrittenOff().process_receipt(receipt, errors=DISCARD)
    assert written.args.actor == fe.address


def test_a_payout_above_the_threshold_needs_two_operators_at_or_below_it_one(w3, driver, stack, keys, fe, loan_terms,
                                                                           revert_name):
    book, operator = stack.book, keys["operator"].address
    admin, admin2 = keys["admin"].address, keys["admin2"].address
    assert book.functions.payoutThreshold().call() == Settings.payout_threshold
    # The threshold is an admin setting, changed by two admins like the others; one unit below this loan.
    receipt = four_eyes.carry_out(w3, fe, book.functions.setPayoutThreshold(loan_terms.principal - 1), admin, admin2)
    (changed,) = book.events.PayoutThresholdChanged().process_receipt(receipt, errors=DISCARD)
    assert (changed.args.previousThreshold, changed.args.newThreshold) == (Settings.payout_threshold,
                                                                          loan_terms.principal - 1)
    assert revert_name(book.functions.setPayoutThreshold(0), operator) == "AccessControlUnauthorizedAccount"

    driver.register(keys["alice"])
    driver.score(keys["alice"])
    above = driver.request(keys["alice"], loan_terms)
    assert revert_name(book.functions.approve(above), operator) == "LoanBookNeedsFourEyes"
    driver.by_two_operators(book.functions.approve(above))
    assert book.functions.loanOf(above).call()[2] == APPROVED

    # At the threshold: one operator approves alone.
    four_eyes.carry_out(w3, fe, book.functions.setPayoutThreshold(loan_terms.principal), admin2, admin)
    at = driver.request(keys["alice"], loan_terms)
    driver.approve(at)
    assert book.functions.loanOf(at).call()[2] == APPROVED


def test_the_policy_approves_only_what_its_product_made_auto_approvable(driver, stack, keys, loan_terms, revert_name):
    book, policy = stack.book, keys["policy"].address
    driver.product(loan_terms)  # opens the catalogue's ceilings
    # Up to 2x the principal, the policy's part up to 1x.
    product = replace(offering(loan_terms, "policy"), max_principal=2 * loan_terms.principal, auto_approve=True,
                      auto_approve_max_principal=loan_terms.principal)
    driver.by_two_operators(stack.catalog.functions.createProduct(product.as_tuple(stack.catalog)))
    product_id = stack.catalog.functions.productCount().call()
    driver.register(keys["alice"])
    driver.score(keys["alice"])
    within = driver.apply(keys["alice"], product_id, 1, loan_terms.principal, loan_terms.installments)
    beyond = driver.apply(keys["alice"], product_id, 1, loan_terms.principal + 1, loan_terms.installments)
    not_for_it = driver.request(keys["alice"], loan_terms)  # a product that leaves every loan to a person

    assert revert_name(book.functions.approve(beyond), policy) == "LoanBookNotAutoApprovable"
    assert revert_name(book.functions.approve(not_for_it), policy) == "LoanBookNotAutoApprovable"
    driver.send(book.functions.approve(within), keys["policy"])
    assert book.functions.loanOf(within).call()[2] == APPROVED
    # Nothing else: not a rejection of what it may not approve, a write-off, a product.
    assert revert_name(book.functions.reject(beyond, b"\0" * 32), policy) == "LoanBookNotAutoApprovable"
    assert revert_name(book.functions.writeOff(within), policy) == "AccessControlUnauthorizedAccount"
    assert revert_name(stack.catalog.functions.retireProduct(product_id), policy) == "AccessControlUnauthorizedAccount"
    # A person still decides the rest: an operator approves the one beyond the policy's limit.
    driver.approve(beyond)


def test_a_product_needs_two_operators(w3, driver, stack, keys, fe, now, revert_name):
    catalog, operator = stack.catalog, keys["operator"].address
    create = catalog.functions.createProduct(SAMPLE_PRODUCT.as_tuple(catalog))
    assert revert_name(create, operator) == "AccessControlUnauthorizedAccount"
    made = propose(w3, fe, create, operator, now() + HOUR)
    assert revert_name(four_eyes.confirm(fe, made), operator) == "FourEyesSamePerson"
    w3.eth.wait_for_transaction_receipt(four_eyes.confirm(fe, made).transact({"from": keys["operator2"].address}))
    product_id = catalog.functions.productCount().call()
    assert read_product(catalog, product_id, 1) == SAMPLE_PRODUCT
    for change in (catalog.functions.changeProduct(product_id, SAMPLE_PRODUCT.as_tuple(catalog)),
                   catalog.functions.retireProduct(product_id)):
        assert revert_name(change, operator) == "AccessControlUnauthorizedAccount"
    driver.by_two_operators(catalog.functions.retireProduct(product_id))
    assert read_status(catalog, product_id).retired


def test_two_operators_sign_a_write_off_a_roleless_relayer_relays_and_the_events_name_both(
        w3, driver, stack, keys, fe, now, loan_terms, revert_name):
    """Through the forwarder (ledger.forwarding), as the API relays: each operator signs their own request."""
    operator, operator2 = keys["operator"], keys["operator2"]
    relayer = ChainClient(w3, keys["eve"], stack.errors)
    loan_id = defaulted_loan(driver, keys, loan_terms)
    expires_at = now() + HOUR

    typed = build_request(stack.forwarder, operator.address,
                          four_eyes.propose(fe, stack.book.functions.writeOff(loan_id), expires_at), now() + HOUR)
    made = four_eyes.proposed(fe, relay(relayer, stack.forwarder, typed, sign_request(typed, operator)))
    assert made.proposer == operator.address
    # The same operator confirming through the forwarder is still the same person.
    typed = build_request(stack.forwarder, operator.address, four_eyes.confirm(fe, made), now() + HOUR, 500_000)
    with pytest.raises(ContractRevert) as same:
        relay(relayer, stack.forwarder, typed, sign_request(typed, operator))
    assert same.value.name == "FourEyesSamePerson"

    typed = build_request(stack.forwarder, operator2.address, four_eyes.confirm(fe, made), now() + HOUR)
    receipt = relay(relayer, stack.forwarder, typed, sign_request(typed, operator2))
    (executed,) = fe.events.Executed().process_receipt(receipt, errors=DISCARD)
    assert (executed.args.proposer, executed.args.confirmer) == (operator.address, operator2.address)
    assert stack.book.functions.loanOf(loan_id).call()[2] == WRITTEN_OFF


# ---- the deploying admin's own DEFAULT_ADMIN_ROLE ----------------------------------------------------------


def test_a_deploy_where_the_admin_keeps_its_role_lets_it_grant_roles_alone(stack, keys, revert_name):
    """What `--admin-keeps` (admin_renounces=False, as the session's stack is deployed) leaves open, and why it is
    not the default: the admin's key alone can grant any role on the five contracts, FOUR_EYES_ROLE to itself
    included, and change the admin settings."""
    admin = keys["admin"].address
    for name in RENOUNCED_BY_ADMIN:
        assert stack.by_name(name).functions.hasRole(ADMIN_ROLE, admin).call(), name
    grant_itself = stack.book.functions.grantRole(role_id("FOUR_EYES_ROLE"), admin)
    with pytest.raises(AssertionError, match="did not revert"):
        revert_name(grant_itself, admin)


def test_by_default_the_admin_renounces_so_role_grants_and_admin_settings_need_two_admins(w3, keys, revert_name):
    admin, admin2, dave = keys["admin"].address, keys["admin2"].address, keys["dave"].address
    stack = deploy_stack(w3, admin, operator=keys["operator"].address, oracle=keys["oracle"].address,
                         pauser=keys["pauser"].address, score_signer=keys["signer"].address, second_admin=admin2,
                         second_operator=keys["operator2"].address, policy=keys["policy"].address)  # the default
    fe = stack.four_eyes
    for name in RENOUNCED_BY_ADMIN:
        contract = stack.by_name(name)
        assert not contract.functions.hasRole(ADMIN_ROLE, admin).call(), name
        assert contract.functions.hasRole(ADMIN_ROLE, fe.address).call(), name
        assert stack.manifest.grants[name]["DEFAULT_ADMIN_ROLE"] == [fe.address], name
    assert fe.functions.hasRole(ADMIN_ROLE, admin).call()  # an admin still: one of FourEyes' two

    # Alone, the admin can grant no role on any of them, nor give itself the power to write off, nor change a
    # setting.
    for name in RENOUNCED_BY_ADMIN:
        assert revert_name(stack.by_name(name).functions.grantRole(OPERATOR_ROLE, dave), admin) == \
            "AccessControlUnauthorizedAccount", name
    assert revert_name(stack.book.functions.grantRole(role_id("FOUR_EYES_ROLE"), admin), admin) == \
        "AccessControlUnauthorizedAccount"
    assert revert_name(stack.catalog.functions.setCostCap(2_000), admin) == "AccessControlUnauthorizedAccount"
    # Two admins can.
    four_eyes.carry_out(w3, fe, stack.registry.functions.grantRole(OPERATOR_ROLE, dave), admin, admin2)
    assert stack.registry.functions.hasRole(OPERATOR_ROLE, dave).call()
    four_eyes.carry_out(w3, fe, stack.catalog.functions.setCostCap(2_000), admin2, admin)
    assert stack.catalog.functions.costCapBps().call() == 2_000
