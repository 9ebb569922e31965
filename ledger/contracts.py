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
from ledger.manifest import CONTRACT_NAMES, Manifest


@dataclass(frozen=True)
class Bindings:
    """The deployed LoanLedger contracts on one network."""

    registry: Contract
    oracle: Contract
    book: Contract
    anchor: Contract
    catalog: Contract  # ProductCatalog
    manifest: Manifest
    four_eyes: Contract  # FourEyes: makes the calls that need two people

    def by_name(self, name: str) -> Contract:
        """The binding for a manifest name, e.g. "LoanBook"."""
        return {"BorrowerRegistry": self.registry, "CreditOracle": self.oracle, "LoanBook": self.book,
                "ActionLogAnchor": self.anchor, "ProductCatalog": self.catalog, "FourEyes": self.four_eyes}[name]

    @property
    def all(self) -> tuple[Contract, ...]:
        """Every contract, in deployment (CONTRACT_NAMES) order."""
        return tuple(self.by_name(name) for name in CONTRACT_NAMES)

    @cached_property
    def credit_limit_currency(self) -> bytes:
        """The currency the credit oracle's limits are in (`LoanBook.creditLimitCurrency`, immutable: asked once)."""
        return self.book.functions.creditLimitCurrency().call()

    @cached_property
    def errors(self) -> ErrorDecoder:
        """Decodes any of these contracts' custom errors (OpenZeppelin's included)."""
        return ErrorDecoder([self.by_name(name).abi for name in CONTRACT_NAMES])


def bind(w3: Web3, manifest: Manifest, artifacts: dict[str, dict] | None = None) -> Bindings:
    """Bindings for every contract in `manifest`, with ABIs from the compiled artifacts."""
    artifacts = artifacts or compile_contracts()
    missing = [name for name in CONTRACT_NAMES if name not in manifest.contracts]
    if missing:
        raise ValueError(f"the {manifest.network} manifest has no address for {', '.join(missing)}: redeploy")

    def one(name: str) -> Contract:
        return w3.eth.contract(address=Web3.to_checksum_address(manifest.address(name)), abi=artifacts[name]["abi"])

    return Bindings(registry=one("BorrowerRegistry"), oracle=one("CreditOracle"), book=one("LoanBook"),
                    anchor=one("ActionLogAnchor"), catalog=one("ProductCatalog"), manifest=manifest,
                    four_eyes=one("FourEyes"))
