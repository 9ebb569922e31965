"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; nothing
downloads a browser) against the API served by uvicorn on a real port, with loans driven on-chain and
indexed by the real indexer. And the development login's refusals, over HTTP.

Without /usr/bin/chromium the browser tests skip, saying so; CI installs it and sets
LOANLEDGER_REQUIRE_BROWSER, so there a missing browser fails instead.
"""

from __future__ import annotations

import json
import logging
import re
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi.testclient import TestClient
from web3 import Web3
from dashboard_browser import Tab, chromium  # noqa: F401 - chromium is a fixture
from dashboard_browser import table_rows as _table

from api.auth import siwe_message
from api.client import LoanLedgerClient
from api.routes.dashboard import DEVELOPMENT_CHAIN_IDS, dev_login_gate
from ledger.chain import ChainClient
from ledger.indexer import EventDecoder
from ledger.manifest import ROOT
from oracle.outbox import Outbox, OutboxWorker
from oracle.payments.webhook import Confirmation, payment_ref

DAY = 86_400
PRINCIPAL = 120_000  # the driver's product: three 30-day annuity installments
SCREENSHOTS = ROOT / "var"


def send(w3, fn, sender: str):
    receipt = w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender}))
    assert receipt.status == 1
    return receipt


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def dev_api(api):
    """The API with the development login on (the route reads the context's settings on every request)."""
    app, context = api
    context.settings = context.settings.model_copy(update={"dev_login": True})
    return app, context


def local_client(app, host: str = "127.0.0.1", base_url: str = "http://127.0.0.1:8000") -> TestClient:
    """A TestClient whose requests come from `host` (the ASGI scope's client) and name `base_url`'s Host."""
    return TestClient(app, base_url=base_url, client=(host, 50_000))


@pytest.fixture
def tab(chromium, served):  # noqa: F811 - the fixture imported above
    opened = Tab(chromium, served)
    yield opened
    opened.close()




@pytest.fixture
def book(api, w3, stack, keys, driver) -> dict[str, int]:
    """Loans in six states, as of chain time T = t0 + 121 days:

    - Repaid:     alice, paid off at once
    - Active:     bob, installment 1 paid at t0 + 30 d, installment 2 (due t0 + 60 d) unpaid: 61 days past due
    - Defaulted:  carol, nothing paid, declared in default at T (121 days past due)
    - WrittenOff: dave, nothing paid, defaulted and written off at T
    - Requested, Approved: never disbursed
    """
    _, context = api
    operator = keys["operator"].address
    ids = {"Repaid": driver.active_loan(keys["alice"], ref=b"payout-repaid", report_id=1)}
    driver.repay(ids["Repaid"], driver.payoff(ids["Repaid"]), b"payoff-repaid")
    ids["Active"] = driver.active_loan(keys["bob"], ref=b"payout-active", report_id=2)
    ids["Defaulted"] = driver.active_loan(keys["carol"], ref=b"payout-defaulted", report_id=3)
    ids["WrittenOff"] = driver.active_loan(keys["dave"], ref=b"payout-written-off", report_id=4)
    driver.advance(30 * DAY)
    due = stack.book.functions.amountDue(ids["Active"], driver.now).call()
    driver.repay(ids["Active"], sum(due[:4]), b"active-installment-1")
    driver.advance(91 * DAY)
    send(w3, stack.book.functions.declareDefault(ids["Defaulted"]), operator)
    send(w3, stack.book.functions.declareDefault(ids["WrittenOff"]), operator)
    driver.write_off(ids["WrittenOff"])  # two operators (FourEyes)
    waiting = [Account.create(), Account.create()]
    for n, account in enumerate(waiting):
        driver.register(account)
        driver.score(account, report_id=5 + n)
    ids["Requested"] = driver.request(waiting[0])
    ids["Approved"] = driver.request(waiting[1])
    driver.approve(ids["Approved"])
    assert context.wait_indexed(w3.eth.block_number)
    return ids


@pytest.fixture
def auditor(served, keys) -> LoanLedgerClient:
    """A fresh key the admin admitted through the API (over the real port); it holds no other role."""
    account = Account.create()
    admin = LoanLedgerClient(served, keys["admin"])
    admin.login()
    admin.add_auditor(account.address)
    client = LoanLedgerClient(served, account)
    client.login()
    assert client.me()["roles"] == ["auditor"]
    return client


def _chain_events(w3, stack, loan_id: int) -> list[tuple[str, int, str]]:
    """(name, block, tx hash) of every LoanBook event of the loan, read from the node, in chain order."""
    decoder = EventDecoder(w3, stack.manifest)
    raw = w3.eth.get_logs({"fromBlock": stack.manifest.start_block, "toBlock": w3.eth.block_number,
                           "address": decoder.addresses})
    logs = [decoder.decode(log) for log in raw]
    return [(log.name, log.block_number, log.tx_hash) for log in logs
            if log.contract == "LoanBook" and log.args.get("loanId") == loan_id]


# ---------------------------------------------------------------------------------------------- the page in Chromium


def test_an_auditor_reads_the_book_and_a_loan_timeline(api, w3, stack, book, auditor, tab):
    page = tab.page
    tab.use_wallet(auditor.account)
    tab.open()
    assert page.is_visible("#dev-card")  # a hint on localhost; the server answers it only when turned on
    page.click("#wallet-login")
    tab.wait_ready("portfolio")
    assert page.text_content("#who-address") == auditor.account.address
    assert page.text_content("#who-roles") == "auditor"
    assert api[1].settings.dev_login is False and not [url for url in tab.requests if "dev-login" in url]

    # Every loan once, in its state (the chain's, through the index).
    rows = _table(page, "#loans-table tbody tr", "data-loan-id", "data-status")
    assert sorted((int(i), s) for i, s in rows) == sorted((i, s) for s, i in book.items())
    # Loans by state, and the report's figures as the API computes them.
    report = auditor.audit("report/portfolio")
    assert _table(page, "#by-status tbody tr", "data-status", "data-count") == \
           [(t["status"], str(t["count"])) for t in report["by_status"] if t["count"]]
    assert {s for s, _ in _table(page, "#by-status tbody tr", "data-status", "data-count")} == set(book)
    assert page.text_content("#stat-loans .value") == str(len(book))
    par30 = next(p for p in report["portfolio_at_risk"] if p["days"] == 30)
    assert par30["count"] == 2  # bob (61 days) and carol (121 days)
    assert page.text_content("#stat-par30 .value") == f"{par30['ratio'] * 100:.2f}%"
    assert page.text_content("#stat-outstanding .value") == \
           f"{report['outstanding_principal'] // 100:,}.{report['outstanding_principal'] % 100:02d} CNY"
    # Each loan's outstanding principal counts only the states the report names as running.
    cny = lambda minor: f"{minor // 100:,}.{minor % 100:02d} CNY"  # noqa: E731
    owed = {loan["id"]: loan["principal"] - loan["principal_repaid"] - loan["principal_written_off"]
            if loan["status"] in report["running_statuses"] else 0 for loan in auditor.audit("loans", limit=500)["loans"]}
    assert {int(row.get_attribute("data-loan-id")): row.query_selector("td:nth-child(5)").text_content()
            for row in page.query_selector_all("#loans-table tbody tr")} == {i: cny(v) for i, v in owed.items()}
    assert any(owed.values())
    # The delinquency chart: one bar per bucket, heights from the counts.
    bars = _table(page, "#buckets-chart svg rect.bar", "data-bucket", "data-count")
    assert bars == [(b["name"], str(b["count"])) for b in report["delinquency"]]
    assert dict(bars)["60-89"] == "1" and dict(bars)["90+"] == "1"
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)

    # A click opens the late loan's timeline: every event of the loan, as on the node.
    loan_id = book["Active"]
    page.click(f"#loans-table tbody tr[data-loan-id='{loan_id}'] td:nth-child(3)")  # the row, not its link
    tab.wait_ready("loan")
    assert page.text_content("#loan-title") == f"Loan #{loan_id} Active"
    expected = _chain_events(w3, stack, loan_id)
    assert [name for name, _, _ in expected][:3] == ["LoanRequested", "LoanApproved", "LoanDisbursed"]
    timeline = page.query_selector_all("#timeline tbody tr")
    shown = [(row.query_selector("td.event-name").text_content(),
              int(row.query_selector("td:nth-child(2)").text_content()),
              row.query_selector("td.hash").text_content()) for row in timeline]
    assert shown == expected
    # Arguments as decoded by the indexer; time as the block's.
    detail = auditor.audit(f"loans/{loan_id}")
    first = page.query_selector("#timeline tbody tr")
    assert json.loads(first.query_selector("td.args").text_content()) == detail["events"][0]["args"]
    assert first.query_selector("td:nth-child(3)").text_content().startswith(
        datetime.fromtimestamp(detail["events"][0]["block_time"], UTC).strftime("%Y-%m-%d %H:%M:%S"))
    assert _table(page, "#loan-payments tbody tr", "data-kind") == [("disbursement",), ("repayment",)]
    # Its verification: the state recomputed from events matches the node.
    page.wait_for_selector("#loan-verify[data-ok]")
    assert page.get_attribute("#loan-verify", "data-ok") == "true"
    page.screenshot(path=str(SCREENSHOTS / "dashboard-loan.png"), full_page=True)

    # The borrower's page: pseudonymous, with the score history and the loans.
    page.click("#loan-facts a")
    tab.wait_ready("borrower")
    borrower = auditor.audit(f"borrowers/{Web3.to_checksum_address(stack.book.functions.loanOf(loan_id).call()[1])}")
    assert page.text_content("#borrower-commitment") == borrower["identity_commitment"]
    assert len(page.query_selector_all("#score-history tbody tr")) == len(borrower["score_history"]) == 1
    assert _table(page, "#borrower-loans tbody tr", "data-loan-id") == [(str(loan_id),)]
    tab.assert_clean()


