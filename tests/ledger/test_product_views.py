"""ledger/products.py against the contract it mirrors: the enums, the typed views' fields and the product tuple."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest

from ledger.artifacts import CONTRACTS, compile_contracts
from ledger.book import snake_case, solidity_name
from ledger.products import (
    DayCount,
    EarlyRepayment,
    Frequency,
    Product,
    ProductStatus,
    ProductTerms,
    product_name,
)


@pytest.fixture(scope="module")
def abi() -> list[dict]:
    return compile_contracts()["ProductCatalog"]["abi"]


def _function(abi: list[dict], name: str) -> dict:
    (item,) = [i for i in abi if i.get("type") == "function" and i["name"] == name]
    return item


def _enum_members(name: str) -> list[str]:
    """An enum's members in declaration order, read from the interface's source (comments stripped)."""
    source = (CONTRACTS / "interfaces" / "ILoanBook.sol").read_text()
    body = re.search(rf"enum {name} \{{(.*?)\}}", source, re.DOTALL).group(1)
    return [m for m in (re.sub(r"//.*", "", line).strip().rstrip(",") for line in body.splitlines()) if m]


def test_the_enums_are_the_contracts_member_for_member():
    assert [solidity_name(m) for m in Frequency] == _enum_members("Frequency") == ["FixedInterval", "Monthly"]
    assert [solidity_name(m) for m in EarlyRepayment] == _enum_members("EarlyRepayment")
    assert [solidity_name(m) for m in DayCount] == _enum_members("DayCount") == ["Thirty360", "Actual365Fixed"]


def test_the_typed_views_follow_the_abis_names(abi):
    product = _function(abi, "product")["outputs"][0]["components"]
    assert [f.name for f in fields(Product)] == [snake_case(c["name"]) for c in product]
    assert [c["name"] for c in _function(abi, "createProduct")["inputs"][0]["components"]] == \
        [c["name"] for c in product]
    status = _function(abi, "statusOf")["outputs"][0]["components"]
    assert [f.name for f in fields(ProductStatus)] == [snake_case(c["name"]) for c in status]
    assert [f.name for f in fields(ProductTerms)] == [snake_case(o["name"]) for o in _function(abi, "termsFor")["outputs"]]


def test_a_product_name_is_utf8_in_32_bytes():
    assert product_name("12 个月") == "12 个月".encode().ljust(32, b"\0")
    for bad in ("", "x" * 33, "借" * 11):  # 11 CJK characters are 33 bytes
        with pytest.raises(ValueError):
            product_name(bad)
