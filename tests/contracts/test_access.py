"""Who may change what: every mutating function of every contract, pause, and the credit oracle's signatures.

The functions are enumerated from the compiled ABIs, so a new mutating function without an entry here
fails the test instead of going unchecked.
"""

from __future__ import annotations

import pytest
from eth_account import Account
from web3 import Web3

from ledger import typed_data
from ledger.artifacts import compile_contracts
from ledger.samples import SAMPLE_PRODUCT

DAY = 86_400
ZERO32 = b"\0" * 32
REF = b"r".ljust(32, b"\0")
PRODUCT = SAMPLE_PRODUCT.as_tuple(Web3().eth.contract(abi=compile_contracts()["ProductCatalog"]["abi"]))

# (contract, function) -> (the role holder allowed to call it, what a stranger gets)
RULES = {
    ("registry", "registerBorrower"): ("operator", "AccessControlUnauthorizedAccount"),
    ("registry", "updateBorrower"): ("operator", "AccessControlUnauthorizedAccount"),
    ("registry", "revokeBorrower"): ("operator", "AccessControlUnauthorizedAccount"),
    # Wallet recovery (test_wallet_recovery.py): only the oracle, bringing a completed recovery KYC on-chain.
    ("registry", "recoverBorrower"): ("oracle", "AccessControlUnauthorizedAccount"),
    ("oracle", "pushScores"): ("oracle", "AccessControlUnauthorizedAccount"),
    ("oracle", "setMaxScoreAge"): ("admin", "AccessControlUnauthorizedAccount"),
    ("oracle", "setSignerThreshold"): ("admin", "AccessControlUnauthorizedAccount"),
    ("book", "approve"): ("operator", "AccessControlUnauthorizedAccount"),
    ("book", "reject"): ("operator", "AccessControlUnauthorizedAccount"),
    # Only FourEyes (two operators, or two admins): no key may call these alone (test_four_eyes.py).
    ("book", "writeOff"): ("four_eyes", "AccessControlUnauthorizedAccount"),
    ("book", "setPayoutThreshold"): ("admin", "AccessControlUnauthorizedAccount"),
    ("book", "confirmDisbursement"): ("oracle", "AccessControlUnauthorizedAccount"),
    ("book", "confirmRepayment"): ("oracle", "AccessControlUnauthorizedAccount"),
    ("book", "confirmDisbursements"): ("oracle", "AccessControlUnauthorizedAccount"),
    ("book", "confirmRepayments"): ("oracle", "AccessControlUnauthorizedAccount"),
    ("book", "confirmCreditRefund"): ("oracle", "AccessControlUnauthorizedAccount"),
    ("book", "reverseRepayment"): ("oracle", "AccessControlUnauthorizedAccount"),
    ("book", "reverseDisbursement"): ("oracle", "AccessControlUnauthorizedAccount"),
    ("book", "declareDefault"): ("oracle", "LoanBookUnauthorizedDefault"),
    ("book", "cancel"): ("alice", "LoanBookNotBorrower"),
    # Hardship reschedule (test_hardship_reschedule.py): an operator offers, the borrower asks and accepts.
    ("book", "offerReschedule"): ("operator", "AccessControlUnauthorizedAccount"),
    ("book", "requestReschedule"): ("alice", "LoanBookNotBorrower"),
    ("book", "acceptReschedule"): ("alice", "LoanBookNotBorrower"),
    # Anyone may relay these: the borrower's signature is the authority, so a stranger's is refused.
    ("book", "requestLoan"): ("eve", "LoanBookInvalidSignature"),
    ("book", "cancelWithSignature"): ("eve", "LoanBookInvalidSignature"),
    ("book", "acceptRescheduleWithSignature"): ("eve", "LoanBookInvalidSignature"),
    # Batch items run only as calls from the book to itself.
    ("book", "applyDisbursementItem"): (None, "LoanBookOnlySelf"),
    ("book", "applyRepaymentItem"): (None, "LoanBookOnlySelf"),
    ("anchor", "anchor"): ("oracle", "AccessControlUnauthorizedAccount"),
    ("catalog", "createProduct"): ("four_eyes", "AccessControlUnauthorizedAccount"),
    ("catalog", "changeProduct"): ("four_eyes", "AccessControlUnauthorizedAccount"),
    ("catalog", "retireProduct"): ("four_eyes", "AccessControlUnauthorizedAccount"),
    ("catalog", "setCostCap"): ("admin", "AccessControlUnauthorizedAccount"),
    ("catalog", "setLateChargeCeilings"): ("admin", "AccessControlUnauthorizedAccount"),
}
# FourEyes: the role a proposal needs is checked on FourEyes itself (an operators' call here); confirm and cancel
# of a proposal that does not exist are refused before any role is looked at; its own administration goes
# only through its own confirmed proposals (test_four_eyes.py has the stories).
RULES |= {
    ("four_eyes", "propose"): ("operator", "FourEyesMissingRole"),
    ("four_eyes", "confirm"): ("operator2", "FourEyesUnknownProposal"),
    ("four_eyes", "cancel"): ("operator", "FourEyesUnknownProposal"),
    ("four_eyes", "setAllowedCall"): (None, "FourEyesOnlySelf"),
}
for _contract in ("registry", "oracle", "book", "anchor", "catalog", "four_eyes"):
    RULES[(_contract, "pause")] = ("pauser", "AccessControlUnauthorizedAccount")
    RULES[(_contract, "unpause")] = ("pauser", "AccessControlUnauthorizedAccount")
    RULES[(_contract, "grantRole")] = ("admin", "AccessControlUnauthorizedAccount")
    RULES[(_contract, "revokeRole")] = ("admin", "AccessControlUnauthorizedAccount")
    RULES[(_contract, "renounceRole")] = ("admin", "AccessControlBadConfirmation")  # only for one's own account
