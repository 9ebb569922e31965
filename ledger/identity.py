"""A borrower's real-name (KYC) identity: validation, normalisation, masking, and the on-chain commitment.

The identity commitment (version 1), the only trace of a person the chain ever holds:

    commitment = keccak256(abi.encode(
        keccak256("LoanLedger.IdentityCommitment.v1"),   # domain tag: this hash means nothing elsewhere
        salt,                                            # bytes32, random per borrower, kept in the vault
        keccak256(bytes(name)),                          # UTF-8 of the normalised name
        keccak256(bytes(idNumber))))                     # ASCII of the normalised 18-character ID number

Normalised means what `KycRecord` makes of the input: the name in Unicode NFKC with runs of white space
collapsed, no space next to a Han character or a dot, and every middle-dot variant (and ".", often
typed for it) as U+00B7 ("·"); the ID number in NFKC, without separators, every digit as its ASCII digit
and with an upper-case "X". Phone and bank card are left out on purpose: they change (a new SIM, a new card)
while the person does not, and the commitment must not. The salt makes the hash useless for guessing: an ID
number alone has only a few million plausible values per region and birth date.

One person, one form: every number a person types (ID number, phone, bank card) goes through
`ascii_digits` before it is validated, so "１１０１…", "١١٠١…", "1101 05…" and "110105…" are the same number
to the check digit, the birth date, the blind index, the commitment and the vault, and a second wallet cannot
pass for a second person by typing the same number in other digits. Phones are kept in E.164 ("+8613812345678").

An auditor holding the KYC record and its salt recomputes it with `identity_commitment(record, salt)`
and compares it with `BorrowerRegistry.borrowers(address).identityCommitment`.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from eth_abi import encode
from eth_utils import keccak
from stdnum import luhn
from stdnum.iso7064 import mod_11_2

from ledger.errors import LoanLedgerError

COMMITMENT_DOMAIN = keccak(b"LoanLedger.IdentityCommitment.v1")
SALT_BYTES = 32
MIN_AGE, MAX_AGE = 18, 100   # the lending policy's age range, applied to new input (KycRecord.from_input)
MAX_NAME_LENGTH = 64

# Province-level codes of GB/T 2260 (the first two digits of an ID number), plus 71 Taiwan,
# 81 Hong Kong, 82 Macau and 83 (residence permits of Taiwan residents).
_PROVINCES = frozenset({11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
                        50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83})
_MIDDLE_DOTS = str.maketrans(dict.fromkeys("\u2022\u2027\u2219\u22c5\u30fb\uff65\u0387.", "\u00b7"))
_NAME_PUNCTUATION = frozenset("\u00b7 -'")
# A space next to a Han character or a middle dot is a typing artefact: Chinese names have none.
_STRAY_SPACE = re.compile(r"(?<=[\u3400-\u4dbf\u4e00-\u9fff\u00b7]) | (?=[\u3400-\u4dbf\u4e00-\u9fff\u00b7])")
# What people type between groups of digits (after NFKC, which turns full-width spaces and hyphens into these).
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212]+")
_PHONE_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212().]+")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")   # [0-9], not \d: \d is any script's digit
MAINLAND = "86"   # the only country code accepted: borrowers are mainland residents


class InvalidIdentity(LoanLedgerError, ValueError):
    """One field of a KYC record is wrong; `field` names it, `message` says what to fix."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


def ascii_digits(value: str, field: str, *, keep: str = "", separators: re.Pattern[str] = _SEPARATORS,
                 one_script: bool = True) -> str:
    """`value` as one canonical string of ASCII digits: NFKC (full-width digits and spaces fold to plain ones),
    separators dropped, letters upper-cased, and every decimal digit of any script (Arabic-Indic, Devanagari...)
    written as its ASCII digit. Characters in `keep` (upper case, e.g. the ID number's "X") stay; anything else,
    and a number mixing two digit scripts, is refused naming `field`."""
    text = separators.sub("", unicodedata.normalize("NFKC", value or "")).upper()
    digits, scripts = [], set()
    for char in text:
        if char in keep:
            digits.append(char)
        elif unicodedata.category(char) == "Nd":
            scripts.add(ord(char) - unicodedata.decimal(char))   # the script's zero tells the scripts apart
            digits.append(str(unicodedata.decimal(char)))
        else:
            allowed = "only digits are allowed" + (f" (and {' '.join(keep)})" if keep else "")
            raise InvalidIdentity(field, f"{allowed}: {char!r} is not a digit")
    if one_script and len(scripts) > 1:
        zeros = " and ".join(repr(chr(zero)) for zero in sorted(scripts))
        raise InvalidIdentity(field, f"only digits are allowed, written in one script: this number mixes two ({zeros}...)")
    return "".join(digits)


