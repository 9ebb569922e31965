"""Made-up but valid identities for development, tests and the demo (never real people).

ID numbers carry a correct ISO 7064 MOD 11-2 check digit and a plausible birth date, card numbers a
correct Luhn digit, phones a real mobile prefix; all are derived from an index, so they are stable.
"""

from __future__ import annotations

from stdnum import luhn
from stdnum.iso7064 import mod_11_2

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