RULES[("four_eyes", "grantRole")] = (None, "FourEyesOnlySelf")
RULES[("four_eyes", "revokeRole")] = (None, "FourEyesOnlySelf")

# Still callable while paused: role administration, the pause switch itself, and settings an admin may
# need to change during an incident. Everything else must stop.
PAUSE_EXEMPT = {"grantRole", "revokeRole", "renounceRole", "pause", "unpause", "setMaxScoreAge",
                "setSignerThreshold", "applyDisbursementItem", "applyRepaymentItem", "setPayoutThreshold",
                "setCostCap", "setLateChargeCeilings", ("four_eyes", "cancel"), ("four_eyes", "setAllowedCall")}
ARTIFACT = {"registry": "BorrowerRegistry", "oracle": "CreditOracle", "book": "LoanBook", "anchor": "ActionLogAnchor",
            "catalog": "ProductCatalog", "four_eyes": "FourEyes"}


def who(stack, keys, holder: str) -> str:
    """The address of a RULES holder: a test account, or the FourEyes contract (an eth_call may come from it)."""
    return stack.four_eyes.address if holder == "four_eyes" else keys[holder].address


def pause_exempt(contract: str, name: str) -> bool:
    return (contract, name) in PAUSE_EXEMPT or name in PAUSE_EXEMPT


def mutating_functions() -> set[tuple[str, str]]:
    artifacts = compile_contracts()
    return {(short, item["name"]) for short, name in ARTIFACT.items() for item in artifacts[name]["abi"]
            if item["type"] == "function" and item["stateMutability"] in ("nonpayable", "payable")}


