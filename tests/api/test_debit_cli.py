"""`loanledger debit mandate | show | revoke`: a borrower sets up automatic debit on the command line (the wallet
signs the DebitMandate, the step-up code is typed from the phone), sees it with the card masked, and revokes it,
against the API served on a real port and anvil."""

from __future__ import annotations

import json

import pytest
import typer
from step_up_codes import read_code


@pytest.fixture
def active_loan(api, borrower, application, driver) -> int:
    loan_id = borrower.apply(**application)["loan_id"]
    driver.approve(loan_id)
    driver.disburse(loan_id, application["principal"], b"payout-debit-cli")
    assert api[1].wait_indexed(driver.w3.eth.block_number)
    return loan_id


def test_a_mandate_signed_shown_and_revoked_on_the_command_line(tmp_path, cli, api, borrower, keys, active_loan,
                                                                monkeypatch):
    key_file = tmp_path / "alice.key"
    key_file.write_text(keys["alice"].key.hex())
    run = cli

    assert run("wallet", "import", "--key-file", str(key_file))[0] == 0
    assert run("login")[0] == 0
    loan = str(active_loan)
    code, out = run("debit", "mandate", loan, "--max-amount", "50000", "--yes", "--code", "000000")
    assert code == 1 and "step_up_wrong" in out  # no code was sent for it: nothing kept
    # Without --code the command has the code texted and asks for it; the borrower types what the phone shows.
    typed = []

    def code_from_phone(*_args, **_kwargs):
        typed.append(read_code(api[0], borrower.account.address))
        return typed[-1]

    monkeypatch.setattr(typer, "prompt", code_from_phone)
    code, out = run("debit", "mandate", loan, "--max-amount", "50000", "--yes", "--json")
    assert code == 0, out
    made = json.loads(out[out.index("{"):])
    assert (made["loan_id"], made["max_amount"], made["revoked_at"]) == (active_loan, 50_000, None) and typed
    code, out = run("debit", "show", loan, "--json")
    shown = json.loads(out)
    assert shown["mandate"]["id"] == made["id"] and shown["mandate"]["card"].startswith("**** ")
    assert api[1].vault.get(borrower.account.address).bank_card not in out  # the card's last four only
    code, out = run("debit", "revoke", loan, "--json")
    assert code == 0 and json.loads(out)["revoked_at"] is not None
    assert json.loads(run("debit", "show", loan, "--json")[1])["mandate"] is None
