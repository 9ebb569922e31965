"""The operator's path: `loanledger deploy` runs `ape run deploy` against a node the test starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from ledger import manifest as manifests
from ledger.cli.roles import role_names, roles_report
from ledger.contracts import bind
from ledger.deploy import (
    GRANTS,
    RENOUNCED_BY_ADMIN,
    RoleHolders,
    build_manifest,
    contracts_checking,
    deploy_stack,
    grants_by_contract,
)
from ledger.manifest import CONTRACT_NAMES, DeployedContract
from ledger.node import (
    DEV_POLICY,
    DEV_RELAYER,
    DEV_SCORE_SIGNERS,
    DEV_SECOND_ADMIN,
    DEV_SECOND_OPERATOR,
    EphemeralNode,
    dev_account,
)

CLI = str(Path(sys.executable).with_name("loanledger"))


@pytest.fixture(scope="module")
def node():
    with EphemeralNode() as running:
        yield running


def deploy(node, manifest: Path, *args: str, **env_vars: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LOANLEDGER_NODE_URL": node.url, "LOANLEDGER_MANIFEST": str(manifest), **env_vars}
    return subprocess.run([CLI, "deploy", *args], env=env, capture_output=True, text=True, timeout=300)


def without_metadata(code: bytes) -> bytes:
    """Runtime code without its trailing CBOR metadata (its length is in the last two bytes)."""
    return code[: -(int.from_bytes(code[-2:], "big") + 2)]


def blank(code: bytes, address: str) -> bytes:
    """`code` with an immutable address in it (the trusted forwarder) zeroed."""
    found = bytes.fromhex(address.removeprefix("0x"))
    assert found in code
    return code.replace(found, bytes(20))


def assert_least_privilege(w3: Web3, bindings, holders: RoleHolders, admin_renounced: bool = False) -> None:
    """Every role of every contract (named by its ABI's `*_ROLE()` views) is held by exactly the table's
    holders (the admin keeps DEFAULT_ADMIN_ROLE unless it renounced it): hasRole for each holder, and no
    RoleGranted event since deployment names anyone else."""
    expected = grants_by_contract(holders, {name: c.address for name, c in bindings.manifest.contracts.items()},
                                  admin_renounced=admin_renounced)
    accounts = {holders.admin, holders.operator, holders.oracle, holders.pauser, *holders.score_signers,
                holders.second_admin, holders.second_operator, holders.policy, *holders.holders("relayer"),
                bindings.four_eyes.address} - {""}
    for name in CONTRACT_NAMES:
        contract = bindings.by_name(name)
        names = role_names(contract)
        assert set(expected[name]) <= set(names.values()), name  # the table names only roles the contract has
        for role_id, role in names.items():
            for account in accounts:
                holds = contract.functions.hasRole(role_id, account).call()
                assert holds == (account in expected[name].get(role, [])), (name, role, account)
        granted = contract.events.RoleGranted().get_logs(
            from_block=bindings.manifest.contracts[name].block, to_block="latest")
        renounced = [("DEFAULT_ADMIN_ROLE", holders.admin)] if admin_renounced and name in RENOUNCED_BY_ADMIN else []
        assert sorted((names[bytes(e.args.role)], e.args.account) for e in granted) == \
            sorted([(role, holder) for role, who in expected[name].items() for holder in who] + renounced), name


def test_the_grants_table_gives_each_role_only_where_a_function_checks_it():
    """The table's roles are the contracts' own: `FOUR_EYES_ROLE` on the catalogue because its product
    functions check it (and no OPERATOR_ROLE: an operator alone publishes nothing), never ORACLE_ROLE there; every pausable contract's PAUSER_ROLE to the pauser (FourEyes gets
    its own roles from its constructor); DEFAULT_ADMIN_ROLE to FourEyes only, so two admins can grant roles."""
    table = {(g.contract, g.role): g.holder for g in GRANTS}
    assert len(table) == len(GRANTS)  # one holder per role per contract
    assert all(g.reason for g in GRANTS)
    assert ("ProductCatalog", "ORACLE_ROLE") not in table and ("ActionLogAnchor", "OPERATOR_ROLE") not in table
    assert ("CreditOracle", "OPERATOR_ROLE") not in table and ("ProductCatalog", "OPERATOR_ROLE") not in table
    # The anchor is the oracle's alone; the relayer is admitted on the registry and holds nothing anywhere else.
    assert table[("ActionLogAnchor", "ORACLE_ROLE")] == "oracle"
    assert [(g.contract, g.role) for g in GRANTS if g.holder == "relayer"] == [("BorrowerRegistry", "RELAYER_ROLE")]
    assert table[("ProductCatalog", "FOUR_EYES_ROLE")] == table[("LoanBook", "FOUR_EYES_ROLE")] == "FourEyes"
    assert all(table[(name, "PAUSER_ROLE")] == "pauser" for name in CONTRACT_NAMES if name != "FourEyes")
    assert not any(g.contract == "FourEyes" for g in GRANTS)
    assert not any(g.holder == "admin" for g in GRANTS)
    assert [g.contract for g in GRANTS if g.role == "DEFAULT_ADMIN_ROLE"] == \
        [name for name in CONTRACT_NAMES if name != "FourEyes"]
    assert all(g.holder == "FourEyes" for g in GRANTS if g.role == "DEFAULT_ADMIN_ROLE")
    assert contracts_checking("ORACLE_ROLE") == ["BorrowerRegistry", "CreditOracle", "LoanBook", "ActionLogAnchor"]
    assert contracts_checking("RELAYER_ROLE") == ["BorrowerRegistry"]
    assert contracts_checking("SCORE_SIGNER_ROLE") == ["CreditOracle"]


def test_deploy_writes_the_manifest_grants_roles_is_a_no_op_again_and_redeploys_on_request(node, tmp_path):
    path = tmp_path / "local.json"
    first = deploy(node, path)
    assert first.returncode == 0, first.stdout + first.stderr
    manifest = manifests.load(path)
    w3: Web3 = node.w3
    assert manifest.network == "local" and manifest.chain_id == w3.eth.chain_id
    assert set(manifest.contracts) == set(CONTRACT_NAMES)
    assert manifest.forwarder is not None  # deployed first, kept apart: it has no roles
    assert all(len(w3.eth.get_code(c.address)) > 0 for c in (manifest.forwarder, *manifest.contracts.values()))
    for deployed in (manifest.forwarder, *manifest.contracts.values()):
        receipt = w3.eth.get_transaction_receipt(deployed.tx)
        assert (receipt.contractAddress, receipt.blockNumber) == (deployed.address, deployed.block)

    bindings = bind(w3, manifest)
    operator, oracle, pauser = (dev_account(i).address for i in range(1, 4))
    signers = tuple(dev_account(i).address for i in DEV_SCORE_SIGNERS)
    # The deploy's local defaults for FourEyes' second admin and operator, the automatic policy, the relayer.
    second_admin, second_operator, policy = (dev_account(i).address
                                             for i in (DEV_SECOND_ADMIN, DEV_SECOND_OPERATOR, DEV_POLICY))
    relayer = dev_account(DEV_RELAYER).address
    holders = RoleHolders(dev_account(0).address, operator, oracle, pauser, signers, second_admin, second_operator,
                          policy, relayer=relayer)
    # By default the deploying admin renounces its DEFAULT_ADMIN_ROLE on every contract but FourEyes: alone it can
    # grant no role (two admins do, through FourEyes, which holds it on each).
    assert_least_privilege(w3, bindings, holders, admin_renounced=True)
    assert manifest.roles["RELAYER_ROLE"] == [relayer]
    assert manifest.grants == grants_by_contract(holders, {name: c.address for name, c in manifest.contracts.items()},
                                                 admin_renounced=True)
    assert all(manifest.grants[name]["DEFAULT_ADMIN_ROLE"] == [manifest.address("FourEyes")]
               for name in RENOUNCED_BY_ADMIN)
    assert roles_report(bindings)["differences"] == []  # `loanledger roles` reads the chain as the manifest says
    assert manifest.grants["FourEyes"] == {"DEFAULT_ADMIN_ROLE": [dev_account(0).address, second_admin],
                                           "OPERATOR_ROLE": [operator, second_operator], "PAUSER_ROLE": [pauser]}
    # The local quorum: three score signers, each its own key; a report needs two of them.
    assert len(set(signers)) == 3 and manifest.roles["SCORE_SIGNER_ROLE"] == list(signers)
    assert manifest.grants["CreditOracle"]["SCORE_SIGNER_ROLE"] == list(signers)
    assert manifest.signer_threshold == bindings.oracle.functions.signerThreshold().call() == 2
    # The Ape-compiled contracts behave like the ones the rest of the system binds to.
    assert bindings.book.functions.loanCount().call() == 0
    assert bindings.forwarder.address == manifest.forwarder.address
    assert all(c.functions.trustedForwarder().call() == bindings.forwarder.address for c in bindings.all)
    # One plan: the web3 path describes the same deployment, but for where and when it happened.
    web3_path = deploy_stack(w3, dev_account(0).address, operator=operator, oracle=oracle, pauser=pauser,
                             score_signer=signers, signer_threshold=2, second_admin=second_admin,
                             second_operator=second_operator, policy=policy, relayer=relayer).manifest
    where_and_when = {"contracts", "forwarder", "deployed_at", "grants"}
    assert {k: v for k, v in asdict(web3_path).items() if k not in where_and_when} == \
        {k: v for k, v in asdict(manifest).items() if k not in where_and_when}
    # The grants name the same holders, but for FourEyes, which each deployment has its own of.
    four_eyes = {web3_path.address("FourEyes"): "FourEyes", manifest.address("FourEyes"): "FourEyes"}
    assert {c: {r: [four_eyes.get(h, h) for h in hs] for r, hs in g.items()} for c, g in web3_path.grants.items()} == \
        {c: {r: [four_eyes.get(h, h) for h in hs] for r, hs in g.items()} for c, g in manifest.grants.items()}
    # One compiler configuration: ape-config.yaml's solidity settings give the artifacts' code (the
    # contracts whose one immutable is the forwarder they trust compare once it is blanked; only the metadata
    # hash, which names paths, differs).
    for name in ("BorrowerRegistry", "ActionLogAnchor"):
        by_ape = blank(w3.eth.get_code(manifest.address(name)), manifest.forwarder.address)
        by_web3 = blank(w3.eth.get_code(web3_path.address(name)), web3_path.forwarder.address)
        assert without_metadata(by_ape) == without_metadata(by_web3), name

    block = w3.eth.block_number
    again = deploy(node, path)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert w3.eth.block_number == block
    assert manifests.load(path) == manifest

    # A role holder from the environment, the way an operator configures a real network; and --admin-keeps: the
    # admin keeps its own DEFAULT_ADMIN_ROLE (for a chain set up by hand: alone it can grant any role).
    new_operator = dev_account(9).address
    # The quorum too: the signers as a comma-separated list, the threshold a deploy setting.
    # And the relayer, as LOANLEDGER_DEPLOY_RELAYER.
    new_relayer = dev_account(8).address
    fresh = deploy(node, path, "--redeploy", "--admin-keeps", LOANLEDGER_DEPLOY_OPERATOR=new_operator,
                   LOANLEDGER_DEPLOY_RELAYER=new_relayer, LOANLEDGER_DEPLOY_SCORE_SIGNERS=",".join(signers[:2]),
                   LOANLEDGER_DEPLOY_SIGNER_THRESHOLD="2")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    renewed = manifests.load(path)
    assert {renewed.address(n) for n in CONTRACT_NAMES}.isdisjoint({manifest.address(n) for n in CONTRACT_NAMES})
    assert renewed.roles["OPERATOR_ROLE"] == [new_operator, second_operator]
    assert renewed.roles["SCORE_SIGNER_ROLE"] == list(signers[:2]) and renewed.signer_threshold == 2
    assert renewed.roles["RELAYER_ROLE"] == [new_relayer]
    assert_least_privilege(w3, bind(w3, renewed), RoleHolders(dev_account(0).address, new_operator, oracle,
                                                              pauser, signers[:2], second_admin, second_operator,
                                                              policy, relayer=new_relayer))
    assert bind(w3, renewed).oracle.functions.signerThreshold().call() == 2
    assert renewed.grants["LoanBook"]["DEFAULT_ADMIN_ROLE"] == [dev_account(0).address, renewed.address("FourEyes")]
    assert roles_report(bind(w3, renewed))["differences"] == []
    book = bind(w3, renewed).book
    assert not book.functions.hasRole(book.functions.OPERATOR_ROLE().call(), operator).call()

    # The environment variable still says it too (LOANLEDGER_DEPLOY_ADMIN_RENOUNCES, true unless set otherwise).
    kept = deploy(node, path, "--redeploy", LOANLEDGER_DEPLOY_ADMIN_RENOUNCES="false")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    again_kept = bind(w3, manifests.load(path))
    assert all(again_kept.by_name(n).functions.hasRole(bytes(32), dev_account(0).address).call()
               for n in RENOUNCED_BY_ADMIN)
    assert "renounced" not in kept.stdout and "this one key alone can grant any role" in kept.stdout + kept.stderr


def test_a_threshold_the_score_signers_cannot_meet_is_refused_before_anything_is_deployed(node, tmp_path):
    path = tmp_path / "local.json"
    block = node.w3.eth.block_number
    result = deploy(node, path, "--signer-threshold", "4")
    assert result.returncode != 0
    assert "a signer threshold of 4 cannot be met by 3 score signer(s)" in result.stdout + result.stderr
    assert not path.exists() and node.w3.eth.block_number == block


def test_score_signers_must_be_distinct():
    with pytest.raises(ValueError, match="distinct"):
        RoleHolders(*(dev_account(i).address for i in range(4)), (dev_account(4).address,) * 2)


def test_deploy_against_a_node_that_is_down_fails_with_one_clear_line(tmp_path):
    env = {**os.environ, "LOANLEDGER_NODE_URL": "http://127.0.0.1:9", "LOANLEDGER_MANIFEST": str(tmp_path / "x.json")}
    result = subprocess.run([CLI, "deploy"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "no Ethereum node answers at http://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.json").exists()


def test_deploy_to_a_named_network_needs_an_explicit_deployer_and_changes_nothing_without_one(node, tmp_path):
    path = tmp_path / "staging.json"
    block = node.w3.eth.block_number
    result = deploy(node, path, "--network", "staging")
    assert result.returncode != 0
    assert "on staging, give the deployer: --account" in result.stdout + result.stderr
    assert not path.exists()
    assert node.w3.eth.block_number == block


def test_a_manifest_from_before_per_contract_grants_still_loads_and_reads_its_roles_everywhere():
    holders = RoleHolders(*(dev_account(i).address for i in range(5)))
    new = build_manifest("local", 31337, holders, {"FourEyes": DeployedContract("0x" + "fe" * 20, 1, "0x")}, 0)
    assert new.granted("ProductCatalog") == {"DEFAULT_ADMIN_ROLE": [holders.admin, "0x" + "fe" * 20],
                                             "FOUR_EYES_ROLE": ["0x" + "fe" * 20], "PAUSER_ROLE": [holders.pauser]}
    old = json.loads(new.to_json())
    del old["grants"]
    loaded = manifests.Manifest.from_json(json.dumps(old))
    assert loaded.grants == {} and loaded.granted("ProductCatalog") == holders.as_manifest()
    assert manifests.Manifest.from_json(new.to_json()) == new


def test_transaction_allowed_admits_the_relayer_it_was_deployed_with_and_not_a_stranger(node):
    """On a permissioned chain the registry answers Besu's question: the relayer (no other role) may transact,
    a random address may not; without a relayer given none is admitted."""
    w3: Web3 = node.w3
    relayer, stranger = dev_account(DEV_RELAYER).address, Account.create().address
    operator, oracle, pauser = (dev_account(i).address for i in range(1, 4))
    registry = deploy_stack(w3, dev_account(0).address, operator=operator, oracle=oracle, pauser=pauser,
                            score_signer=dev_account(4).address, relayer=relayer).registry
    allowed = registry.functions.transactionAllowed
    assert allowed(relayer, registry.address, 0, 0, 0, b"").call()
    assert not allowed(stranger, registry.address, 0, 0, 0, b"").call()
    assert not registry.functions.isStaff(relayer).call()  # admitted, not staff: no staff role anywhere
    assert allowed(oracle, registry.address, 0, 0, 0, b"").call()  # staff still are
    without = deploy_stack(w3, dev_account(0).address, operator=operator, oracle=oracle, pauser=pauser,
                           score_signer=dev_account(4).address).registry
    assert not without.functions.transactionAllowed(relayer, without.address, 0, 0, 0, b"").call()
