"""One canonical form for every number a person types (issue 17, "one person, one borrower"): Unicode NFKC,
separators dropped, any script's digits as ASCII, the ID number's x upper-cased, phones in E.164; the check digit
and the birth date are validated on that form; whatever is not a number of one script is refused naming the field.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.iso7064 import mod_11_2

from ledger.identity import (
    InvalidIdentity,
    KycRecord,
    ascii_digits,
    identity_commitment,
    mask_phone,
    national_number,
    normalize_bank_card,
    normalize_id_number,
    normalize_phone,
)

STANDARD_ID = "11010519491231002X"   # GB 11643-1999's worked example
FULL_WIDTH, ARABIC_INDIC, DEVANAGARI = 0xFF10, 0x0660, 0x0966
# The zero of every decimal-digit script Unicode knows (each script's digits are ten consecutive code points).
DIGIT_ZEROS = sorted(c for c in range(sys.maxunicode + 1)
                     if unicodedata.category(chr(c)) == "Nd" and unicodedata.decimal(chr(c)) == 0)
SEPARATORS = [" ", "\u3000", "-", "\uff0d", "\u2010", "\u2014", "\u2212", "\t"]


def in_digits(text: str, zero: int) -> str:
    return "".join(chr(zero + int(c)) if c.isascii() and c.isdigit() else c for c in text)


def reason(call, *args) -> InvalidIdentity:
    with pytest.raises(InvalidIdentity) as caught:
        call(*args)
    return caught.value


# ---------------------------------------------------------------------------- the same number, however typed


@pytest.mark.parametrize("typed", [
    in_digits(STANDARD_ID[:-1], FULL_WIDTH) + "Ｘ",
    in_digits(STANDARD_ID[:-1], FULL_WIDTH) + "ｘ",
    in_digits(STANDARD_ID[:-1], ARABIC_INDIC) + "x",
    in_digits(STANDARD_ID[:-1], DEVANAGARI) + "X",
    "110105 19491231 002x",
    "110105\u300019491231\uff0d002X",
    "110105-1949-1231-002x",
])
def test_an_id_number_in_other_digits_is_the_same_number(typed):
    assert normalize_id_number(typed) == STANDARD_ID


@pytest.mark.parametrize("typed", [
    "13812345678", "+8613812345678", "+86 138 1234 5678", "0086 138 1234 5678", "86 138 1234 5678",
    "+86 (138) 1234-5678", "１３８１２３４５６７８", "＋８６\u3000１３８－１２３４－５６７８", in_digits("13812345678", ARABIC_INDIC),
    "+86 " + in_digits("13812345678", DEVANAGARI),
])
def test_a_phone_in_any_listed_form_is_one_e164_number(typed):
    assert normalize_phone(typed) == "+8613812345678"
    assert national_number(typed) == "13812345678"
    assert mask_phone(normalize_phone(typed)) == "138****5678"


def test_a_card_in_full_width_digits_is_the_same_card():
    assert normalize_bank_card("４１１１　１１１１－１１１１ １１１１") == "4111111111111111"


def test_the_commitment_is_the_same_whatever_digits_were_typed():
    salt = bytes(range(32))
    base = identity_commitment({"name": "张三", "id_number": STANDARD_ID}, salt)
    for typed in (in_digits(STANDARD_ID[:-1], FULL_WIDTH) + "ｘ", in_digits(STANDARD_ID[:-1], ARABIC_INDIC) + "x"):
        assert identity_commitment({"name": "张 三", "id_number": typed}, salt) == base


def test_a_record_keeps_only_the_canonical_form():
    record = KycRecord(" 张　三 ", in_digits(STANDARD_ID[:-1], ARABIC_INDIC) + "x", "０086 138 1234 5678",
                       "４１１１１１１１１１１１１１１１")
    assert record.to_dict() == {"name": "张三", "id_number": STANDARD_ID, "phone": "+8613812345678",
                                "bank_card": "4111111111111111"}
    assert all(value.isascii() for key, value in record.to_dict().items() if key != "name")


# ---------------------------------------------------------------------------- validated on the canonical form


def test_the_check_digit_is_checked_on_the_normalised_number():
    wrong = in_digits(STANDARD_ID[:-1], FULL_WIDTH) + "０"
    assert "check digit" in reason(normalize_id_number, wrong).message


def test_the_birth_date_is_read_from_the_normalised_number():
    not_a_date = "110105199002300020"   # 1990-02-30
    assert "(19900230) are not a birth date" in reason(normalize_id_number, in_digits(not_a_date, ARABIC_INDIC)).message
    future = mod_11_2.calc_check_digit("11010520270101002")
    typed = in_digits("11010520270101002" + future, FULL_WIDTH)
    assert "is in the future" in reason(normalize_id_number, typed).message


@pytest.mark.parametrize("call, typed, words", [
    (normalize_id_number, "11O10519491231002X", "'O' is not a digit"),                # a letter O for a zero
    (normalize_id_number, "一1010519491231002X", "'一' is not a digit"),               # a Chinese numeral
    (normalize_id_number, "Ⅱ1010519491231002X", "not a digit"),                      # NFKC makes Ⅱ letters, not 2
    (normalize_id_number, in_digits("110105194", ARABIC_INDIC) + "91231002X", "one script"),
    (normalize_id_number, in_digits("1101051949", DEVANAGARI) + in_digits("1231002", ARABIC_INDIC) + "X",
     "one script"),
    (normalize_id_number, "1X010519491231002X", "X as the last character"),
    (normalize_phone, "138123456７8", None),                                          # full-width folds: accepted
    (normalize_phone, "138" + in_digits("12345678", ARABIC_INDIC), "one script"),
    (normalize_phone, "138-1234-567B", "'B' is not a digit"),
    (normalize_phone, "+852 6123 4567", "only mainland (+86)"),
    (normalize_phone, "001 415 555 0100", "only mainland (+86)"),
    (normalize_phone, "138+12345678", "'+' is not a digit"),
    (normalize_bank_card, "4111 1111 1111 111l", "'L' is not a digit"),
    (normalize_bank_card, "4111" + in_digits("111111111111", ARABIC_INDIC), "one script"),
])
def test_what_is_not_one_number_is_refused_naming_the_field(call, typed, words):
    if words is None:
        assert call(typed) == "+8613812345678"
        return
    error = reason(call, typed)
    assert error.field == {normalize_id_number: "id_number", normalize_phone: "phone",
                           normalize_bank_card: "bank_card"}[call]
    assert words in error.message, error.message


# ---------------------------------------------------------------------------- properties


@st.composite
def id_numbers(draw) -> str:
    """A valid ID number: a region code, a birth date from 1900 to 2008, a sequence and its check character."""
    region = draw(st.sampled_from(["110105", "310104", "440305", "650102", "820000"]))
    born = draw(st.dates(date(1900, 1, 1), date(2008, 12, 31)))
    first17 = f"{region}{born:%Y%m%d}{draw(st.integers(0, 999)):03d}"
    return first17 + mod_11_2.calc_check_digit(first17)


def _typed(draw, ascii_number: str) -> str:
    """`ascii_number` as someone might type it: in one script's digits, with separators here and there."""
    zero = draw(st.sampled_from(DIGIT_ZEROS))
    out = []
    for char in in_digits(ascii_number, zero):
        out.append(char.lower() if char == "X" and draw(st.booleans()) else char)
        if draw(st.integers(0, 5)) == 0:
            out.append(draw(st.sampled_from(SEPARATORS)))
    return "".join(out)