def arguments(contract: str, name: str, keys, loan_terms, loan_id: int, stack=None) -> tuple:
    alice = keys["alice"].address
    if contract == "four_eyes" and name in ("propose", "confirm", "cancel", "setAllowedCall"):
        write_off = stack.book.functions.writeOff(loan_id)._encode_transaction_data()
        return {"propose": (stack.book.address, write_off, 2**39),
                "confirm": (ZERO32, stack.book.address, write_off, 2**39), "cancel": (ZERO32,),
                "setAllowedCall": ((stack.book.address, b"\0" * 4, ZERO32), True)}[name]
    item = (loan_id, REF, 1, 1)
    by_name = {
        "registerBorrower": (keys["bob"].address, b"\x22" * 32, 2**39), "updateBorrower": (alice, b"\x33" * 32, 2**39),
        "revokeBorrower": (alice, ZERO32),
        "recoverBorrower": (alice, keys["dave"].address, b"\x33" * 32, 2**39), "pushScores": (99, 1, [(alice, 700, 1000)], [b"\0" * 65]),
        "setMaxScoreAge": (DAY,), "setSignerThreshold": (1,), "approve": (loan_id,), "reject": (loan_id, ZERO32),
        "writeOff": (loan_id,), "setPayoutThreshold": (1,), "confirmDisbursement": item, "confirmRepayment": item,
        "confirmDisbursements": ([item],), "confirmRepayments": ([item],),
        "confirmCreditRefund": item, "reverseRepayment": (loan_id, REF, b"\x55" * 32, (1, 0, 0, 0, 0, 0), 1),
        "reverseDisbursement": (loan_id, REF, b"\x55" * 32, 1),
        "declareDefault": (loan_id,), "cancel": (loan_id,), # The `requested` fixture's product (id 1, version 1) offers exactly loan_terms.
        "requestLoan": ((1, 1, loan_terms.principal, loan_terms.installments), alice, 2**40, b"\0" * 65),
        "cancelWithSignature": (loan_id, 2**40, b"\0" * 65), "applyDisbursementItem": (item,),
        "applyRepaymentItem": (item,), "anchor": (b"\x44" * 32, 1), "pause": (), "unpause": (),
        "grantRole": (ZERO32, keys["eve"].address), "revokeRole": (ZERO32, keys["admin"].address),
        "renounceRole": (ZERO32, keys["admin"].address),
        "createProduct": (PRODUCT,), "changeProduct": (1, PRODUCT), "retireProduct": (1,), "setCostCap": (2_000,),
        "setLateChargeCeilings": (3_000, 400),
        "offerReschedule": (loan_id, 6, 2**39), "requestReschedule": (loan_id, 6), "acceptReschedule": (loan_id,),
        "acceptRescheduleWithSignature": (loan_id, 2**40, b"\0" * 65),
    }
    return by_name[name]


@pytest.fixture
def requested(driver, keys, loan_terms) -> int:
    driver.register(keys["alice"])
    driver.score(keys["alice"])
    return driver.request(keys["alice"], loan_terms)


def test_every_mutating_function_has_a_rule():
    assert mutating_functions() == set(RULES)


@pytest.mark.parametrize("contract,name", sorted(RULES))
def test_a_stranger_is_refused_and_the_holder_is_not(stack, keys, loan_terms, requested, revert_name, contract, name):
    fn = getattr(getattr(stack, contract).functions, name)(*arguments(contract, name, keys, loan_terms, requested, stack))
    holder, stranger_error = RULES[(contract, name)]
    assert revert_name(fn, keys["carol"].address) == stranger_error
    if holder is not None:
        # The holder may still be refused for other reasons (dummy arguments), never for want of permission.
        try:
            outcome = revert_name(fn, who(stack, keys, holder))
        except AssertionError as exc:
            assert "did not revert" in str(exc)
            return
        assert outcome not in GATED_REFUSALS | {"LoanBookNotBorrower"}


# Who may call each role-gated function: the RULES holder, and both who may declare a default.
ROLE_HOLDERS = ("admin", "operator", "oracle", "pauser", "signer", "policy")
GATED_REFUSALS = {"AccessControlUnauthorizedAccount", "LoanBookUnauthorizedDefault", "FourEyesMissingRole"}
GATED = {key: {holder} for key, (holder, refusal) in RULES.items() if refusal in GATED_REFUSALS}
GATED[("book", "declareDefault")] = {"operator", "oracle"}
GATED[("book", "approve")] = {"operator", "policy"}  # the policy: only autoApprovable loans (test_four_eyes.py)
GATED[("book", "reject")] = {"operator", "policy"}  # the same loans as it may approve (test_policy_role.py)
# A borrower is registered (or updated) by an operator's signed decision, or by the oracle bringing a completed KYC.
GATED[("registry", "registerBorrower")] = GATED[("registry", "updateBorrower")] = {"operator", "oracle"}
# How many role-gated functions each holder may call, counted from the contracts by hand: the admin its
# five settings and grantRole/revokeRole on five contracts; the operator 3 registry + 4 book (approve, reject,
# declareDefault, offerReschedule) + FourEyes.propose; the oracle 3 registry (register, update, recover) + pushScores + 8 book + anchor;
# the pauser pause/unpause on six; the score signer none; the policy approve and reject (autoApprovable loans
# only). Write-offs and products: nobody alone (FourEyes).
PERMITTED_COUNT = {"admin": 15, "operator": 8, "oracle": 13, "pauser": 12, "signer": 0, "policy": 2}


