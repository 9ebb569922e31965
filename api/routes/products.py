"""Loan products. Reading is public: a borrower browses what the lender offers before signing in. Publishing,
changing and retiring are operator decisions the operator signs with their own wallet (prepared by
`POST /v1/operator/requests`), relayed by the API and recorded in the action log with who signed.

The bodies are api.schemas.products, the reads and changes api.services.products (straight to the ProductCatalog).
"""

from __future__ import annotations

from fastapi import APIRouter, Header

from api import idempotency
from api.deps import ContextDep, MetricsDep, Operator
from api.errors import error_responses
from api.observability import current_request_id
from api.schemas.products import (
    InstallmentsQuery,
    PrincipalQuery,
    ProductIdPath,
    ProductList,
    ProductOut,
    ProductQuoteOut,
    ProductTxOut,
    QuoteVersionQuery,
    VersionQuery,
)
from api.schemas.signed import SIGNED_FIELDS, SignedProductIn, SignedRequestIn
from api.services import products

router = APIRouter(tags=["products"])
ERRORS = error_responses(404, 422, 503)
OPERATOR_ERRORS = error_responses(400, 401, 403, 404, 409, 422, 503)


@router.get("/v1/products", response_model=ProductList, responses=ERRORS,
            summary="The live loan products (latest version of each, not retired) with every term")
def list_products(context: ContextDep) -> ProductList:
    return ProductList(products=products.live_products(context))


@router.get("/v1/products/{product_id}", response_model=ProductOut, responses=ERRORS,
            summary="One product: its latest version, or an older one with ?version= (retired ones too)")
def one_product(product_id: ProductIdPath, context: ContextDep, version: VersionQuery = None) -> ProductOut:
    return products.product(context, product_id, version)


@router.get("/v1/products/{product_id}/quote", response_model=ProductQuoteOut, responses=ERRORS | error_responses(409),
            summary="What applying for this principal and number of installments gives: the terms, the service fee, "
                    "the net paid out and the loan book's schedule")
def quote(product_id: ProductIdPath, principal: PrincipalQuery, installments: InstallmentsQuery, context: ContextDep,
          version: QuoteVersionQuery = None) -> ProductQuoteOut:
    return products.quote(context, product_id, principal, installments, version)


def _once(context, metrics, actor: str, key: str | None, route: str, body: dict, send):
    """Runs the change `send` once per Idempotency-Key; answers once the index holds its block."""

    def action():
        sent = send()
        context.wait_indexed(sent.block_number)
        metrics.transactions.labels(sent.action).inc()
        return 200, sent

    return idempotency.run_once(context, actor, key, route, body, action)


@router.post("/v1/operator/products", response_model=ProductTxOut, responses=OPERATOR_ERRORS, tags=["operator"],
             summary="Publish a product (version 1); refused beyond the cost cap or the late-charge ceilings")
def create_product(body: SignedProductIn, context: ContextDep, metrics: MetricsDep, who: Operator,
                   idempotency_key: str | None = Header(None)):
    return _once(context, metrics, who.address, idempotency_key, "POST /v1/operator/products",
                 body.model_dump(exclude=SIGNED_FIELDS),
                 lambda: products.create(context, body.product(), who.address, body.signed(), current_request_id()))


@router.post("/v1/operator/products/{product_id}/versions", response_model=ProductTxOut, responses=OPERATOR_ERRORS,
             tags=["operator"], summary="Publish a product's new version; loans already made keep theirs")
def change_product(product_id: ProductIdPath, body: SignedProductIn, context: ContextDep, metrics: MetricsDep,
                   who: Operator, idempotency_key: str | None = Header(None)):
    return _once(context, metrics, who.address, idempotency_key, f"POST /v1/operator/products/{product_id}/versions",
                 body.model_dump(exclude=SIGNED_FIELDS),
                 lambda: products.change(context, product_id, body.product(), who.address, body.signed(),
                                         current_request_id()))


@router.post("/v1/operator/products/{product_id}/retire", response_model=ProductTxOut, responses=OPERATOR_ERRORS,
             tags=["operator"], summary="Retire a product: no version of it can be applied for any more")
def retire_product(product_id: ProductIdPath, body: SignedRequestIn, context: ContextDep, metrics: MetricsDep,
                   who: Operator, idempotency_key: str | None = Header(None)):
    return _once(context, metrics, who.address, idempotency_key, f"POST /v1/operator/products/{product_id}/retire", {},
                 lambda: products.retire(context, product_id, who.address, body.signed(), current_request_id()))
