"""Loan products. Reading is public: a borrower browses what the lender offers before signing in. Publishing,
changing and retiring set the price of every loan made under a product: two operators decide (FourEyes). One
proposes, signing with their own wallet what `POST /v1/operator/requests` prepared (a FourEyes proposal wrapping
the catalogue's call); the route answers 202 with the proposal, and a second operator confirms it
(`POST /v1/operator/proposals/{id}/confirm`, api.services.four_eyes).

The bodies are api.schemas.products, the reads and changes api.services.products (straight to the ProductCatalog).
"""

from __future__ import annotations

from fastapi import APIRouter, Header

from api import idempotency
from api.deps import ContextDep, Operator
from api.errors import error_responses
from api.observability import current_request_id
from api.schemas.four_eyes import ProposalOut
from api.schemas.products import (
    InstallmentsQuery,
    PrincipalQuery,
    ProductIdPath,
    ProductList,
    ProductOut,
    ProductQuoteOut,
    QuoteVersionQuery,
    VersionQuery,
)
from api.schemas.signed import SIGNED_FIELDS, SignedProductIn, SignedRequestIn
from api.services import four_eyes, products

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


def _proposed(context, actor: str, key: str | None, route: str, body: dict, propose) -> ProposalOut:
    """Relays the signed proposal `propose` makes once per Idempotency-Key: 202, awaiting a second operator."""
    return idempotency.run_once(context, actor, key, route, body, lambda: (202, propose()))


_TWO = ("; two operators decide: this proposes it, a second operator confirms it "
        "(POST /v1/operator/proposals/{proposal_id}/confirm) before it expires")


@router.post("/v1/operator/products", response_model=ProposalOut, status_code=202, responses=OPERATOR_ERRORS,
             tags=["operator"],
             summary="Publish a product (version 1); refused beyond the cost cap or the late-charge ceilings" + _TWO)
def create_product(body: SignedProductIn, context: ContextDep, who: Operator,
                   idempotency_key: str | None = Header(None)):
    product = body.product()
    return _proposed(context, who.address, idempotency_key, "POST /v1/operator/products",
                     body.model_dump(exclude=SIGNED_FIELDS),
                     lambda: four_eyes.propose(context, who.address, products.create_call(context, product),
                                               body.signed(), current_request_id(), "product.create",
                                               {"product": products.logged(product)}))


@router.post("/v1/operator/products/{product_id}/versions", response_model=ProposalOut, status_code=202,
             responses=OPERATOR_ERRORS, tags=["operator"],
             summary="Publish a product's new version; loans already made keep theirs" + _TWO)
def change_product(product_id: ProductIdPath, body: SignedProductIn, context: ContextDep, who: Operator,
                   idempotency_key: str | None = Header(None)):
    product = body.product()
    return _proposed(context, who.address, idempotency_key, f"POST /v1/operator/products/{product_id}/versions",
                     body.model_dump(exclude=SIGNED_FIELDS),
                     lambda: four_eyes.propose(context, who.address, products.change_call(context, product_id, product),
                                               body.signed(), current_request_id(), "product.change",
                                               {"product_id": product_id, "product": products.logged(product)}))


@router.post("/v1/operator/products/{product_id}/retire", response_model=ProposalOut, status_code=202,
             responses=OPERATOR_ERRORS, tags=["operator"],
             summary="Retire a product: no version of it can be applied for any more" + _TWO)
def retire_product(product_id: ProductIdPath, body: SignedRequestIn, context: ContextDep, who: Operator,
                   idempotency_key: str | None = Header(None)):
    return _proposed(context, who.address, idempotency_key, f"POST /v1/operator/products/{product_id}/retire", {},
                     lambda: four_eyes.propose(context, who.address, products.retire_call(context, product_id),
                                               body.signed(), current_request_id(), "product.retire",
                                               {"product_id": product_id}))