def test_a_wallet_signs_in_with_the_message_the_server_builds(api, served, auditor, tab):
    """A stand-in for window.ethereum that signs in Python: the page checksums the wallet's lower-case
    address (EIP-55, with ethers' getAddress), asks the server for the SIWE message, the wallet signs it,
    and the real /v1/auth/login accepts it."""
    _, context = api
    account = auditor.account
    signed: list[str] = []

    def personal_sign(data: str, address: str) -> str:
        assert address == account.address.lower()
        message = bytes.fromhex(data.removeprefix("0x")).decode()
        signed.append(message)
        return account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()

    tab.page.expose_function("testWalletSign", personal_sign)
    tab.page.add_init_script("""window.ethereum = {request: async ({method, params}) => {
        if (method === "eth_requestAccounts") return [%s];
        if (method === "personal_sign") return await window.testWalletSign(params[0], params[1]);
        throw new Error("unsupported " + method);
    }};""" % json.dumps(account.address.lower()))
    tab.open()
    tab.page.click("#wallet-login")
    tab.wait_ready("portfolio")
    assert tab.page.text_content("#who-address") == account.address
    assert tab.page.text_content("#who-roles") == "auditor"

    [message] = signed
    times = dict(re.findall(r"^(Issued At|Expiration Time): (\S+)$", message, re.M))
    nonce = re.search(r"^Nonce: (\S+)$", message, re.M).group(1)
    domain = context.settings.siwe_domain
    expected = siwe_message(domain, f"http://{domain}", account.address, context.w3.eth.chain_id, nonce)
    expected = re.sub(r"^(Issued At|Expiration Time): \S+$", lambda m: f"{m.group(1)}: {times[m.group(1)]}",
                      expected, flags=re.M)
    assert message == expected
    # The page's EIP-55 against web3's, on addresses whose hashes differ everywhere.
    for address in [Account.create().address for _ in range(5)]:
        assert tab.page.evaluate("a => LoanLedgerDashboard.checksumAddress(a)", address.lower()) == address
    tab.assert_clean()


