"""`loanledger language` (a borrower's notice language) and `loanledger operator notices`, against the API served
on a real port."""

from __future__ import annotations

import json

import pytest

from ledger.store.models.notifications import Notification


@pytest.fixture
def run(cli):
    """`run(*args)` -> (exit code, output) of `loanledger ...` (the `cli` fixture)."""
    return cli


def _wallet(run, tmp_path, name: str, account) -> None:
    key_file = tmp_path / f"{name}.key"
    key_file.write_text(account.key.hex())
    assert run("wallet", "import", "--wallet", name, "--key-file", str(key_file))[0] == 0
    assert run("login", "--wallet", name)[0] == 0


def test_a_borrower_sets_their_language_and_an_operator_lists_notices(run, tmp_path, keys, api):
    _wallet(run, tmp_path, "alice", keys["alice"])
    code, out = run("language", "--wallet", "alice", "--json")
    assert code == 0 and json.loads(out) == {"language": "zh-CN", "time_zone": "Asia/Shanghai"}
    code, out = run("language", "en", "--wallet", "alice", "--json")
    assert code == 0 and json.loads(out)["language"] == "en"

    with api[1].sessions.begin() as session:
        session.add(Notification(loan_id=4, installment=2, borrower=keys["alice"].address, kind="reminder",
                                 channel="sms", status="queued", due_at=1_800_000_000, amount_due=41_000,
                                 created_at=1_799_800_000))
    _wallet(run, tmp_path, "op", keys["operator"])
    code, out = run("operator", "notices", "--wallet", "op", "--json")
    assert code == 0 and [(n["loan_id"], n["kind"], n["status"]) for n in json.loads(out)] == [
        (4, "reminder", "queued")]
    code, out = run("operator", "notices", "--wallet", "op", "--status", "set_aside", "--json")
    assert code == 0 and json.loads(out) == []
    code, out = run("operator", "notices", "--wallet", "op")
    assert code == 0 and "reminder" in out and "41,000" in out
