"""KYC validation (each mistake gets its own clear error), normalisation, masking, and the identity commitment."""

from __future__ import annotations

from datetime import date

import pytest
from eth_utils import keccak

from ledger.errors import LoanLedgerError
from ledger.identity import (
    InvalidIdentity,
    KycRecord,
    check_age,
    identity_commitment,
    mask_bank_card,
    mask_id_number,
    mask_name,
    mask_phone,
    normalize_bank_card,
    normalize_id_number,
    normalize_name,
    normalize_phone,
    verify_commitment,
)

# The worked example of GB 11643-1999 (Beijing Chaoyang, born 1949-12-31, check character X).
STANDARD_ID = "11010519491231002X"
TODAY = date(2026, 11, 23)
SALT = bytes(range(32))


def with_check_digit(first17: str) -> str:
    """GB 11643 written out: weights 2^(17-i) mod 11, the sum mod 11 maps onto 1 0 X 9 8 7 6 5 4 3 2."""
    total = sum(int(d) * pow(2, 17 - i, 11) for i, d in enumerate(first17))
    return first17 + "10X98765432"[total % 11]


def luhn_complete(partial: str) -> str:
    digits = [int(d) for d in partial + "0"]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits)))
    return partial + str((10 - total % 10) % 10)


VALID = {"name": "张三", "id_number": with_check_digit("44030519900307123"), "phone": "13800138000",
         "bank_card": luhn_complete("622202100112345678")}


def record(**changes) -> KycRecord:
    return KycRecord.from_input(**{**VALID, **changes}, today=TODAY)


def reason(call, *args, **kwargs) -> InvalidIdentity:
    with pytest.raises(InvalidIdentity) as caught:
        call(*args, **kwargs)
    return caught.value


# ---------------------------------------------------------------------------- valid input, normalised


def test_valid_record_is_normalised():
    r = KycRecord.from_input("  张 三 ", VALID["id_number"][:6] + " " + VALID["id_number"][6:], "+86 138-0013-8000",
                             " ".join([VALID["bank_card"][:4], VALID["bank_card"][4:]]), today=TODAY)
    assert r.to_dict() == {**VALID, "phone": "+8613800138000"}  # phones are kept in E.164


def test_standard_example_and_lower_case_x_are_accepted():
    assert normalize_id_number(STANDARD_ID.lower()) == STANDARD_ID
    assert with_check_digit(STANDARD_ID[:17]) == STANDARD_ID  # the test's own checksum agrees with the standard


@pytest.mark.parametrize("raw", ["13800138000", "+8613800138000", "008613800138000", "8613800138000",
                                 "+86 (138) 0013 8000"])
def test_phone_prefixes_and_separators_are_dropped(raw):
    assert normalize_phone(raw) == "+8613800138000"


def test_every_mobile_prefix_13_to_19_is_accepted():
    assert [normalize_phone(f"1{d}912345678") for d in range(3, 10)] == [f"+861{d}912345678" for d in range(3, 10)]


@pytest.mark.parametrize("length", [12, 16, 19])
def test_card_lengths_12_to_19_with_luhn(length):
    card = luhn_complete("6" + "2" * (length - 2))
    assert normalize_bank_card(card[:4] + "-" + card[4:]) == card


def test_names_fold_full_width_and_dot_variants():
    assert normalize_name("买买提 • 艾力") == normalize_name("买买提.艾力") == "买买提·艾力"
    assert normalize_name("ＪＯＨＮ　SMITH") == "JOHN SMITH"  # full-width letters and the ideographic space


# ---------------------------------------------------------------------------- each mistake, its own error


@pytest.mark.parametrize("value, words", [
    ("", "empty"), ("   ", "empty"), ("张3", "'3'"), ("张三!", "'!'"), ("张" * 65, "at most 64"),
])
def test_bad_names(value, words):
    error = reason(normalize_name, value)
    assert error.field == "name" and words in error.message


@pytest.mark.parametrize("value, words", [
    ("", "empty"), (STANDARD_ID[:17], "this one has 17"),
    (STANDARD_ID + "1", "this one has 19"),
    ("1101051949A231002X", "only digits"),
    ("11010519491231002Y", "only digits"),
    (with_check_digit("99010519491231002"), "99 (the first two digits) is not a PRC region code"),
    (with_check_digit("91010519491231002"), "not a PRC region code"),
    (with_check_digit("11010519900230002"), "(19900230) are not a birth date"),
    (with_check_digit("11010518991231002"), "before 1900"),
    ("110105194912310021", "check digit"),
    ("11010519491231002" + "9", "check digit"),
])
def test_bad_id_numbers(value, words):
    error = reason(normalize_id_number, value)
    assert error.field == "id_number" and words in error.message, error.message


