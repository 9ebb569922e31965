"""One person, one borrower (issue 17): an ID number or a phone typed in full-width or Arabic-Indic digits, with a
lower-case x or with spaces, is the same number, through the real API, its vault and its blind indexes. Another
wallet typing a borrower's identity so is refused as the duplicate it is and changes nothing; the same person's
own retry so is the same person; what no normalisation makes a number is refused naming the field."""

from __future__ import annotations

import pytest
from api_outcomes import api_error
from eth_account import Account
from sqlalchemy import func, select

from ledger.identity import KycRecord, verify_commitment
from ledger.samples import sample_identity
from ledger.store.models.api import KycApplication
from ledger.store.models.pii import KycVaultRecord

FULL_WIDTH, ARABIC_INDIC = 0xFF10, 0x0660   # the digit zero of each script
# Made-up people: the first whose ID number ends in the check character X, and another.
X_PERSON = next(i for i in range(100) if sample_identity(i)["id_number"].endswith("X"))
OTHER_PERSON = X_PERSON + 1


def in_digits(text: str, zero: int) -> str:
    """`text` with its ASCII digits written in the script whose zero is `zero`."""
    return "".join(chr(zero + int(c)) if c.isascii() and c.isdigit() else c for c in text)


def id_number_forms(number: str) -> dict[str, str]:
    """The ways a person types 11010519491231002X on other keyboards; each is that number."""
    return {
        "full-width": in_digits(number[:-1], FULL_WIDTH) + "Ｘ",
        "Arabic-Indic, lower-case x": in_digits(number[:-1], ARABIC_INDIC) + "x",
        "lower-case x, spaces": f"{number[:6]} {number[6:14]} {number[14:].lower()}",
        "ideographic space, full-width hyphen": f"{number[:6]}\u3000{number[6:14]}\uff0d{number[14:]}",
    }


def phone_forms(national: str) -> dict[str, str]:
    return {
        "E.164 with spaces": f"+86 {national[:3]} {national[3:7]} {national[7:]}",
        "0086": "0086" + national,
        "full-width": "＋８６ " + in_digits(national, FULL_WIDTH),
        "Arabic-Indic": in_digits(national, ARABIC_INDIC),
        "hyphens": f"{national[:3]}-{national[3:7]}-{national[7:]}",
    }


def _store(context, app) -> tuple[int, int, int]:
    """What a refused submission must not change: vault records, pending applications, texts sent."""
    with context.sessions() as session:
        return (session.scalar(select(func.count()).select_from(KycVaultRecord)),
                session.scalar(select(func.count()).select_from(KycApplication)), len(app.state.sms.messages()))


def test_one_person_typed_in_any_digits_is_one_borrower(api, client_for):
    app, context = api
    person = sample_identity(X_PERSON)
    ids, phones = id_number_forms(person["id_number"]), phone_forms(person["phone"])
    owner = client_for(Account.create())
    first = owner.kyc_submit(**person)

    # Her own retry, typed on a phone's full-width keyboard: the same application of the same person.
    retry = {"name": " ".join(person["name"]), "id_number": ids["full-width"], "phone": phones["full-width"],
             "bank_card": in_digits(f"{person['bank_card'][:4]} {person['bank_card'][4:]}", FULL_WIDTH)}
    again = owner.kyc_submit(**retry)
    assert (again["status"], again["record"]) == ("submitted", first["record"])
    phone_code = app.state.sms.last_code(person["phone"], "phone")
    card_code = app.state.sms.last_code(phones["Arabic-Indic"], "card")  # one number, whatever its digits
    assert app.state.sms.messages()[-1]["to"] == "+86" + person["phone"]  # codes go to the E.164 number

    # A wrong code typed in full-width digits is still wrong, by name, and stores nothing.
    wrong = "000000" if phone_code != "000000" else "111111"
    error = api_error(owner.kyc_verify, in_digits(wrong, FULL_WIDTH), card_code)
    assert (error.status, error.code) == (422, "otp_wrong")
    assert _store(context, app)[0] == 0
    # The right codes, one in full-width and one in Arabic-Indic digits, are the codes that were sent.
    verified = owner.kyc_verify(in_digits(phone_code, FULL_WIDTH), in_digits(card_code, ARABIC_INDIC))
    assert verified["status"] == "registering"

    # Stored in the one canonical form: the commitment opens with the ID number in any of its forms.
    opening = context.vault.opening(owner.account.address)
    assert opening.record == KycRecord(**person)
    assert (opening.record.id_number, opening.record.phone) == (person["id_number"], "+86" + person["phone"])
    for form in ids.values():
        assert verify_commitment({"name": retry["name"], "id_number": form}, opening.salt, opening.commitment), form
        assert context.vault.find_by_id_number(form) == owner.account.address, form
    for form in phones.values():
        assert context.vault.find_by_phone(form) == owner.account.address, form

    # Another wallet claiming her name and ID number, or her phone, in any of those forms: the duplicate it is.
    other = client_for(Account.create())
    theirs = sample_identity(OTHER_PERSON)
    before = _store(context, app)
    for label, form in ids.items():
        error = api_error(other.kyc_submit, **{**theirs, "name": f" {person['name']} ", "id_number": form})
        assert (error.status, error.code, label) == (409, "duplicate_id_number", label)
    for label, form in phones.items():
        error = api_error(other.kyc_submit, **{**theirs, "phone": form})
        assert (error.status, error.code, label) == (409, "duplicate_phone", label)
    assert _store(context, app) == before
    assert other.kyc_status()["status"] == "none"


@pytest.mark.parametrize(("field", "value", "code", "words"), [
    ("id_number", "O" + sample_identity(OTHER_PERSON)["id_number"][1:], "invalid_id_number", "'O' is not a digit"),
    ("id_number", "一" + sample_identity(OTHER_PERSON)["id_number"][1:], "invalid_id_number", "'一' is not a digit"),
    ("id_number", in_digits(sample_identity(OTHER_PERSON)["id_number"][:9], ARABIC_INDIC)
     + sample_identity(OTHER_PERSON)["id_number"][9:], "invalid_id_number", "one script"),
    ("id_number", in_digits(sample_identity(X_PERSON)["id_number"][:-1] + "0", FULL_WIDTH), "invalid_id_number",
     "check digit"),
    ("phone", "1391234567O", "invalid_phone", "'O' is not a digit"),
    ("phone", "139" + in_digits("1234", ARABIC_INDIC) + "5678", "invalid_phone", "one script"),
    ("phone", "+1 415 555 0100", "invalid_phone", "only mainland (+86)"),
    ("bank_card", in_digits("6222 0210 0112 3456 78", FULL_WIDTH) + "Ｘ", "invalid_bank_card", "'X' is not a digit"),
])
def test_what_no_normalisation_makes_a_number_is_refused_by_name(api, client_for, field, value, code, words):
    app, context = api
    client = client_for(Account.create())
    error = api_error(client.kyc_submit, **{**sample_identity(OTHER_PERSON), field: value})
    assert (error.status, error.code) == (422, code)
    assert error.message.startswith(f"{field}: ") and words in error.message, error.message
    assert _store(context, app) == (0, 0, 0)
