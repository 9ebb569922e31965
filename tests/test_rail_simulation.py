"""A seeded randomized simulation of the money pipeline against the real processes (issue 14).

The session's anvil, and as processes of their own: the rail stand-in (webhooks on), the oracle (webhook
intake and outbox worker), the indexer and the API, on one store, the way `loanledger run` wires them.
N loans; a seeded mix of payouts ordered through the API (approval racing concurrent /disburse asks),
repayments collected on the rail (partial, exact payoff, overpayment closing the loan Overpaid with credit),
payments to unknown loans and in the wrong currency (suspense), operators refunding or applying suspense
items and refunding an Overpaid loan's credit, chargebacks of applied repayments, payouts returned by the
receiving bank (left Approved, or re-ordered), webhook redeliveries, and crashes: the oracle and the indexer
SIGKILLed and restarted, the API SIGKILLed or SIGSTOPped with a payout in flight, the rail SIGSTOPped for a
moment. The pipeline drains between steps (mining an empty block now and then while the outbox waits: the
rail dates refunds and reversals by its clock, and the session's anvil makes blocks only on transactions).

At the end, each side from its own source: the rail's statement reconciles with the ledger (every line
matched, or received and not applied with its home in the ledger: a suspense item, open or refunded; a
mismatch is any other line, or a payment on-chain the statement lacks), no loan was paid out twice and each
payout order names the payout the chain confirmed, every outbox item is settled, and for every reference
the rail reports, received = applied on-chain (RepaymentApplied) + credit (OverpaymentHeld less
CreditRefunded) + open suspense (the store) + refunded (the rail), to the minor unit, each reference's
money where the simulation sent it; the read model verifies against the chain.

LOANLEDGER_SIM_SEED picks the seed (printed), LOANLEDGER_SIM_STEPS the number of steps (small by default:
it runs in `make test`), LOANLEDGER_SIM_LOANS the number of loans. Run with -s to see the figures.
Every action kind is one function in ACTIONS, with its weight.
"""

from __future__ import annotations

import base64
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from sqlalchemy import func, select

from api.client import ApiError, LoanLedgerClient
from ledger import manifest as manifests
from ledger import verify
from ledger.book import LoanStatus, read_loan, read_progress
from ledger.encoding import to_0x_hex
from ledger.node import free_port
from ledger.store import open_store
from ledger.store.models.chain import IndexerCursor
from ledger.store.models.outbox import OutboxItem
from ledger.store.models.payouts import PayoutOrder
from ledger.store.models.suspense import SuspenseItem
from oracle.payments.inbound import payment_ref
from oracle.payments.provider import StatementEntry
from oracle.payments.reconcile import (
    AMOUNT_DIFFERS,
    CHAIN_ONLY,
    MATCHED,
    RAIL_ONLY,
    reconcile,
)

SEED = int(os.environ.get("LOANLEDGER_SIM_SEED", "20261130"))
STEPS = int(os.environ.get("LOANLEDGER_SIM_STEPS", "20"))
LOANS = int(os.environ.get("LOANLEDGER_SIM_LOANS", "6"))
PROVIDER = "mockpay"
RAIL_TIMEOUT = 1.0  # the API's provider timeout: a stalled rail is answered 503 fast
LOANLEDGER = str(Path(sys.executable).with_name("loanledger"))
UNKNOWN_LOANS = 9_000_000  # loan ids from here on are no loan of the book: a payer's typo
DRAIN_TIMEOUT = 60.0


# ---------------------------------------------------------------------------------------- processes


class Process:
    """One `loanledger` service as a real process: started, SIGKILLed, stopped and continued by signal."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path, health: str | None = None):
        self.name, self.args, self.env, self.log, self.health = name, args, env, log, health
        self.popen: subprocess.Popen | None = None

    def start(self) -> Process:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen([LOANLEDGER, *self.args], env=self.env, stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while self.health is not None:
            assert self.popen.poll() is None, f"{self.name} exited: {self.tail()}"
            try:
                if httpx.get(self.health, timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{self.name} did not answer {self.health}: {self.tail()}"
            time.sleep(0.05)
        return self

    def signal(self, sig: int) -> None:
        assert self.popen is not None and self.popen.poll() is None, f"{self.name} is not running: {self.tail()}"
        self.popen.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no cleanup, whatever it was doing."""
        self.signal(signal.SIGCONT)  # a stopped process dies only once continued
        self.signal(signal.SIGKILL)
        self.popen.wait(timeout=15)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGCONT)
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=15)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


# ---------------------------------------------------------------------------------------- the simulation


@dataclass
class Home:
    """Where a payment's money must end: `applied` (to a loan; `credit`: the part held beyond the payoff),
    `suspense` (refused on-chain for `reason`, still open), `refunded` (out of suspense, back over the rail) or
    `reversed` (taken back by the rail: a chargeback, of a payment applied or of one held in suspense)."""

    where: str
    reason: str | None = None
    credit: int | None = 0  # None: not known in advance (an item applied from suspense may overpay)
    loan_id: int | None = None  # the loan the rail was told


