"""The product catalogue as the API reads it (the live products, and any version of one, from the contract) and
as operators change it (the calls to publish, version and retire a product, which two operators decide through
FourEyes: api.services.four_eyes).

Reads go to the ProductCatalog itself (not the index): a product is few calls, and the contract is what an
application is checked against. All reads of one answer are made at one block, so they agree.
"""

from __future__ import annotations

from web3.contract.contract import ContractFunction

from api.errors import ApiError
from api.schemas.products import (
    ProductIn,
    ProductOut,
    ProductQuoteOut,
    QuoteInstallment,
)
from ledger.book import solidity_name
from ledger.products import (
    DayCount,
    EarlyRepayment,
    Frequency,
    Product,
    ProductStatus,
    product_name,
    read_product,
    read_status,
    read_terms,
)
from ledger.typed_data import Amortization


def _out(product_id: int, version: int, status: ProductStatus, p: Product) -> ProductOut:
    return ProductOut(
        id=product_id, version=version, latest_version=status.latest_version, retired=status.retired,
        name=p.display_name, currency=p.currency_code, min_principal=p.min_principal, max_principal=p.max_principal,
        min_installments=p.min_installments, max_installments=p.max_installments,
        frequency=solidity_name(p.frequency), day_count=solidity_name(p.day_count),
        interval=p.interval, annual_rate_bps=p.annual_rate_bps,
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


def quote(context, product_id: int, principal: int, installments: int, version: int | None = None) -> ProductQuoteOut:
    """What applying for `principal` in `installments` would give: the catalogue's terms (it refuses what an
    application would be refused for, naming the rule) and the loan book's schedule of them, read at one block."""
    catalog, book = context.bindings.catalog, context.bindings.book
    block = context.w3.eth.block_number
    if version is None:  # an unknown product's latest is 0: the catalogue refuses it as an application would be
        version = read_status(catalog, product_id, block=block).latest_version
    offer = read_terms(catalog, product_id, version, principal, installments, block=block)
    terms = offer.terms
    # A monthly schedule's dates depend on the disbursement's: the book quotes a payout at this block's time, and
    # the due dates stay seconds after it (a fixed interval's do not depend on it).
    starts_at = context.w3.eth.get_block(block).timestamp
    rows = book.functions.quote(terms.as_tuple(), starts_at, 0, 0).call(block_identifier=block)
    schedule = [QuoteInstallment(number=n, due_at=due - starts_at, principal=p, interest=i)
                for n, (due, p, i) in enumerate(rows, 1)]
    fee_bps = read_product(catalog, product_id, version, block=block).service_fee_bps
    within_cap, _, _ = catalog.functions.checkCost(terms.as_tuple(), fee_bps).call(block_identifier=block)
    interest = sum(row.interest for row in schedule)
    return ProductQuoteOut(
        product_id=product_id, product_version=version, currency=terms.currency.rstrip(b"\0").decode("ascii"),
        principal=terms.principal, installments=terms.installments, interval=terms.interval,
        frequency=solidity_name(Frequency(terms.frequency)), annual_rate_bps=terms.annualRateBps,
        amortization=solidity_name(Amortization(terms.amortization)), service_fee=offer.service_fee,
        net_paid_out=offer.net_paid_out, auto_approvable=offer.auto_approvable, schedule=schedule,
        total_interest=interest, total_repaid=sum(row.principal for row in schedule) + interest,
        total_cost=interest + offer.service_fee,
        cost_cap_bps=catalog.functions.costCapBps().call(block_identifier=block), within_cost_cap=within_cap)


# ---- operator changes: the catalogue's calls, proposed and confirmed by two operators (api.services.four_eyes) --

_BY_NAME = {"frequency": {solidity_name(m): m for m in Frequency},
            "day_count": {solidity_name(m): m for m in DayCount},
            "amortization": {solidity_name(m): m for m in Amortization},
            "early_repayment": {solidity_name(m): m for m in EarlyRepayment}}


def from_body(body: ProductIn) -> Product:
    """The contract's product from the API's body: names to enums, the name and currency to their bytes."""
    values = body.model_dump()
    return Product(**{**values, "name": product_name(body.name), "currency": body.currency.encode("ascii"),
                      **{field: names[values[field]] for field, names in _BY_NAME.items()}})


def logged(body: ProductIn) -> dict:
    """The body as the action log holds it: the product's name under a key the log's personal-data screen
    (which refuses a `name` key) lets through."""
    values = body.model_dump()
    return {"product_name": values.pop("name"), **values}


def create_call(context, body: ProductIn) -> ContractFunction:
    catalog = context.bindings.catalog
    return catalog.functions.createProduct(from_body(body).as_tuple(catalog))


def change_call(context, product_id: int, body: ProductIn) -> ContractFunction:
    catalog = context.bindings.catalog
    return catalog.functions.changeProduct(product_id, from_body(body).as_tuple(catalog))


def retire_call(context, product_id: int) -> ContractFunction:
    return context.bindings.catalog.functions.retireProduct(product_id)
