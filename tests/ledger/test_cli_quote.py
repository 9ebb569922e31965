"""`loanledger quote --product ID --principal N --installments N` against the session's anvil and contracts: the
catalogue's terms for that application (service fee, net paid out) and the LoanBook's own schedule of them; what an
application would be refused for is refused, naming the rule."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from ledger import manifest as manifests
from ledger.cli import app
from ledger.node import free_port
from ledger.products import DayCount, EarlyRepayment, Frequency, Product, product_name
from ledger.typed_data import Amortization, LoanTerms

DAY = 86_400
runner = CliRunner()
# 12% a year, a 0.5% fee, 3 to 12 equal-principal installments 14 days apart.
FEE_PRODUCT = Product(
    name=product_name("fortnightly"), currency=b"CNY", min_principal=1_000, max_principal=1_000_000,
    min_installments=3, max_installments=12, frequency=Frequency.FIXED_INTERVAL, day_count=DayCount.ACTUAL_365_FIXED,
    interval=14 * DAY, annual_rate_bps=1_200, amortization=Amortization.EQUAL_PRINCIPAL, grace_period=3 * DAY,
    late_fee_bps=500, penalty_rate_bps=1_200, default_after=90 * DAY, service_fee_bps=50,
    early_repayment=EarlyRepayment.REDUCE_INSTALLMENTS, auto_approve=False, auto_approve_max_principal=0)


@pytest.fixture
def env(w3, stack, tmp_path) -> dict[str, str]:
    return {"LOANLEDGER_HOME": str(tmp_path / "home"), "LOANLEDGER_NODE_URL": w3.provider.endpoint_uri,
            "LOANLEDGER_MANIFEST": str(manifests.save(stack.manifest, tmp_path / "local.json"))}


@pytest.fixture
def fee_product(stack, driver) -> int:
    catalog = stack.catalog
    driver.by_two_operators(catalog.functions.createProduct(FEE_PRODUCT.as_tuple(catalog)))
    return catalog.functions.productCount().call()


def run(env: dict[str, str], *args: str):
    return runner.invoke(app, list(args), env=env)


def one_line(text: str) -> str:
    return " ".join(text.split())


def _quote(env, product_id: int, principal: int, installments: int, *extra: str):
    return run(env, "quote", "--product", str(product_id), "--principal", str(principal),
               "--installments", str(installments), *extra)


@pytest.mark.parametrize("amortization", list(Amortization))
def test_quote_json_is_the_catalogues_terms_and_the_books_schedule(env, stack, driver, amortization):
    terms = LoanTerms(250_001, b"CNY", 3650, amortization, 7, 14 * DAY, 3 * DAY, 500, 1800, 90 * DAY)
    product_id, version = driver.product(terms)
    result = _quote(env, product_id, 250_001, 7, "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert (printed["product_id"], printed["product_version"], printed["service_fee"], printed["net_paid_out"]) == (
        product_id, version, 0, 250_001)
    copied = replace(terms, productId=product_id, productVersion=version)
    expected = [{"due": due, "principal": p, "interest": i}
                for due, p, i in stack.book.functions.quote(copied.as_tuple(), 0, 0, 0).call()]
    assert printed["installments"] == expected
    assert [item["due"] for item in printed["installments"]] == [k * 14 * DAY for k in range(1, 8)]


def test_quote_shows_the_service_fee_and_what_is_paid_out(env, stack, fee_product):
    result = _quote(env, fee_product, 200_000, 6, "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert (printed["service_fee"], printed["net_paid_out"], printed["within_cost_cap"]) == (1_000, 199_000, True)
    assert sum(item["principal"] for item in printed["installments"]) == 200_000

    table = _quote(env, fee_product, 200_000, 6)
    assert table.exit_code == 0, table.output
    text = one_line(table.stdout)
    assert "fortnightly" in text and "service fee 1,000; paid out 199,000 CNY" in text
    assert "an operator decides" in text  # the product is not auto-approvable
    total_row = next(line for line in table.stdout.splitlines() if "total" in line)
    interest = sum(item["interest"] for item in printed["installments"])
    assert "200,000" in total_row and f"{interest:,}" in total_row


@pytest.mark.parametrize(("args", "error"), [
    ((1, 999, 6), "ProductCatalogPrincipalOutOfRange"),
    ((1, 200_000, 13), "ProductCatalogInstallmentsOutOfRange"),
    ((99, 200_000, 6), "ProductCatalogUnknownProduct"),
])
def test_quote_refuses_what_an_application_would_be_refused_for(env, fee_product, args, error):
    result = _quote(env, *args)
    assert result.exit_code == 2, result.output
    assert error in one_line(result.stderr) and "Traceback" not in result.output


@pytest.mark.parametrize("bad", [["--product", "0"], ["--principal", "0"], ["--installments", "0"],
                                 ["--version", "0"]])
def test_quote_bad_input_is_a_usage_error(env, bad):
    args = {"--product": "1", "--principal": "120000", "--installments": "3"}
    args[bad[0]] = bad[1]
    result = run(env, "quote", *[part for pair in args.items() for part in pair], "--json")
    assert result.exit_code == 2, result.output
    assert bad[0] in result.output


def test_quote_with_the_node_down_is_one_line_exit_1(env):
    url = f"http://127.0.0.1:{free_port()}"
    result = _quote({**env, "LOANLEDGER_NODE_URL": url}, 1, 120_000, 3)
    assert result.exit_code == 1, result.output
    assert f"no Ethereum node answers at {url}" in one_line(result.stderr) and result.stdout == ""
