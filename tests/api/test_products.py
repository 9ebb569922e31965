"""`GET /v1/products` and `/v1/products/{id}` against the real chain: products the operator publishes on the
ProductCatalog appear, with no sign-in, with exactly their terms; a retired one leaves the list but stays
readable by id and version; an unknown one is a 404 with a clear code.
"""

from __future__ import annotations

import calendar
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from api_outcomes import api_error
from sqlalchemy import func, select

from api.client import ApiError, LoanLedgerClient
from ledger import four_eyes
from ledger.products import EarlyRepayment, Product, product_name
from ledger.samples import SAMPLE_PRODUCT
from ledger.store.models.chain import ChainEvent, PoisonEvent
from ledger.typed_data import Amortization, DayCount, Frequency

DAY = 86_400
THREE_MONTH = SAMPLE_PRODUCT
TWELVE_MONTH = replace(
    THREE_MONTH, name=product_name("12-month 分期"), min_installments=6, max_installments=12, annual_rate_bps=1_500,
    amortization=Amortization.EQUAL_PRINCIPAL, service_fee_bps=100,
    early_repayment=EarlyRepayment.REDUCE_INSTALLMENT_AMOUNT, auto_approve=False, auto_approve_max_principal=0,
)


@pytest.fixture
def catalog_as_operator(w3, stack, keys):
    """`(create|change|retire)(...)`: the ProductCatalog's writes, proposed by the operator and confirmed by the
    second operator (FourEyes: two operators decide a product)."""
    catalog = stack.catalog

    def send(fn):
        four_eyes.carry_out(w3, stack.four_eyes, fn, keys["operator"].address, keys["operator2"].address)

    class Ops:
        @staticmethod
        def create(product: Product) -> int:
            send(catalog.functions.createProduct(product.as_tuple(catalog)))
            return catalog.functions.productCount().call()

        @staticmethod
        def change(product_id: int, product: Product) -> None:
            send(catalog.functions.changeProduct(product_id, product.as_tuple(catalog)))

        @staticmethod
        def retire(product_id: int) -> None:
            send(catalog.functions.retireProduct(product_id))

    return Ops


@pytest.fixture
def anonymous(http) -> LoanLedgerClient:
    return LoanLedgerClient("http://testserver", http=http)


def expected(product_id: int, version: int, p: Product, *, latest: int | None = None, retired: bool = False) -> dict:
    """The body the API should give, written out from the product independently of the service's mapping."""
    amortization = {Amortization.ANNUITY: "Annuity", Amortization.EQUAL_PRINCIPAL: "EqualPrincipal"}
    early = {EarlyRepayment.REDUCE_INSTALLMENTS: "ReduceInstallments",
             EarlyRepayment.REDUCE_INSTALLMENT_AMOUNT: "ReduceInstallmentAmount"}  # IntEnums: a dict of its own
    return {"id": product_id, "version": version, "latest_version": latest or version, "retired": retired,
            "name": p.name.rstrip(b"\0").decode(), "currency": p.currency.decode(),
            "min_principal": p.min_principal, "max_principal": p.max_principal,
            "min_installments": p.min_installments, "max_installments": p.max_installments,
            "frequency": "FixedInterval", "day_count": "Actual365Fixed", "interval": p.interval,
            "annual_rate_bps": p.annual_rate_bps,
            "amortization": amortization[p.amortization], "grace_period": p.grace_period, "late_fee_bps": p.late_fee_bps,
            "penalty_rate_bps": p.penalty_rate_bps, "default_after": p.default_after,
            "service_fee_bps": p.service_fee_bps, "early_repayment": early[p.early_repayment],
            "auto_approve": p.auto_approve, "auto_approve_max_principal": p.auto_approve_max_principal}


def test_no_products_is_an_empty_list(api, anonymous):
    assert anonymous.products() == []


def test_published_products_are_listed_without_sign_in_with_exactly_their_terms(api, anonymous, catalog_as_operator):
    short = catalog_as_operator.create(THREE_MONTH)
    long = catalog_as_operator.create(TWELVE_MONTH)
    assert anonymous.products() == [expected(short, 1, THREE_MONTH), expected(long, 1, TWELVE_MONTH)]
    assert anonymous.product(long) == expected(long, 1, TWELVE_MONTH)
    assert anonymous.products()[1]["name"] == "12-month 分期"


