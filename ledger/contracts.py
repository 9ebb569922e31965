"""Contract bindings: web3 contracts built from the compiler's artifacts at the manifest's addresses.

This is the only place that pairs an ABI with an address; nothing in Python writes an ABI by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from web3 import Web3
from web3.contract import Contract

from ledger.artifacts import compile_contracts
from ledger.errors import ErrorDecoder
from ledger.manifest import CONTRACT_NAMES, FORWARDER, Manifest


@dataclass(frozen=True)
class Bindings:
    """The deployed LoanLedger contracts on one network."""

    registry: Contract
    oracle: Contract
    book: Contract
    anchor: Contract
    catalog: Contract  # ProductCatalog
    manifest: Manifest
    forwarder: Contract  # LoanLedgerForwarder: relays the signed decisions every other contract trusts
    four_eyes: Contract  # FourEyes: makes the calls that need two people

    def by_name(self, name: str) -> Contract:
        """The binding for a manifest name, e.g. "LoanBook" (or "LoanLedgerForwarder")."""
        return {"BorrowerRegistry": self.registry, "CreditOracle": self.oracle, "LoanBook": self.book,
                "ActionLogAnchor": self.anchor, "ProductCatalog": self.catalog, "FourEyes": self.four_eyes,
                FORWARDER: self.forwarder}[name]

    @property
    def all(self) -> tuple[Contract, ...]:
        """Every LoanLedger contract (the ones with roles: not the forwarder), in CONTRACT_NAMES order."""
        return tuple(self.by_name(name) for name in CONTRACT_NAMES)

    @cached_property
    def credit_limit_currency(self) -> bytes:
        """The currency the credit oracle's limits are in (`LoanBook.creditLimitCurrency`, immutable: asked once)."""
        return self.book.functions.creditLimitCurrency().call()

    @cached_property
    def errors(self) -> ErrorDecoder:
        """Decodes any of these contracts' custom errors (OpenZeppelin's included), the forwarder's too."""
        return ErrorDecoder([self.by_name(name).abi for name in (*CONTRACT_NAMES, FORWARDER)])


def bind(w3: Web3, manifest: Manifest, artifacts: dict[str, dict] | None = None) -> Bindings:
    """Bindings for every contract in `manifest`, with ABIs from the compiled artifacts."""
    artifacts = artifacts or compile_contracts()
    missing = [name for name in CONTRACT_NAMES if name not in manifest.contracts]
    missing += [FORWARDER] if manifest.forwarder is None else []
    if missing:
        raise ValueError(f"the {manifest.network} manifest has no address for {', '.join(missing)}: redeploy")

    def one(name: str, address: str | None = None) -> Contract:
        return w3.eth.contract(address=Web3.to_checksum_address(address or manifest.address(name)),
                               abi=artifacts[name]["abi"])

    assert manifest.forwarder is not None  # checked above
    return Bindings(registry=one("BorrowerRegistry"), oracle=one("CreditOracle"), book=one("LoanBook"),
                    anchor=one("ActionLogAnchor"), catalog=one("ProductCatalog"), manifest=manifest,
                    forwarder=one(FORWARDER, manifest.forwarder.address), four_eyes=one("FourEyes"))
