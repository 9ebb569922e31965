"""The product catalogue as the API reads it: the live products, and any version of one, from the contract.

Reads go to the ProductCatalog itself (not the index): a product is few calls, and the contract is what an
application is checked against. All reads of one answer are made at one block, so they agree.
"""

from __future__ import annotations

from api.errors import ApiError
from api.schemas.products import ProductOut
from ledger.book import solidity_name
from ledger.products import Product, ProductStatus, read_product, read_status


def _out(product_id: int, version: int, status: ProductStatus, p: Product) -> ProductOut:
    return ProductOut(
        id=product_id, version=version, latest_version=status.latest_version, retired=status.retired,
        name=p.display_name, currency=p.currency_code, min_principal=p.min_principal, max_principal=p.max_principal,
        min_installments=p.min_installments, max_installments=p.max_installments,
        frequency=solidity_name(p.frequency), interval=p.interval, annual_rate_bps=p.annual_rate_bps,
        amortization=solidity_name(p.amortization), grace_period=p.grace_period, late_fee_bps=p.late_fee_bps,
        penalty_rate_bps=p.penalty_rate_bps, default_after=p.default_after, service_fee_bps=p.service_fee_bps,
        early_repayment=solidity_name(p.early_repayment), auto_approve=p.auto_approve,
        auto_approve_max_principal=p.auto_approve_max_principal)


def live_products(context) -> list[ProductOut]:
    """The latest version of every product that is not retired, by id."""
    catalog = context.bindings.catalog
    block = context.w3.eth.block_number
    out = []
    for product_id in range(1, catalog.functions.productCount().call(block_identifier=block) + 1):
        status = read_status(catalog, product_id, block=block)
        if status.open_for_applications:
            out.append(_out(product_id, status.latest_version, status,
                            read_product(catalog, product_id, status.latest_version, block=block)))
    return out


def product(context, product_id: int, version: int | None = None) -> ProductOut:
    """One version of a product (default: the latest), retired or not; 404 for an unknown product or version."""
    catalog = context.bindings.catalog
    block = context.w3.eth.block_number
    status = read_status(catalog, product_id, block=block)
    if not status.exists:
        raise ApiError(404, "unknown_product", f"no product {product_id}")
    version = version or status.latest_version
    if version > status.latest_version:
        raise ApiError(404, "unknown_product_version",
                       f"product {product_id} has no version {version} (its latest is {status.latest_version})")
    return _out(product_id, version, status, read_product(catalog, product_id, version, block=block))