def normalize_name(value: str) -> str:
    # NFKC folds full-width letters and spaces typed on Chinese keyboards into their plain forms.
    name = " ".join(unicodedata.normalize("NFKC", value or "").split()).translate(_MIDDLE_DOTS)
    name = _STRAY_SPACE.sub("", name)
    if not name:
        raise InvalidIdentity("name", "the name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidIdentity("name", f"the name is {len(name)} characters long, at most {MAX_NAME_LENGTH} are allowed")
    for char in name:
        if char not in _NAME_PUNCTUATION and unicodedata.category(char)[0] not in "LM":
            raise InvalidIdentity("name", f"the name contains {char!r}, which is not a letter")
    return name


def normalize_id_number(value: str, *, today: date | None = None) -> str:
    """The 18-character resident ID number, checked: format, region, birth date, check digit."""
    number = ascii_digits(value, "id_number", keep="X")
    if not number:
        raise InvalidIdentity("id_number", "the ID number is empty")
    if len(number) != 18:
        raise InvalidIdentity("id_number", f"a resident ID number has 18 characters, this one has {len(number)}")
    if "X" in number[:17]:
        raise InvalidIdentity("id_number", "only digits are allowed, and X as the last character")
    if int(number[:2]) not in _PROVINCES:
        raise InvalidIdentity("id_number", f"{number[:2]} (the first two digits) is not a PRC region code")
    birth = _birth_date(number)
    if birth.year < 1900:
        raise InvalidIdentity("id_number", f"the birth date {birth.isoformat()} is before 1900")
    if birth > (today or date.today()):
        raise InvalidIdentity("id_number", f"the birth date {birth.isoformat()} is in the future")
    if not mod_11_2.is_valid(number):
        raise InvalidIdentity("id_number", "the check digit (last character) does not match: a digit was mistyped")
    return number


def birth_date(id_number: str) -> date:
    """The birth date written in a (valid) ID number."""
    return _birth_date(normalize_id_number(id_number))


def _birth_date(number: str) -> date:
    try:
        return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidIdentity("id_number", f"digits 7-14 ({number[6:14]}) are not a birth date (YYYYMMDD)") from None


def check_age(id_number: str, *, today: date | None = None, minimum: int = MIN_AGE, maximum: int = MAX_AGE) -> int:
    """The holder's age in whole years; InvalidIdentity outside [minimum, maximum]."""
    today = today or date.today()
    born = birth_date(id_number)
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    if age < minimum:
        raise InvalidIdentity("id_number", f"the holder is {age}; borrowers must be at least {minimum}")
    if age > maximum:
        raise InvalidIdentity("id_number", f"the birth date {born.isoformat()} makes the holder {age}, "
                                           f"older than {maximum}: check the number")
    return age


def normalize_phone(value: str) -> str:
    """A mainland mobile number in E.164, "+86" and its 11 digits, however it was typed: "13812345678",
    "+86 138 1234 5678", "0086 138...", "86138...", in full-width or other digits. Other countries are refused."""
    text = _PHONE_SEPARATORS.sub("", unicodedata.normalize("NFKC", value or ""))
    international = text.startswith("+")
    typed = text[1:] if international else text
    # The country code may come pre-filled in ASCII before digits typed in another script: one script is asked
    # of the 11 digits a person types (checked below), not of the whole string.
    digits = ascii_digits(typed, "phone", separators=_PHONE_SEPARATORS, one_script=False)
    ascii_digits(typed[-11:], "phone")
    if not digits:
        raise InvalidIdentity("phone", "the phone number is empty")
    if digits.startswith("00"):
        international, digits = True, digits[2:]
    elif digits.startswith(MAINLAND) and len(digits) == 11 + len(MAINLAND):
        international = True   # 86 and 11 digits: the country code typed without "+"
    if international:
        if not digits.startswith(MAINLAND):
            raise InvalidIdentity("phone", f"only mainland (+{MAINLAND}) mobile numbers are accepted")
        digits = digits[len(MAINLAND):]
    if len(digits) != 11:
        raise InvalidIdentity("phone", f"a mainland mobile number has 11 digits, this one has {len(digits)}")
    if not _MOBILE.fullmatch(digits):
        raise InvalidIdentity("phone", "a mainland mobile number starts with 13 to 19")
    return f"+{MAINLAND}{digits}"


def national_number(phone: str) -> str:
    """The 11 digits of a mainland mobile number (any form `normalize_phone` takes), as a person reads them."""
    return normalize_phone(phone)[1 + len(MAINLAND):]


def normalize_bank_card(value: str) -> str:
    card = ascii_digits(value, "bank_card")
    if not card:
        raise InvalidIdentity("bank_card", "the bank card number is empty")
    if not 12 <= len(card) <= 19:
        raise InvalidIdentity("bank_card", f"a bank card number has 12 to 19 digits, this one has {len(card)}")
    if not luhn.is_valid(card):
        raise InvalidIdentity("bank_card", "the check digit (Luhn) does not match: a digit was mistyped")
    return card


@dataclass(frozen=True)
class KycRecord:
    """A verified person: every field normalised and validated on construction.

    Build from user input with `KycRecord.from_input`, which also applies the age policy; the plain
    constructor checks the values themselves only, so a record read back years later still loads.
    """

    name: str
    id_number: str
    phone: str
    bank_card: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", normalize_name(self.name))
        object.__setattr__(self, "id_number", normalize_id_number(self.id_number))
        object.__setattr__(self, "phone", normalize_phone(self.phone))
        object.__setattr__(self, "bank_card", normalize_bank_card(self.bank_card))

    @classmethod
    def from_input(cls, name: str, id_number: str, phone: str, bank_card: str, *,
                   today: date | None = None) -> KycRecord:
        record = cls(name, id_number, phone, bank_card)
        check_age(record.id_number, today=today)
        return record

    def with_phone(self, phone: str) -> KycRecord:
        return KycRecord(self.name, self.id_number, phone, self.bank_card)

    def masked(self) -> MaskedKyc:
        return MaskedKyc(mask_name(self.name), mask_id_number(self.id_number), mask_phone(self.phone),
                         mask_bank_card(self.bank_card))

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "id_number": self.id_number, "phone": self.phone, "bank_card": self.bank_card}

    def __repr__(self) -> str:
        # Tracebacks and logs must not carry PII.
        return f"KycRecord({self.masked()})"


