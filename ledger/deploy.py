"""The deployment plan, defined once, and the web3 path that follows it (tests, benchmarks, the demo).

`scripts/deploy.py` (`ape run deploy`, the operator's path) follows the same plan: which contracts, in
which order, with which constructor arguments, which role grants, and the manifest that records it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from ledger.artifacts import SOLC_VERSION, compile_contracts, source_hash
from ledger.book import DAY
from ledger.contracts import Bindings
from ledger.encoding import to_0x_hex
from ledger.errors import LoanLedgerError
from ledger.manifest import (
    CONTRACT_NAMES,
    DEPLOY_ORDER,
    FORWARDER,
    DeployedContract,
    Manifest,
)


@dataclass(frozen=True)
class RoleHolders:
    admin: str
    operator: str
    oracle: str
    pauser: str
    score_signers: tuple[str, ...]  # the quorum's keys, one per signer process; one address alone is accepted
    # FourEyes' second admin and second operator: each confirms what the other of its kind proposes. Without
    # them nothing that needs two people (a write-off, a role grant...) can be done until two admins add one.
    second_admin: str = ""
    second_operator: str = ""
    policy: str = ""  # the automatic approval policy's key (POLICY_ROLE on the book); "": no automatic approvals
    # The API's relayer: no role that lets it do anything, only RELAYER_ROLE on the registry, which admits it on a
    # permissioned chain (transactionAllowed). "": none admitted (a chain that does not permission accounts).
    relayer: str = ""

    def __post_init__(self) -> None:
        signers = (self.score_signers,) if isinstance(self.score_signers, str) else tuple(self.score_signers)
        if not signers or len({s.lower() for s in signers}) != len(signers):
            raise ValueError(f"score signers must be one or more distinct addresses, got {signers}")
        object.__setattr__(self, "score_signers", signers)

    def holders(self, field_name: str) -> list[str]:
        """The addresses a GRANTS holder field names (every score signer for `score_signers`; none for an
        optional holder not given)."""
        value = getattr(self, field_name)
        return list(value) if isinstance(value, tuple) else [value] if value else []

    @property
    def admins(self) -> list[str]:
        """The people FourEyes lets propose and confirm admin calls."""
        return [a for a in (self.admin, self.second_admin) if a]

    @property
    def operators(self) -> list[str]:
        """The people FourEyes lets propose and confirm operators' decisions."""
        return [o for o in (self.operator, self.second_operator) if o]

    def as_manifest(self) -> dict[str, list[str]]:
        return {"DEFAULT_ADMIN_ROLE": self.admins, "OPERATOR_ROLE": self.operators, "ORACLE_ROLE": [self.oracle],
                "PAUSER_ROLE": [self.pauser], "SCORE_SIGNER_ROLE": list(self.score_signers),
                **({"POLICY_ROLE": [self.policy]} if self.policy else {}),
                **({"RELAYER_ROLE": [self.relayer]} if self.relayer else {})}


def majority(signers: int) -> int:
    """The default signer threshold: more than half the score signers (2 of 3, 3 of 4), so no single key, nor a
    minority, can move a limit, while one signer down still leaves a quorum from three up."""
    return signers // 2 + 1


@dataclass(frozen=True)
class Settings:
    max_score_age: int = 30 * DAY
    credit_limit_currency: str = "CNY"  # what the credit oracle's limits are in: loans are lent in it
    signer_threshold: int = 1  # distinct score signers a report needs (CreditOracle.setSignerThreshold)
    # Above this principal (minor units) an approval needs two operators (FourEyes): 100,000.00 CNY.
    payout_threshold: int = 10_000_000

    def check(self, roles: RoleHolders) -> None:
        if not 1 <= self.signer_threshold <= len(roles.score_signers):
            raise ValueError(f"a signer threshold of {self.signer_threshold} cannot be met by "
                             f"{len(roles.score_signers)} score signer(s)")


def constructor_args(name: str, roles: RoleHolders, deployed: dict[str, str], settings: Settings) -> tuple:
    """Arguments of `name`'s constructor, given the addresses deployed before it (DEPLOY_ORDER order): each
    LoanLedger contract takes its admin, then the forwarder it trusts."""
    return {
        FORWARDER: lambda: (),
        "BorrowerRegistry": lambda: (roles.admin, deployed[FORWARDER]),
        "CreditOracle": lambda: (roles.admin, deployed[FORWARDER], settings.max_score_age),
        "ProductCatalog": lambda: (roles.admin, deployed[FORWARDER]),
        "LoanBook": lambda: (roles.admin, deployed[FORWARDER], deployed["BorrowerRegistry"], deployed["CreditOracle"],
                             deployed["ProductCatalog"], settings.credit_limit_currency.encode("ascii"),
                             settings.payout_threshold),
        "ActionLogAnchor": lambda: (roles.admin, deployed[FORWARDER]),
        "FourEyes": lambda: (roles.admins, roles.operators, roles.pauser, allowed_calls(deployed), deployed[FORWARDER]),
    }[name]()