def test_a_wallet_backed_by_a_key_signs_the_served_message_with_the_library(api, served, auditor, tab):
    """An EIP-1193 provider in the page holding the auditor's key signs with the library the page itself
    loads (ethers' Wallet, from the bundle the API serves): the message it signs is the one the nonce route
    served, byte for byte, and the login that verifies it lets the auditor in."""
    account = auditor.account
    tab.page.add_init_script("""(() => {
        const key = %s, address = %s, signed = window.signedMessages = [];
        window.ethereum = {request: async ({method, params}) => {
            if (method === "eth_requestAccounts") return [address];
            if (method !== "personal_sign") throw new Error("unsupported " + method);
            const ethers = await import(%s);
            if (params[1] !== address) throw new Error("asked to sign for " + params[1]);
            signed.push(ethers.toUtf8String(params[0]));
            return await new ethers.Wallet(key).signMessage(ethers.getBytes(params[0]));
        }};
    })();""" % (json.dumps(account.key.to_0x_hex()), json.dumps(account.address.lower()),
                json.dumps(f"/dashboard/static/{_library_name()}")))
    tab.open()
    with tab.page.expect_response("**/v1/auth/nonce") as nonce, tab.page.expect_request("**/v1/auth/login") as login:
        tab.page.click("#wallet-login")
    tab.wait_ready("portfolio")
    assert tab.page.text_content("#who-address") == account.address
    assert tab.page.text_content("#who-roles") == "auditor"

    asked = nonce.value.request.post_data_json
    assert asked == {"address": account.address}
    served_message = nonce.value.json()["message"]
    assert f"\n{account.address}\n" in served_message
    assert tab.page.evaluate("window.signedMessages") == [served_message]
    sent = login.value.post_data_json
    assert sent["message"] == served_message
    assert Account.recover_message(encode_defunct(text=served_message), signature=sent["signature"]) \
        == account.address
    assert login.value.response().status == 200
    tab.assert_clean()


