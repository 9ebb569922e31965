"""ProductCatalog on a real anvil: who may publish, change and retire products; versions kept; the terms an
application gets; the all-in cost cap against numpy-financial's IRR; the late-charge ceilings.

The stack deploys the catalogue (LoanBook will consult it next); these tests deploy a fresh one of their own.
"""

from __future__ import annotations

from dataclasses import replace

import numpy_financial as npf
import pytest
from web3.exceptions import ContractCustomError

from ledger.artifacts import compile_contracts
from ledger.errors import ContractRevert, ErrorDecoder
from ledger.products import (
    EarlyRepayment,
    Frequency,
    Product,
    read_product,
    read_status,
    read_terms,
)
from ledger.samples import SAMPLE_PRODUCT
from ledger.typed_data import Amortization, DayCount, LoanTerms

DAY = 86_400
YEAR = 365 * DAY
CAP_BPS = 2_400
# 120,000.00 in minor units: large enough that the schedule's half-unit rounding moves the IRR by far less than
# the 1 bps steps the boundary tests take.
PRINCIPAL = 12_000_000

BASE = SAMPLE_PRODUCT


@pytest.fixture
def catalog(w3, keys):
    artifact = compile_contracts()["ProductCatalog"]
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    admin = keys["admin"].address
    no_forwarder = "0x" + "00" * 20  # a catalogue of its own: direct calls only
    receipt = w3.eth.wait_for_transaction_receipt(factory.constructor(admin, no_forwarder).transact({"from": admin}))
    contract = w3.eth.contract(address=receipt.contractAddress, abi=artifact["abi"])
    # The operator's key stands in for FourEyes here (the only holder of FOUR_EYES_ROLE in a deployment): these are
    # the catalogue's own rules; two operators deciding is tests/contracts/test_four_eyes.py's story.
    for role, holder in (("FOUR_EYES_ROLE", "operator"), ("PAUSER_ROLE", "pauser")):
        role_id = getattr(contract.functions, role)().call()
        transact(w3, contract.functions.grantRole(role_id, keys[holder].address), admin)
    return contract


def transact(w3, fn, sender: str):
    receipt = w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender}))
    assert receipt.status == 1
    return receipt


@pytest.fixture
def reverted(catalog):
    """`reverted(fn, sender)`: the custom error (name and arguments) `fn` reverts with; fails if it does not."""
    decoder = ErrorDecoder([catalog.abi])

    def _decode(fn, sender: str) -> ContractRevert:
        try:
            fn.call({"from": sender})
        except ContractCustomError as exc:
            decoded = decoder.from_exception(exc)
            assert decoded is not None, f"not one of our custom errors: {exc!r}"
            return decoded
        raise AssertionError(f"{fn.fn_name} did not revert")

    return _decode


@pytest.fixture
def publish(w3, catalog, keys):
    """`publish(product)`: creates it as the operator; returns its id."""
    def _publish(product: Product) -> int:
        transact(w3, catalog.functions.createProduct(product.as_tuple(catalog)), keys["operator"].address)
        return catalog.functions.productCount().call()
    return _publish


# ---- pause (who may call what, and that pausing stops it, is tests/contracts/test_access.py's table) --------


def test_pause_stops_publishing_but_not_the_admin_settings(w3, catalog, keys, publish, reverted):
    product_id = publish(BASE)
    transact(w3, catalog.functions.pause(), keys["pauser"].address)
    for fn in (catalog.functions.createProduct(BASE.as_tuple(catalog)),
               catalog.functions.changeProduct(product_id, BASE.as_tuple(catalog)),
               catalog.functions.retireProduct(product_id)):
        assert reverted(fn, keys["operator"].address).name == "EnforcedPause", fn.fn_name
    transact(w3, catalog.functions.setCostCap(2_000), keys["admin"].address)
    # Reads, and the terms of an application, still answer: the book pauses applications itself.
    assert read_terms(catalog, product_id, 1, PRINCIPAL, 3).terms.principal == PRINCIPAL
    transact(w3, catalog.functions.unpause(), keys["pauser"].address)
    publish(BASE)


# ---- products, versions, retirement, events -----------------------------------------------------------------

