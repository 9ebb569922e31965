"""`loanledger kyc card | card-verify`: a registered borrower changes their bank card on the command line (a step-up
code, then the bank's code), against the API served on a real port, the oracle's worker and anvil; the API's bank
is the rail stand-in's card verification, in-process (test_card_change.py runs it as a process)."""

from __future__ import annotations

import json

from ledger.samples import sample_identity, sample_second_card


def test_change_the_card_on_the_command_line(tmp_path, cli, api, registrar):
    sms = api[0].state.sms
    run = cli

    run("wallet", "new")
    run("login")
    person, new_card = sample_identity(70), sample_second_card(70)
    run("kyc", "submit", "--name", person["name"], "--id-number", person["id_number"], "--phone", person["phone"],
        "--bank-card", person["bank_card"])
    run("kyc", "verify", "--phone-code", sms.last_code(person["phone"], "phone"),
        "--card-code", sms.last_code(person["phone"], "card"))
    registrar()
    run("login")  # a borrower's token now

    assert run("step-up", "card_change", f"bank_card={new_card}")[0] == 0
    code, out = run("kyc", "card", "--bank-card", new_card, "--code", sms.last_code(person["phone"], "step_up"))
    assert code == 0 and "the bank texted its code" in out
    code, out = run("kyc", "card-verify", "--code", "000000" if sms.last_code(person["phone"], "card") != "000000"
                    else "111111")
    assert code == 1 and "otp_wrong" in out
    code, out = run("kyc", "card-verify", "--code", sms.last_code(person["phone"], "card"))
    assert code == 0 and f"card ****{new_card[-4:]}" in out
    status = json.loads(run("kyc", "status", "--json")[1])
    assert (status["status"], status["record"]["bank_card"]) == ("registered", "****" + new_card[-4:])