def test_an_operator_decides_in_the_dashboard_with_the_pages_wallet_after_reading_the_summary(
        api, w3, stack, keys, borrower, application, tab):
    """The loan page offers an operator the decisions of the loan's state; the server's summary is shown before
    anything is signed; cancelling signs nothing; signing has the page's wallet sign the ForwardRequest
    (eth_signTypedData_v4), the API relays it, and the chain names the operator."""
    _, context = api
    loan_id = borrower.apply(**application)["loan_id"]
    assert context.wait_indexed(w3.eth.block_number)
    page = tab.page
    tab.wallet_login(keys["operator"])
    tab.wait_ready("portfolio")
    page.goto(f"{tab.base_url}/dashboard#/loans/{loan_id}")
    tab.wait_ready("loan")
    assert [b.text_content() for b in page.query_selector_all("#decision-buttons button")] == ["Approve", "Reject"]

    page.fill("#decision-reason", "documents")
    page.click("#decide-reject")
    page.wait_for_selector("#review:not([hidden])")
    assert page.text_content("#review-summary") == f"Reject loan {loan_id} (reason: documents)"
    page.click("#review-cancel")
    assert page.is_hidden("#review") and tab.typed_signed == []

    page.click("#decide-approve")
    page.wait_for_selector("#review:not([hidden])")
    borrower_address = keys["alice"].address
    assert page.text_content("#review-summary") == \
        f"Approve loan {loan_id}: pay out ¥1,200.00 to {borrower_address[:6]}…{borrower_address[-4:]}"
    assert tab.typed_signed == []  # nothing signed before the person says so
    page.click("#review-sign")
    page.wait_for_selector("#notice:has-text('signed by')")
    assert page.text_content("#notice") == (f"Approve loan {loan_id}: pay out ¥1,200.00 to "
                                            f"{borrower_address[:6]}…{borrower_address[-4:]}: done, signed by "
                                            f"{keys['operator'].address} (approved)")
    (signed,) = tab.typed_signed
    assert (signed["primaryType"], signed["message"]["from"], signed["message"]["to"]) == (
        "ForwardRequest", keys["operator"].address, stack.book.address)
    assert stack.book.functions.loanOf(loan_id).call()[2] == 2  # Approved
    (event,) = stack.book.events.LoanApproved().get_logs(from_block=w3.eth.block_number - 5)
    assert event.args.actor == keys["operator"].address
    tab.wait_ready("loan")
    assert page.text_content("#loan-title") == f"Loan #{loan_id} Approved"
    assert page.is_hidden("#loan-decisions")  # nothing left for an operator to decide on an approved loan
    tab.assert_clean()


def test_a_borrower_signed_in_is_told_there_is_no_audit_access(api, keys, driver, tab):
    driver.register(keys["alice"])
    tab.wallet_login(keys["alice"])
    tab.wait_ready("forbidden")
    assert "borrower" in tab.page.text_content("#forbidden-text")
    assert not [url for url in tab.requests if "/v1/audit/" in url]
    tab.assert_clean()


def test_the_pages_development_login_is_refused_while_it_is_off(api, keys, tab):
    """The stack's default: the form is there on localhost (a hint only), the server answers 404, the page
    says why and stays signed out."""
    assert api[1].settings.dev_login is False
    page = tab.page
    tab.open()
    page.fill("#dev-address", keys["admin"].address)
    with page.expect_response("**/v1/auth/dev-login") as answer:
        page.click("#dev-form button[type=submit]")
    assert answer.value.status == 404
    page.wait_for_selector("#notice:not([hidden])")
    assert "development login is off" in page.text_content("#notice")
    assert page.evaluate("document.body.dataset.view") == "signin"
    assert page.evaluate("sessionStorage.getItem('loanledger.dashboard.session')") is None