def test_a_product_is_published_read_back_and_announced_with_its_actor(w3, catalog, keys):
    receipt = transact(w3, catalog.functions.createProduct(BASE.as_tuple(catalog)), keys["operator"].address)
    (event,) = catalog.events.ProductCreated().process_receipt(receipt)
    assert (event.args.productId, event.args.version, event.args.actor) == (1, 1, keys["operator"].address)
    assert tuple(event.args.product.values()) == BASE.as_tuple(catalog)
    assert read_product(catalog, 1, 1) == BASE
    assert read_product(catalog, 1, 1).display_name == "3-month"
    assert read_status(catalog, 1).open_for_applications


def test_a_change_is_a_new_version_and_the_old_one_stays_readable_but_closed(w3, catalog, keys, publish, reverted):
    product_id = publish(BASE)
    cheaper = replace(BASE, annual_rate_bps=1_500, max_installments=6)
    receipt = transact(w3, catalog.functions.changeProduct(product_id, cheaper.as_tuple(catalog)), keys["operator"].address)
    (event,) = catalog.events.ProductChanged().process_receipt(receipt)
    assert (event.args.productId, event.args.version, event.args.actor) == (product_id, 2, keys["operator"].address)
    assert read_product(catalog, product_id, 1) == BASE
    assert read_product(catalog, product_id, 2) == cheaper
    assert read_status(catalog, product_id).latest_version == 2

    error = reverted(catalog.functions.termsFor(product_id, 1, PRINCIPAL, 3), keys["eve"].address)
    assert (error.name, error.arguments["latestVersion"]) == ("ProductCatalogVersionChanged", 2)
    offer = read_terms(catalog, product_id, 2, PRINCIPAL, 6)
    assert (offer.terms.annualRateBps, offer.terms.installments) == (1_500, 6)
    assert reverted(catalog.functions.product(product_id, 3), keys["eve"].address).name == "ProductCatalogUnknownProduct"


def test_a_retired_product_takes_no_applications_and_no_changes(w3, catalog, keys, publish, reverted):
    product_id = publish(BASE)
    receipt = transact(w3, catalog.functions.retireProduct(product_id), keys["operator"].address)
    (event,) = catalog.events.ProductRetired().process_receipt(receipt)
    assert (event.args.productId, event.args.latestVersion, event.args.actor) == (product_id, 1, keys["operator"].address)
    assert read_status(catalog, product_id).retired
    assert read_product(catalog, product_id, 1) == BASE  # loans made from it still find their version
    operator = keys["operator"].address
    assert reverted(catalog.functions.termsFor(product_id, 1, PRINCIPAL, 3), operator).name == "ProductCatalogRetired"
    assert reverted(catalog.functions.changeProduct(product_id, BASE.as_tuple(catalog)), operator).name == \
        "ProductCatalogRetired"
    assert reverted(catalog.functions.retireProduct(product_id), operator).name == "ProductCatalogRetired"
    assert reverted(catalog.functions.retireProduct(99), operator).name == "ProductCatalogUnknownProduct"


def test_the_terms_of_an_application_follow_the_product(catalog, keys, publish, reverted):
    product_id = publish(replace(BASE, service_fee_bps=50, min_installments=3, max_installments=6,
                                 early_repayment=EarlyRepayment.REDUCE_INSTALLMENT_AMOUNT))
    offer = read_terms(catalog, product_id, 1, 1_234_567, 4)
    assert offer.early_repayment == EarlyRepayment.REDUCE_INSTALLMENT_AMOUNT
    assert offer.terms == LoanTerms(1_234_567, b"CNY", 1_800, Amortization.ANNUITY, 4, 30 * DAY, 3 * DAY, 500, 1_200,
                                    90 * DAY, serviceFee=6_172, productId=product_id, productVersion=1,
                                    earlyRepayment=EarlyRepayment.REDUCE_INSTALLMENT_AMOUNT)
    assert offer.service_fee == 6_172  # 0.5 % of 1,234,567 rounded down
    assert offer.net_paid_out == 1_234_567 - 6_172
    assert offer.auto_approvable  # 1,234,567 <= 5,000,000
    assert not read_terms(catalog, product_id, 1, 5_000_001, 4).auto_approvable

    eve = keys["eve"].address
    for principal, installments, error in ((999_999, 3, "ProductCatalogPrincipalOutOfRange"),
                                           (50_000_001, 3, "ProductCatalogPrincipalOutOfRange"),
                                           (PRINCIPAL, 2, "ProductCatalogInstallmentsOutOfRange"),
                                           (PRINCIPAL, 7, "ProductCatalogInstallmentsOutOfRange")):
        assert reverted(catalog.functions.termsFor(product_id, 1, principal, installments), eve).name == error
    assert reverted(catalog.functions.termsFor(product_id + 1, 1, PRINCIPAL, 3), eve).name == \
        "ProductCatalogUnknownProduct"


