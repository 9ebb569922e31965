"""Set-aside outbox items are shown: in the oracle's /healthz and /metrics, and listed by `loanledger oracle outbox`;
suspense items are counted in /metrics; a store that cannot count says so. (The policy's set-aside loans:
tests/oracle/test_policy_rounds.py.)"""

from __future__ import annotations

import json
import os

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ledger.cli import app
from ledger.store import open_store
from ledger.store.models.outbox import OutboxItem
from ledger.store.models.suspense import SuspenseItem
from oracle.service import OracleService


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'oracle.db'}"


@pytest.fixture
def sessions(db_url):
    factory = open_store(db_url)
    yield factory
    factory.kw["bind"].dispose()


def add(sessions, reference: str, status: str, loan_id: int = 7, error: str | None = None) -> None:
    with sessions.begin() as session:
        session.add(OutboxItem(provider="mockpay", event_id=f"evt-{reference}", kind="repayment", loan_id=loan_id,
                               reference=reference, payment_ref="0x" + reference.encode().hex().ljust(64, "0"),
                               amount=1_000, currency="CNY", paid_at=1_700_000_000, received_at=1_700_000_000,
                               status=status, attempts=0, next_attempt_at=0, updated_at=1_700_000_000,
                               outcome="ItemUnusable" if status == "set_aside" else None, last_error=error))


def test_healthz_and_metrics_count_set_aside_items(sessions):
    add(sessions, "COL-1", "done")
    add(sessions, "COL-BAD", "set_aside", loan_id=2**256, error="ItemUnusable: loan id out of range")
    with TestClient(OracleService(sessions, None, None).create_app()) as http:
        health = http.get("/healthz")
        metrics = http.get("/metrics")
    assert health.status_code == 200
    assert health.json()["attention"] == {"set_aside": 1, "rejected": 0, "score_reports_set_aside": 0,
                                          "registrations_set_aside": 0, "policy_set_aside": 0,
                                          "collections_set_aside": 0}
    assert health.json()["outbox"] == {"done": 1, "set_aside": 1}
    assert metrics.status_code == 200
    assert "loanledger_oracle_outbox_set_aside 1.0" in metrics.text
    assert 'loanledger_oracle_outbox_items{status="done"} 1.0' in metrics.text


def test_the_cli_lists_set_aside_items_with_their_reason(sessions, db_url):
    add(sessions, "COL-1", "done")
    add(sessions, "COL-BAD", "set_aside", loan_id=2**256, error="ItemUnusable: loan id out of range")
    result = CliRunner().invoke(app, ["oracle", "outbox", "--status", "set_aside", "--json"],
                                env={**os.environ, "LOANLEDGER_DB_URL": db_url})
    assert result.exit_code == 0, result.output
    (line,) = result.output.strip().splitlines()
    item = json.loads(line)
    assert (item["reference"], item["status"], item["loan_id"]) == ("COL-BAD", "set_aside", str(2**256))
    assert "out of range" in item["last_error"]
    table = CliRunner().invoke(app, ["oracle", "outbox"],
                               env={**os.environ, "LOANLEDGER_DB_URL": db_url, "COLUMNS": "300"})
    assert table.exit_code == 0 and "COL-BAD" in table.output and "COL-1" in table.output


def test_metrics_count_suspense_items_and_those_still_to_resolve(sessions):
    with TestClient(OracleService(sessions, None, None).create_app()) as http:
        empty = http.get("/metrics").text
    assert "loanledger_oracle_suspense_open 0.0" in empty
    with sessions.begin() as session:
        for n, state in enumerate(("open", "open", "refunding", "refunded", "applied"), start=1):
            session.add(SuspenseItem(outbox_item_id=None, provider="mockpay", reference=f"COL-{n}",
                                     payment_ref="0x" + f"{n:064x}", loan_id=7, amount=1_000, currency="CNY",
                                     reason="LoanIdOutOfRange", received_at=1, state=state, created_at=1,
                                     updated_at=1))
    with TestClient(OracleService(sessions, None, None).create_app()) as http:
        metrics = http.get("/metrics").text
    assert "loanledger_oracle_suspense_open 3.0" in metrics
    assert 'loanledger_oracle_suspense_items{state="open"} 2.0' in metrics
    assert 'loanledger_oracle_suspense_items{state="refunded"} 1.0' in metrics


def test_healthz_and_metrics_alert_on_score_reports_set_aside_since_the_last_that_landed(sessions):
    from ledger.store.models.score_quorum import ScoreProposal

    def propose(state: str) -> None:
        with sessions.begin() as session:
            session.add(ScoreProposal(report_id=1, model_version=1, chain_id=31337, oracle="0x" + "11" * 20,
                                      entries="[]", digest="0x" + "00" * 32, threshold=2, state=state,
                                      created_at=1_700_000_000, deadline=1_700_000_010))

    propose("set_aside")
    propose("submitted")  # landed since: the earlier failure is over
    propose("set_aside")
    propose("set_aside")
    with TestClient(OracleService(sessions, None, None).create_app()) as http:
        health = http.get("/healthz").json()
        metrics = http.get("/metrics").text
    assert health["attention"]["score_reports_set_aside"] == 2
    assert "loanledger_oracle_score_quorum_failing 2.0" in metrics


def test_a_store_that_cannot_count_is_degraded_and_its_attention_unknown_not_zero(tmp_path):
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    broken = sessionmaker(create_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'oracle.db'}"))
    with TestClient(OracleService(broken, None, None).create_app()) as http:
        health = http.get("/healthz")
        metrics = http.get("/metrics")
    assert (health.status_code, health.json()["status"], health.json()["store"]) == (503, "degraded",
                                                                                      "OperationalError")
    assert health.json()["attention"] == {"set_aside": None, "rejected": None, "score_reports_set_aside": None,
                                          "registrations_set_aside": None, "policy_set_aside": None,
                                          "collections_set_aside": None}
    assert metrics.status_code == 200 and "loanledger_oracle_" not in metrics.text  # a scrape still answers
