"""The automatic approval policy as a real process (`loanledger oracle policy`) on the session's node, with only
the policy key: it approves an auto-approvable loan and orders its payout over the rail, rejects one whose score is
stale with the book's reason, leaves a loan its product does not let it decide Requested for an operator (its key
could not approve it: the book refuses), and, killed between an approval and the payout order, orders the payout
when it starts again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from api.services.decisions import set_auto_approve
from ledger import manifest as manifests
from ledger.action_log import ActionLog
from ledger.indexer import Indexer
from ledger.products import offering
from ledger.store import open_store
from ledger.store.models.action_log import ActionLogEntry
from ledger.store.models.payouts import PayoutOrder
from oracle.payments.rail import PaymentRail, create_app
from oracle.payments.signatures import RsaScheme

LOANLEDGER = str(Path(sys.executable).with_name("loanledger"))
DAY = 86_400
REQUESTED, APPROVED, REJECTED = 1, 2, 3  # ILoanBook.LoanStatus


def eventually(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


class PolicyProcess:
    """`loanledger oracle policy` with the policy key (and only it), logging to one file across restarts."""

    def __init__(self, env: dict[str, str], log: Path):
        self.env, self.log, self.process = env, log, None

    def start(self, **extra: str) -> PolicyProcess:
        before = self.text().count("automatic policy (")
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([LOANLEDGER, "oracle", "policy", "--interval", "0.1"],
                                            env={**self.env, **extra}, stdout=out, stderr=subprocess.STDOUT)
        eventually(lambda: self.text().count("automatic policy (") > before or self.process.poll() is not None,
                   "the policy to start", 60)
        assert self.process.poll() is None, self.text()[-3000:]
        return self

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def setup(w3, stack, keys, tmp_path, serve_app):
    """The store (followed by an indexer thread), the rail stand-in, the policy switched on, and the policy process
    (not started: `policy.start()`)."""
    db_url = f"sqlite:///{tmp_path / 'policy.db'}"
    sessions = open_store(db_url)
    set_auto_approve(SimpleNamespace(sessions=sessions), True, keys["operator"].address)
    stop = threading.Event()
    indexer = Indexer(w3, stack.manifest, sessions)
    thread = threading.Thread(target=indexer.follow, kwargs={"poll_interval": 0.05, "stop": stop}, daemon=True)
    thread.start()
    rail = PaymentRail("mockpay", RsaScheme.generate())  # no webhook URL: the payout stays with the rail
    with serve_app(create_app(rail)) as rail_url:
        env = {**os.environ, "LOANLEDGER_HOME": str(tmp_path / "home"), "LOANLEDGER_NODE_URL": w3.provider.endpoint_uri,
               "LOANLEDGER_MANIFEST": str(manifests.save(stack.manifest, tmp_path / "local.json")),
               "LOANLEDGER_DB_URL": db_url, "LOANLEDGER_RAIL_URL": rail_url,
               "LOANLEDGER_POLICY_KEY": keys["policy"].key.hex()}
        for name in ("OPERATOR", "ADMIN", "ORACLE", "PAUSER", "RELAYER"):  # only its own key
            env.pop(f"LOANLEDGER_{name}_KEY", None)
        policy = PolicyProcess(env, tmp_path / "policy.log")
        try:
            yield SimpleNamespace(policy=policy, sessions=sessions, rail=rail)
        finally:
            policy.stop()
            stop.set()
            thread.join(timeout=10)
            sessions.kw["bind"].dispose()


@pytest.fixture
def auto_product(driver, stack, loan_terms) -> int:
    """A product the policy may decide up to the test's principal (published by two operators)."""
    driver.product(loan_terms)  # opens the catalogue's ceilings
    product = replace(offering(loan_terms, "policy"), auto_approve=True,
                      auto_approve_max_principal=loan_terms.principal)
    driver.by_two_operators(stack.catalog.functions.createProduct(product.as_tuple(stack.catalog)))
    return stack.catalog.functions.productCount().call()


def status(stack, loan_id: int) -> int:
    return stack.book.functions.loanOf(loan_id).call()[2]


def orders(sessions, loan_id: int) -> list[PayoutOrder]:
    with sessions() as session:
        return list(session.scalars(select(PayoutOrder).where(PayoutOrder.loan_id == loan_id)))