@pytest.mark.parametrize("holder", ROLE_HOLDERS)
def test_each_role_holder_is_refused_everything_its_roles_do_not_cover(stack, keys, loan_terms, requested,
                                                                       revert_name, holder):
    """Least privilege as deployed: a holder's roles open only their own functions, on every contract, and
    every other role-gated function of every contract refuses it."""
    permitted = []
    for (contract, name), allowed in sorted(GATED.items()):
        fn = getattr(getattr(stack, contract).functions, name)(*arguments(contract, name, keys, loan_terms, requested, stack))
        refusal = RULES[(contract, name)][1]
        if holder not in allowed:
            assert revert_name(fn, who(stack, keys, holder)) == refusal, f"{holder} may call {contract}.{name}"
            continue
        try:  # dummy arguments may be refused, never for want of permission
            assert revert_name(fn, who(stack, keys, holder)) != refusal, f"{holder} refused {contract}.{name}"
        except AssertionError as exc:
            if "did not revert" not in str(exc):
                raise
        permitted.append(f"{contract}.{name}")
    assert len(permitted) == PERMITTED_COUNT[holder], permitted


def test_pause_stops_every_state_change_until_unpaused(w3, stack, keys, loan_terms, requested, revert_name, driver):
    for contract in ARTIFACT:
        assert revert_name(getattr(stack, contract).functions.pause(), keys["operator"].address) == \
            "AccessControlUnauthorizedAccount"
        driver_send = getattr(stack, contract).functions.pause().transact({"from": keys["pauser"].address})
        w3.eth.wait_for_transaction_receipt(driver_send)
    for contract, name in sorted(RULES):
        holder, _ = RULES[(contract, name)]
        if pause_exempt(contract, name):
            continue
        fn = getattr(getattr(stack, contract).functions, name)(*arguments(contract, name, keys, loan_terms, requested, stack))
        assert revert_name(fn, who(stack, keys, holder)) == "EnforcedPause", f"{contract}.{name} runs while paused"
    for contract in ARTIFACT:
        w3.eth.wait_for_transaction_receipt(getattr(stack, contract).functions.unpause().transact({"from": keys["pauser"].address}))
    # Unpaused, nothing is refused for the pause any more (dummy arguments may still be refused otherwise).
    for contract, name in sorted(RULES):
        holder, _ = RULES[(contract, name)]
        if pause_exempt(contract, name):
            continue
        fn = getattr(getattr(stack, contract).functions, name)(*arguments(contract, name, keys, loan_terms, requested, stack))
        try:
            assert revert_name(fn, who(stack, keys, holder)) != "EnforcedPause", f"{contract}.{name} still paused"
        except AssertionError as exc:
            if "did not revert" not in str(exc):
                raise
    driver.approve(requested)
    assert stack.book.functions.loanOf(requested).call()[2] == 2  # Approved


def _push(w3, stack, keys, report_id: int, signers, *, chain_id=None, verifying=None, updates=None):
    updates = updates or [(keys["alice"].address, 700, 100_000)]
    message = typed_data.score_report(chain_id=chain_id or w3.eth.chain_id, oracle=verifying or stack.oracle.address,
                                      report_id=report_id, model_version=3, updates=updates)
    signatures = [typed_data.sign(signer.key, message) for signer in signers]
    return stack.oracle.functions.pushScores(report_id, 3, updates, signatures)