def test_a_change_lists_the_new_version_and_the_old_one_stays_readable(api, anonymous, catalog_as_operator):
    product_id = catalog_as_operator.create(THREE_MONTH)
    dearer = replace(THREE_MONTH, annual_rate_bps=2_000, service_fee_bps=50)
    catalog_as_operator.change(product_id, dearer)
    assert anonymous.products() == [expected(product_id, 2, dearer)]
    assert anonymous.product(product_id) == expected(product_id, 2, dearer)
    assert anonymous.product(product_id, version=1) == expected(product_id, 1, THREE_MONTH, latest=2)


def test_a_retired_product_leaves_the_list_but_is_readable_by_id_and_version(api, anonymous, catalog_as_operator):
    retired = catalog_as_operator.create(THREE_MONTH)
    kept = catalog_as_operator.create(TWELVE_MONTH)
    catalog_as_operator.retire(retired)
    assert [p["id"] for p in anonymous.products()] == [kept]
    assert anonymous.product(retired) == expected(retired, 1, THREE_MONTH, retired=True)
    assert anonymous.product(retired, version=1) == expected(retired, 1, THREE_MONTH, retired=True)


def test_an_unknown_product_or_version_is_a_404_with_a_clear_code(api, anonymous, catalog_as_operator, http):
    product_id = catalog_as_operator.create(THREE_MONTH)
    with pytest.raises(ApiError) as unknown:
        anonymous.product(product_id + 1)
    assert (unknown.value.status, unknown.value.code) == (404, "unknown_product")
    with pytest.raises(ApiError) as no_version:
        anonymous.product(product_id, version=2)
    assert (no_version.value.status, no_version.value.code) == (404, "unknown_product_version")
    assert "latest is 1" in no_version.value.message
    assert http.get("/v1/products/0").status_code == 422
    assert http.get(f"/v1/products/{product_id}", params={"version": 0}).status_code == 422


# ---- operator routes -------------------------------------------------------------------------------------------

BODY = {"name": "3-month", "currency": "CNY", "min_principal": 1_000_000, "max_principal": 50_000_000,
        "min_installments": 3, "max_installments": 3, "frequency": "FixedInterval", "day_count": "Actual365Fixed",
        "interval": 30 * DAY,
        "annual_rate_bps": 1_800, "amortization": "Annuity", "grace_period": 3 * DAY, "late_fee_bps": 500,
        "penalty_rate_bps": 1_200, "default_after": 90 * DAY, "service_fee_bps": 0,
        "early_repayment": "ReduceInstallments", "auto_approve": True, "auto_approve_max_principal": 5_000_000}


@pytest.fixture
def second(client_for, keys) -> LoanLedgerClient:
    """The second operator, who confirms what the operator proposes."""
    return client_for(keys["operator2"])


def test_an_operator_publishes_changes_and_retires_a_product_through_the_api(api, anonymous, operator, second, stack):
    _, context = api
    proposed = [operator.create_product(BODY)]
    assert proposed[0]["state"] == "awaiting confirmation" and anonymous.products() == []
    created = second.confirm(proposed[0]["proposal_id"])
    assert created["result"]["ProductCreated"]["productId"] == 1 and created["result"]["ProductCreated"]["version"] == 1
    assert anonymous.products() == [expected(1, 1, THREE_MONTH)]  # the body means exactly the contract's product
    proposed.append(operator.change_product(1, {**BODY, "annual_rate_bps": 1_500, "amortization": "EqualPrincipal"}))
    changed = second.confirm(proposed[1]["proposal_id"])
    assert changed["result"]["ProductChanged"]["version"] == 2
    assert anonymous.product(1) == expected(1, 2, replace(THREE_MONTH, annual_rate_bps=1_500,
                                                           amortization=Amortization.EQUAL_PRINCIPAL))
    proposed.append(operator.retire_product(1))
    retired = second.confirm(proposed[2]["proposal_id"])
    assert retired["result"]["ProductRetired"] == {**retired["result"]["ProductRetired"], "productId": 1,
                                                   "latestVersion": 2}
    assert anonymous.products() == [] and anonymous.product(1)["retired"] is True
    # Each proposal and each confirmation is in the action log with the operator who signed it and its transaction.
    head = context.action_log.head()
    entries = [context.action_log.entry(seq) for seq in range(head.seq - 5, head.seq + 1)]
    op, op2 = operator.account.address, second.account.address
    assert [(e.action, e.actor, e.data["signed_by"]) for e in entries] == [
        ("product.create.propose", op, op), ("four_eyes.confirm", op2, op2),
        ("product.change.propose", op, op), ("four_eyes.confirm", op2, op2),
        ("product.retire.propose", op, op), ("four_eyes.confirm", op2, op2)]
    assert [e.data["tx"] for e in entries] == [t["tx_hash"] for pair in zip(proposed, (created, changed, retired))
                                               for t in pair]
    assert [e.data["proposer"] for e in entries[1::2]] == [op] * 3
    # Proposed and confirmed by two people, relayed: FourEyes' events name both; the catalogue's names FourEyes.
    receipt = stack.catalog.w3.eth.get_transaction_receipt(created["tx_hash"])
    (event,) = stack.catalog.events.ProductCreated().process_receipt(receipt)
    assert event.args.actor == stack.four_eyes.address != receipt["from"]
    (executed,) = stack.four_eyes.events.Executed().process_receipt(receipt)
    assert (executed.args.proposer, executed.args.confirmer) == (op, op2)
    assert entries[0].data["product"] == {"product_name": "3-month", **{k: v for k, v in BODY.items() if k != "name"}}
    # The latest version, retired.
    assert stack.catalog.functions.statusOf(1).call() == (2, True)
    # The indexer follows the catalogue too (the deployed stack includes it): its events are in the audit trail.
    with context.sessions() as session:
        indexed = session.execute(select(ChainEvent.name, ChainEvent.args).where(ChainEvent.contract == "ProductCatalog")
                                  .order_by(ChainEvent.block_number, ChainEvent.log_index)).all()
        assert session.scalar(select(func.count()).select_from(PoisonEvent)) == 0
    products_indexed = [(name, args) for name, args in indexed if name.startswith("Product")]  # not the role grants
    assert [name for name, _ in products_indexed] == ["ProductCreated", "ProductChanged", "ProductRetired"]
    assert products_indexed[0][1]["productId"] == 1 and products_indexed[2][1]["latestVersion"] == 2