def test_the_products_page_lists_the_products_and_the_loans_made_from_each(api, borrower, publish, client_for,
                                                                            keys, auditor, tab):
    three, twelve = publish(name="3-month"), publish(name="12-month", min_installments=12, max_installments=12,
                                                   annual_rate_bps=1_800, service_fee_bps=100, auto_approve=False,
                                                   auto_approve_max_principal=0)
    old = publish(name="retired one")
    api[1].settings = api[1].settings.model_copy(update={"open_applications": 4})  # four open, one borrower
    made = {three: [borrower.apply(three, 50_000, 3)["loan_id"], borrower.apply(three, 60_000, 3)["loan_id"]],
            twelve: [borrower.apply(twelve, 100_000, 12)["loan_id"]], old: [borrower.apply(old, 20_000, 3)["loan_id"]]}
    retiring = client_for(keys["operator"]).retire_product(old)  # two operators decide: proposed, then confirmed
    client_for(keys["operator2"]).confirm(retiring["proposal_id"])
    page = tab.page
    tab.wallet_login(auditor.account)
    tab.wait_ready("portfolio")
    page.click("#nav-products")
    tab.wait_ready("products")
    # The products on offer (the retired one is not), each with the number of loans made from it.
    assert _table(page, "#products-table tbody tr", "data-product-id", "data-loans") == [
        (str(three), "2"), (str(twelve), "1")]
    row = page.query_selector(f"#products-table tbody tr[data-product-id='{twelve}']")
    assert "12-month" in row.text_content() and "1.00%" in row.text_content() and "an operator decides" in \
        row.text_content()
    # Every loan under the product it was made from, the retired product's too.
    assert _table(page, "#product-loans tbody tr", "data-product-id", "data-loan-id") == [
        (str(product), str(loan)) for product in sorted(made) for loan in made[product]]
    retired_row = page.query_selector(f"#product-loans tbody tr[data-product-id='{old}']")
    assert "retired one (retired)" in retired_row.text_content()
    fee_row = page.query_selector(f"#product-loans tbody tr[data-loan-id='{made[twelve][0]}']")
    assert _yuan(1_000) in fee_row.text_content()  # 1% of 100,000
    # A loan's page names its product and what its fee left to pay out.
    page.click(f"#product-loans tbody tr[data-loan-id='{made[twelve][0]}'] a[href^='#/loans/']")
    tab.wait_ready("loan")
    facts = page.text_content("#loan-facts")
    assert f"#{twelve} version 1" in facts and f"{_yuan(1_000)} (paid out {_yuan(99_000)})" in facts
    tab.assert_clean()


PROVIDER = "mockpay"  # the `rail` fixture's provider


def _collect(rail, outbox: Outbox, driver, loan_id: int, amount: int, currency: str = "CNY") -> str:
    """Collected on the rail, and its confirmation stored as the oracle's webhook intake stores it."""
    answer = httpx.post(f"{rail.url}/v1/collections", json={"loan_id": loan_id, "amount": amount,
                                                            "currency": currency}, timeout=10)
    answer.raise_for_status()
    reference = answer.json()["reference"]
    outbox.put(Confirmation(kind="repayment", loan_id=loan_id, reference=reference,
                            payment_ref=payment_ref(PROVIDER, reference), amount=amount, currency=currency,
                            paid_at=driver.now, provider=PROVIDER, event_id=f"evt-{reference}"))
    return reference


def _yuan(minor: int, currency: str = "CNY") -> str:
    return f"{minor // 100:,}.{minor % 100:02d} {currency}"


