"""`loanledger kyc renew | phone | phone-verify`: a renewal after expiry and a phone change on the command line,
against the API served on a real port, the oracle's worker and anvil."""

from __future__ import annotations

import json

from api.client import load_wallet
from ledger.samples import sample_identity


def test_renew_after_expiry_and_change_the_phone_on_the_command_line(tmp_path, cli, api, driver, registrar, stack,
                                                                      monkeypatch):
    sms = api[0].state.sms
    run = cli

    run("wallet", "new")
    run("login")
    address = load_wallet(tmp_path / "wallets" / "default.json", "pass phrase").address
    person = sample_identity(60)
    identity = ["--name", person["name"], "--id-number", person["id_number"], "--phone", person["phone"],
                "--bank-card", person["bank_card"]]
    run("kyc", "submit", *identity)
    run("kyc", "verify", "--phone-code", sms.last_code(person["phone"], "phone"),
        "--card-code", sms.last_code(person["phone"], "card"))
    registrar()
    first = stack.registry.functions.borrowerOf(address).call()[1]
    code, out = run("kyc", "renew", *identity)
    assert code == 1 and "renewal_not_open" in out

    driver.advance(first - driver.now + 1)
    assert json.loads(run("kyc", "status", "--json")[1])["status"] == "expired"
    code, out = run("kyc", "renew", *identity)
    assert code == 0 and "renewal submitted" in out
    code, out = run("kyc", "verify", "--phone-code", sms.last_code(person["phone"], "phone"),
                    "--card-code", sms.last_code(person["phone"], "card"))
    assert code == 0 and "registering" in out
    assert registrar().updated == 1
    status = json.loads(run("kyc", "status", "--json")[1])
    assert status["status"] == "registered" and status["kyc_expires_at"] > first
    assert stack.registry.functions.borrowerOf(address).call()[1] == status["kyc_expires_at"]

    new_phone = sample_identity(61)["phone"]
    assert run("kyc", "phone", "--phone", new_phone)[0] == 1  # no step-up code typed: refused, nothing changed
    assert run("step-up", "phone_change", f"phone={new_phone}")[0] == 0  # texted to the verified (old) phone
    wrong = "000000" if sms.last_code(person["phone"], "step_up") != "000000" else "111111"
    code, out = run("kyc", "phone", "--phone", new_phone, "--code", wrong)
    assert code == 1 and "step_up_wrong" in out
    # Without --code the command has the code texted and asks for it; the borrower types what their phone shows.
    asked = []

    def types_what_the_phone_shows(text: str, **_) -> str:
        asked.append(text)
        return sms.last_code(person["phone"], "step_up")
    monkeypatch.setattr("api.cli.typer.prompt", types_what_the_phone_shows)
    code, out = run("kyc", "phone", "--phone", new_phone)
    assert asked == ["Step-up code texted to your phone for phone_change"]
    assert code == 0 and "reverification_needed" in out and new_phone not in out
    code, out = run("kyc", "phone-verify", "--code", sms.last_code(new_phone, "phone_change"))
    assert code == 0 and out.startswith("registered")