@dataclass(frozen=True)
class MaskedKyc:
    """What a person may be shown of a record: enough to recognise it, not to use it."""

    name: str
    id_number: str
    phone: str
    bank_card: str


def mask_name(name: str) -> str:
    """张* / 张*丰 / 欧**娜: the first and (from three characters) the last character stay."""
    keep = {0, len(name) - 1} if len(name) >= 3 else {0}
    return "".join(c if i in keep or c in _NAME_PUNCTUATION else "*" for i, c in enumerate(name))


def mask_id_number(number: str) -> str:
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def mask_phone(phone: str) -> str:
    """138****5678: the national number, as its owner knows it, with the middle four hidden."""
    national = national_number(phone)
    return national[:3] + "****" + national[-4:]


def mask_bank_card(card: str) -> str:
    return "****" + card[-4:]


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def identity_commitment(record: KycRecord | Mapping[str, str], salt: bytes) -> bytes:
    """The 32-byte commitment to `record` (a KycRecord, or a mapping with "name" and "id_number") under `salt`."""
    if len(salt) != SALT_BYTES:
        raise InvalidIdentity("salt", f"the salt is {SALT_BYTES} bytes, got {len(salt)}")
    if isinstance(record, KycRecord):
        name, id_number = record.name, record.id_number
    else:
        missing = [k for k in ("name", "id_number") if not record.get(k)]
        if missing:
            raise InvalidIdentity(missing[0], "missing from the record")
        name, id_number = normalize_name(record["name"]), normalize_id_number(record["id_number"])
    return keccak(encode(["bytes32", "bytes32", "bytes32", "bytes32"],
                         [COMMITMENT_DOMAIN, salt, keccak(name.encode()), keccak(id_number.encode())]))


def verify_commitment(record: KycRecord | Mapping[str, str], salt: bytes, commitment: bytes) -> bool:
    """True when `commitment` (e.g. read from the BorrowerRegistry) is the commitment to `record` under `salt`."""
    return identity_commitment(record, salt) == bytes(commitment)