def test_an_auditor_reads_the_suspense_items_and_the_days_reconciliation(
        api, w3, stack, keys, driver, rail, served, auditor, clock, tab):
    """Issue 14: the dashboard's suspense and reconciliation page shows what the API says (items, amounts in
    yuan from minor units, refund states, the day's categories) and, being read-only, the command that
    resolves each open item."""
    _, context = api
    outbox = Outbox(context.sessions, clock=clock)
    worker = OutboxWorker(outbox, ChainClient(w3, keys["oracle"], stack.errors), stack.book)
    loan_id = driver.active_loan(keys["alice"], ref=b"payout-dashboard", report_id=1)
    overpaid = 5_000
    over_ref = _collect(rail, outbox, driver, loan_id, overpaid, "USD")  # refused on-chain: not the loan's currency
    paid_ref = _collect(rail, outbox, driver, loan_id, 1_000)  # credited
    typo_ref = _collect(rail, outbox, driver, 999_999, 2_345)  # no such loan: refunded below
    report = worker.drain_once()
    assert (report.credited, report.rejected) == (1, 2)
    assert context.wait_indexed(w3.eth.block_number)
    operator = LoanLedgerClient(served, keys["operator"])  # over the real port, as the page
    operator.login()
    items = {i["reference"]: i for i in operator.suspense()}
    assert operator.refund_suspense(items[typo_ref]["id"])["state"] == "refunded"
    items = {i["reference"]: i for i in operator.suspense()}
    day = datetime.now(UTC).date().isoformat()  # the rail dates payments by its own clock
    expected = auditor.audit("reconciliation", date=day)

    page = tab.page
    tab.wallet_login(auditor.account)
    tab.wait_ready("portfolio")
    page.click("#nav-money")
    tab.wait_ready("money")
    assert page.input_value("#recon-date") == (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    page.fill("#recon-date", day)
    page.click("#recon-form button[type=submit]")
    page.wait_for_function("d => document.querySelector('#recon-status').textContent.startsWith(d + ':')", arg=day)
    tab.wait_ready("money")

    # Suspense: every item in its state, the amount in yuan, the refund, and the command for the open one.
    assert sorted(_table(page, "#suspense-table tbody tr", "data-reference", "data-state")) == \
        sorted([(over_ref, "open"), (typo_ref, "refunded")])
    over_row = page.query_selector(f"#suspense-table tbody tr[data-reference='{over_ref}']")
    assert over_row.query_selector("td.amount").text_content() == _yuan(overpaid, "USD")
    assert over_row.query_selector("td.reason").text_content() == "CurrencyMismatch"
    assert f"loanledger operator refund {items[over_ref]['id']}" in over_row.query_selector("td.resolve").text_content()
    typo_row = page.query_selector(f"#suspense-table tbody tr[data-reference='{typo_ref}']")
    assert typo_row.query_selector("td.refund").text_content() == \
        f"refunded {items[typo_ref]['refund']['refund_reference']}"
    assert typo_row.query_selector("td.resolve").text_content() == "—"
    assert page.text_content("#stat-suspense-open .value") == "1"
    assert page.text_content("#stat-suspense-amount .value") == _yuan(overpaid, "USD")

    # Reconciliation: the API's rows and counts for the day, the held payment explained by its suspense item.
    (mockpay,) = expected["reports"]
    assert sorted(_table(page, "#recon-table tbody tr", "data-reference", "data-category")) == \
        sorted((row["reference"] or row["payment_ref"], row["category"]) for row in mockpay["rows"])
    for category, count in mockpay["counts"].items():
        assert page.text_content(f"#stat-recon-{category} .value") == str(count)
    categories = dict(_table(page, "#recon-table tbody tr", "data-reference", "data-category"))
    assert (categories[paid_ref], categories[over_ref], categories[typo_ref]) == ("matched", "rail_only", "rail_only")
    over_line = page.query_selector(f"#recon-table tbody tr[data-reference='{over_ref}']")
    assert f"suspense item {items[over_ref]['id']}: open" in over_line.query_selector("td.why").text_content()
    assert page.get_attribute("#recon-status", "data-ok") == "false"
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dashboard-suspense.png"), full_page=True)
    tab.assert_clean()


# ---------------------------------------------------------------------------------------------- over HTTP


def test_the_page_and_its_files_are_served_with_a_same_origin_policy(api):
    http = local_client(api[0])
    page = http.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "connect-src 'self'" in policy and "script-src 'self'" in policy and "http" not in policy
    # Everything the page loads is on this origin.
    linked = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert linked and all(url.startswith(("/", "#", "data:")) for url in linked)
    for url in linked:
        if url.startswith("/"):
            assert http.get(url).status_code == 200, url
    assert http.get("/dashboard/static/dashboard.js").headers["content-type"].startswith("text/javascript")
    for name in ("nothing.js", "..%2Fdashboard.py", "dashboard.html%00.js"):
        response = http.get(f"/dashboard/static/{name}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def _library_name() -> str:
    """The name dashboard.js imports ethers under: the version package.json pins."""
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]["ethers"]
    return f"ethers-{pinned}.min.js"


def test_the_signing_library_is_served_from_node_modules_as_the_script_imports_it(api):
    http = local_client(api[0])
    name = _library_name()
    script = http.get("/dashboard/static/dashboard.js").text
    assert f'from "./{name}"' in script
    library = http.get(f"/dashboard/static/{name}")
    assert library.status_code == 200 and library.headers["content-type"].startswith("text/javascript")
    assert library.content == (ROOT / "node_modules/ethers/dist/ethers.min.js").read_bytes()
    assert library.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert library.headers["content-security-policy"].startswith("default-src 'none'")
    # Only the installed version, under that name: an old one, or any other file of the package, is not served.
    for other in ("ethers-6.0.0.min.js", "ethers.min.js", "ethers.js", "package.json"):
        assert http.get(f"/dashboard/static/{other}").status_code == 404, other
    # No hand-written crypto left in the page's own script.
    assert "keccak" not in script.lower() and "wants you to sign in" not in script


def test_the_nonce_route_serves_the_message_the_login_verifies(api, keys):
    http = local_client(api[0])
    alice = keys["alice"]
    answer = http.post("/v1/auth/nonce", json={"address": alice.address.lower()})
    assert answer.status_code == 200
    nonce = answer.json()
    message = nonce["message"]
    # What api.auth.siwe_message writes for this address and nonce (the SDK's way), issued when it was served.
    times = dict(re.findall(r"^(Issued At|Expiration Time): (\S+)$", message, re.M))
    expected = siwe_message(nonce["domain"], nonce["uri"], alice.address, nonce["chain_id"], nonce["nonce"])
    expected = re.sub(r"^(Issued At|Expiration Time): \S+$", lambda m: f"{m.group(1)}: {times[m.group(1)]}",
                      expected, flags=re.M)
    assert message == expected
    assert f"\n{alice.address}\n" in message  # checksummed, whatever case was sent
    issued, expires = (datetime.strptime(times[k], "%Y-%m-%dT%H:%M:%SZ") for k in ("Issued At", "Expiration Time"))
    assert (expires - issued).total_seconds() == 300
    signature = alice.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    login = http.post("/v1/auth/login", json={"message": message, "signature": signature})
    assert login.status_code == 200 and login.json()["address"] == alice.address
    # Without an address (the SDK and CLI): the same fields as before, no message.
    bare = http.post("/v1/auth/nonce").json()
    assert set(bare) == {"nonce", "domain", "uri", "chain_id", "expires_at", "message"} and bare["message"] is None
    assert bare["nonce"] != nonce["nonce"]
    bad = http.post("/v1/auth/nonce", json={"address": "0x1234"})
    assert bad.status_code == 422


def test_dev_login_is_off_unless_enabled(api, keys):
    app, context = api
    assert context.settings.dev_login is False
    response = local_client(app).post("/v1/auth/dev-login", json={"address": keys["admin"].address})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    # Not in the API's schema either.
    assert "/v1/auth/dev-login" not in app.openapi()["paths"]


def node_call(w3, method: str, *params) -> object:
    """A JSON-RPC call straight to the node: web3's provider caches eth_chainId once a ChainClient wrapped it."""
    answer = httpx.post(w3.provider.endpoint_uri, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                                        "params": list(params)}, timeout=10).json()
    assert "error" not in answer, answer
    return answer["result"]


