"""Auditor routes over HTTP against the real chain: a small book of loans (repaid, late, defaulted,
written off, fresh, requested, approved, rejected) driven on-chain, indexed by the real indexer, then
read, paged, filtered, reported, exported and verified — and tampered with."""

from __future__ import annotations

import csv
import io
import json

import pytest
from eth_account import Account
from eth_utils import keccak
from sqlalchemy import select, update
from web3 import Web3

from api.services.reports import LoanFigures, portfolio
from api.client import ApiError
from ledger.chain import ChainClient
from ledger.indexer import EventDecoder
from ledger.samples import sample_identity
from ledger.store.models.action_log import ActionLogEntry
from ledger.store.models.chain import ChainEvent
from oracle.outbox import Outbox, OutboxWorker
from oracle.payments.rail import PaymentRail
from oracle.payments.signatures import RsaScheme
from oracle.payments.webhook import WebhookVerifier

DAY = 86_400
PRINCIPAL = 120_000  # the driver's product (tests/conftest.py TERMS): 24% a year, three 30-day annuity installments


def send(w3, fn, sender: str):
    receipt = w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender}))
    assert receipt.status == 1
    return receipt




@pytest.fixture
def book(api, w3, stack, keys, driver):
    """The book an auditor looks at, as of chain time T = t0 + 121 days:

    - repaid:      alice, disbursed at t0 and paid off at once
    - late:        bob, installment 1 paid at t0 + 30 d, installment 2 (due t0 + 60 d) unpaid: 61 days past due
    - defaulted:   carol, nothing paid, declared in default at T (91 days past due)
    - written_off: dave, nothing paid, defaulted and written off at T
    - recent:      eve, disbursed at t0 + 90 d, installment 1 due t0 + 120 d: 1 day past due
    - current:     disbursed at T: not yet due
    - requested, approved, rejected: never disbursed
    """
    _, context = api
    operator = keys["operator"].address
    ids = {}
    ids["repaid"] = driver.active_loan(keys["alice"], ref=b"payout-repaid", report_id=1)
    driver.repay(ids["repaid"], driver.payoff(ids["repaid"]), b"payoff-repaid")
    ids["late"] = driver.active_loan(keys["bob"], ref=b"payout-late", report_id=2)
    ids["defaulted"] = driver.active_loan(keys["carol"], ref=b"payout-defaulted", report_id=3)
    ids["written_off"] = driver.active_loan(keys["dave"], ref=b"payout-written-off", report_id=4)
    driver.advance(30 * DAY)
    due = stack.book.functions.amountDue(ids["late"], driver.now).call()
    driver.repay(ids["late"], sum(due[:4]), b"late-installment-1")
    driver.advance(60 * DAY)
    ids["recent"] = driver.active_loan(keys["eve"], ref=b"payout-recent", report_id=5)
    driver.advance(31 * DAY)
    send(w3, stack.book.functions.declareDefault(ids["defaulted"]), operator)
    send(w3, stack.book.functions.declareDefault(ids["written_off"]), operator)
    driver.write_off(ids["written_off"])  # two operators (FourEyes)
    ids["current"] = driver.active_loan(Account.create(), ref=b"payout-current", report_id=6)
    waiting = [Account.create() for _ in range(3)]
    for account in waiting:
        driver.register(account)
    driver.score(waiting[1], report_id=7)
    driver.score(waiting[2], report_id=8)
    ids["requested"] = driver.request(waiting[0])
    ids["approved"] = driver.request(waiting[1])
    driver.approve(ids["approved"])
    ids["rejected"] = driver.request(waiting[2])
    send(w3, stack.book.functions.reject(ids["rejected"], b"policy".ljust(32, b"\0")), operator)
    assert context.wait_indexed(w3.eth.block_number)
    return ids


@pytest.fixture
def auditor(api, keys, client_for):
    """A signed-in auditor: a fresh key the admin admitted (it holds no other role)."""
    account = Account.create()
    client_for(keys["admin"]).add_auditor(account.address)
    client = client_for(account)
    assert "auditor" in client.me()["roles"]
    return client