@dataclass(frozen=True)
class FourEyesCall:
    contract: str
    function: str
    role: str  # what its proposer and confirmer must both hold, on FourEyes
    reason: str  # why one person must not make it alone


_ADMIN_SETTERS = {"CreditOracle": ("setMaxScoreAge", "setSignerThreshold"),
                  "ProductCatalog": ("setCostCap", "setLateChargeCeilings"), "LoanBook": ("setPayoutThreshold",)}

# What FourEyes may be asked to call, at deploy (FourEyes allows its own grantRole, revokeRole and setAllowedCall
# to admins itself). Changed later only by two admins (FourEyes.setAllowedCall).
FOUR_EYES_CALLS: tuple[FourEyesCall, ...] = (
    FourEyesCall("LoanBook", "writeOff", "OPERATOR_ROLE", "forgives what a borrower still owes"),
    FourEyesCall("LoanBook", "approve", "OPERATOR_ROLE", "orders a payout above the payout threshold"),
    *(FourEyesCall("ProductCatalog", f, "OPERATOR_ROLE", "sets the price and limits of every loan made under it")
      for f in ("createProduct", "changeProduct", "retireProduct")),
    *(FourEyesCall(name, f, "DEFAULT_ADMIN_ROLE", "decides who may do what")
      for name in CONTRACT_NAMES if name != "FourEyes" for f in ("grantRole", "revokeRole")),
    *(FourEyesCall(name, f, "DEFAULT_ADMIN_ROLE", "a limit every loan or score is checked against")
      for name, setters in _ADMIN_SETTERS.items() for f in setters),
)


def role_id(role: str) -> bytes:
    """The bytes32 id of a role named as in the contracts (DEFAULT_ADMIN_ROLE is zero)."""
    return bytes(32) if role == "DEFAULT_ADMIN_ROLE" else bytes(Web3.keccak(text=role))


def selector(contract: str, function: str, artifacts: dict[str, dict] | None = None) -> bytes:
    """The 4-byte selector of `contract`'s function `function` (not overloaded), from the compiled ABI."""
    abi = (artifacts or compile_contracts())[contract]["abi"]
    (item,) = [i for i in abi if i["type"] == "function" and i["name"] == function]
    return bytes(Web3.keccak(text=f"{function}({','.join(_abi_type(i) for i in item['inputs'])})")[:4])


def _abi_type(param: dict) -> str:
    if not param["type"].startswith("tuple"):
        return param["type"]
    return f"({','.join(_abi_type(c) for c in param['components'])}){param['type'][len('tuple'):]}"


def allowed_calls(deployed: dict[str, str]) -> list[tuple[str, bytes, bytes]]:
    """FOUR_EYES_CALLS as FourEyes' constructor takes them: (target, selector, role id)."""
    artifacts = compile_contracts()
    return [(deployed[c.contract], selector(c.contract, c.function, artifacts), role_id(c.role)) for c in FOUR_EYES_CALLS]


@dataclass(frozen=True)
class Grant:
    contract: str
    role: str
    holder: str  # a RoleHolders field (every address of it, for the score signers), or a contract's name
    reason: str  # what the contract checks the role for there