@contextmanager
def chain_id_of(w3, chain_id: int):
    """The session's anvil answering another chain id for the duration (anvil_setChainId), then its own again."""
    own = int(node_call(w3, "eth_chainId"), 16)
    node_call(w3, "anvil_setChainId", chain_id)
    try:
        assert int(node_call(w3, "eth_chainId"), 16) == chain_id
        yield
    finally:
        node_call(w3, "anvil_setChainId", own)
        assert int(node_call(w3, "eth_chainId"), 16) == own


@pytest.mark.parametrize("chain_id", [1, 8453, 11155111])  # mainnet, a rollup, a public test network
def test_dev_login_is_refused_on_a_chain_not_reserved_for_development(dev_api, w3, keys, chain_id, caplog):
    app, _ = dev_api
    with chain_id_of(w3, chain_id), caplog.at_level(logging.WARNING, logger="loanledger.api"), \
            local_client(app) as http:  # entered: the lifespan runs, as when uvicorn starts the API
        response = http.post("/v1/auth/dev-login", json={"address": keys["admin"].address})
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    # The API started (it must, even without a node), said why the login stays off, and never called it on.
    [record] = [r for r in caplog.records if "LOANLEDGER_DEV_LOGIN" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert f"chain {chain_id} is not a development chain" in record.getMessage() and "OFF" in record.getMessage()


@pytest.mark.parametrize("chain_id", sorted(DEVELOPMENT_CHAIN_IDS))
def test_dev_login_turned_on_warns_loudly_at_startup_and_answers_on_a_development_chain(
        dev_api, w3, keys, chain_id, caplog):
    app, _ = dev_api
    with chain_id_of(w3, chain_id), caplog.at_level(logging.WARNING, logger="loanledger.api"), \
            local_client(app) as http:
        [warning] = [r for r in caplog.records if "DEVELOPMENT LOGIN IS ON" in r.getMessage()]
        assert warning.levelno == logging.WARNING and f"on chain {chain_id}" in warning.getMessage()
        response = http.post("/v1/auth/dev-login", json={"address": keys["admin"].address})
        assert response.status_code == 200 and response.json()["address"] == keys["admin"].address


def test_dev_login_with_the_node_down_at_startup_stays_shut_until_the_chain_is_known(dev_api, w3, keys, caplog):
    """The API starts without a node; the login then learns the chain on first use, and refuses (saying why)
    when it is not a development chain."""
    app, context = dev_api
    node = context.w3
    context.w3 = Web3(Web3.HTTPProvider("http://127.0.0.1:9"))  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="loanledger.api"), local_client(app) as http:
        [warning] = [r for r in caplog.records if "DEVELOPMENT LOGIN IS ON" in r.getMessage()]
        assert "the node does not answer yet" in warning.getMessage()
        assert http.post("/v1/auth/dev-login", json={"address": keys["admin"].address}).status_code == 404
        context.w3 = node
        with chain_id_of(w3, 8453):
            assert http.post("/v1/auth/dev-login", json={"address": keys["admin"].address}).status_code == 404
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR and "LOANLEDGER_DEV_LOGIN" in r.getMessage()]
    assert "chain 8453 is not a development chain" in error.getMessage()