@dataclass
class Sim:
    w3: object
    book: object
    manifest: object
    rng: random.Random
    sessions: object
    rail: Process
    oracle: Process
    indexer: Process
    api: Process
    operator: LoanLedgerClient
    loans: list[int]
    principal: int
    events: Counter = field(default_factory=Counter)
    crashes: Counter = field(default_factory=Counter)
    checked: Counter = field(default_factory=Counter)  # what the final checks looked at
    # What each collection must become, as the simulation meant it: reference -> Home
    homes: dict[str, Home] = field(default_factory=dict)
    reserved: int = 0  # loans kept waiting for the payout crashes still planned (see `plan`)
    returned: set[int] = field(default_factory=set)  # loans whose payout came back and was not re-ordered
    trace: list[str] = field(default_factory=list)
    _serial: int = 0

    # -- reading each side

    @property
    def rail_url(self) -> str:
        return self.rail.health.rsplit("/", 1)[0]

    def chain_now(self) -> int:
        return self.w3.eth.get_block("latest").timestamp

    def status(self, loan_id: int) -> LoanStatus:
        return read_loan(self.book, loan_id).status

    def loans_in(self, *statuses: LoanStatus) -> list[int]:
        return [loan_id for loan_id in self.loans if self.status(loan_id) in statuses]

    def waiting(self) -> list[int]:
        """Loans waiting for a payout (a returned one is left to its failed order unless re-ordered)."""
        return [loan_id for loan_id in self.loans_in(LoanStatus.REQUESTED, LoanStatus.APPROVED)
                if loan_id not in self.returned]

    def money_back(self) -> list[dict]:
        """The rail's refunds, reversals and returns, from its statements of the days it has moved money."""
        days = {datetime.fromtimestamp(p["paid_at"], UTC).date() for p in self.rail_payments()}
        days.add(datetime.now(UTC).date())  # refunds and reversals are dated by the rail's own clock
        return [e for day in sorted(days) for e in rail_statement(self, day)
                if e["direction"] in ("refund", "reversal", "return")]

    def rail_payments(self, **params) -> list[dict]:
        answer = httpx.get(f"{self.rail_url}/v1/payments", params=params, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def pick(self, choices: list):
        return self.rng.choice(choices) if choices else None

    def next_serial(self) -> int:
        self._serial += 1
        return self._serial

    # -- acting

    def collect(self, loan_id: int, amount: int, home: Home, currency: str = "CNY", paid_at: int | None = None,
                ) -> str:
        """Money collected on the rail (dated chain time, as the demo does); the rail's webhook tells the oracle."""
        answer = httpx.post(f"{self.rail_url}/v1/collections", json={
            "loan_id": loan_id, "amount": amount, "currency": currency,
            "paid_at": self.chain_now() if paid_at is None else paid_at}, timeout=10)
        answer.raise_for_status()
        reference = answer.json()["reference"]
        home.loan_id = loan_id
        self.homes[reference] = home
        return reference

    def ask(self, call: Callable[[], object]) -> tuple[int, str | None]:
        try:
            call()
        except ApiError as exc:
            return exc.status, exc.code
        except httpx.HTTPError as exc:  # the API died or stalled under the request
            return 0, type(exc).__name__
        return 200, None

    def disburse(self, loan_id: int) -> dict:
        return self.operator._request("POST", f"/v1/operator/loans/{loan_id}/disburse",
                                      idempotency_key=f"sim-d-{loan_id}-{self.next_serial()}")

    def concurrently(self, calls: list[Callable[[], object]]) -> list[tuple[int, str | None]]:
        results: list[tuple[int, str | None]] = []
        threads = [threading.Thread(target=lambda c=c: results.append(self.ask(c))) for c in calls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        return results

    def payout_asks(self, loan_id: int) -> list[Callable[[], object]]:
        """Approval (which orders the payout) racing 0 to 3 /disburse asks with new Idempotency-Keys."""
        asks: list[Callable[[], object]] = []
        if self.status(loan_id) is LoanStatus.REQUESTED:
            asks.append(lambda: self.operator.approve(loan_id))
        asks += [lambda: self.disburse(loan_id) for _ in range(self.rng.randint(0 if asks else 1, 3))]
        return asks

    def settle_payout(self, loan_id: int) -> dict:
        """Asks /disburse until the order has the rail's answer (a stalled rail or a restarted API may need a
        few asks; none may pay out twice)."""
        deadline = time.monotonic() + 30
        while True:
            status, answer = 0, None
            try:
                answer = self.disburse(loan_id)
            except ApiError as exc:
                assert (exc.status, exc.code) == (503, "rail_unavailable"), exc
            if answer is not None and (answer["rail_reference"] or answer["state"] in ("settled", "failed")):
                return answer
            assert time.monotonic() < deadline, f"loan {loan_id}'s payout order never got an answer ({status})"
            time.sleep(0.2)

    # -- draining

    def drain(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Until every webhook is acknowledged, the outbox has nothing left to send and the indexer is at the
        head: what the rail did is then all on-chain and in the read model."""
        deadline = time.monotonic() + timeout
        next_block = time.monotonic() + 1.0
        while True:
            undelivered = [p["reference"] for p in self.rail_payments() if not p["delivered"]]
            back = {e["reference"] for e in self.money_back()}  # their webhooks: each settles an outbox row
            with self.sessions() as session:
                waiting = session.scalar(select(func.count()).select_from(OutboxItem).where(
                    OutboxItem.status.in_(("pending", "sending"))))
                undelivered += sorted(back - set(session.scalars(select(OutboxItem.reference).where(
                    OutboxItem.reference.in_(back)))))
                cursor = session.get(IndexerCursor, "default")
                indexed = cursor.block_number if cursor is not None and cursor.block_hash else -1
            head = self.w3.eth.block_number
            if not undelivered and not waiting and indexed >= head:
                return
            if waiting and time.monotonic() > next_block:
                # A refund or reversal is dated by the rail's clock and the book refuses a time past its latest
                # block; a real chain keeps making blocks, the session's anvil only on a transaction.
                self.w3.provider.make_request("evm_mine", [])
                self.checked["empty blocks mined"] += 1
                next_block = time.monotonic() + 1.0
            if time.monotonic() > deadline:
                with self.sessions() as session:
                    stuck = [(i.reference, i.status, i.last_error) for i in session.scalars(
                        select(OutboxItem).where(OutboxItem.status.in_(("pending", "sending"))))]
                raise AssertionError(f"not drained after {timeout}s (seed {SEED}): undelivered {undelivered}, "
                                     f"outbox {stuck}, indexed {indexed} of {head}\n{self.trace[-5:]}\n"
                                     f"oracle: {self.oracle.tail()}")
            time.sleep(0.1)

    def restart(self, process: Process) -> None:
        process.kill()
        self.crashes[f"{process.name} SIGKILL"] += 1
        process.start()


# ---------------------------------------------------------------------------------------- actions
#
# Each returns what it did (one line of the trace). An action whose loans are not there (no loan waiting
# for a payout, none active) does the nearest thing that is: the step is never wasted.


def payout(sim: Sim) -> str:
    """An approval and concurrent /disburse asks for a loan without payout: the rail pays it out once."""
    waiting = sim.waiting()
    if len(waiting) <= sim.reserved:  # left for a crash with a payout in flight
        return repay_partial(sim)
    loan_id = sim.pick(waiting)
    results = sim.concurrently(sim.payout_asks(loan_id))
    # A /disburse that ran before the approval was mined is 409 not_approved; nothing else may fail.
    assert set(results) <= {(200, None), (409, "not_approved")}, (loan_id, results)
    sim.events["payout"] += 1
    return f"payout loan {loan_id}: {sorted(results)}"


def repay_partial(sim: Sim) -> str:
    loan_id = sim.pick(sim.loans_in(LoanStatus.ACTIVE))
    if loan_id is None:
        return wrong_reference(sim)
    payoff = sim.book.functions.payoffAmount(loan_id, sim.chain_now()).call()
    amount = sim.rng.randint(1, max(1, payoff // 3))
    reference = sim.collect(loan_id, amount, Home("applied"))
    sim.events["repayment"] += 1
    return f"repay loan {loan_id} {amount} ({reference})"


def repay_exact(sim: Sim) -> str:
    """The whole payoff as of the payment's own time: the loan is Repaid."""
    loan_id = sim.pick(sim.loans_in(LoanStatus.ACTIVE))
    if loan_id is None:
        return wrong_reference(sim)
    paid_at = sim.chain_now()
    payoff = sim.book.functions.payoffAmount(loan_id, paid_at).call()
    reference = sim.collect(loan_id, payoff, Home("applied"), paid_at=paid_at)
    sim.events["exact payoff"] += 1
    return f"payoff loan {loan_id} {payoff} ({reference})"


def overpay(sim: Sim) -> str:
    """More than the payoff: the loan closes Overpaid, the rest held on-chain as the borrower's credit."""
    loan_id = sim.pick(sim.loans_in(LoanStatus.ACTIVE))
    if loan_id is None:
        return wrong_currency(sim)
    paid_at = sim.chain_now()
    extra = sim.rng.randint(1, 9_999)
    amount = sim.book.functions.payoffAmount(loan_id, paid_at).call() + extra
    reference = sim.collect(loan_id, amount, Home("applied", credit=extra), paid_at=paid_at)
    sim.events["overpayment"] += 1
    return f"overpay loan {loan_id} {amount} ({reference})"


def wrong_reference(sim: Sim) -> str:
    """A payment naming no loan of the book: refused on-chain, held in suspense."""
    loan_id = UNKNOWN_LOANS + sim.rng.randint(1, 999)
    amount = sim.rng.randint(100, 50_000)
    reference = sim.collect(loan_id, amount, Home("suspense", "LoanBookUnknownLoan"))
    sim.events["wrong reference"] += 1
    return f"unknown loan {loan_id} {amount} ({reference})"


def wrong_currency(sim: Sim) -> str:
    loan_id = sim.pick(sim.loans)
    amount = sim.rng.randint(100, 50_000)
    reference = sim.collect(loan_id, amount, Home("suspense", "CurrencyMismatch"),
                            currency=sim.rng.choice(("USD", "EUR", "HKD")))
    sim.events["wrong currency"] += 1
    return f"wrong currency loan {loan_id} {amount} ({reference})"


def redeliver(sim: Sim) -> str:
    """The rail sends a webhook again: the oracle answers it as a duplicate and nothing is credited twice."""
    payment = sim.pick(sim.rail_payments())
    if payment is None:
        return wrong_reference(sim)
    answer = httpx.post(f"{sim.rail_url}/v1/payments/{payment['reference']}/redeliver", timeout=15)
    answer.raise_for_status()
    if not answer.json()["acknowledged"]:
        found = httpx.get(f"{sim.rail_url}/v1/payments/{payment['reference']}", timeout=10).json()
        raise AssertionError(f"seed {SEED}: the oracle did not acknowledge {payment['reference']} again: "
                             f"{found['last_error']}\n{sim.oracle.tail()}")
    sim.events["redelivery"] += 1
    return f"redeliver {payment['reference']}"


def refund_suspense(sim: Sim) -> str:
    """An operator refunds an open suspense item over the rail (asked twice: refunded once); made first if there
    is none."""
    if not sim.operator.suspense(state="open"):
        sim.trace.append(f"    {wrong_currency(sim)}")
        sim.drain()
    item = sim.pick(sim.operator.suspense(state="open"))
    assert item is not None, f"seed {SEED}: a wrong-currency payment left no open suspense item"
    key = f"sim-r-{item['id']}-{sim.next_serial()}"
    answers = [sim.operator.refund_suspense(item["id"], idempotency_key=key),
               sim.operator.refund_suspense(item["id"])]
    assert [a["state"] for a in answers] == ["refunded", "refunded"], answers
    sim.homes[item["reference"]] = Home("refunded", sim.homes[item["reference"]].reason)
    sim.events["suspense refund"] += 1
    return f"refund suspense {item['reference']} {item['amount']}"


def apply_suspense(sim: Sim) -> str:
    """An operator applies a payment that named no loan to an active loan paid out before it was received
    (made first if there is none to apply)."""
    pairs = applicable_suspense(sim)
    if not pairs and sim.loans_in(LoanStatus.ACTIVE):
        made = wrong_reference(sim)
        sim.drain()
        pairs = applicable_suspense(sim)
        sim.trace.append(f"    {made}")
    if not pairs:
        return wrong_reference(sim)
    (item_id, reference, amount, _), loan_id = sim.pick(pairs)
    answer = sim.operator.apply_suspense(item_id, loan_id)
    assert answer["state"] == "applied", answer
    sim.homes[reference] = Home("applied", credit=None, loan_id=loan_id)
    sim.events["suspense applied"] += 1
    return f"apply suspense {reference} {amount} to loan {loan_id}"


def applicable_suspense(sim: Sim) -> list[tuple[tuple, int]]:
    """(open unknown-loan item, active loan) pairs the book would take: the loan paid out before the payment."""
    with sim.sessions() as session:
        open_items = [(i.id, i.reference, i.amount, paid_at) for i, paid_at in session.execute(
            select(SuspenseItem, OutboxItem.paid_at).join(OutboxItem, OutboxItem.id == SuspenseItem.outbox_item_id)
            .where(SuspenseItem.state == "open", SuspenseItem.reason == "LoanBookUnknownLoan",
                   SuspenseItem.currency == "CNY"))]
    return [(item, loan_id) for item in open_items for loan_id in sim.loans_in(LoanStatus.ACTIVE)
            if 0 < read_loan(sim.book, loan_id).disbursed_at <= item[3]]


def refund_credit(sim: Sim) -> str:
    """An operator refunds an Overpaid loan's credit over the rail (asked twice: refunded once); the rail's
    refund webhook is confirmed on-chain (CreditRefunded) and the loan is Repaid. An overpayment first if no loan
    holds credit."""
    if not sim.loans_in(LoanStatus.OVERPAID) and sim.loans_in(LoanStatus.ACTIVE):
        sim.trace.append(f"    {overpay(sim)}")
        sim.drain()
    loan_id = sim.pick(sim.loans_in(LoanStatus.OVERPAID))
    if loan_id is None:
        return wrong_currency(sim)
    answers = [sim.operator.refund_credit(loan_id, idempotency_key=f"sim-c-{loan_id}-{sim.next_serial()}"),
               sim.operator.refund_credit(loan_id)]
    assert answers[0]["refund_reference"] and answers[0]["refund_reference"] == answers[1]["refund_reference"], \
        answers
    sim.drain()  # the refund's webhook confirmed on-chain
    status = sim.status(loan_id)
    if status is not LoanStatus.REPAID:
        with sim.sessions() as session:
            rows = [(i.reference, i.kind, i.status, i.outcome, i.last_error) for i in session.scalars(
                select(OutboxItem).where(OutboxItem.reference == answers[0]["refund_reference"]))]
        raise AssertionError(f"seed {SEED}: loan {loan_id} is {status.solidity_name} after its credit refund "
                             f"{answers}; the oracle's record of it: {rows}\n{sim.trace[-8:]}")
    sim.events["credit refund"] += 1
    return f"refund credit of loan {loan_id}: {answers[0]['amount']} ({answers[0]['refund_reference']})"


def chargeback(sim: Sim) -> str:
    """The rail takes back a repayment it had collected (a chargeback, a bounced debit): the book records a
    compensating entry restoring what the payment had paid; a loan it had closed runs again."""
    reference = sim.pick(chargeable(sim))
    if reference is None:
        return repay_partial(sim)
    answer = httpx.post(f"{sim.rail_url}/v1/payments/{reference}/reverse", timeout=10)
    answer.raise_for_status()
    sim.homes[reference] = Home("reversed", loan_id=sim.homes[reference].loan_id)
    sim.events["chargeback"] += 1
    return f"chargeback {reference} of loan {sim.homes[reference].loan_id} ({answer.json()['reference']})"


def chargeback_suspense(sim: Sim) -> str:
    """The rail takes back a payment the book never had (held in suspense, still open): the item is closed as
    `reversed` and nothing happens on-chain; made first if there is none."""
    if not sim.operator.suspense(state="open"):
        sim.trace.append(f"    {wrong_reference(sim)}")
        sim.drain()
    item = sim.pick(sim.operator.suspense(state="open"))
    assert item is not None, f"seed {SEED}: a wrong reference left no open suspense item"
    answer = httpx.post(f"{sim.rail_url}/v1/payments/{item['reference']}/reverse", timeout=10)
    answer.raise_for_status()
    sim.homes[item["reference"]] = Home("reversed", loan_id=sim.homes[item["reference"]].loan_id)
    sim.events["chargeback of suspense"] += 1
    return f"chargeback {item['reference']} held in suspense ({answer.json()['reference']})"


def chargeable(sim: Sim) -> list[str]:
    """Applied collections the book takes back (an operator's apply from suspense included): on a loan holding no
    credit another payment left, and not an overpayment whose credit was refunded since (the book refuses those
    by design: LoanBookCreditHeld, LoanBookCreditExceeded)."""
    found = []
    for reference, home in sorted(sim.homes.items()):
        if home.where == "applied" and read_progress(sim.book, home.loan_id).credit_balance == (home.credit or 0):
            found.append(reference)
    return found


def bounce_payout(sim: Sim) -> str:
    """The receiving bank returns a payout before anything was repaid: the loan is Approved again and its order
    failed; the operator re-orders it (a new order, paid out once) or leaves it."""
    def returnable() -> list[int]:
        return [loan_id for loan_id in sim.loans_in(LoanStatus.ACTIVE) if untouched(sim, loan_id)]

    if not returnable() and len(sim.waiting()) > sim.reserved:  # pay one out first
        sim.trace.append(f"    {payout(sim)}")
        sim.drain()
    loan_id = sim.pick(returnable())
    if loan_id is None:
        return repay_partial(sim)
    payouts = [p for p in sim.rail_payments(loan_id=loan_id, direction="payout")]
    returned = {e["payment_reference"] for e in sim.money_back() if e["direction"] == "return"}
    (paid,) = [p for p in payouts if p["reference"] not in returned]
    answer = httpx.post(f"{sim.rail_url}/v1/payments/{paid['reference']}/return", timeout=10)
    answer.raise_for_status()
    sim.events["payout returned"] += 1
    sim.drain()
    if sim.status(loan_id) is not LoanStatus.APPROVED:
        raise AssertionError(f"seed {SEED}: loan {loan_id} is {sim.status(loan_id).solidity_name} after its payout "
                             f"{paid['reference']} was returned")
    if sim.rng.random() < 0.5:
        sim.returned.add(loan_id)
        return f"payout {paid['reference']} of loan {loan_id} returned; left Approved"
    key = f"sim-retry-{loan_id}-{sim.next_serial()}"

    def retry() -> dict:
        return sim.operator._request("POST", f"/v1/operator/loans/{loan_id}/disburse", params={"retry": "true"},
                                     idempotency_key=key)

    results = sim.concurrently([retry, lambda: sim.disburse(loan_id)])
    assert (200, None) in results and set(results) <= {(200, None), (409, "payout_not_failed")}, results
    sim.events["payout"] += 1
    return f"payout {paid['reference']} of loan {loan_id} returned; re-ordered: {sorted(results)}"


def untouched(sim: Sim, loan_id: int) -> bool:
    """Nothing repaid on the loan (the book takes a payout back only then)."""
    progress = read_progress(sim.book, loan_id)
    return not (progress.principal_repaid or progress.interest_paid or progress.late_fee_paid
                or progress.penalty_paid or progress.credit_balance) and not any(
        home.loan_id == loan_id and home.where == "applied" for home in sim.homes.values())


def crash_oracle(sim: Sim) -> str:
    """Payments arrive, and the oracle (intake and outbox worker) is SIGKILLed somewhere in their handling."""
    made = [repay_partial(sim) if sim.rng.random() < 0.6 else wrong_reference(sim)
            for _ in range(sim.rng.randint(1, 3))]
    time.sleep(sim.rng.uniform(0.0, 0.6))
    sim.restart(sim.oracle)
    return f"oracle SIGKILL after {made}"


def crash_indexer(sim: Sim) -> str:
    """The indexer is SIGKILLed, the chain moves on without it, it is restarted and catches up."""
    sim.indexer.kill()
    sim.crashes["indexer SIGKILL"] += 1
    made = repay_partial(sim)
    time.sleep(sim.rng.uniform(0.2, 1.0))
    sim.indexer.start()
    return f"indexer SIGKILL around {made}"


def kill_api_mid_payout(sim: Sim) -> str:
    """The rail stalls, the API takes a payout order and is SIGKILLed while the rail holds it; the rail
    resumes, a new API process is asked again: it asks the rail before anything is re-sent."""
    sim.reserved = max(0, sim.reserved - 1)
    loan_id = sim.pick(sim.waiting())
    if loan_id is None:
        return stall_rail(sim)
    sim.rail.signal(signal.SIGSTOP)
    try:
        asks = sim.payout_asks(loan_id)
        threads = [threading.Thread(target=lambda c=c: sim.ask(c), daemon=True) for c in asks]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while True:  # the order is recorded `sent`: the API is waiting on the rail
            with sim.sessions() as session:
                if session.scalar(select(PayoutOrder.state).where(PayoutOrder.loan_id == loan_id)) == "sent":
                    break
            assert time.monotonic() < deadline, f"no order for loan {loan_id}: {sim.api.tail()}"
            time.sleep(0.01)
        time.sleep(sim.rng.uniform(0.0, RAIL_TIMEOUT / 2))
        sim.api.kill()
        sim.crashes["api SIGKILL (payout in flight)"] += 1
        for thread in threads:
            thread.join(timeout=30)
    finally:
        sim.rail.signal(signal.SIGCONT)
    sim.api.start()
    answer = sim.settle_payout(loan_id)
    sim.events["payout"] += 1
    return f"api SIGKILL with loan {loan_id}'s payout in flight: {answer['state']} {answer['rail_reference']}"


def stop_api_mid_payout(sim: Sim) -> str:
    """The API is SIGSTOPped for a moment while approval and /disburse asks are in flight."""
    sim.reserved = max(0, sim.reserved - 1)
    loan_id = sim.pick(sim.waiting())
    if loan_id is None:
        return stall_rail(sim)
    results: list[tuple[int, str | None]] = []
    threads = [threading.Thread(target=lambda c=c: results.append(sim.ask(c))) for c in sim.payout_asks(loan_id)]
    for thread in threads:
        thread.start()
    time.sleep(sim.rng.uniform(0.0, 0.3))
    sim.api.signal(signal.SIGSTOP)
    sim.crashes["api SIGSTOP (payout in flight)"] += 1
    time.sleep(sim.rng.uniform(0.3, 1.2))
    sim.api.signal(signal.SIGCONT)
    for thread in threads:
        thread.join(timeout=120)
    assert set(results) <= {(200, None), (409, "not_approved")}, (loan_id, results)
    sim.events["payout"] += 1
    return f"api SIGSTOP during loan {loan_id}'s payout: {sorted(results)}"


def stall_rail(sim: Sim) -> str:
    """The rail stops for a moment: a payout asked meanwhile is 503 (recorded, maybe taken), answered once
    the rail is back, and paid out once; webhooks in flight are delivered late."""
    sim.reserved = max(0, sim.reserved - 1)
    loan_id = sim.pick(sim.waiting())
    sim.rail.signal(signal.SIGSTOP)
    sim.crashes["rail SIGSTOP"] += 1
    try:
        results = sim.concurrently(sim.payout_asks(loan_id)) if loan_id is not None else []
        assert set(results) <= {(200, None), (409, "not_approved"), (503, "rail_unavailable")}, results
        time.sleep(sim.rng.uniform(0.2, 1.0))
    finally:
        sim.rail.signal(signal.SIGCONT)
    if loan_id is None:
        return "rail SIGSTOP (nothing to pay out)"
    answer = sim.settle_payout(loan_id)
    sim.events["payout"] += 1
    return f"rail SIGSTOP during loan {loan_id}'s payout: {sorted(results)} then {answer['state']}"


# (weight, action); a kind of weight 0 is left out of the plan.
ACTIONS: list[tuple[int, Callable[[Sim], str]]] = [
    (5, payout),
    (6, repay_partial),
    (2, repay_exact),
    (2, overpay),
    (2, wrong_reference),
    (2, wrong_currency),
    (3, redeliver),
    (2, refund_suspense),
    (2, refund_credit),
    (2, chargeback),
    (1, chargeback_suspense),
    (1, bounce_payout),
    (1, apply_suspense),
    (2, crash_oracle),
    (1, crash_indexer),
    (1, kill_api_mid_payout),
    (1, stop_api_mid_payout),
    (1, stall_rail),
]


PAYOUT_CRASHES = (kill_api_mid_payout, stop_api_mid_payout, stall_rail)  # each needs a loan waiting for its payout


def plan(rng: random.Random, steps: int) -> list[Callable[[Sim], str]]:
    """Every kind once (so the default run covers each), the rest drawn by weight, shuffled: one seed, one plan."""
    kinds = [action for weight, action in ACTIONS if weight]
    drawn = rng.choices(kinds, weights=[w for w, _ in ACTIONS if w], k=max(0, steps - len(kinds)))
    chosen = kinds + drawn
    rng.shuffle(chosen)
    return chosen


# ---------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def services(w3, stack, keys, driver, tmp_path):
    """Loans requested on-chain (set up before any service signs, so no nonce is shared), then the rail,
    oracle, indexer and API as processes on one store. Yields (the processes, the loans, the store)."""
    loans = []
    for n in range(LOANS):
        borrower = Account.create()
        driver.register(borrower)
        driver.score(borrower, report_id=n + 1)
        loans.append(driver.request(borrower))
    db_url = f"sqlite:///{tmp_path / 'loanledger.db'}"
    rail_port, oracle_port, api_port = free_port(), free_port(), free_port()
    rail_url = f"http://127.0.0.1:{rail_port}"
    env = {**os.environ, "LOANLEDGER_HOME": str(tmp_path / "home"), "LOANLEDGER_NODE_URL": w3.provider.endpoint_uri,
           "LOANLEDGER_MANIFEST": str(manifests.save(stack.manifest, tmp_path / "manifest.json")),
           "LOANLEDGER_DB_URL": db_url, "LOANLEDGER_TX_TIMEOUT": "10", "LOANLEDGER_RAIL_URL": rail_url,
           "LOANLEDGER_PAYMENT_PROVIDERS": f'{{"{PROVIDER}": {{"kind": "standin", "url": "{rail_url}", '
                                           f'"timeout": {RAIL_TIMEOUT}}}}}',
           "LOANLEDGER_ORACLE_KEY": keys["oracle"].key.hex(), "LOANLEDGER_OPERATOR_KEY": keys["operator"].key.hex(),
           "LOANLEDGER_ADMIN_KEY": keys["admin"].key.hex(), "LOANLEDGER_PAUSER_KEY": keys["pauser"].key.hex(),
           "LOANLEDGER_RELAYER_KEY": Account.create().key.hex(),
           "LOANLEDGER_KEK": base64.b64encode(os.urandom(32)).decode(), "LOANLEDGER_INDEX_WAIT": "2",
           "LOANLEDGER_ANCHOR_INTERVAL": "0", "LOANLEDGER_JWT_SECRET": "simulation-secret-of-32-bytes!!!"}
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = {
        "rail": Process("rail", ["rail", "--port", str(rail_port), "--webhook-url",
                                 f"http://127.0.0.1:{oracle_port}/v1/webhooks/payments", "--log-level", "warning"],
                        env, logs / "rail.log", f"{rail_url}/healthz"),
        "indexer": Process("indexer", ["index", "--follow", "--poll-interval", "0.1"], env, logs / "indexer.log"),
        "oracle": Process("oracle", ["oracle", "run", "--port", str(oracle_port), "--no-risk", "--no-scores",
                                     "--no-reconcile", "--batch-size", "20", "--interval", "0.05", "--max-backoff",
                                     "0.5", "--log-level", "warning"],
                          env, logs / "oracle.log", f"http://127.0.0.1:{oracle_port}/healthz"),
        "api": Process("api", ["api", "--port", str(api_port)], env, logs / "api.log",
                       f"http://127.0.0.1:{api_port}/healthz"),
    }
    sessions = None
    try:
        for name in ("rail", "indexer", "oracle", "api"):  # the rail makes its key, the oracle trusts it
            processes[name].start()
            if name == "indexer":
                sessions = open_store(db_url)
        yield processes, loans, sessions, f"http://127.0.0.1:{api_port}"
    finally:
        for process in reversed(processes.values()):
            process.stop()
        if sessions is not None:
            sessions.kw["bind"].dispose()


# ---------------------------------------------------------------------------------------- the test


def test_randomized_rail_simulation_every_yuan_accounted_for(w3, stack, keys, loan_terms, services):
    processes, loans, sessions, api_url = services
    operator = LoanLedgerClient(api_url, keys["operator"], timeout=60)
    operator.login()
    rng = random.Random(SEED)
    sim = Sim(w3, stack.book, stack.manifest, rng, sessions, processes["rail"], processes["oracle"],
              processes["indexer"], processes["api"], operator, loans, loan_terms.principal)
    started = time.monotonic()
    print(f"\nrail simulation: seed {SEED} (LOANLEDGER_SIM_SEED), {STEPS} steps (LOANLEDGER_SIM_STEPS), "
          f"{LOANS} loans")
    steps = plan(rng, STEPS)
    sim.reserved = min(LOANS - 1, sum(action in PAYOUT_CRASHES for action in steps))
    for step, action in enumerate(steps, start=1):
        line = action(sim)
        sim.trace.append(f"{step:3d} {line}")
        sim.drain()
    # Every loan still waiting is paid out, so the end state has payouts, repayments and suspense to check.
    sim.reserved = 0
    for loan_id in sim.waiting():
        sim.trace.append(f"end payout loan {loan_id}: {payout(sim)}")
    for loan_id in loans:  # orders left unanswered by a crash are asked once more (answered, never re-sent)
        with sessions() as session:
            if session.scalar(select(PayoutOrder.id).where(PayoutOrder.loan_id == loan_id)) is not None:
                sim.settle_payout(loan_id)
    sim.drain()

    mismatches = check_everything(sim, stack)
    figures = {"seed": SEED, "steps": STEPS, "loans": LOANS, "events simulated": sum(sim.events.values()),
               "by kind": dict(sorted(sim.events.items())), "crashes injected": sum(sim.crashes.values()),
               "crashes by kind": dict(sorted(sim.crashes.items())), "checked": dict(sim.checked),
               "mismatches": len(mismatches),
               "seconds": round(time.monotonic() - started, 1)}
    print("\n".join(sim.trace))
    print("rail simulation figures: " + ", ".join(f"{k}: {v}" for k, v in figures.items()))
    assert mismatches == [], f"seed {SEED}: {mismatches[:20]}"


def check_everything(sim: Sim, stack) -> list[str]:
    """Each side from its own source; returns every discrepancy (the test expects none)."""
    mismatches: list[str] = []
    book = stack.book
    start = stack.manifest.start_block

    # Nothing paid out twice: per loan, at most one payout on the rail that was not returned (a returned one may
    # be re-ordered: a new order); every payout confirmed on-chain once for the principal, every return
    # reversed on-chain; the order names the standing payout, or failed if the money came back and stayed back.
    back = sim.money_back()
    returns = {e["payment_reference"] for e in back if e["direction"] == "return"}
    disbursed, unpaid = defaultdict(set), defaultdict(set)
    for e in book.events.LoanDisbursed.get_logs(from_block=start):
        disbursed[e["args"]["loanId"]].add(to_0x_hex(e["args"]["paymentRef"]))
        if e["args"]["amount"] != sim.principal:
            mismatches.append(f"loan {e['args']['loanId']} disbursed {e['args']['amount']}, not {sim.principal}")
    for e in book.events.DisbursementReversed.get_logs(from_block=start):
        unpaid[e["args"]["loanId"]].add(to_0x_hex(e["args"]["paymentRef"]))
    # Read through the API, as operators and auditors see them: an order settles when it is read after the
    # index shows its disbursement (the table alone may still say `sent`).
    orders = {o["loan_id"]: (o["state"], o["rail_reference"])
              for o in sim.operator._request("GET", "/v1/operator/payouts", params={"limit": 1000})["orders"]}
    for loan_id in sim.loans:
        payouts = [p["reference"] for p in sim.rail_payments(loan_id=loan_id, direction="payout")]
        standing = [p for p in payouts if p not in returns]
        on_rail = {to_0x_hex(payment_ref(PROVIDER, p)) for p in payouts}
        status = sim.status(loan_id).solidity_name
        if len(standing) > 1:
            mismatches.append(f"loan {loan_id} paid out {len(standing)} times: {payouts} (returned: {returns})")
        if disbursed[loan_id] != on_rail:
            mismatches.append(f"loan {loan_id}: payouts on the rail {payouts}, on-chain {disbursed[loan_id]}")
        if unpaid[loan_id] != {to_0x_hex(payment_ref(PROVIDER, p)) for p in payouts if p in returns}:
            mismatches.append(f"loan {loan_id}: returned on the rail {returns & set(payouts)}, on-chain "
                              f"{unpaid[loan_id]}")
        if standing and (orders.get(loan_id) != ("settled", standing[0]) or status in ("Requested", "Approved")):
            mismatches.append(f"loan {loan_id} is {status}, paid out as {standing[0]}, but its payout order is "
                              f"{orders.get(loan_id)}")
        if payouts and not standing and (orders.get(loan_id, ("",))[0] != "failed" or status != "Approved"):
            mismatches.append(f"loan {loan_id}'s payouts {payouts} all came back, yet it is {status} and its "
                              f"order {orders.get(loan_id)}")
    sim.checked["payouts returned"] = len(returns)

    # The invariant, per reference the rail reports: received = on the book + open suspense + refunded + taken
    # back. On the book is what the chain still holds of the payment: applied and held as credit, less what a
    # reversal restored and what was refunded of its credit (each from the book's own events).
    received = {p["reference"]: p["amount"] for p in sim.rail_payments(direction="collection")}
    by_ref = {to_0x_hex(payment_ref(PROVIDER, r)): r for r in received}
    applied, held, credit_refunded, restored = Counter(), Counter(), Counter(), Counter()
    events = [e for kind in ("RepaymentApplied", "OverpaymentHeld", "CreditRefunded", "RepaymentReversed")
              for e in getattr(book.events, kind).get_logs(from_block=start)]
    overpaid_by = {}  # the payment whose credit a loan holds: a credit refund pays back that one's
    for e in sorted(events, key=lambda e: (e["blockNumber"], e["logIndex"])):
        a = e["args"]
        if e["event"] == "CreditRefunded":
            credit_refunded[overpaid_by.get(a["loanId"], f"loan {a['loanId']}")] += a["amount"]
            continue
        reference = by_ref.get(to_0x_hex(a["paymentRef"]), to_0x_hex(a["paymentRef"]))
        if e["event"] == "RepaymentApplied":
            applied[reference] += a["amount"]
        elif e["event"] == "OverpaymentHeld":
            held[reference] += a["credit"]
            overpaid_by[a["loanId"]] = reference
        else:
            parts = a["reversed"]
            restored[reference] += sum(parts[k] for k in ("principal", "interest", "lateFee", "penalty", "credit"))
    on_book = Counter({r: applied[r] + held[r] - restored[r] - credit_refunded[r]
                       for r in set(applied) | set(held) | set(restored) | set(credit_refunded)})
    with sim.sessions() as session:
        suspense = Counter()
        for item in session.scalars(select(SuspenseItem).where(SuspenseItem.state == "open")):
            suspense[item.reference] += item.amount
    refunded, taken_back = Counter(), Counter()
    for entry in back:
        (refunded if entry["direction"] == "refund" else taken_back)[entry["payment_reference"]] += entry["amount"]
    for reference in sorted(set(received) | set(on_book) | set(suspense) | set(refunded) | set(taken_back)):
        sides = (on_book[reference], suspense[reference], refunded[reference], taken_back[reference])
        if reference in returns:
            continue  # a payout's return: checked with the payouts above
        if received.get(reference, 0) != sum(sides):
            mismatches.append(f"{reference}: received {received.get(reference, 0)} != on the book {sides[0]} + "
                              f"suspense {sides[1]} + refunded {sides[2]} + taken back {sides[3]}")
    sim.checked["rail references"] = len(received)

    # And each reference's money is where the simulation sent it: applied (with the credit it expected; back
    # over the rail only as a credit refund the book confirmed), in suspense for the reason it expected,
    # refunded, or taken back.
    with sim.sessions() as session:
        reasons = {i.reference: i.reason for i in session.scalars(select(SuspenseItem))}
    for reference in sorted(set(received) - set(sim.homes)):
        mismatches.append(f"{reference}: a collection the simulation never made")
    for reference, home in sorted(sim.homes.items()):
        got = (on_book[reference], suspense[reference], refunded[reference], taken_back[reference])
        whole, cr = received.get(reference), credit_refunded[reference]
        meant = {"applied": (whole - cr, 0, cr, 0), "suspense": (0, whole, 0, 0), "refunded": (0, 0, whole, 0),
                 "reversed": (0, 0, 0, whole)}[home.where]
        if got != meant:
            mismatches.append(f"{reference} ({home}): on the book, suspense, refunded, taken back {got} != {meant}")
        if home.where == "applied" and home.credit is not None and held[reference] != home.credit:
            mismatches.append(f"{reference}: credit held {held[reference]} != {home.credit} beyond the payoff")
        if home.where in ("suspense", "refunded") and reasons.get(reference) != home.reason:
            mismatches.append(f"{reference}: in suspense for {reasons.get(reference)}, not {home.reason}")
    sim.checked["homes"] = len(sim.homes)
    days = {datetime.fromtimestamp(p["paid_at"], UTC).date() for p in sim.rail_payments()}
    days |= {datetime.fromtimestamp(e["paid_at"], UTC).date() for e in back}

    # The statement against the ledger (oracle.payments.reconcile): every line matched, or received and
    # not applied with its home in the ledger (a suspense item: open, refunded, applied or taken back by the rail).
    with sim.sessions() as session:
        homes = {i.reference: i.state for i in session.scalars(select(SuspenseItem))}
    for day in sorted(days):
        entries = [StatementEntry(reference=e["reference"], direction=e["direction"], loan_id=e["loan_id"],
                                  amount=e["amount"], currency=e["currency"], paid_at=e["paid_at"])
                   for e in rail_statement(sim, day)]
        report = reconcile(PROVIDER, day, entries, sim.sessions)
        refunds = {e["reference"]: e["payment_reference"] for e in rail_statement(sim, day)
                   if e["direction"] == "refund"}
        for row in report.rows:
            if row.category == MATCHED:
                continue
            explained = row.category == RAIL_ONLY and (
                (row.direction == "collection" and homes.get(row.reference) in ("open", "refunded", "reversed"))
                or (row.direction == "refund" and homes.get(refunds.get(row.reference)) == "refunded"))
            if not explained:
                mismatches.append(f"reconciliation {day}: {row.category} {row.direction} {row.reference} "
                                  f"rail {row.rail_amount} ledger {row.ledger_amount} ({row.outbox_status} "
                                  f"{row.outbox_reason})")
        assert report.counts[AMOUNT_DIFFERS] + report.counts[CHAIN_ONLY] + report.counts[RAIL_ONLY] + \
            report.counts[MATCHED] == len(report.rows)
        for category, count in report.counts.items():
            sim.checked[f"reconciled {category}"] += count
        sim.checked["statement lines"] += len(entries)

    # Nothing the oracle received is left without a home: no item pending, sending or set aside.
    with sim.sessions() as session:
        stuck = list(session.execute(select(OutboxItem.reference, OutboxItem.status, OutboxItem.last_error).where(
            OutboxItem.status.not_in(("done", "rejected")))))
    mismatches += [f"outbox item {row} never settled" for row in stuck]

    # The read model against the chain.
    with sim.sessions() as session:
        index = verify.index_vs_chain(sim.w3, sim.manifest, session)
        state = verify.recomputed_state(sim.w3, sim.manifest, session)
    mismatches += [f"index_vs_chain: {d}" for d in index.details if not index.ok]
    mismatches += [f"recomputed_state: {d}" for d in state.details if not state.ok]
    return mismatches


def rail_statement(sim: Sim, day: date) -> list[dict]:
    answer = httpx.get(f"{sim.rail_url}/v1/statements/{day.isoformat()}", timeout=10)
    answer.raise_for_status()
    return answer.json()["entries"]
