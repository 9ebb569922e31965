"""Loan products, public: a borrower browses what the lender offers before signing in.

The bodies are api.schemas.products, the reads api.services.products (straight from the ProductCatalog).
"""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ContextDep
from api.errors import error_responses
from api.schemas.products import ProductIdPath, ProductList, ProductOut, VersionQuery
from api.services import products

router = APIRouter(prefix="/v1", tags=["products"])
ERRORS = error_responses(404, 422, 503)


@router.get("/products", response_model=ProductList, responses=ERRORS,
            summary="The live loan products (latest version of each, not retired) with every term")
def list_products(context: ContextDep) -> ProductList:
    return ProductList(products=products.live_products(context))


@router.get("/products/{product_id}", response_model=ProductOut, responses=ERRORS,
            summary="One product: its latest version, or an older one with ?version= (retired ones too)")
def one_product(product_id: ProductIdPath, context: ContextDep, version: VersionQuery = None) -> ProductOut:
    return products.product(context, product_id, version)
