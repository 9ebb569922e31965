"""Deploy and wire the three contracts with web3 (used by tests, the CLI and the demo).

`scripts/deploy.py` (`ape run deploy`) is the operator's path; both produce the same manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3
from web3.contract import Contract

from ledger.artifacts import SOLC_VERSION, compile_contracts, source_hash
from ledger.manifest import DeployedContract, Manifest

DAY = 86_400
GRANTED_ROLES = ("OPERATOR_ROLE", "ORACLE_ROLE", "PAUSER_ROLE")


@dataclass
class Deployment:
    registry: Contract
    oracle: Contract
    book: Contract
    anchor: Contract
    manifest: Manifest


def _deploy(w3: Web3, artifact: dict, sender: str, *args) -> tuple[Contract, DeployedContract]:
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(factory.constructor(*args).transact({"from": sender}))
    deployed = DeployedContract(address=receipt.contractAddress, block=receipt.blockNumber,
                                tx="0x" + receipt.transactionHash.hex().removeprefix("0x"))
    return w3.eth.contract(address=receipt.contractAddress, abi=artifact["abi"]), deployed


def deploy_stack(w3: Web3, admin: str, *, operator: str, oracle: str, pauser: str, score_signer: str,
                 max_score_age: int = 30 * DAY, max_annual_rate_bps: int = 10_000,
                 network: str = "local") -> Deployment:
    """Deploy registry, credit oracle, loan book and action-log anchor from `admin` (an unlocked node account) and grant roles."""
    artifacts = compile_contracts()
    registry, registry_at = _deploy(w3, artifacts["BorrowerRegistry"], admin, admin)
    credit, credit_at = _deploy(w3, artifacts["CreditOracle"], admin, admin, max_score_age)
    book, book_at = _deploy(w3, artifacts["LoanBook"], admin, admin, registry.address, credit.address,
                            max_annual_rate_bps)
    anchor, anchor_at = _deploy(w3, artifacts["ActionLogAnchor"], admin, admin)
    holders = {"DEFAULT_ADMIN_ROLE": [admin], "OPERATOR_ROLE": [operator], "ORACLE_ROLE": [oracle],
               "PAUSER_ROLE": [pauser], "SCORE_SIGNER_ROLE": [score_signer]}
    for contract in (registry, credit, book, anchor):
        for role in GRANTED_ROLES:
            role_id = contract.functions[role]().call()
            w3.eth.wait_for_transaction_receipt(
                contract.functions.grantRole(role_id, holders[role][0]).transact({"from": admin}))
    signer_role = credit.functions.SCORE_SIGNER_ROLE().call()
    w3.eth.wait_for_transaction_receipt(credit.functions.grantRole(signer_role, score_signer).transact({"from": admin}))
    manifest = Manifest(
        network=network, chain_id=w3.eth.chain_id, deployer=admin, compiler=f"solc-js {SOLC_VERSION}",
        source_hash=source_hash(),
        contracts={"BorrowerRegistry": registry_at, "CreditOracle": credit_at, "LoanBook": book_at,
                   "ActionLogAnchor": anchor_at},
        roles=holders, deployed_at=w3.eth.get_block(registry_at.block).timestamp,
    )
    return Deployment(registry=registry, oracle=credit, book=book, anchor=anchor, manifest=manifest)
