"""`loanledger quote`, `loan show` and `roles` against the session's anvil and contracts, through typer's runner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner
from web3 import Web3

from ledger import manifest as manifests
from ledger.cli import app
from ledger.node import free_port

DAY = 86_400
runner = CliRunner()


@pytest.fixture
def env(w3, stack, tmp_path) -> dict[str, str]:
    return {"LOANLEDGER_HOME": str(tmp_path / "home"), "LOANLEDGER_NODE_URL": w3.provider.endpoint_uri,
            "LOANLEDGER_MANIFEST": str(manifests.save(stack.manifest, tmp_path / "local.json"))}


def run(env: dict[str, str], *args: str):
    return runner.invoke(app, list(args), env=env)


def one_line(text: str) -> str:
    """Rich wraps long lines at the console width; assertions are about words, not layout."""
    return " ".join(text.split())


# ------------------------------------------------------------------ the node and the manifest
# (`loanledger quote` itself: tests/ledger/test_cli_quote.py)

QUOTE = ["quote", "--product", "1", "--principal", "120000", "--installments", "3"]


def test_node_down_is_one_line_exit_1(env):
    url = f"http://127.0.0.1:{free_port()}"
    for command in (QUOTE, ["loan", "show", "1"], ["roles"]):
        result = run({**env, "LOANLEDGER_NODE_URL": url}, *command)
        assert result.exit_code == 1, result.output
        assert f"no Ethereum node answers at {url}" in one_line(result.stderr)
        assert "Traceback" not in result.output and result.stdout == ""


def test_missing_manifest_says_to_deploy(env, tmp_path):
    result = run({**env, "LOANLEDGER_MANIFEST": str(tmp_path / "nowhere.json")}, *QUOTE)
    assert result.exit_code == 1
    assert "run `loanledger deploy`" in one_line(result.stderr)


def test_manifest_of_another_chain_state_says_to_deploy(env, stack, tmp_path):
    """A restarted node without its state keeps the chain id but not the contracts."""
    moved = manifests.load(env["LOANLEDGER_MANIFEST"])
    moved.contracts["LoanBook"] = type(moved.contracts["LoanBook"])("0x" + "ab" * 20, 1, "0x" + "00" * 32)
    path = manifests.save(moved, tmp_path / "moved.json")
    result = run({**env, "LOANLEDGER_MANIFEST": str(path)}, *QUOTE)
    assert result.exit_code == 1
    assert "no code for LoanBook" in one_line(result.stderr) and "loanledger deploy" in one_line(result.stderr)


# ------------------------------------------------------------------ loan show

def show(env, loan_id: int) -> dict:
    result = run(env, "loan", "show", str(loan_id), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_loan_show_follows_a_loan_through_its_life(env, w3, stack, keys, driver):
    alice, book = keys["alice"], stack.book
    driver.register(alice)
    driver.score(alice)
    loan_id = driver.request(alice)

    requested = show(env, loan_id)
    assert requested["status"] == "Requested" and requested["borrower"] == alice.address
    assert requested["disbursed_at"] is None
    assert requested["terms"] == {"principal": 120_000, "currency": "CNY", "annual_rate_bps": 2400,
                                  "amortization": "Annuity", "installments": 3, "interval": 30 * DAY,
                                  "grace_period": 3 * DAY, "late_fee_bps": 500, "penalty_rate_bps": 1800,
                                  "default_after": 90 * DAY}
    assert [i["due_at"] for i in requested["schedule"]] == [30 * DAY, 60 * DAY, 90 * DAY]  # relative until paid out
    assert {i["state"] for i in requested["schedule"]} == {"not owed"}
    assert requested["amounts"]["outstanding_principal"] == 0

    driver.approve(loan_id)
    driver.disburse(loan_id, 120_000, b"payout-1")
    active = show(env, loan_id)
    disbursed_at = book.functions.loanOf(loan_id).call()[3]
    assert active["status"] == "Active" and active["disbursed_at"] == disbursed_at
    assert [(i["due_at"], i["principal"], i["interest"]) for i in active["schedule"]] == \
        [tuple(row) for row in book.functions.schedule(loan_id).call()]
    assert [i["state"] for i in active["schedule"]] == ["upcoming"] * 3
    assert active["amounts"]["outstanding_principal"] == 120_000

    # Past the first due date and its grace: late, with a late fee and penalty accruing.
    driver.advance(35 * DAY)
    late = show(env, loan_id)
    now = w3.eth.get_block("latest").timestamp
    assert late["as_of"] == now
    principal, interest, late_fee, penalty, oldest = book.functions.amountDue(loan_id, now).call()
    assert late["amounts"]["due"] == {"principal": principal, "interest": interest, "late_fee": late_fee,
                                      "penalty": penalty, "oldest_due_at": oldest,
                                      "total": principal + interest + late_fee + penalty}
    assert late_fee > 0 and penalty > 0 and oldest == disbursed_at + 30 * DAY
    assert late["amounts"]["payoff"] == book.functions.payoffAmount(loan_id, now).call()
    assert [i["state"] for i in late["schedule"]] == ["overdue", "upcoming", "upcoming"]

    driver.repay(loan_id, late["amounts"]["due"]["total"], b"repay-1")
    after_first = show(env, loan_id)
    progress = book.functions.progressOf(loan_id).call()
    assert after_first["amounts"]["paid_installments"] == 1 == progress[0]
    assert after_first["amounts"]["principal_repaid"] == progress[2] == late["schedule"][0]["principal"]
    assert after_first["amounts"]["late_fee_paid"] == late_fee
    assert after_first["amounts"]["outstanding_principal"] == 120_000 - progress[2]
    assert [i["state"] for i in after_first["schedule"]] == ["paid", "upcoming", "upcoming"]

    driver.repay(loan_id, driver.payoff(loan_id), b"repay-2")
    repaid = show(env, loan_id)
    assert repaid["status"] == "Repaid"
    assert repaid["amounts"]["principal_repaid"] == 120_000 and repaid["amounts"]["outstanding_principal"] == 0
    assert repaid["amounts"]["payoff"] == 0 and repaid["amounts"]["due"]["total"] == 0
    assert [i["state"] for i in repaid["schedule"]] == ["paid"] * 3


def test_loan_show_table(env, keys, driver):
    loan_id = driver.active_loan(keys["bob"])
    result = run(env, "loan", "show", str(loan_id))
    assert result.exit_code == 0, result.output
    text = one_line(result.stdout)
    assert f"Loan {loan_id}" in text and "Active" in text and keys["bob"].address in text
    assert "120,000 CNY" in text and text.count("upcoming") == 3


def test_unknown_loan_is_the_contracts_error(env, keys, driver):
    driver.active_loan(keys["carol"])
    result = run(env, "loan", "show", "999")
    assert result.exit_code == 1
    message = one_line(result.stderr)
    assert "loan 999 does not exist" in message and "LoanBookUnknownLoan(loanId=999)" in message
    assert "there are 1 loans" in message and "Traceback" not in result.output


def test_loan_id_zero_is_a_usage_error(env):
    assert run(env, "loan", "show", "0").exit_code == 2


# ------------------------------------------------------------------ roles

def roles(env) -> dict:
    result = run(env, "roles", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_roles_lists_the_deployment_grants(env, stack, keys):
    report = roles(env)
    assert set(report["contracts"]) == set(stack.manifest.contracts)
    assert report["differences"] == []
    for name, contract in report["contracts"].items():
        binding = stack.manifest.contracts[name]
        assert contract["address"] == Web3.to_checksum_address(binding.address)
        # The admin's, and FourEyes' (role grants by two admins); FourEyes' own: its two admins.
        admins = [keys["admin2"].address] if name == "FourEyes" else [stack.four_eyes.address]
        assert sorted(contract["roles"]["DEFAULT_ADMIN_ROLE"]) == sorted([keys["admin"].address, *admins])
        assert contract["roles"]["PAUSER_ROLE"] == [keys["pauser"].address]
        # Least privilege: each role is held only where the deploy granted it (ledger.deploy.GRANTS).
        assert contract["roles"] == {role: stack.manifest.granted(name).get(role, []) for role in contract["roles"]}
    assert report["contracts"]["LoanBook"]["roles"]["OPERATOR_ROLE"] == [keys["operator"].address]
    assert report["contracts"]["LoanBook"]["roles"]["ORACLE_ROLE"] == [keys["oracle"].address]
    assert report["contracts"]["ProductCatalog"]["roles"]["ORACLE_ROLE"] == []
    assert report["contracts"]["CreditOracle"]["roles"]["OPERATOR_ROLE"] == []
    assert report["contracts"]["CreditOracle"]["roles"]["SCORE_SIGNER_ROLE"] == [keys["signer"].address]
    assert "SCORE_SIGNER_ROLE" not in report["contracts"]["LoanBook"]["roles"]
    assert report["signer_threshold"] == stack.oracle.functions.signerThreshold().call() == 1


def test_roles_reflect_grants_and_revocations_since_deployment(env, w3, stack, keys):
    book, admin = stack.book, keys["admin"].address
    operator_role = book.functions.OPERATOR_ROLE().call()
    for change in (book.functions.grantRole(operator_role, keys["dave"].address),
                   book.functions.revokeRole(operator_role, keys["operator"].address)):
        assert w3.eth.wait_for_transaction_receipt(change.transact({"from": admin})).status == 1

    report = roles(env)
    assert report["contracts"]["LoanBook"]["roles"]["OPERATOR_ROLE"] == [keys["dave"].address]
    # Only the LoanBook changed: grants are per contract.
    assert report["contracts"]["BorrowerRegistry"]["roles"]["OPERATOR_ROLE"] == [keys["operator"].address]
    assert sorted(report["differences"], key=lambda d: d["change"]) == [
        {"contract": "LoanBook", "role": "OPERATOR_ROLE", "account": keys["dave"].address,
         "change": "granted after deployment"},
        {"contract": "LoanBook", "role": "OPERATOR_ROLE", "account": keys["operator"].address,
         "change": "revoked after deployment"},
    ]
    assert book.functions.hasRole(operator_role, keys["dave"].address).call()

    table = run(env, "roles")
    assert table.exit_code == 0, table.output
    dave_row = next(line for line in table.stdout.splitlines() if keys["dave"].address in line)
    assert "OPERATOR_ROLE" in dave_row and "granted" in dave_row  # the note wraps in an 80-column console
    text = one_line(table.stdout)
    assert f"revoked after deployment: OPERATOR_ROLE of {keys['operator'].address} on LoanBook" in text