def _all(client, path: str, key: str, **params) -> list[dict]:
    """Every row of a paged list, following next_cursor; checks no row comes twice."""
    rows, cursor = [], None
    while True:
        answer = client.audit(path, cursor=cursor, **params)
        rows.extend(answer[key])
        cursor = answer["next_cursor"]
        if cursor is None:
            return rows
        assert len(answer[key]) == params.get("limit", 100)


def _chain_logs(w3, stack, to_block: int):
    decoder = EventDecoder(w3, stack.manifest)
    raw = w3.eth.get_logs({"fromBlock": stack.manifest.start_block, "toBlock": to_block, "address": decoder.addresses})
    return [decoder.decode(log) for log in raw]


def _download(client, path: str):
    response = client.http.get(path, headers={"authorization": f"Bearer {client.token}"})
    assert response.status_code == 200, response.text
    return response


def _code(call) -> tuple[int, str]:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value.status, caught.value.code


# ------------------------------------------------------------------------------------ loans


def test_loans_and_their_timelines_match_the_chain(api, w3, stack, book, auditor):
    loans = {loan["id"]: loan for loan in auditor.audit("loans", limit=500)["loans"]}
    assert sorted(loans) == sorted(book.values())
    names = ["None", "Requested", "Approved", "Rejected", "Cancelled", "Active", "Repaid", "Defaulted", "WrittenOff"]
    for loan_id, loan in loans.items():
        on_chain = stack.book.functions.loanOf(loan_id).call()
        progress = stack.book.functions.progressOf(loan_id).call()
        assert loan["status"] == names[on_chain[2]]
        assert loan["borrower"] == on_chain[1]
        assert loan["principal_repaid"] == progress[2] and loan["interest_paid"] == progress[3]
    assert loans[book["written_off"]]["principal_written_off"] == PRINCIPAL
    assert loans[book["repaid"]]["principal_repaid"] == PRINCIPAL

    logs = _chain_logs(w3, stack, w3.eth.block_number)
    for name in ("late", "written_off"):
        detail = auditor.audit(f"loans/{book[name]}")
        expected = [log for log in logs if log.contract == "LoanBook" and log.args.get("loanId") == book[name]]
        assert [(e["tx_hash"], e["log_index"], e["block_number"], e["block_hash"], e["name"], e["args"])
                for e in detail["events"]] == \
               [(log.tx_hash, log.log_index, log.block_number, log.block_hash, log.name, log.args) for log in expected]
        for event in detail["events"]:
            assert event["block_time"] == w3.eth.get_block(event["block_number"])["timestamp"]
    late = auditor.audit(f"loans/{book['late']}")
    assert [e["name"] for e in late["events"]] == ["LoanRequested", "LoanApproved", "LoanDisbursed", "RepaymentApplied"]
    assert [(p["kind"], p["amount"]) for p in late["payments"]][0] == ("disbursement", PRINCIPAL)
    assert late["payments"][1]["principal"] == late["schedule"][0]["principal"]
    assert _code(lambda: auditor.audit("loans/999")) == (404, "not_found")


def test_pages_cover_every_row_exactly_once(api, w3, stack, book, auditor):
    every_loan = auditor.audit("loans", limit=500)["loans"]
    paged = _all(auditor, "loans", "loans", limit=2)
    assert [loan["id"] for loan in paged] == [loan["id"] for loan in every_loan] == sorted(book.values())

    logs = _chain_logs(w3, stack, w3.eth.block_number)
    events = _all(auditor, "events", "events", limit=7)
    assert [(e["tx_hash"], e["log_index"]) for e in events] == [(log.tx_hash, log.log_index) for log in logs]
    assert len({e["id"] for e in events}) == len(events)
    assert [(e["block_number"], e["log_index"]) for e in events] == \
        sorted((e["block_number"], e["log_index"]) for e in events)

    payments = _all(auditor, "payments", "payments", limit=3)
    whole = auditor.audit("payments", limit=500)["payments"]
    assert payments == whole
    # 6 disbursements, the payoff of `repaid` and installment 1 of `late`
    assert sorted(p["kind"] for p in payments) == ["disbursement"] * 6 + ["repayment"] * 2
    assert len({p["payment_ref"] for p in payments}) == 8

    borrowers = _all(auditor, "borrowers", "borrowers", limit=4)
    assert len(borrowers) == 9 and len({b["address"] for b in borrowers}) == 9