# Least privilege: a holder gets a role only on a contract that checks that role (see contracts/*.sol).
# The admin gets DEFAULT_ADMIN_ROLE from each constructor (renounced after the grants: RENOUNCED_BY_ADMIN) and is
# granted nothing more. FourEyes' own roles
# come from its constructor (RoleHolders.admins, .operators, the pauser). The forwarder has no roles and needs
# none: through it, each signer acts with their own.
GRANTS: tuple[Grant, ...] = (
    Grant("BorrowerRegistry", "OPERATOR_ROLE", "operator",
          "registerBorrower, updateBorrower (a manual registration, signed), revokeBorrower"),
    Grant("BorrowerRegistry", "ORACLE_ROLE", "oracle",
          "registerBorrower, updateBorrower (a completed KYC, from the oracle's registration worker); isStaff, so "
          "transactionAllowed lets the oracle transact on a permissioned (Besu) chain"),
    Grant("BorrowerRegistry", "RELAYER_ROLE", "relayer",
          "no function; transactionAllowed admits the API's relayer on a permissioned (Besu) chain"),
    Grant("BorrowerRegistry", "PAUSER_ROLE", "pauser", "pause, unpause"),
    Grant("CreditOracle", "ORACLE_ROLE", "oracle", "pushScores (relays the score signers' reports)"),
    Grant("CreditOracle", "SCORE_SIGNER_ROLE", "score_signers",
          "a signature pushScores counts towards signerThreshold (each signer process has its own key)"),
    Grant("CreditOracle", "PAUSER_ROLE", "pauser", "pause, unpause"),
    Grant("ProductCatalog", "FOUR_EYES_ROLE", "FourEyes", "createProduct, changeProduct, retireProduct (two operators)"),
    Grant("ProductCatalog", "PAUSER_ROLE", "pauser", "pause, unpause"),
    Grant("LoanBook", "OPERATOR_ROLE", "operator", "approve (up to the payout threshold), reject, declareDefault"),
    Grant("LoanBook", "FOUR_EYES_ROLE", "FourEyes", "writeOff, approve above the payout threshold (two operators)"),
    Grant("LoanBook", "POLICY_ROLE", "policy", "approve, only loans their product made autoApprovable"),
    Grant("LoanBook", "ORACLE_ROLE", "oracle",
          "confirmDisbursement(s), confirmRepayment(s), confirmCreditRefund, reverseRepayment, "
          "reverseDisbursement, declareDefault"),
    Grant("LoanBook", "PAUSER_ROLE", "pauser", "pause, unpause"),
    Grant("ActionLogAnchor", "ORACLE_ROLE", "oracle", "anchor (the oracle process anchors the action log)"),
    Grant("ActionLogAnchor", "PAUSER_ROLE", "pauser", "pause, unpause"),
    *(Grant(name, "DEFAULT_ADMIN_ROLE", "FourEyes", "grantRole, revokeRole and the admin setters, by two admins")
      for name in CONTRACT_NAMES if name != "FourEyes"),
)


def role_grants(roles: RoleHolders, deployed: dict[str, str]) -> list[tuple[str, str, str]]:
    """(contract, role, holder) granted by the admin after deployment: GRANTS, in CONTRACT_NAMES order."""
    return [(g.contract, g.role, holder)
            for name in CONTRACT_NAMES for g in GRANTS if g.contract == name
            for holder in ([deployed[g.holder]] if g.holder in CONTRACT_NAMES else roles.holders(g.holder))]


def contracts_checking(role: str) -> list[str]:
    """The contracts GRANTS gives `role` on (CONTRACT_NAMES order): where a later grant of it belongs."""
    return [name for name in CONTRACT_NAMES if any(g.contract == name and g.role == role for g in GRANTS)]


# After the grants the deploying admin gives up its own DEFAULT_ADMIN_ROLE on these (FourEyes keeps it): role grants
# and admin settings then need two admins. Kept, one admin alone could grant anyone any role (itself FOUR_EYES_ROLE,
# so writing off alone too): the four-eyes rule would hold only as long as that one key is honest.
RENOUNCED_BY_ADMIN = tuple(name for name in CONTRACT_NAMES if name != "FourEyes")
# Whether a deploy renounces (ape run deploy's --admin-renounces/--admin-keeps, deploy_stack's admin_renounces): by
# default it does. Keeping it is for a test or a benchmark that sets the contracts up with the admin's own hand.
ADMIN_RENOUNCES = True


def grants_by_contract(roles: RoleHolders, deployed: dict[str, str], *,
                       admin_renounced: bool = False) -> dict[str, dict[str, list[str]]]:
    """Contract -> role -> holders at deployment, those the constructors grant included (and the admin's own
    DEFAULT_ADMIN_ROLE left out where it renounced it)."""
    out: dict[str, dict[str, list[str]]] = {
        name: {"DEFAULT_ADMIN_ROLE": [] if admin_renounced and name in RENOUNCED_BY_ADMIN else [roles.admin]}
        for name in CONTRACT_NAMES}
    out["FourEyes"] = {"DEFAULT_ADMIN_ROLE": roles.admins, "OPERATOR_ROLE": roles.operators,
                       "PAUSER_ROLE": [roles.pauser]}
    for name, role, holder in role_grants(roles, deployed):
        out[name].setdefault(role, []).append(holder)
    return out


def build_manifest(network: str, chain_id: int, roles: RoleHolders, deployed: dict[str, DeployedContract],
                   deployed_at: int, signer_threshold: int = 1, *, admin_renounced: bool = False) -> Manifest:
    """The manifest of `deployed` (DEPLOY_ORDER names; the forwarder goes to its own field)."""
    return Manifest(network=network, chain_id=chain_id, deployer=roles.admin, compiler=f"solc-js {SOLC_VERSION}",
                    source_hash=source_hash(), contracts={n: d for n, d in deployed.items() if n != FORWARDER},
                    roles=roles.as_manifest(),
                    grants=grants_by_contract(roles, {n: d.address for n, d in deployed.items()},
                                              admin_renounced=admin_renounced),
                    deployed_at=deployed_at, forwarder=deployed.get(FORWARDER), signer_threshold=signer_threshold)