@pytest.mark.parametrize("change,error,field", [
    ({"name": b"\0" * 32}, "ProductCatalogInvalidProduct", "name"),
    ({"currency": b"\0\0\0"}, "ProductCatalogInvalidProduct", "currency"),
    ({"min_principal": 0}, "ProductCatalogInvalidProduct", "principal"),
    ({"min_principal": 60_000_000}, "ProductCatalogInvalidProduct", "principal"),
    ({"min_installments": 1, "max_installments": 37}, "ProductCatalogInvalidProduct", "installments"),
    ({"min_installments": 100, "max_installments": 121}, "ProductCatalogInvalidProduct", "installments"),
    ({"interval": 60}, "ProductCatalogInvalidProduct", "interval"),
    ({"default_after": 0}, "ProductCatalogInvalidProduct", "defaultAfter"),
    ({"auto_approve": False}, "ProductCatalogInvalidProduct", "autoApproveMaxPrincipal"),
    # Monthly products: interval 0, the calendar spacing the installments; on actual days, a level payment that
    # covers a 31-day month's interest (at 100 % over 120 months it does not).
    ({"frequency": Frequency.MONTHLY, "interval": 0, "annual_rate_bps": 10_000, "penalty_rate_bps": 0,
      "min_installments": 85, "max_installments": 120}, "ProductCatalogInvalidProduct", "annualRateBps"),
    ({"frequency": Frequency.MONTHLY, "day_count": DayCount.THIRTY_360}, "ProductCatalogInvalidProduct", "interval"),
    ({"day_count": DayCount.THIRTY_360}, "ProductCatalogInvalidProduct", "dayCount"),
    ({"interval": 0}, "ProductCatalogInvalidProduct", "interval"),
])
def test_an_invalid_product_is_refused_naming_what_is_wrong(catalog, keys, reverted, change, error, field):
    fn = catalog.functions.createProduct(replace(BASE, **change).as_tuple(catalog))
    refused = reverted(fn, keys["operator"].address)
    assert refused.name == error
    if field is not None:
        assert refused.arguments["field"].rstrip(b"\0").decode() == field


def test_thirty_six_installment_counts_are_allowed_up_to_a_hundred_and_twenty(catalog, keys, publish):
    product_id = publish(replace(BASE, min_installments=1, max_installments=36, annual_rate_bps=2_000))
    assert read_terms(catalog, product_id, 1, PRINCIPAL, 36).terms.installments == 36
    # The heaviest product to check still fits in a block: 36 counts up to 120, each at both principal extremes.
    longest = replace(BASE, min_installments=85, max_installments=120, service_fee_bps=10)
    gas = catalog.functions.createProduct(longest.as_tuple(catalog)).estimate_gas({"from": keys["operator"].address})
    assert gas < 20_000_000


# ---- the all-in cost cap ------------------------------------------------------------------------------------

def annual_irr(book, terms: LoanTerms, service_fee: int) -> float:
    """The nominal annual IRR of *net amount paid out -> scheduled installments*, computed with numpy-financial
    on the schedule the contracts compute (LoanBook.quote runs LoanMath): the period IRR * 365 days / interval,
    the way the contract annualises (its cap's period rate is capBps * interval / 365 days)."""
    installments = book.functions.quote(terms.as_tuple(), 0, 0, 0).call()
    flows = [-(terms.principal - service_fee)] + [principal + interest for _, principal, interest in installments]
    return float(npf.irr(flows)) * YEAR / terms.interval