def test_birth_date_in_the_future_is_refused():
    number = with_check_digit("44030520270101123")
    error = reason(normalize_id_number, number, today=TODAY)
    assert "2027-01-01 is in the future" in error.message
    assert normalize_id_number(number, today=date(2027, 1, 1)) == number


def test_age_policy_applies_to_new_input():
    just_18 = with_check_digit("44030520081123123")    # 18 on TODAY
    not_yet = with_check_digit("44030520081124123")    # 18 tomorrow
    assert check_age(just_18, today=TODAY) == 18
    assert "the holder is 17; borrowers must be at least 18" in reason(record, id_number=not_yet).message
    assert "older than 100" in reason(record, id_number=with_check_digit("44030519251122123")).message
    assert KycRecord(**{**VALID, "id_number": not_yet}).id_number == not_yet  # stored records still load


@pytest.mark.parametrize("value, words", [
    ("1380013800", "this one has 10"), ("138001380001", "this one has 12"), ("12800138000", "starts with 13 to 19"),
    ("1380013800O", "only digits"), ("+85213800138000", "only mainland (+86)"), (" ", "empty"),
])
def test_bad_phones(value, words):
    error = reason(normalize_phone, value)
    assert error.field == "phone" and words in error.message, error.message


@pytest.mark.parametrize("value, words", [
    (luhn_complete("6222021001"), "this one has 11"), (luhn_complete("6" * 19), "this one has 20"),
    ("6222 0210 0112 3456 78X", "only digits"), ("", "empty"),
])
def test_bad_cards(value, words):
    error = reason(normalize_bank_card, value)
    assert error.field == "bank_card" and words in error.message, error.message


def test_a_single_mistyped_card_digit_fails_luhn():
    card = VALID["bank_card"]
    mistyped = card[:5] + str((int(card[5]) + 1) % 10) + card[6:]
    assert "Luhn" in reason(normalize_bank_card, mistyped).message


def test_the_error_is_a_value_error_of_the_package_and_names_the_field():
    error = reason(record, phone="123")
    assert isinstance(error, ValueError) and isinstance(error, LoanLedgerError)
    assert str(error).startswith("phone: ")


# ---------------------------------------------------------------------------- masking


def test_masked_view_hides_all_but_a_hint():
    masked = record().masked()
    assert masked.bank_card == "****" + VALID["bank_card"][-4:]
    assert masked.phone == "138****8000"
    assert masked.id_number == VALID["id_number"][:3] + "*" * 11 + VALID["id_number"][-4:]
    assert masked.name == "张*"
    assert (mask_name("张三丰"), mask_name("欧阳娜娜"), mask_name("买买提·艾力")) == ("张*丰", "欧**娜", "买**·*力")
    assert (mask_phone("13912345678"), mask_bank_card("4111111111111111")) == ("139****5678", "****1111")
    assert mask_id_number(STANDARD_ID) == "110***********002X"


def test_repr_shows_only_the_masked_view():
    shown = repr(record())
    for value in VALID.values():
        assert value not in shown


# ---------------------------------------------------------------------------- the commitment


def test_commitment_is_the_documented_encoding():
    r = record()
    words = keccak(b"LoanLedger.IdentityCommitment.v1") + SALT + keccak(r.name.encode()) + keccak(r.id_number.encode())
    assert identity_commitment(r, SALT) == keccak(words)  # abi.encode of four bytes32 is their concatenation


def test_commitment_is_deterministic_and_ignores_formatting_phone_and_card():
    base = identity_commitment(record(), SALT)
    assert len(base) == 32
    assert identity_commitment(record(), SALT) == base
    same_person = record(name=" 张 三", id_number=VALID["id_number"].lower(), phone="+86 139 1234 5678",
                         bank_card=luhn_complete("4111111111111"))
    assert identity_commitment(same_person, SALT) == base
    assert identity_commitment({"name": "张三 ", "id_number": VALID["id_number"]}, SALT) == base
    assert verify_commitment(record(), SALT, base)


def test_commitment_changes_with_salt_name_and_id_number():
    base = identity_commitment(record(), SALT)
    assert identity_commitment(record(), bytes(32)) != base
    assert identity_commitment(record(), SALT[:-1] + b"\xff") != base
    assert identity_commitment(record(name="张四"), SALT) != base
    assert identity_commitment(record(id_number=with_check_digit("44030519900307125")), SALT) != base
    assert not verify_commitment(record(name="李三"), SALT, base)


def test_commitment_refuses_a_short_salt_and_an_incomplete_record():
    assert reason(identity_commitment, record(), b"\x01" * 31).field == "salt"
    assert reason(identity_commitment, {"name": "张三"}, SALT).field == "id_number"
    assert reason(identity_commitment, {"name": "张三", "id_number": "123"}, SALT).field == "id_number"