def test_a_payment_through_the_rail_shows_the_rails_reference_beside_its_on_chain_hash(api, w3, stack, keys, driver,
                                                                                       auditor):
    _, context = api
    loan_id = driver.approved_loan(keys["alice"])
    # The stand-in pays out and signs its webhook; the oracle verifies it, stores it, and credits it on-chain.
    rail = PaymentRail("mockpay", RsaScheme.generate())
    payout = rail.pay("payout", loan_id, PRINCIPAL, paid_at=driver.now, deliver=False)
    outbox = Outbox(context.sessions)
    outbox.put(WebhookVerifier({"mockpay": rail.scheme}).verify(*rail.signed_webhook(payout)))
    worker = OutboxWorker(outbox, ChainClient(w3, keys["oracle"], stack.errors), stack.book)
    assert worker.drain_once().credited == 1
    driver.repay(loan_id, 5_000, b"credited-by-someone-else")  # not through this oracle: no rail reference here
    assert context.wait_indexed(w3.eth.block_number)

    paid_out, repaid = auditor.audit("payments", loan=loan_id)["payments"]
    assert (paid_out["kind"], paid_out["provider"], paid_out["rail_reference"]) == (
        "disbursement", "mockpay", payout.reference)
    assert paid_out["payment_ref"] == "0x" + keccak(f"mockpay:{payout.reference}".encode()).hex()
    assert stack.book.functions.isPaymentReferenceUsed(bytes.fromhex(paid_out["payment_ref"][2:])).call()
    assert (repaid["provider"], repaid["rail_reference"]) == (None, None)
    assert repaid["payment_ref"] == "0x" + b"credited-by-someone-else".ljust(32, b"\0").hex()
    assert auditor.audit(f"loans/{loan_id}")["payments"] == [paid_out, repaid]
    exported = _download(auditor, "/v1/audit/export/payments.json").json()
    assert [p for p in exported if p["loan_id"] == loan_id] == [paid_out, repaid]