def test_score_reports_need_the_signers_quorum_fresh_ids_and_this_domain(w3, stack, keys, revert_name):
    oracle, signer = keys["oracle"].address, keys["signer"]
    assert revert_name(_push(w3, stack, keys, 1, [keys["alice"]]), oracle) == "OracleInvalidSigner"
    assert revert_name(_push(w3, stack, keys, 1, [signer], chain_id=1), oracle) == "OracleInvalidSigner"
    assert revert_name(_push(w3, stack, keys, 1, [signer], verifying=stack.book.address), oracle) == "OracleInvalidSigner"
    assert revert_name(_push(w3, stack, keys, 1, []), oracle) == "OracleInsufficientSignatures"

    w3.eth.wait_for_transaction_receipt(_push(w3, stack, keys, 5, [signer]).transact({"from": oracle}))
    assert stack.oracle.functions.scoreOf(keys["alice"].address).call()[:2] == (700, 100_000)
    assert revert_name(_push(w3, stack, keys, 5, [signer]), oracle) == "OracleStaleReport"  # replay
    assert revert_name(_push(w3, stack, keys, 4, [signer]), oracle) == "OracleStaleReport"  # older id

    # A quorum of two distinct signers, in ascending address order.
    second = Account.create()
    admin = keys["admin"].address
    role = stack.oracle.functions.SCORE_SIGNER_ROLE().call()
    w3.eth.wait_for_transaction_receipt(stack.oracle.functions.grantRole(role, second.address).transact({"from": admin}))
    w3.eth.wait_for_transaction_receipt(stack.oracle.functions.setSignerThreshold(2).transact({"from": admin}))
    ordered = sorted([signer, second], key=lambda a: int(a.address, 16))
    assert revert_name(_push(w3, stack, keys, 6, [signer]), oracle) == "OracleInsufficientSignatures"
    assert revert_name(_push(w3, stack, keys, 6, [signer, signer]), oracle) == "OracleInvalidSigner"
    assert revert_name(_push(w3, stack, keys, 6, ordered[::-1]), oracle) == "OracleInvalidSigner"
    updates = [(keys["bob"].address, 640, 50_000)]
    receipt = w3.eth.wait_for_transaction_receipt(
        _push(w3, stack, keys, 6, ordered, updates=updates).transact({"from": oracle}))
    assert receipt.status == 1
    assert stack.oracle.functions.scoreOf(keys["bob"].address).call()[:2] == (640, 50_000)


def test_a_revoked_role_or_rotated_signer_loses_its_power_at_once(w3, stack, keys, requested, revert_name, driver):
    admin, operator, oracle = keys["admin"].address, keys["operator"].address, keys["oracle"].address
    book_operator = stack.book.functions.OPERATOR_ROLE().call()
    w3.eth.wait_for_transaction_receipt(stack.book.functions.revokeRole(book_operator, operator).transact({"from": admin}))
    assert revert_name(stack.book.functions.approve(requested), operator) == "AccessControlUnauthorizedAccount"
    # Roles are per contract: the same key still operates the registry.
    assert stack.registry.functions.hasRole(stack.registry.functions.OPERATOR_ROLE().call(), operator).call()

    # Rotating the score signer: grant the new key, revoke the old; the old key's reports are refused.
    new_signer = Account.create()
    role = stack.oracle.functions.SCORE_SIGNER_ROLE().call()
    w3.eth.wait_for_transaction_receipt(
        stack.oracle.functions.grantRole(role, new_signer.address).transact({"from": admin}))
    w3.eth.wait_for_transaction_receipt(
        stack.oracle.functions.revokeRole(role, keys["signer"].address).transact({"from": admin}))
    report = stack.oracle.functions.lastReportId().call() + 1
    assert revert_name(_push(w3, stack, keys, report, [keys["signer"]]), oracle) == "OracleInvalidSigner"
    w3.eth.wait_for_transaction_receipt(_push(w3, stack, keys, report, [new_signer]).transact({"from": oracle}))
    assert stack.oracle.functions.lastReportId().call() == report


def test_a_signed_report_binds_every_entry_and_the_model_version(w3, stack, keys, revert_name):
    oracle, signer = keys["oracle"].address, keys["signer"]
    updates = [(keys["alice"].address, 700, 100_000), (keys["bob"].address, 650, 20_000)]
    message = typed_data.score_report(chain_id=w3.eth.chain_id, oracle=stack.oracle.address, report_id=1,
                                      model_version=3, updates=updates)
    signature = typed_data.sign(signer.key, message)
    raised = [updates[0], (keys["bob"].address, 650, 999_999)]
    for version, entries in [(3, raised), (3, updates[:1]), (4, updates)]:
        pushed = stack.oracle.functions.pushScores(1, version, entries, [signature])
        assert revert_name(pushed, oracle) == "OracleInvalidSigner"
    w3.eth.wait_for_transaction_receipt(
        stack.oracle.functions.pushScores(1, 3, updates, [signature]).transact({"from": oracle}))
    assert stack.oracle.functions.scoreOf(keys["bob"].address).call()[:2] == (650, 20_000)