def test_dev_login_off_says_nothing_at_startup(api, caplog):
    with caplog.at_level(logging.DEBUG, logger="loanledger.api"), local_client(api[0]):
        pass
    assert not [r for r in caplog.records if "DEV" in r.getMessage().upper() and "LOGIN" in r.getMessage().upper()]


def test_the_chain_id_is_asked_once(dev_api, w3, keys):
    """The gate keeps the node's first answer: a node that later answers another chain id does not reopen
    (or shut) it, and a loopback request does not cost a round trip each time."""
    app, _ = dev_api
    http = local_client(app)
    assert http.post("/v1/auth/dev-login", json={"address": keys["alice"].address}).status_code == 200
    with chain_id_of(w3, 1):
        assert http.post("/v1/auth/dev-login", json={"address": keys["alice"].address}).status_code == 200
    assert dev_login_gate(app).chain_id() == int(node_call(w3, "eth_chainId"), 16)


@pytest.mark.parametrize(("client", "base_url"), [
    ("203.0.113.7", "http://127.0.0.1:8000"),      # a remote client
    ("10.0.0.5", "http://localhost:8000"),
    ("testclient", "http://127.0.0.1:8000"),       # not an address at all
    ("127.0.0.1", "http://evil.example:8000"),     # a page that rebinds its DNS name to 127.0.0.1
    ("127.0.0.1", "http://10.0.0.5:8000"),
])
def test_dev_login_refuses_anything_but_loopback(dev_api, keys, client, base_url):
    http = local_client(dev_api[0], client, base_url)
    for body in ({"address": keys["admin"].address}, {"address": "not an address"}, {}):
        response = http.post("/v1/auth/dev-login", json=body)
        assert response.status_code == 404, (body, response.text)  # refused before the body is even read


@pytest.mark.parametrize("client", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_dev_login_gives_the_chain_roles_only(dev_api, keys, driver, client):
    app, context = dev_api
    http = local_client(app, client, "http://localhost:8000")
    driver.register(keys["alice"])

    def login(address: str) -> dict:
        response = http.post("/v1/auth/dev-login", json={"address": address})
        assert response.status_code == 200, response.text
        return response.json()

    borrower = login(keys["alice"].address.lower())
    assert borrower["address"] == keys["alice"].address and borrower["roles"] == ["borrower"]
    headers = {"authorization": f"Bearer {borrower['token']}"}
    assert http.get("/v1/auth/me", headers=headers).json()["roles"] == ["borrower"]
    denied = http.get("/v1/audit/loans", headers=headers)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"

    assert login(Account.create().address)["roles"] == ["applicant"]
    assert "operator" in login(keys["operator"].address)["roles"]
    bad = http.post("/v1/auth/dev-login", json={"address": "0x1234"})
    assert bad.status_code == 422


def test_the_money_page_shows_credit_held_and_its_refund(api, w3, stack, keys, driver, rail, served, auditor,
                                                         clock, tab):
    """Issue 14: an overpaid loan's credit (on-chain) shows on the money page, with the command to refund it
    until an operator has, then its refund order."""
    _, context = api
    outbox = Outbox(context.sessions, clock=clock)
    worker = OutboxWorker(outbox, ChainClient(w3, keys["oracle"], stack.errors), stack.book)
    loan_id = driver.active_loan(keys["alice"], ref=b"payout-credit-page", report_id=1)
    _collect(rail, outbox, driver, loan_id, driver.payoff(loan_id) + 3_000)
    assert worker.drain_once().credited == 1
    assert context.wait_indexed(w3.eth.block_number)
    credit = stack.book.functions.progressOf(loan_id).call()[8]
    assert credit > 0

    page = tab.page
    tab.wallet_login(auditor.account)
    tab.wait_ready("portfolio")
    page.click("#nav-money")
    tab.wait_ready("money")
    row = page.query_selector(f"#credit-table tbody tr[data-loan-id='{loan_id}']")
    assert row.get_attribute("data-order-state") == "none"
    assert row.query_selector("td.amount").text_content() == _yuan(credit)
    assert row.query_selector("td.resolve").text_content() == f"loanledger operator refund-credit {loan_id}"
    assert page.text_content("#stat-credit-loans .value") == "1"
    assert page.text_content("#stat-credit-held .value") == _yuan(credit)

    operator = LoanLedgerClient(served, keys["operator"])
    operator.login()
    order = operator.refund_credit(loan_id)
    page.reload()
    tab.wait_ready("money")
    row = page.query_selector(f"#credit-table tbody tr[data-loan-id='{loan_id}']")
    assert row.get_attribute("data-order-state") == order["state"] == "sent"
    assert row.query_selector("td.resolve").text_content() == "—"
    tab.assert_clean()