def test_filters(api, w3, stack, keys, book, auditor):
    active = auditor.audit("loans", status="Active")["loans"]
    assert {loan["id"] for loan in active} == {book["late"], book["recent"], book["current"]}
    of_bob = auditor.audit("loans", borrower=keys["bob"].address.lower())["loans"]  # any case of the address
    assert [loan["id"] for loan in of_bob] == [book["late"]]

    defaults = auditor.audit("events", type="LoanDefaulted")["events"]
    assert sorted(e["loan_id"] for e in defaults) == sorted([book["defaulted"], book["written_off"]])
    of_loan = auditor.audit("events", loan=book["repaid"])["events"]
    assert [e["name"] for e in of_loan] == ["LoanRequested", "LoanApproved", "LoanDisbursed", "RepaymentApplied",
                                            "LoanRepaid"]
    # A borrower's events: the registry's and oracle's about them, and every event of their loans.
    of_alice = auditor.audit("events", borrower=keys["alice"].address, limit=500)["events"]
    assert {e["name"] for e in of_alice} == {"BorrowerRegistered", "ScoreUpdated", *(e["name"] for e in of_loan)}
    assert all(e["loan_id"] in (None, book["repaid"]) for e in of_alice)

    everything = auditor.audit("events", limit=500)["events"]
    middle = everything[len(everything) // 2]["block_number"]
    ranged = auditor.audit("events", from_block=middle, to_block=middle + 2, limit=500)["events"]
    assert ranged == [e for e in everything if middle <= e["block_number"] <= middle + 2]
    late_time = everything[-1]["block_time"] - 31 * DAY
    timed = auditor.audit("events", from_time=late_time, limit=500)["events"]
    assert timed and timed == [e for e in everything if e["block_time"] >= late_time]
    assert auditor.audit("events", to_time=everything[0]["block_time"] - 1)["events"] == []

    repayments = auditor.audit("payments", kind="repayment")["payments"]
    assert sorted(p["loan_id"] for p in repayments) == sorted([book["repaid"], book["late"]])
    assert [p["kind"] for p in auditor.audit("payments", loan=book["late"])["payments"]] == ["disbursement",
                                                                                              "repayment"]
    assert [b["address"] for b in auditor.audit("borrowers", revoked=True)["borrowers"]] == []


@pytest.mark.parametrize(("path", "params", "status", "code"), [
    ("loans", {"borrower": "0x1234"}, 422, "invalid_address"),
    ("loans", {"status": "Lost"}, 422, "invalid_status"),
    ("loans", {"cursor": "not-a-cursor"}, 422, "invalid_cursor"),
    ("loans", {"limit": 501}, 422, "invalid_request"),
    ("events", {"borrower": "bob"}, 422, "invalid_address"),
    ("events", {"type": "LoanStolen"}, 422, "invalid_event_type"),
    ("events", {"from_block": 10, "to_block": 9}, 422, "invalid_range"),
    ("events", {"from_time": 10, "to_time": 9}, 422, "invalid_range"),
    ("events", {"cursor": "WzFd"}, 422, "invalid_cursor"),  # [1]: a loans cursor is not an events cursor
    ("payments", {"kind": "refund"}, 422, "invalid_request"),
    ("borrowers/0xnothex", {}, 422, "invalid_address"),
    ("borrowers/0x0000000000000000000000000000000000000001", {}, 404, "not_found"),
    ("verify/identity", {}, 422, "address_required"),
    ("verify/everything", {}, 422, "invalid_request"),
    ("report/portfolio", {"currency": "cny"}, 422, "invalid_request"),
])
def test_bad_filters_are_refused_clearly(api, auditor, path, params, status, code):
    assert _code(lambda: auditor.audit(path, **params)) == (status, code)


# ------------------------------------------------------------------------------------ borrowers


def test_borrowers_are_pseudonymous(api, w3, stack, keys, driver, client_for, kyc, auditor):
    alice = client_for(keys["alice"])
    kyc(alice, 1)
    driver.score(keys["alice"], score=640, limit=300_000, report_id=1)
    driver.score(keys["alice"], score=710, limit=500_000, report_id=2)
    assert api[1].wait_indexed(w3.eth.block_number)
    person = sample_identity(1)
    record = stack.registry.functions.borrowerOf(keys["alice"].address).call()

    listed = auditor.audit("borrowers")["borrowers"]
    one = auditor.audit(f"borrowers/{keys['alice'].address.lower()}")
    assert listed == [one]
    assert one["identity_commitment"] == "0x" + record[0].hex() and one["kyc_expires_at"] == record[1]
    assert one["registered"] and not one["revoked"] and one["loan_ids"] == []
    assert [(s["score"], s["credit_limit"], s["report_id"]) for s in one["score_history"]] == [(640, 300_000, 1),
                                                                                              (710, 500_000, 2)]
    assert (one["score"], one["credit_limit"]) == (710, 500_000)
    # The score's age on the chain's clock as the read model saw it last (the dashboard shows it).
    driver.advance(3 * 86_400)
    assert api[1].wait_indexed(w3.eth.block_number)
    aged = auditor.audit(f"borrowers/{keys['alice'].address}")
    assert aged["score_age"] == w3.eth.get_block("latest")["timestamp"] - one["score_updated_at"] >= 3 * 86_400
    verified = auditor.verify("identity", address=keys["alice"].address)
    assert verified["ok"] and verified["commitment"] == one["identity_commitment"]
    exported = _download(auditor, "/v1/audit/export/events.csv").text
    for text in (json.dumps(listed, ensure_ascii=False), json.dumps(verified, ensure_ascii=False), exported):
        for value in person.values():
            assert value not in text


# ------------------------------------------------------------------------------------ portfolio


def test_portfolio_equals_the_hand_computed_figures(api, w3, stack, book, auditor):
    report = auditor.portfolio()
    # Installment 1 of the 120,000 annuity at 24% over 30-day periods: bob paid its principal part.
    first = stack.book.functions.schedule(book["late"]).call()[0]
    paid = first[1]
    # r = 24% * 30 / 365 = 1.9726% a period; installment 120,000 * r / (1 - (1+r)^-3) = 41,588.36;
    # interest 120,000 * r = 2,367.12; principal part 41,588.36 - 2,367.12 = 39,221.23 (rounded).
    assert (paid, first[2]) == (39_221, 2_367)
    late, full = PRINCIPAL - paid, PRINCIPAL

    assert report["as_of"] == w3.eth.get_block("latest")["timestamp"]
    assert report["currency"] == "CNY" and report["loans"] == 9
    assert report["running_statuses"] == ["Active", "Defaulted"]  # what the dashboard counts as outstanding
    assert report["outstanding_principal"] == late + 3 * full  # late, defaulted, recent, current = 440,779
    total = late + 3 * full
    assert report["portfolio_at_risk"] == [
        {"days": 1, "count": 3, "outstanding": late + 2 * full, "ratio": round((late + 2 * full) / total, 6)},
        {"days": 30, "count": 2, "outstanding": late + full, "ratio": round((late + full) / total, 6)},
        {"days": 90, "count": 1, "outstanding": full, "ratio": round(full / total, 6)},
    ]
    assert [(b["name"], b["count"], b["outstanding"]) for b in report["delinquency"]] == [
        ("current", 1, full), ("1-29", 1, full), ("30-59", 0, 0), ("60-89", 1, late), ("90+", 1, full)]
    by_status = {s["status"]: s for s in report["by_status"]}
    assert {s: v["count"] for s, v in by_status.items()} == {
        "Requested": 1, "Approved": 1, "Rejected": 1, "Cancelled": 0, "Active": 3, "Repaid": 1, "Defaulted": 1,
        "WrittenOff": 1, "Overpaid": 0}
    assert (report["credit_held"], report["recovered"]) == (0, 0)
    assert by_status["Repaid"]["principal_repaid"] == full and by_status["Repaid"]["outstanding"] == 0
    assert by_status["WrittenOff"]["principal_written_off"] == full and by_status["WrittenOff"]["outstanding"] == 0
    assert by_status["Defaulted"]["outstanding"] == full
    assert by_status["Active"]["outstanding"] == late + 2 * full
    assert by_status["Active"]["principal_repaid"] == paid
    assert by_status["Active"]["interest_paid"] == first[2]
    assert sum(s["principal"] for s in report["by_status"]) == 9 * full


def test_days_past_due_age_with_the_clock_not_the_index():
    """The report re-ages loans at the time it is given (the read model's figure is as of its last block)."""
    disbursed = 1_700_000_000
    # The next due dates as the read model holds them: installment 1 unpaid, installment 2 unpaid, none.
    loans = [LoanFigures("Active", 100_000, 0, 0, 0, 0, 0, disbursed + 30 * DAY, days_past_due=0),
             LoanFigures("Active", 50_000, 20_000, 0, 0, 0, 0, disbursed + 60 * DAY, days_past_due=0),
             LoanFigures("Repaid", 70_000, 70_000, 0, 0, 0, 0, None)]
    at = disbursed + 30 * DAY + 45 * DAY + 10  # 45 days past installment 1, 15 past installment 2
    report = portfolio(loans, at, indexed_block=1, currency="CNY")
    assert [(b.name, b.count, b.outstanding) for b in report.delinquency] == [
        ("current", 0, 0), ("1-29", 1, 30_000), ("30-59", 1, 100_000), ("60-89", 0, 0), ("90+", 0, 0)]
    assert [(p.days, p.outstanding, p.ratio) for p in report.portfolio_at_risk] == [
        (1, 130_000, 1.0), (30, 100_000, 0.769231), (90, 0, 0.0)]
    assert report.outstanding_principal == 130_000


def test_portfolio_of_an_empty_book(api, auditor):
    report = auditor.portfolio()
    assert report["loans"] == 0 and report["outstanding_principal"] == 0 and report["currency"] is None
    assert all(p["ratio"] == 0 for p in report["portfolio_at_risk"])


# ------------------------------------------------------------------------------------ export


@pytest.mark.parametrize(("dataset", "key"), [("loans", "loans"), ("events", "events"), ("payments", "payments")])
def test_csv_export_parses_and_matches_json(api, book, auditor, dataset, key):
    as_csv = _download(auditor, f"/v1/audit/export/{dataset}.csv")
    as_json = _download(auditor, f"/v1/audit/export/{dataset}.json")
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert f'filename="{dataset}.csv"' in as_csv.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    objects = as_json.json()
    listed = auditor.audit(key, limit=500)[key]
    assert len(rows) == len(objects) == len(listed) > 0
    assert list(rows[0]) == list(objects[0])  # the header row names the JSON fields, in order
    for row, obj, item in zip(rows, objects, listed, strict=True):
        assert obj == {k: item[k] for k in obj}  # the export is the list, row for row
        for name, value in obj.items():
            if isinstance(value, dict):
                assert json.loads(row[name]) == value
            elif value is None:
                assert row[name] == ""
            else:
                assert row[name] == str(value)  # integers as integers: "120000", never "1.2e5"


# ------------------------------------------------------------------------------------ verification


def test_verification_passes_on_a_clean_index_and_fails_after_tampering(api, w3, stack, keys, book, auditor):
    _, context = api
    for check in ("index", "state", "log"):
        result = auditor.verify(check)
        assert result["ok"], result["details"]
        assert result["checked"] > 0
    assert auditor.verify("state", loan_id=book["late"]) == {
        "check": "state", "ok": True, "checked": 1, "details": [], "commitment": None, "first_bad_seq": None,
        "anchors": None}
    assert _code(lambda: auditor.verify("state", loan_id=999)) == (404, "not_found")
    # The driver registered alice with a made-up commitment and the vault holds nothing for her.
    missing = auditor.verify("identity", address=keys["alice"].address)
    assert not missing["ok"] and "no KYC record" in missing["details"][0]

    # Someone with write access to the database shaves one unit off bob's recorded principal repayment.
    with context.sessions.begin() as session:
        event = session.scalars(select(ChainEvent).where(ChainEvent.name == "RepaymentApplied",
                                                         ChainEvent.loan_id == book["late"])).one()
        event.args = {**event.args, "principal": event.args["principal"] - 1}
    index = auditor.verify("index")
    assert not index["ok"] and len(index["details"]) == 1
    assert index["details"][0].startswith(f"event #{event.id} (") and " args: " in index["details"][0]
    state = auditor.verify("state", loan_id=book["late"])
    assert not state["ok"] and any("principalRepaid" in d for d in state["details"])
    assert auditor.verify("state", loan_id=book["repaid"])["ok"]  # the other loans still agree

    # The action log holds the admin's "auditor.add"; rewriting who did it breaks the hash chain.
    with context.sessions.begin() as session:
        session.execute(update(ActionLogEntry).where(ActionLogEntry.seq == 1).values(actor="someone else"))
    log = auditor.verify("log")
    assert not log["ok"] and log["first_bad_seq"] == 1


def test_identity_verification_of_a_kyc_borrower(api, keys, client_for, kyc, auditor):
    alice = client_for(keys["alice"])
    kyc(alice, 2)
    result = auditor.verify("identity", address=keys["alice"].address)
    assert result["ok"] and result["check"] == "identity" and result["commitment"].startswith("0x")
    assert _code(lambda: auditor.verify("identity", address="0xabc")) == (422, "invalid_address")


# ------------------------------------------------------------------------------------ roles


AUDIT_PATHS = ["loans", "loans/1", "borrowers", f"borrowers/{'0x' + '11' * 20}", "events", "payments",
               "report/portfolio", "verify/index", "export/loans.csv"]


def test_borrowers_and_applicants_are_refused_and_staff_may_read(api, keys, client_for, kyc, auditor):
    borrower = client_for(keys["alice"])
    kyc(borrower, 3)
    borrower.login()
    applicant = client_for(Account.create())
    assert borrower.me()["roles"] == ["borrower"] and applicant.me()["roles"] == ["applicant"]
    for client in (borrower, applicant):
        for path in AUDIT_PATHS:
            assert _code(lambda client=client, path=path: client.audit(path)) == (403, "forbidden"), path
    for staff in (client_for(keys["operator"]), client_for(keys["admin"])):
        assert staff.audit("loans")["loans"] == []


def test_auditors_cannot_act(api, keys, driver, auditor):
    calls = [lambda: auditor.approve(1), lambda: auditor.reject(1, "no"), lambda: auditor.write_off(1),
             lambda: auditor.pause(), lambda: auditor.add_auditor(Account.create().address),
             lambda: auditor.register_borrower(keys["bob"].address), lambda: auditor.set_auto_approve(True)]
    for call in calls:
        assert _code(call) == (403, "forbidden")
    assert Web3.is_checksum_address(auditor.me()["address"])
