"""The product catalogue's vocabulary, mirrored once from contracts/interfaces/IProductCatalog.sol.

A typed view of one product version and of a product's status, built
by the ABI's component names (tests/ledger/test_products.py checks them against the compiled contract), and the
ABI tuple a product is published with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any

from web3.contract import Contract
from web3.types import BlockIdentifier

from ledger.book import snake_case
from ledger.typed_data import Amortization, DayCount, EarlyRepayment, Frequency, LoanTerms

__all__ = ["DayCount", "EarlyRepayment", "Frequency", "Product", "ProductStatus", "ProductTerms"]


def product_name(text: str) -> bytes:
    """A display name as the contract's bytes32: UTF-8, zero-padded; longer than 32 bytes is refused."""
    encoded = text.encode("utf-8")
    if not encoded or len(encoded) > 32:
        raise ValueError(f"a product name is 1 to 32 bytes of UTF-8, not {len(encoded)}: {text!r}")
    return encoded.ljust(32, b"\0")


@dataclass(frozen=True)
class Product:
    """`IProductCatalog.Product`: one version of a product, field for field as the struct (snake-cased)."""

    name: bytes  # bytes32, UTF-8 zero-padded
    currency: bytes  # bytes3 ISO 4217 code
    min_principal: int
    max_principal: int
    min_installments: int
    max_installments: int
    frequency: Frequency
    day_count: DayCount
    interval: int
    annual_rate_bps: int
    amortization: Amortization
    grace_period: int
    late_fee_bps: int
    penalty_rate_bps: int
    default_after: int
    service_fee_bps: int
    early_repayment: EarlyRepayment
    auto_approve: bool
    auto_approve_max_principal: int

    @property
    def display_name(self) -> str:
        return self.name.rstrip(b"\0").decode("utf-8", errors="replace")

    @property
    def currency_code(self) -> str:
        return self.currency.rstrip(b"\0").decode("ascii", errors="replace")

    def as_tuple(self, catalog: Contract) -> tuple:
        """The ABI tuple web3 expects for a `Product` argument, ordered by the ABI's component names."""
        components = catalog.get_function_by_name("createProduct").abi["inputs"][0]["components"]
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return tuple(int(v) if isinstance(v, IntEnum) else v for v in (values[snake_case(c["name"])] for c in components))


@dataclass(frozen=True)
class ProductStatus:
    """`IProductCatalog.statusOf(productId)`: the latest version (0: no such product) and whether it is retired."""

    latest_version: int
    retired: bool

    @property
    def exists(self) -> bool:
        return self.latest_version > 0

    @property
    def open_for_applications(self) -> bool:
        return self.exists and not self.retired


@dataclass(frozen=True)
class ProductTerms:
    """`IProductCatalog.termsFor(...)`: the loan's terms (with the product version, the up-front fee and the
    methods the loan takes from it) and whether the automatic policy may approve it."""

    terms: LoanTerms
    auto_approvable: bool

    @property
    def service_fee(self) -> int:
        return self.terms.serviceFee

    @property
    def early_repayment(self) -> EarlyRepayment:
        return EarlyRepayment(self.terms.earlyRepayment)

    @property
    def net_paid_out(self) -> int:
        return self.terms.principal - self.terms.serviceFee


def _by_name(values: Sequence[Any], params: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A call result keyed by the ABI's (snake-cased) names; a count mismatch means a stale ABI."""
    return {snake_case(p["name"]): v for p, v in zip(params, values, strict=True)}


def _outputs(catalog: Contract, function: str) -> list[dict[str, Any]]:
    return catalog.get_function_by_name(function).abi["outputs"]


def product_view(catalog: Contract, result: Sequence[Any]) -> Product:
    """`catalog.functions.product(id, version).call()`'s struct as a Product, matched by the ABI's component names."""
    values = _by_name(result, _outputs(catalog, "product")[0]["components"])
    return Product(**{**values, "frequency": Frequency(values["frequency"]), "day_count": DayCount(values["day_count"]),
                      "amortization": Amortization(values["amortization"]),
                      "early_repayment": EarlyRepayment(values["early_repayment"])})


def read_product(catalog: Contract, product_id: int, version: int, *, block: BlockIdentifier = "latest") -> Product:
    """One version of a product; an unknown one reverts with ProductCatalogUnknownProduct."""
    return product_view(catalog, catalog.functions.product(product_id, version).call(block_identifier=block))


def read_status(catalog: Contract, product_id: int, *, block: BlockIdentifier = "latest") -> ProductStatus:
    result = catalog.functions.statusOf(product_id).call(block_identifier=block)
    return ProductStatus(**_by_name(result, _outputs(catalog, "statusOf")[0]["components"]))


def read_terms(catalog: Contract, product_id: int, version: int, principal: int, installments: int, *,
               block: BlockIdentifier = "latest") -> ProductTerms:
    """The terms of an application for that product version; reverts as the book's application would."""
    result = catalog.functions.termsFor(product_id, version, principal, installments).call(block_identifier=block)
    values = _by_name(result, _outputs(catalog, "termsFor"))
    return ProductTerms(terms=LoanTerms(*values["terms"]), auto_approvable=values["auto_approvable"])


def offering(terms: LoanTerms, name: str = "single offer") -> Product:
    """A product whose only offer is exactly `terms` (one principal, one number of installments, no service fee):
    what benchmarks and tests publish to apply for loans of given terms."""
    return Product(
        name=product_name(name), currency=terms.currency, min_principal=terms.principal, max_principal=terms.principal,
        min_installments=terms.installments, max_installments=terms.installments, frequency=Frequency(terms.frequency),
        day_count=DayCount(terms.dayCount), interval=terms.interval, annual_rate_bps=terms.annualRateBps,
        amortization=Amortization(terms.amortization), grace_period=terms.gracePeriod, late_fee_bps=terms.lateFeeBps,
        penalty_rate_bps=terms.penaltyRateBps, default_after=terms.defaultAfter, service_fee_bps=0,
        early_repayment=EarlyRepayment(terms.earlyRepayment), auto_approve=False, auto_approve_max_principal=0)
