"""Reconciliation (issue 14): a real rail process's daily statement against the ledger a real LoanBook made.

Payments are ordered through `loanledger rail`, confirmed on anvil with the oracle's key (as the outbox worker
would), indexed into the store; then each statement line must land in its category, and the CLI must say so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

from ledger.indexer import Indexer
from ledger.node import free_port
from oracle.outbox import Outbox
from oracle.payments.inbound import Confirmation, payment_ref
from oracle.payments.provider import ProviderApi, StatementEntry, StatementUnsupported
from oracle.payments.providers import HmacJsonProvider, StandinProvider
from oracle.payments.rail import PaymentRail
from oracle.payments.reconcile import reconcile
from oracle.payments.signatures import RsaScheme

LOANLEDGER = str(Path(sys.executable).with_name("loanledger"))
PROVIDER = "mockpay"


class Rail:
    """`loanledger rail` as a process on a free port; webhooks off, so nothing reaches the chain by itself."""

    def __init__(self, home: Path, log: Path):
        self.home, self.log, self.port = home, log, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [LOANLEDGER, "rail", "--port", str(self.port), "--webhook-url", "", "--log-level", "warning"],
                env={**os.environ, "LOANLEDGER_HOME": str(home)}, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None, log.read_text()[-2000:]
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)

    def order(self, path: str, body: dict) -> dict:
        answer = httpx.post(f"{self.url}{path}", json=body, timeout=10)
        assert answer.status_code == 201, answer.text
        return answer.json()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


@pytest.fixture
def rail(tmp_path):
    started = Rail(tmp_path / "home", tmp_path / "rail.log")
    yield started
    started.stop()


def _utc_day(seconds: int) -> date:
    return datetime.fromtimestamp(seconds, UTC).date()


def _ref(reference: str) -> bytes:
    return payment_ref(PROVIDER, reference)


def _received(sessions, kind: str, loan_id: int, paid: dict) -> None:
    """The oracle's outbox row for a payment whose webhook it accepted."""
    Outbox(sessions).put(Confirmation(kind=kind, loan_id=loan_id, reference=paid["reference"],
                                      payment_ref=_ref(paid["reference"]), amount=paid["amount"],
                                      currency=paid["currency"], paid_at=paid["paid_at"], provider=PROVIDER,
                                      event_id=paid["event_id"]))