@settings(max_examples=200, deadline=None)
@given(st.data(), id_numbers())
def test_property_every_typing_of_an_id_number_is_that_number(data, number):
    assert normalize_id_number(_typed(data.draw, number)) == number


@settings(max_examples=200, deadline=None)
@given(st.data(), st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True), st.sampled_from(["", "+86", "0086", "86"]))
def test_property_every_typing_of_a_mobile_is_its_e164_number(data, national, prefix):
    # The country code is typed with the number, in the same digits; only the "+" stays a "+" (or "＋").
    plus = data.draw(st.sampled_from(["+", "＋"])) if prefix.startswith("+") else ""
    assert normalize_phone(plus + _typed(data.draw, prefix.lstrip("+") + national)) == "+86" + national


_E164 = re.compile(r"\+861[3-9][0-9]{9}")
_ID = re.compile(r"[0-9]{17}[0-9X]")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=24))
def test_property_any_text_is_a_canonical_number_or_refused_by_name(text):
    """Nothing escapes the normaliser: an ASCII canonical form comes out, or InvalidIdentity naming the field."""
    for call, field, form in ((normalize_id_number, "id_number", _ID), (normalize_phone, "phone", _E164),
                              (normalize_bank_card, "bank_card", re.compile(r"[0-9]{12,19}"))):
        try:
            value = call(text)
        except InvalidIdentity as exc:
            assert exc.field == field
        else:
            assert form.fullmatch(value), (field, value)
            assert call(value) == value   # the canonical form is a fixed point


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(categories=["Nd", "Zs"]), max_size=30))
def test_property_ascii_digits_gives_only_ascii_digits(text):
    try:
        value = ascii_digits(text, "number")
    except InvalidIdentity as exc:
        assert exc.field == "number" and "one script" in exc.message
    else:
        assert value.isascii() and (value.isdigit() or value == "")