def test_a_repeated_idempotency_key_proposes_once(api, operator, second, stack):
    first = operator.create_product(BODY, idempotency_key="publish-3-month")
    assert operator.create_product(BODY, idempotency_key="publish-3-month") == first
    assert [p["proposal_id"] for p in second.proposals()] == [first["proposal_id"]]
    assert api_error(operator.create_product, {**BODY, "name": "other"}, idempotency_key="publish-3-month").status == 422
    second.confirm(first["proposal_id"])
    assert stack.catalog.functions.productCount().call() == 1


def test_the_catalogue_s_refusals_are_client_errors_naming_the_rule(api, operator, second, borrower):
    # Refused when proposed (the catalogue's check, run as FourEyes would make the call), not once confirmed.
    dear = api_error(operator.create_product, {**BODY, "annual_rate_bps": 2_300, "service_fee_bps": 200})
    assert (dear.status, dear.code) == (422, "product_catalog_cost_above_cap")
    late = api_error(operator.create_product, {**BODY, "late_fee_bps": 600})
    assert (late.status, late.code) == (422, "product_catalog_late_fee_above_ceiling")
    unknown = api_error(operator.retire_product, 7)
    assert (unknown.status, unknown.code) == (404, "product_catalog_unknown_product")
    too_long = api_error(operator.create_product, {**BODY, "name": "长" * 11})  # 33 bytes of UTF-8
    assert too_long.status == 422
    assert api_error(borrower.create_product, BODY).status == 403
    assert second.proposals() == []
    second.confirm(operator.create_product(BODY)["proposal_id"])
    second.confirm(operator.retire_product(1)["proposal_id"])
    assert api_error(operator.retire_product, 1).code == "product_catalog_retired"


def test_a_monthly_quote_gives_the_calendar_s_dates_from_the_quote_s_time(api, anonymous, catalog_as_operator, w3):
    # Due dates of a monthly product depend on the payout's: the quote's are seconds after a payout at the block it
    # was read at, each on that day of the month (or the month's last day), computed here with `calendar`.
    monthly = replace(THREE_MONTH, name=product_name("monthly"), frequency=Frequency.MONTHLY,
                      day_count=DayCount.THIRTY_360, interval=0, min_installments=12, max_installments=12)
    product_id = catalog_as_operator.create(monthly)
    quote = anonymous.quote(product_id, 1_000_000, 12)
    start = w3.eth.get_block("latest").timestamp  # the API read the same block: nothing was mined since
    moment = datetime.fromtimestamp(start, UTC)

    def months_later(k: int) -> int:
        year, month = divmod(moment.year * 12 + moment.month - 1 + k, 12)
        day = min(moment.day, calendar.monthrange(year, month + 1)[1])
        return int(moment.replace(year=year, month=month + 1, day=day).timestamp()) - start

    assert (quote["frequency"], quote["interval"]) == ("Monthly", 0)
    assert [row["due_at"] for row in quote["schedule"]] == [months_later(k) for k in range(1, 13)]
    assert sum(row["principal"] for row in quote["schedule"]) == 1_000_000
