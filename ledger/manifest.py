"""The deployment manifest, `deployments/<network>.json`: where the contracts live on one network.

Written by the deploy script (`ape run deploy`) and by `ledger.deploy.deploy_stack`; read by
everything that talks to the chain. Addresses are never configured anywhere else.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENTS = ROOT / "deployments"
# The LoanLedger contracts: each has roles, pauses, and trusts the forwarder.
CONTRACT_NAMES = ("BorrowerRegistry", "CreditOracle", "ProductCatalog", "LoanBook", "ActionLogAnchor", "FourEyes")
# The EIP-2771 forwarder every one of them trusts (signed decisions relayed): no roles, no events to index, so it
# is kept apart from CONTRACT_NAMES (Manifest.forwarder), and deployed before them (their constructors take it).
FORWARDER = "LoanLedgerForwarder"
DEPLOY_ORDER = (FORWARDER, *CONTRACT_NAMES)


@dataclass(frozen=True)
class DeployedContract:
    address: str
    block: int
    tx: str


@dataclass
class Manifest:
    network: str
    chain_id: int
    deployer: str
    compiler: str
    source_hash: str
    contracts: dict[str, DeployedContract]
    roles: dict[str, list[str]] = field(default_factory=dict)  # role name -> holders granted at deployment
    deployed_at: int = 0  # unix seconds, block time of the first deployment
    # contract -> role name -> holders granted there at deployment (least privilege: not every role
    # everywhere). Empty in a manifest written before it existed, whose deploys granted `roles` everywhere.
    grants: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    # The LoanLedgerForwarder the contracts trust; None in a manifest written before it existed (redeploy).
    forwarder: DeployedContract | None = None
    # Distinct score signers a credit report needs, as set at deployment (CreditOracle.signerThreshold).
    signer_threshold: int = 1

    @property
    def start_block(self) -> int:
        """The first block the indexer needs to read."""
        return min(c.block for c in self.contracts.values())

    def address(self, name: str) -> str:
        return self.contracts[name].address

    def granted(self, contract: str) -> dict[str, list[str]]:
        """Role name -> holders granted on `contract` at deployment."""
        return self.grants.get(contract, {}) if self.grants else self.roles

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        raw["contracts"] = {name: DeployedContract(**c) for name, c in raw["contracts"].items()}
        if raw.get("forwarder") is not None:
            raw["forwarder"] = DeployedContract(**raw["forwarder"])
        return cls(**raw)


def path_for(network: str, directory: Path | None = None) -> Path:
    return (directory or DEPLOYMENTS) / f"{network}.json"


def load(path: Path) -> Manifest:
    return Manifest.from_json(Path(path).read_text())


def save(manifest: Manifest, path: Path) -> Path:
    """Atomic write, so a reader never sees half a manifest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(manifest.to_json())
    os.replace(tmp, path)
    return path
