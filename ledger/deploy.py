"""Deploy and wire the three contracts with web3 (used by tests and the CLI)."""

from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3
from web3.contract import Contract

from ledger.artifacts import compile_contracts

DAY = 86_400


@dataclass
class Deployment:
    registry: Contract
    oracle: Contract
    book: Contract


def _deploy(w3: Web3, artifact: dict, sender: str, *args) -> Contract:
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(factory.constructor(*args).transact({"from": sender}))
    return w3.eth.contract(address=receipt.contractAddress, abi=artifact["abi"])


def deploy_stack(w3: Web3, admin: str, *, operator: str, oracle: str, pauser: str, score_signer: str,
                 max_score_age: int = 30 * DAY, max_annual_rate_bps: int = 10_000) -> Deployment:
    artifacts = compile_contracts()
    registry = _deploy(w3, artifacts["BorrowerRegistry"], admin, admin)
    credit = _deploy(w3, artifacts["CreditOracle"], admin, admin, max_score_age)
    book = _deploy(w3, artifacts["LoanBook"], admin, admin, registry.address, credit.address, max_annual_rate_bps)
    for contract in (registry, credit, book):
        for role, account in (("OPERATOR_ROLE", operator), ("ORACLE_ROLE", oracle), ("PAUSER_ROLE", pauser)):
            role_id = contract.functions[role]().call()
            w3.eth.wait_for_transaction_receipt(contract.functions.grantRole(role_id, account).transact({"from": admin}))
    signer_role = credit.functions.SCORE_SIGNER_ROLE().call()
    w3.eth.wait_for_transaction_receipt(credit.functions.grantRole(signer_role, score_signer).transact({"from": admin}))
    return Deployment(registry=registry, oracle=credit, book=book)