def logged(sessions, action: str) -> list[dict]:
    log = ActionLog(sessions)
    with sessions() as session:
        seqs = list(session.scalars(select(ActionLogEntry.seq).where(ActionLogEntry.actor == "policy",
                                                                     ActionLogEntry.action == action)))
    return [log.entry(seq).data for seq in seqs]


def test_the_policy_process_approves_and_pays_out_and_leaves_the_rest_to_an_operator(
        stack, keys, driver, loan_terms, auto_product, setup, revert_name):
    driver.register(keys["alice"])
    driver.score(keys["alice"])
    manual = driver.request(keys["alice"], loan_terms)  # a product that leaves every loan to a person
    auto = driver.apply(keys["alice"], auto_product, 1, loan_terms.principal, loan_terms.installments)
    setup.policy.start()

    eventually(lambda: status(stack, auto) == APPROVED, "the policy's approval")
    (approved,) = stack.book.events.LoanApproved().get_logs(from_block=0, argument_filters={"loanId": auto})
    assert approved.args.actor == keys["policy"].address  # the chain names the policy's key
    (order,) = eventually(lambda: orders(setup.sessions, auto), "the payout order")
    assert order.amount == loan_terms.principal - loan_terms.serviceFee
    eventually(lambda: [p for p in setup.rail.payments.values() if p.loan_id == auto], "the payout on the rail")
    (entry,) = [e for e in logged(setup.sessions, "loan.approve") if e["loan_id"] == auto]
    assert (entry["decision"], entry["signed_by"], entry["tx"]) == ("approved", keys["policy"].address,
                                                                    approved.transactionHash.to_0x_hex())

    time.sleep(1.0)  # several rounds later, the loan it may not decide is still an operator's
    assert status(stack, manual) == REQUESTED
    assert revert_name(stack.book.functions.approve(manual), keys["policy"].address) == "LoanBookNotAutoApprovable"
    assert [e["loan_id"] for e in logged(setup.sessions, "loan.approve")] == [auto]
    driver.approve(manual)  # an operator decides it


def test_the_policy_process_rejects_a_stale_score_with_the_books_reason(stack, keys, driver, loan_terms,
                                                                          auto_product, setup):
    driver.register(keys["bob"])
    driver.score(keys["bob"])
    driver.advance(31 * DAY)  # the score is now older than the 30-day maximum
    loan_id = driver.apply(keys["bob"], auto_product, 1, loan_terms.principal, loan_terms.installments)
    setup.policy.start()

    eventually(lambda: status(stack, loan_id) == REJECTED, "the policy's rejection")
    (rejected,) = stack.book.events.LoanRejected().get_logs(from_block=0, argument_filters={"loanId": loan_id})
    assert (rejected.args.reason.rstrip(b"\0"), rejected.args.actor) == (b"stale_score", keys["policy"].address)
    eventually(lambda: [e for e in logged(setup.sessions, "loan.reject") if e["loan_id"] == loan_id],
               "the rejection in the action log")
    assert orders(setup.sessions, loan_id) == []


def test_killed_between_approval_and_payout_order_the_restarted_policy_orders_it_once(
        stack, keys, driver, loan_terms, auto_product, setup):
    driver.register(keys["alice"])
    driver.score(keys["alice"])
    loan_id = driver.apply(keys["alice"], auto_product, 1, loan_terms.principal, loan_terms.installments)
    setup.policy.start(LOANLEDGER_POLICY_FAULT="stop_after_approve")
    eventually(lambda: "fault injection: stopping at after_approve" in setup.policy.text(), "the fault point")
    setup.policy.process.send_signal(signal.SIGKILL)
    setup.policy.process.wait(timeout=10)
    assert status(stack, loan_id) == APPROVED
    assert orders(setup.sessions, loan_id) == [] and not setup.rail.payments

    setup.policy.start()
    (order,) = eventually(lambda: orders(setup.sessions, loan_id), "the reconciled payout order")
    (paid,) = eventually(lambda: [p for p in setup.rail.payments.values() if p.loan_id == loan_id],
                         "the payout on the rail")
    assert order.amount == paid.amount == loan_terms.principal - loan_terms.serviceFee
    assert "without its payout order: ordering it now" in setup.policy.text()
    time.sleep(1.0)  # later rounds order nothing more, and the approval was sent once
    assert len(orders(setup.sessions, loan_id)) == 1 and len(setup.rail.payments) == 1
    assert len(stack.book.events.LoanApproved().get_logs(from_block=0, argument_filters={"loanId": loan_id})) == 1
