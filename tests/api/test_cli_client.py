"""The client commands a borrower and an operator type, against the API served on a real port."""

from __future__ import annotations

import json
import threading

import pytest
from typer.testing import CliRunner

from api.client import load_wallet
from ledger import four_eyes
from ledger.cli import app
from ledger.products import DayCount, EarlyRepayment, Frequency, Product, product_name
from ledger.samples import sample_identity
from ledger.typed_data import Amortization


@pytest.fixture
def run(cli):
    """`run(*args)` -> (exit code, output) of `loanledger ...` (the `cli` fixture)."""
    return cli


def test_a_borrower_from_new_wallet_to_a_loan_on_the_command_line(run, api, tmp_path, driver, publish, registrar):
    app_, _ = api
    code, out = run("wallet", "new")
    assert code == 0 and "0x" in out
    code, address = run("wallet", "address")
    address = address.strip()
    wallet = load_wallet(tmp_path / "wallets" / "default.json", "pass phrase")
    assert wallet.address == address
    assert run("login")[0] == 0
    person = sample_identity(20)
    code, out = run("kyc", "submit", "--name", person["name"], "--id-number", person["id_number"], "--phone",
                    person["phone"], "--bank-card", person["bank_card"])
    assert code == 0 and person["phone"] not in out  # the phone shows masked
    sms = app_.state.sms
    code, out = run("kyc", "verify", "--phone-code", sms.last_code(person["phone"], "phone"),
                    "--card-code", sms.last_code(person["phone"], "card"))
    assert code == 0 and "registering" in out  # the oracle registers it: its worker, one round
    registrar()
    code, out = run("kyc", "status")
    assert code == 0 and "registered" in out
    driver.score(wallet)
    product_id = publish(name="CLI 3-month", service_fee_bps=20, annual_rate_bps=1_800)
    # A step-up code for exactly this application, texted to the verified phone, typed back as --code.
    code, out = run("step-up", "apply", f"product_id={product_id}", "principal=100000", "installments=3")
    assert code == 0 and "code texted to" in out and person["phone"] not in out
    step_up = sms.last_code(person["phone"], "step_up")
    code, out = run("apply", "--product", str(product_id), "--principal", "100000", "--installments", "3", "--yes",
                    "--code", step_up)
    assert code == 0 and "loan 1: Requested" in out and "service fee 200; paid out 99,800" in " ".join(out.split())
    code, out = run("loans", "--json")
    loans = json.loads(out)
    assert [(loan["id"], loan["status"], loan["principal"]) for loan in loans] == [(1, "Requested", 100_000)]
    code, out = run("due", "1", "--json")
    assert code == 0 and json.loads(out)["payoff"] == 0  # nothing owed before payout
    code, out = run("credit", "--json")
    assert code == 0 and json.loads(out)["outstanding_principal"] == 0  # requested, not yet approved
    code, out = run("pay", "1")
    assert code == 1 and "nothing is due now" in out
    code, out = run("pay", "1", "--amount", "5000")
    assert code == 1 and "does not answer" in out  # this test's rail URL points nowhere


def test_apply_waits_for_the_automatic_policys_decision(run, api, tmp_path, driver, publish, client_for, keys,
                                                        policy, registrar):
    app_, _ = api
    run("wallet", "new")
    run("login")
    person = sample_identity(21)
    run("kyc", "submit", "--name", person["name"], "--id-number", person["id_number"], "--phone", person["phone"],
        "--bank-card", person["bank_card"])
    sms = app_.state.sms
    run("kyc", "verify", "--phone-code", sms.last_code(person["phone"], "phone"),
        "--card-code", sms.last_code(person["phone"], "card"))
    registrar()  # the oracle registers the verified borrower
    assert "registered" in run("kyc", "status")[1]  # its next request is a borrower's
    driver.score(load_wallet(tmp_path / "wallets" / "default.json", "pass phrase"))
    product_id = str(publish())

    def step_up_code(product: str) -> str:  # asked for on the command line, read off the phone
        assert run("step-up", "apply", f"product_id={product}", "principal=100000", "installments=3")[0] == 0
        return sms.last_code(person["phone"], "step_up")
    # The policy is off: nobody decides, and the wait says so.
    code, out = run("apply", "--product", product_id, "--principal", "100000", "--installments", "3", "--yes",
                    "--wait", "0.5", "--code", step_up_code(product_id))
    assert code == 0 and "loan 1: Requested" in out and "still Requested after 0.5s" in " ".join(out.split())
    # Switched on, its rounds (the policy process's code, here in a thread) decide while the command waits.
    client_for(keys["operator"]).set_auto_approve(True)
    stop = threading.Event()

    def every_tenth_of_a_second() -> None:
        while not stop.wait(0.1):
            policy()
    rounds = threading.Thread(target=every_tenth_of_a_second)
    rounds.start()
    try:
        code, out = run("apply", "--product", product_id, "--principal", "100000", "--installments", "3", "--yes",
                        "--wait", "30", "--code", step_up_code(product_id))
    finally:
        stop.set()
        rounds.join(timeout=30)
    assert code == 0 and "loan 2: Requested" in out and "loan 2: Approved" in out