def is_current(manifest: Manifest, chain_id: int, code_at: Callable[[str], bytes]) -> bool:
    """True when `manifest` describes this chain and these sources, and every contract has code there."""
    return (manifest.chain_id == chain_id and manifest.source_hash == source_hash()
            and set(manifest.contracts) == set(CONTRACT_NAMES) and manifest.forwarder is not None
            and all(len(code_at(c.address)) > 0 for c in (manifest.forwarder, *manifest.contracts.values())))


class DeploymentFailed(LoanLedgerError):
    """A deployment or role-grant transaction reverted."""


def _mined(w3: Web3, tx_hash: HexBytes, what: str) -> TxReceipt:
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    if receipt.status != 1:
        raise DeploymentFailed(f"{what} reverted (tx {to_0x_hex(receipt.transactionHash)})")
    return receipt


def _deploy(w3: Web3, name: str, artifact: dict, sender: str, *args) -> tuple[Contract, DeployedContract]:
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = _mined(w3, factory.constructor(*args).transact({"from": sender}), f"deploying {name}")
    deployed = DeployedContract(address=receipt.contractAddress, block=receipt.blockNumber,
                                tx=to_0x_hex(receipt.transactionHash))
    return w3.eth.contract(address=receipt.contractAddress, abi=artifact["abi"]), deployed


def deploy_stack(w3: Web3, admin: str, *, operator: str, oracle: str, pauser: str, score_signer: str | Sequence[str],
                 second_admin: str = "", second_operator: str = "", policy: str = "", max_score_age: int = 30 * DAY,
                 credit_limit_currency: str = "CNY", signer_threshold: int = 1,
                 payout_threshold: int = Settings.payout_threshold, network: str = "local",
                 admin_renounces: bool = ADMIN_RENOUNCES, relayer: str = "") -> Bindings:
    """Follow the plan from `admin` (an account the node has unlocked): deploy, grant roles, set the score
    signers' threshold, describe it. `score_signer`: one address, or the quorum's. `admin_renounces` (the
    default): then give up the admin's DEFAULT_ADMIN_ROLE on RENOUNCED_BY_ADMIN (two admins decide; False keeps it,
    for a caller that needs the admin's own hand afterwards). `relayer`: the API's, admitted on a permissioned
    chain (none: not admitted)."""
    artifacts = compile_contracts()
    roles = RoleHolders(admin, operator, oracle, pauser, score_signer, second_admin, second_operator, policy,
                        relayer=relayer)
    settings = Settings(max_score_age, credit_limit_currency, signer_threshold, payout_threshold)
    settings.check(roles)
    contracts: dict[str, Contract] = {}
    deployed: dict[str, DeployedContract] = {}
    for name in DEPLOY_ORDER:
        args = constructor_args(name, roles, {n: d.address for n, d in deployed.items()}, settings)
        contracts[name], deployed[name] = _deploy(w3, name, artifacts[name], admin, *args)
    for name, role, holder in role_grants(roles, {n: d.address for n, d in deployed.items()}):
        grant = contracts[name].functions.grantRole(role_id(role), holder)
        _mined(w3, grant.transact({"from": admin}), f"granting {role} on {name}")
    if settings.signer_threshold != 1:  # the constructor's
        _mined(w3, contracts["CreditOracle"].functions.setSignerThreshold(settings.signer_threshold).transact(
            {"from": admin}), "setting the score signers' threshold")
    for name in RENOUNCED_BY_ADMIN if admin_renounces else ():
        renounce = contracts[name].functions.renounceRole(role_id("DEFAULT_ADMIN_ROLE"), admin)
        _mined(w3, renounce.transact({"from": admin}), f"renouncing DEFAULT_ADMIN_ROLE on {name}")
    first_block = deployed[DEPLOY_ORDER[0]].block
    manifest = build_manifest(network, w3.eth.chain_id, roles, deployed, w3.eth.get_block(first_block).timestamp,
                              settings.signer_threshold, admin_renounced=admin_renounces)
    return Bindings(registry=contracts["BorrowerRegistry"], oracle=contracts["CreditOracle"],
                    book=contracts["LoanBook"], anchor=contracts["ActionLogAnchor"], catalog=contracts["ProductCatalog"],
                    manifest=manifest, forwarder=contracts[FORWARDER], four_eyes=contracts["FourEyes"])
