"""Made-up but valid identities for development, tests and the demo (never real people).

ID numbers carry a correct ISO 7064 MOD 11-2 check digit and a plausible birth date, card numbers a
correct Luhn digit, phones a real mobile prefix; all are derived from an index, so they are stable.
"""

from __future__ import annotations

from stdnum import luhn
from stdnum.iso7064 import mod_11_2

from ledger.book import DAY
from ledger.products import DayCount, EarlyRepayment, Frequency, Product, product_name
from ledger.typed_data import Amortization

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英", "霞", "平"]
REGIONS = ["110105", "310104", "440305", "330106", "510107", "420102", "320102", "610113"]


def sample_identity(index: int) -> dict[str, str]:
    """A KYC submission for made-up person number `index` (0 <= index < 10,000)."""
    if not 0 <= index < 10_000:
        raise ValueError("index must be in 0..9999")
    name = SURNAMES[index % len(SURNAMES)] + GIVEN[(index // len(SURNAMES)) % len(GIVEN)]
    year, month, day = 1970 + index % 30, 1 + index % 12, 1 + index % 28
    first17 = f"{REGIONS[index % len(REGIONS)]}{year:04d}{month:02d}{day:02d}{index % 1000:03d}"
    card15 = f"622202{index:09d}"
    card = card15 + "000"
    card = card[:-1] + luhn.calc_check_digit(card[:-1])
    return {"name": name, "id_number": first17 + mod_11_2.calc_check_digit(first17),
            "phone": f"139{index:08d}", "bank_card": card}


def sample_card(card_number: str) -> dict[str, str] | None:
    """The sample identity a test card was issued to (its holder, ID number and the phone reserved with the bank),
    or None for a card no sample identity holds: the payment-rail stand-in's table of test cards."""
    digits = "".join(ch for ch in card_number if ch.isascii() and ch.isdigit())
    if len(digits) != 18 or digits[:6] not in ("622202", SECOND_CARD_BIN) or int(digits[6:15]) >= 10_000:
        return None
    person = sample_identity(int(digits[6:15]))
    return person if digits in (person["bank_card"], sample_second_card(int(digits[6:15]))) else None


SECOND_CARD_BIN = "622208"


def sample_second_card(index: int) -> str:
    """A second card the bank issued to sample person `index` (the same holder, the same reserved phone): the card
    a borrower changes to (`POST /v1/kyc/card`)."""
    card = f"{SECOND_CARD_BIN}{index:09d}00"
    return card + luhn.calc_check_digit(card)


# A plain product for tests and examples: 10,000.00 to 500,000.00 in three 30-day annuity installments at 18 %,
# no fee, auto-approved up to 50,000.00 (within every default ceiling).
SAMPLE_PRODUCT = Product(
    name=product_name("3-month"), currency=b"CNY", min_principal=1_000_000, max_principal=50_000_000,
    min_installments=3, max_installments=3, frequency=Frequency.FIXED_INTERVAL, day_count=DayCount.ACTUAL_365_FIXED,
    interval=30 * DAY, annual_rate_bps=1_800, amortization=Amortization.ANNUITY, grace_period=3 * DAY,
    late_fee_bps=500, penalty_rate_bps=1_200, default_after=90 * DAY, service_fee_bps=0,
    early_repayment=EarlyRepayment.REDUCE_INSTALLMENTS, auto_approve=True, auto_approve_max_principal=5_000_000)