def test_wrong_passphrase_bad_code_and_no_api_are_one_line_errors(run, tmp_path, api):
    run("wallet", "new")
    runner = CliRunner()
    env = {"LOANLEDGER_WALLET_DIR": str(tmp_path / "wallets"), "LOANLEDGER_WALLET_PASSPHRASE": "wrong",
           "LOANLEDGER_API_URL": "http://127.0.0.1:9", "LOANLEDGER_HOME": str(tmp_path)}
    result = runner.invoke(app, ["login"], env=env)
    assert result.exit_code == 1 and "wrong passphrase" in result.output
    assert run("login")[0] == 0
    code, out = run("kyc", "verify", "--phone-code", "123456", "--card-code", "123456")
    assert code == 1 and "no_pending_kyc" in out
    env["LOANLEDGER_WALLET_PASSPHRASE"] = "pass phrase"
    result = runner.invoke(app, ["loans"], env=env)
    assert result.exit_code == 1 and "does not answer" in result.output


def test_serving_without_vault_keys_is_one_clear_line(tmp_path):
    result = CliRunner().invoke(app, ["api", "--port", "9"], env={"LOANLEDGER_HOME": str(tmp_path)})
    assert result.exit_code == 1
    assert "loanledger keys init" in result.output and "Traceback" not in result.output


def test_the_products_on_offer_need_no_wallet_and_show_every_term(run, stack, w3, keys):
    product = Product(
        name=product_name("3-month"), currency=b"CNY", min_principal=1_000_000, max_principal=50_000_000,
        min_installments=3, max_installments=3, frequency=Frequency.FIXED_INTERVAL, day_count=DayCount.ACTUAL_365_FIXED,
        interval=30 * 86_400,
        annual_rate_bps=1_800, amortization=Amortization.ANNUITY, grace_period=3 * 86_400, late_fee_bps=500,
        penalty_rate_bps=1_200, default_after=90 * 86_400, service_fee_bps=50,
        early_repayment=EarlyRepayment.REDUCE_INSTALLMENTS, auto_approve=True, auto_approve_max_principal=5_000_000)
    fn = stack.catalog.functions.createProduct(product.as_tuple(stack.catalog))
    four_eyes.carry_out(w3, stack.four_eyes, fn, keys["operator"].address, keys["operator2"].address)
    code, out = run("products", "--json")
    listed = json.loads(out)
    assert code == 0 and [(p["id"], p["version"], p["name"], p["annual_rate_bps"], p["service_fee_bps"],
                           p["auto_approve_max_principal"]) for p in listed] == [(1, 1, "3-month", 1_800, 50, 5_000_000)]
    code, out = run("products")
    assert code == 0 and "3-month" in out and "18% a year Annuity" in out and "service fee 0.5%" in out and "up to 5,000,000" in out
    code, out = run("products", "1", "--version", "1", "--json")
    assert code == 0 and json.loads(out) == listed[0]
    code, out = run("products", "2")
    assert code == 1 and "unknown_product" in out