def test_every_statement_line_lands_in_its_category_and_the_cli_says_so(w3, stack, keys, driver, sessions, db_url,
                                                                       rail, loan_terms, tmp_path):
    from sqlalchemy import update

    from ledger.store.models.outbox import OutboxItem

    loan_id = driver.approved_loan(keys["alice"])
    now = driver.now
    day = _utc_day(now)

    # Paid out and collected on the rail, confirmed on-chain with the same amounts: matched.
    payout = rail.order("/v1/payouts", {"loan_id": loan_id, "amount": loan_terms.principal, "paid_at": now})
    _received(sessions, "disbursement", loan_id, payout)
    driver.disburse(loan_id, loan_terms.principal, _ref(payout["reference"]))
    collected = rail.order("/v1/collections", {"loan_id": loan_id, "amount": 1_000, "paid_at": now})
    _received(sessions, "repayment", loan_id, collected)
    driver.repay(loan_id, 1_000, _ref(collected["reference"]))
    # Collected 2,000 on the rail, credited as 1,500 on-chain: the amount differs.
    short = rail.order("/v1/collections", {"loan_id": loan_id, "amount": 2_000, "paid_at": now})
    driver.repay(loan_id, 1_500, _ref(short["reference"]))
    # Received by the oracle but set aside (never applied), and one whose webhook never arrived: rail only.
    set_aside = rail.order("/v1/collections", {"loan_id": loan_id, "amount": 700, "paid_at": now})
    _received(sessions, "repayment", loan_id, set_aside)
    with sessions.begin() as session:
        session.execute(update(OutboxItem).where(OutboxItem.reference == set_aside["reference"])
                        .values(status="set_aside", last_error="LoanBookInvalidStatus: the loan is not active"))
    unheard = rail.order("/v1/collections", {"loan_id": loan_id, "amount": 900, "paid_at": now})
    # Credited on-chain with the oracle's key under a reference the rail never made: chain only.
    driver.repay(loan_id, 300, _ref("GHOST-0001"))
    # A payment on another day stays out of this day's statement.
    rail.order("/v1/collections", {"loan_id": loan_id, "amount": 50, "paid_at": now + 86_400})

    Indexer(w3, stack.manifest, sessions).run_once()

    statement = httpx.get(f"{rail.url}/v1/statements/{day.isoformat()}", timeout=10).json()
    assert statement["count"] == 5 and {e["direction"] for e in statement["entries"]} == {"payout", "collection"}

    entries = StandinProvider(PROVIDER, None, ProviderApi(PROVIDER, rail.url)).statement(day)
    result = reconcile(PROVIDER, day, entries, sessions)
    by_reference = {row.reference: row for row in result.rows}
    assert by_reference[payout["reference"]].category == "matched"
    assert by_reference[collected["reference"]].category == "matched"
    differs = by_reference[short["reference"]]
    assert (differs.category, differs.rail_amount, differs.ledger_amount) == ("amount_differs", 2_000, 1_500)
    aside = by_reference[set_aside["reference"]]
    assert (aside.category, aside.outbox_status) == ("rail_only", "set_aside")
    assert "LoanBookInvalidStatus" in aside.outbox_reason
    assert (by_reference[unheard["reference"]].category, by_reference[unheard["reference"]].outbox_status) == (
        "rail_only", None)
    ghost = [row for row in result.rows if row.category == "chain_only"]
    assert [(g.payment_ref, g.ledger_amount, g.reference) for g in ghost] == [("0x" + _ref("GHOST-0001").hex(), 300,
                                                                              None)]
    counts = result.counts
    assert counts == {"matched": 2, "amount_differs": 1, "rail_only": 2, "chain_only": 1}
    assert len(entries) == counts["matched"] + counts["rail_only"] + counts["amount_differs"]
    assert result.unmatched == 4 and not result.balanced

    env = {**os.environ, "LOANLEDGER_HOME": str(tmp_path / "cli-home"), "LOANLEDGER_DB_URL": db_url,
           "LOANLEDGER_RAIL_URL": rail.url}
    run = subprocess.run([LOANLEDGER, "rail", "reconcile", "--date", day.isoformat(), "--json"], env=env, check=False,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    assert report["counts"] == counts and report["statement_lines"] == 5 and report["unmatched"] == 4
    assert {r["reference"]: r["category"] for r in report["rows"]} == {r.reference: r.category for r in result.rows}
    csv_run = subprocess.run([LOANLEDGER, "rail", "reconcile", "--date", day.isoformat(), "--csv"], env=env,
                             check=False, capture_output=True, text=True, timeout=120)
    assert csv_run.returncode == 1 and csv_run.stdout.count("\n") == 1 + len(result.rows)
    assert f"amount_differs,mockpay,{short['reference']}," in csv_run.stdout

    # A day on which the rail moved nothing and the chain credited nothing reconciles: exit 0.
    quiet = (datetime.fromtimestamp(now, UTC).replace(year=2001)).date().isoformat()
    run = subprocess.run([LOANLEDGER, "rail", "reconcile", "--date", quiet, "--json"], env=env, check=False,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["counts"] == {"matched": 0, "amount_differs": 0, "rail_only": 0, "chain_only": 0}


def test_the_statement_lists_a_utc_day_of_payouts_collections_and_refunds():
    rail = PaymentRail(PROVIDER, RsaScheme.generate(), clock=lambda: 1_764_547_199.0)  # 2025-11-30T23:59:59Z
    late = rail.pay("payout", 1, 10_000, deliver=False)
    refund = rail.refund(late.reference, 400, "CNY")
    rail.pay("collection", 1, 500, paid_at=1_764_547_200, deliver=False)  # 2025-12-01T00:00:00Z: the next day
    lines = rail.statement(date(2025, 11, 30))
    assert [(line["reference"], line["direction"], line["amount"]) for line in lines] == [
        (late.reference, "payout", 10_000), (refund.reference, "refund", 400)]
    assert lines[1]["payment_reference"] == late.reference
    assert [line["direction"] for line in rail.statement(date(2025, 12, 1))] == ["collection"]


def test_a_refund_the_ledger_has_not_recorded_is_rail_only_and_an_empty_day_balances(sessions):
    day = date(2025, 11, 30)
    refund = StatementEntry("REF-1", "refund", 3, 400, "CNY", 1_764_500_000)
    result = reconcile(PROVIDER, day, [refund], sessions)
    assert [(r.category, r.direction, r.rail_amount) for r in result.rows] == [("rail_only", "refund", 400)]
    assert reconcile(PROVIDER, day, [], sessions).balanced


def test_an_adapter_without_a_statement_api_says_so():
    with pytest.raises(StatementUnsupported):
        HmacJsonProvider("tradepay", None).statement(date(2025, 11, 30))


def test_the_scheduled_run_reconciles_yesterday_and_exports_the_unmatched_gauge(serve_app, sessions):
    from fastapi.testclient import TestClient

    from oracle.payments.rail import create_app
    from oracle.payments.reconcile import ScheduledReconciliation
    from oracle.service import OracleService

    yesterday, today = 1_764_500_000, 1_764_500_000 + 86_400  # 2025-11-30 and 2025-12-01, UTC
    rail = PaymentRail(PROVIDER, RsaScheme.generate(), clock=lambda: yesterday)
    with serve_app(create_app(rail)) as url:
        for amount in (100, 200):  # collected on the rail; the ledger never heard of them
            rail.pay("collection", 1, amount, deliver=False)
        rail.pay("collection", 1, 300, paid_at=today, deliver=False)  # today's: not in yesterday's statement
        providers = {PROVIDER: StandinProvider(PROVIDER, None, ProviderApi(PROVIDER, url)),
                     "tradepay": HmacJsonProvider("tradepay", None)}  # publishes no statement: skipped
        scheduled = ScheduledReconciliation(providers, sessions, clock=lambda: today + 3600)
        service = OracleService(sessions, None, None, reconciliation=scheduled)
        metrics = TestClient(service.create_app()).get("/metrics").text
        assert "loanledger_oracle_reconciliation_unmatched{" not in metrics  # no run yet: no figure, not a 0
        results = scheduled.run_once()
        assert list(results) == [PROVIDER] and results[PROVIDER].day == date(2025, 11, 30)
        assert results[PROVIDER].counts["rail_only"] == 2
        metrics = TestClient(service.create_app()).get("/metrics").text
        assert 'loanledger_oracle_reconciliation_unmatched{provider="mockpay"} 2.0' in metrics
    # The rail is gone: the run keeps the last figures and says so in the log, rather than reporting 0.
    scheduled.run_once()
    assert scheduled.unmatched == {PROVIDER: 2}


def test_the_cli_says_when_the_provider_does_not_answer_and_refuses_a_bad_date(tmp_path):
    env = {**os.environ, "LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_DB_URL": f"sqlite:///{tmp_path / 's.db'}",
           "LOANLEDGER_RAIL_URL": f"http://127.0.0.1:{free_port()}"}
    down = subprocess.run([LOANLEDGER, "rail", "reconcile", "--date", "2026-11-29"], env=env, check=False,
                          capture_output=True, text=True, timeout=120)
    assert down.returncode == 2 and "did not answer" in " ".join(down.stderr.split()), down.stderr
    bad = subprocess.run([LOANLEDGER, "rail", "reconcile", "--date", "29/11/2026"], env=env, check=False,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "is not a date" in " ".join(bad.stderr.split())
    unknown = subprocess.run([LOANLEDGER, "rail", "reconcile", "--date", "2026-11-29", "--provider", "nope"],
                             env=env, check=False, capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 1 and "no payment provider named 'nope'" in " ".join(unknown.stderr.split())


def test_an_overpayment_and_a_suspense_refund_reconcile_as_matched(w3, stack, keys, driver, sessions, rail):
    import time as clock

    from ledger.store.models.suspense import RefundOrder

    loan_id = driver.active_loan(keys["alice"])
    now = driver.now
    day = _utc_day(now)
    # Paid beyond the payoff: the book applies the payoff and holds the rest as credit; the line is the sum.
    over = rail.order("/v1/collections", {"loan_id": loan_id, "amount": driver.payoff(loan_id) + 5_000,
                                          "paid_at": now})
    _received(sessions, "repayment", loan_id, over)
    driver.repay(loan_id, over["amount"], _ref(over["reference"]))
    # A payment held in suspense and refunded by an operator: the refund never goes on-chain; its order does.
    held = rail.order("/v1/collections", {"loan_id": 999, "amount": 800, "paid_at": now})
    refund = rail.order("/v1/refunds", {"loan_id": 999, "payment_reference": held["reference"], "amount": 800})
    stamp = int(clock.time())
    with sessions.begin() as session:
        session.add(RefundOrder(suspense_item_id=1, provider=PROVIDER, idempotency_key=f"refund:{held['reference']}",
                                payment_reference=held["reference"], loan_id=999, amount=800, currency="CNY",
                                state="refunded", refund_reference=refund["reference"], attempts=1,
                                ordered_by="0x" + "11" * 20, ordered_at=stamp, refunded_at=stamp, updated_at=stamp))
    Indexer(w3, stack.manifest, sessions).run_once()

    entries = StandinProvider(PROVIDER, None, ProviderApi(PROVIDER, rail.url)).statement(day)
    rows = {row.reference: row for row in reconcile(PROVIDER, day, entries, sessions).rows}
    overpaid = rows[over["reference"]]
    assert (overpaid.category, overpaid.ledger_amount, overpaid.rail_amount) == ("matched", over["amount"],
                                                                                 over["amount"])
    back = rows[refund["reference"]]
    assert (back.category, back.kind, back.ledger_amount) == ("matched", "suspense_refund", 800)
    assert rows[held["reference"]].category == "rail_only"  # received and not applied: the suspense item's to explain