def _largest_accepted(ok, low: int, high: int) -> int:
    """The largest x in [low, high] with ok(x), ok being monotone (true, then false)."""
    assert ok(low) and not ok(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if ok(middle) else (low, middle)
    return low


@pytest.mark.parametrize("amortization", list(Amortization))
@pytest.mark.parametrize("with_fee", [False, True])
def test_the_cap_refuses_a_product_just_over_it_and_agrees_with_numpys_irr(w3, stack, catalog, keys, reverted,
                                                                           amortization, with_fee):
    """Without a fee the rate is searched, with one (at 18 % a year) the fee: the largest value the catalogue
    accepts has an IRR at or under 24 % a year and 1 bps more has one over it, by numpy-financial's IRR on the same
    schedule. IRR annualised as the contract does: nominal, period IRR * 365 days / interval."""
    product = replace(BASE, amortization=amortization, min_principal=PRINCIPAL, max_principal=PRINCIPAL,
                      auto_approve_max_principal=PRINCIPAL)

    def terms(value: int) -> tuple[LoanTerms, int]:
        rate, fee = (1_800, value) if with_fee else (value, 0)
        loan_terms = LoanTerms(PRINCIPAL, b"CNY", rate, amortization, 3, 30 * DAY, 3 * DAY, 500, 1_200, 90 * DAY)
        return loan_terms, fee

    def ok(value: int) -> bool:
        loan_terms, fee = terms(value)
        return catalog.functions.checkCost(loan_terms.as_tuple(), fee).call()[0]

    edge = _largest_accepted(ok, 0, 2_400 if with_fee else 2_500)
    cap = CAP_BPS / 10_000
    for value, accepted in ((edge, True), (edge + 1, False)):
        loan_terms, fee = terms(value)
        irr = annual_irr(stack.book, loan_terms, PRINCIPAL * fee // 10_000)
        # Within the cap up to the schedule's half-unit rounding (far under 0.01 bps at this principal).
        assert (irr <= cap + 1e-6) if accepted else (irr > cap), (value, irr)
        changed = replace(product, annual_rate_bps=loan_terms.annualRateBps, service_fee_bps=fee,
                          penalty_rate_bps=min(1_200, 3_600 - loan_terms.annualRateBps))
        fn = catalog.functions.createProduct(changed.as_tuple(catalog))
        if accepted:
            transact(w3, fn, keys["operator"].address)
        else:
            assert reverted(fn, keys["operator"].address).name == "ProductCatalogCostAboveCap"
    if not with_fee:
        # Nothing to pay up front: the cap is the rate, to the basis point.
        assert edge == CAP_BPS


@pytest.mark.parametrize("amortization", list(Amortization))
def test_check_cost_reports_the_present_value_and_the_net_paid_out(stack, catalog, amortization):
    terms = LoanTerms(PRINCIPAL, b"CNY", 1_800, amortization, 3, 30 * DAY, 3 * DAY, 500, 1_200, 90 * DAY)
    ok, present_value, net = catalog.functions.checkCost(terms.as_tuple(), 50).call()
    # The same present value computed here, in floating point, on the book's schedule at the cap's period rate.
    cap_rate = CAP_BPS / 10_000 * terms.interval / YEAR
    schedule = stack.book.functions.quote(terms.as_tuple(), 0, 0, 0).call()
    expected = sum((p + i) / (1 + cap_rate) ** k for k, (_, p, i) in enumerate(schedule, start=1))
    assert abs(present_value - expected) <= 1
    assert (ok, net) == (True, PRINCIPAL - 60_000)
    # Discounted at 24 % the 18 % installments are worth about 1 % less than the principal (0.5 % a month for two
    # months on average): within the cap after a 0.5 % fee; after a 1.5 % one (about 27 % a year) not.
    assert PRINCIPAL * 0.985 < present_value < net
    assert catalog.functions.checkCost(terms.as_tuple(), 150).call() == [False, present_value, PRINCIPAL - 180_000]


def test_lowered_late_charge_ceilings_refuse_applications_to_products_above_them(w3, catalog, keys, publish, reverted):
    product_id = publish(BASE)  # 18 % + 12 % penalty, 5 % late fee
    transact(w3, catalog.functions.setLateChargeCeilings(2_900, 500), keys["admin"].address)
    assert reverted(catalog.functions.termsFor(product_id, 1, PRINCIPAL, 3), keys["eve"].address).name == \
        "ProductCatalogPenaltyAboveCeiling"
    transact(w3, catalog.functions.setLateChargeCeilings(3_000, 400), keys["admin"].address)
    assert reverted(catalog.functions.termsFor(product_id, 1, PRINCIPAL, 3), keys["eve"].address).name == \
        "ProductCatalogLateFeeAboveCeiling"
    transact(w3, catalog.functions.setLateChargeCeilings(3_000, 500), keys["admin"].address)
    assert read_terms(catalog, product_id, 1, PRINCIPAL, 3).terms.penaltyRateBps == 1_200


def test_the_worst_installment_count_decides_a_product(catalog, keys, reverted, stack):
    """A fee spread over fewer installments costs more a year: a 3-to-12 product whose 12-installment loans are
    within the cap but whose 3-installment ones are not is refused, and the error names the 3."""
    fee_product = replace(BASE, annual_rate_bps=1_800, service_fee_bps=200, min_installments=3, max_installments=12)
    three = LoanTerms(PRINCIPAL, b"CNY", 1_800, Amortization.ANNUITY, 3, 30 * DAY, 3 * DAY, 500, 1_200, 90 * DAY)
    fee = PRINCIPAL * 200 // 10_000
    assert annual_irr(stack.book, replace(three, installments=12), fee) < CAP_BPS / 10_000
    assert annual_irr(stack.book, three, fee) > CAP_BPS / 10_000
    refused = reverted(catalog.functions.createProduct(fee_product.as_tuple(catalog)), keys["operator"].address)
    assert refused.name == "ProductCatalogCostAboveCap"
    assert refused.arguments["installments"] == 3
    long_only = replace(fee_product, min_installments=12, max_installments=12)
    catalog.functions.createProduct(long_only.as_tuple(catalog)).call({"from": keys["operator"].address})


def test_a_lowered_cap_refuses_applications_to_a_product_published_under_the_old_one(w3, catalog, keys, publish,
                                                                                      reverted):
    product_id = publish(BASE)  # 18 %, no fee
    receipt = transact(w3, catalog.functions.setCostCap(1_500), keys["admin"].address)
    (event,) = catalog.events.CostCapChanged().process_receipt(receipt)
    assert (event.args.previousCapBps, event.args.newCapBps, event.args.actor) == (2_400, 1_500, keys["admin"].address)
    refused = reverted(catalog.functions.termsFor(product_id, 1, PRINCIPAL, 3), keys["eve"].address)
    assert (refused.name, refused.arguments["capBps"]) == ("ProductCatalogCostAboveCap", 1_500)
    assert reverted(catalog.functions.setCostCap(0), keys["admin"].address).name == "ProductCatalogInvalidSetting"
    # Lowered but still above the product's cost: re-checked per application, and accepted; at or above the cap it
    # was published under, accepted without a re-check.
    for cap in (2_000, 2_400, 3_000):
        transact(w3, catalog.functions.setCostCap(cap), keys["admin"].address)
        assert read_terms(catalog, product_id, 1, PRINCIPAL, 3).terms.principal == PRINCIPAL


# ---- late-charge ceilings -----------------------------------------------------------------------------------

def test_late_charges_are_accepted_at_their_ceilings_and_refused_above(w3, catalog, keys, reverted):
    operator = keys["operator"].address
    assert (catalog.functions.maxRatePlusPenaltyBps().call(), catalog.functions.maxLateFeeBps().call()) == (3_600, 500)
    at_ceilings = replace(BASE, annual_rate_bps=1_800, penalty_rate_bps=1_800, late_fee_bps=500)
    catalog.functions.createProduct(at_ceilings.as_tuple(catalog)).call({"from": operator})
    penalty = reverted(catalog.functions.createProduct(replace(at_ceilings, penalty_rate_bps=1_801).as_tuple(catalog)),
                       operator)
    assert (penalty.name, penalty.arguments["ceilingBps"]) == ("ProductCatalogPenaltyAboveCeiling", 3_600)
    late_fee = reverted(catalog.functions.createProduct(replace(at_ceilings, late_fee_bps=501).as_tuple(catalog)),
                        operator)
    assert (late_fee.name, late_fee.arguments["ceilingBps"]) == ("ProductCatalogLateFeeAboveCeiling", 500)

    receipt = transact(w3, catalog.functions.setLateChargeCeilings(4_000, 800), keys["admin"].address)
    (event,) = catalog.events.LateChargeCeilingsChanged().process_receipt(receipt)
    assert (event.args.newMaxRatePlusPenaltyBps, event.args.newMaxLateFeeBps) == (4_000, 800)
    catalog.functions.createProduct(replace(at_ceilings, penalty_rate_bps=2_200, late_fee_bps=800)
                                    .as_tuple(catalog)).call({"from": operator})
    assert reverted(catalog.functions.setLateChargeCeilings(0, 500), keys["admin"].address).name == \
        "ProductCatalogInvalidSetting"