def test_an_operator_publishes_changes_and_retires_a_product_on_the_command_line(run, tmp_path, keys, stack):
    key_file = tmp_path / "operator.key"
    key_file.write_text(keys["operator"].key.hex())
    assert run("wallet", "import", "--wallet", "op", "--key-file", str(key_file))[0] == 0
    assert run("login", "--wallet", "op")[0] == 0
    product = tmp_path / "product.json"
    terms = {"name": "3-month", "currency": "CNY", "min_principal": 1_000_000, "max_principal": 50_000_000,
             "min_installments": 3, "max_installments": 3, "interval": 30 * 86_400, "annual_rate_bps": 1_800,
             "amortization": "Annuity", "grace_period": 3 * 86_400, "late_fee_bps": 500, "penalty_rate_bps": 1_200,
             "default_after": 90 * 86_400}
    _import_wallet(run, tmp_path, "op2", keys["operator2"])

    def confirmed(out: str) -> bool:
        """The second operator lists what awaits them and confirms the proposal the operator's command printed."""
        proposal_id = json.loads(out)["proposal_id"]
        code, listed = run("operator", "proposals", "--wallet", "op2", "--json")
        assert code == 0 and [(p["proposal_id"], p["proposer"]) for p in json.loads(listed)] == [
            (proposal_id, keys["operator"].address)]
        code, out = run("operator", "confirm", proposal_id, "--wallet", "op2")
        assert code == 0 and "signing: Confirm: " in out and "proposed by" in out
        return json.loads(run("operator", "proposals", "--wallet", "op2", "--json")[1]) == []

    product.write_text(json.dumps(terms))
    code, out = run("operator", "product", "create", "--file", str(product), "--wallet", "op", "--json")
    assert code == 0 and json.loads(out)["state"] == "awaiting confirmation"
    assert stack.catalog.functions.productCount().call() == 0
    refused = run("operator", "confirm", json.loads(out)["proposal_id"], "--wallet", "op")  # not by its proposer
    assert refused[0] == 1 and "four_eyes_same_person" in refused[1]
    assert confirmed(out)
    assert stack.catalog.functions.statusOf(1).call()[:2] == (1, False)
    product.write_text(json.dumps({**terms, "annual_rate_bps": 1_500}))
    code, out = run("operator", "product", "change", "1", "--file", str(product), "--wallet", "op", "--json")
    assert code == 0 and confirmed(out)
    assert json.loads(run("products", "1", "--json")[1])["annual_rate_bps"] == 1_500
    code, out = run("operator", "product", "retire", "1", "--wallet", "op", "--json")
    assert code == 0 and json.loads(out)["summary"] == "Retire product 1" and confirmed(out)
    assert stack.catalog.functions.statusOf(1).call()[:2] == (2, True)  # the latest version, retired
    product.write_text(json.dumps({**terms, "late_fee_bps": 900}))
    code, out = run("operator", "product", "create", "--file", str(product), "--wallet", "op")
    assert code == 1 and "product_catalog_late_fee_above_ceiling" in out
    product.write_text("[1, 2]")
    code, out = run("operator", "product", "create", "--file", str(product), "--wallet", "op")
    assert code == 1 and "expected one JSON object" in out


def _import_wallet(run, tmp_path, name: str, account) -> None:
    key_file = tmp_path / f"{name}.key"
    key_file.write_text(account.key.hex())
    assert run("wallet", "import", "--wallet", name, "--key-file", str(key_file))[0] == 0
    assert run("login", "--wallet", name)[0] == 0


def test_an_operator_approves_with_their_own_wallet_after_reading_what_it_does(run, tmp_path, keys, stack, w3,
                                                                               borrower, application):
    loan_id = borrower.apply(**application)["loan_id"]
    _import_wallet(run, tmp_path, "op", keys["operator"])
    code, out = run("operator", "approve", str(loan_id), "--wallet", "op")
    assert code == 0 and f"signing: Approve loan {loan_id}: pay out ¥1,200.00 to" in out
    assert stack.book.functions.loanOf(loan_id).call()[2] == 2  # Approved
    (event,) = stack.book.events.LoanApproved().get_logs(from_block=w3.eth.block_number - 5)
    assert event.args.actor == keys["operator"].address  # the chain names the operator, not the API's relayer
    code, out = run("operator", "approve", str(loan_id), "--wallet", "op")
    assert code == 1 and "loan_book_invalid_status" in out


def test_an_admin_grants_and_revokes_a_role_with_their_own_wallet(run, tmp_path, keys, stack):
    _import_wallet(run, tmp_path, "admin", keys["admin"])
    role = stack.book.functions.PAUSER_ROLE().call()
    dave = keys["dave"].address
    code, out = run("admin", "grant", "pauser", dave, "--wallet", "admin", "--json")
    granted = json.loads(out)
    assert code == 0 and {t["signed_by"] for t in granted["transactions"]} == {keys["admin"].address}
    # On every contract but FourEyes, whose pauser only two admins change.
    assert all(c.functions.hasRole(role, dave).call() != (c == stack.four_eyes) for c in stack.all)
    code, out = run("admin", "revoke", "pauser", dave, "--wallet", "admin")
    assert code == 0 and "signing: Revoke the pauser role of" in out
    assert not any(c.functions.hasRole(role, dave).call() for c in stack.all)
    _import_wallet(run, tmp_path, "op", keys["operator"])
    code, out = run("admin", "grant", "pauser", dave, "--wallet", "op")
    assert code == 1 and "forbidden" in out  # an operator is no admin: nothing is prepared for them to sign
