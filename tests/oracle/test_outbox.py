"""The outbox worker against the real loan book: batches credited exactly, duplicates and refusals per item,
a node that goes away, and a worker that dies between the send and the mark."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, update
from web3.logs import DISCARD

from ledger.book import LoanStatus, read_loan, read_progress
from ledger.chain import ChainClient
from ledger.store.models.outbox import OutboxItem
from ledger.store.models.suspense import SuspenseItem
from oracle.outbox import SET_ASIDE, Outbox, OutboxWorker
from oracle.payments.webhook import Confirmation, payment_ref

PROVIDER = "mockpay"


@pytest.fixture
def outbox(sessions, clock):
    """The outbox on SQLite and on PostgreSQL (the `sessions` fixture is parametrised over both)."""
    return Outbox(sessions, clock=clock)


@pytest.fixture
def client(w3, keys, stack) -> ChainClient:
    return ChainClient(w3, keys["oracle"], stack.errors)


@pytest.fixture
def worker(outbox, client, stack) -> OutboxWorker:
    return OutboxWorker(outbox, client, stack.book, batch_size=50, interval=0.05, max_backoff=0.4)


def confirmation(kind: str, loan_id: int, reference: str, amount: int, paid_at: int,
                 currency: str = "CNY") -> Confirmation:
    return Confirmation(kind=kind, loan_id=loan_id, reference=reference, payment_ref=payment_ref(PROVIDER, reference),
                        amount=amount, currency=currency, paid_at=paid_at, provider=PROVIDER,
                        event_id=f"evt-{reference}")


def approved_loans(driver, keys, names=("alice", "bob")) -> list[int]:
    return [driver.approved_loan(keys[name], report_id=report_id)
            for report_id, name in enumerate(names, start=1)]


def first_installment(stack, loan_id: int) -> int:
    due_at, principal, interest = stack.book.functions.schedule(loan_id).call()[0]
    return principal + interest


def paid(stack, loan_id: int) -> int:
    """Everything the book applied to a loan: principal, interest, late fees and penalty."""
    progress = stack.book.functions.progressOf(loan_id).call()
    return sum(progress[2:6])


def status(stack, loan_id: int) -> LoanStatus:
    return LoanStatus(stack.book.functions.loanOf(loan_id).call()[2])


def rows(outbox) -> dict[str, tuple]:
    return {i.reference: (i.status, i.outcome) for i in outbox.items()}


def events(w3, stack, name: str, tx_hash: str) -> list:
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    return list(getattr(stack.book.events, name)().process_receipt(receipt, errors=DISCARD))


# ------------------------------------------------------------------ crediting


def test_disbursements_then_repayments_are_credited_in_one_batch_each(w3, stack, driver, keys, outbox, worker,
                                                                       loan_terms):
    alice_loan, bob_loan = approved_loans(driver, keys)
    now = driver.now
    installment = 41_588  # the first of three annuity installments of 120,000 at 24% (30-day periods)
    assert first_installment(stack, alice_loan) == installment
    outbox.put(confirmation("disbursement", alice_loan, "PAY-1", 120_000, now))
    outbox.put(confirmation("disbursement", bob_loan, "PAY-2", 120_000, now))
    # Repayments stored before... and in the same round as their disbursements: disbursements go first.
    outbox.put(confirmation("repayment", alice_loan, "COL-1", installment, now))
    outbox.put(confirmation("repayment", alice_loan, "COL-2", 10_000, now))
    outbox.put(confirmation("repayment", bob_loan, "COL-3", 5_000, now))

    report = worker.drain_once()

    assert (report.claimed, report.credited, report.batches, report.node_error) == (5, 5, 2, None)
    assert status(stack, alice_loan) == status(stack, bob_loan) == LoanStatus.ACTIVE
    assert paid(stack, alice_loan) == installment + 10_000
    assert paid(stack, bob_loan) == 5_000
    progress = stack.book.functions.progressOf(alice_loan).call()
    assert progress[0] == 1  # the first installment is paid ahead of its date; the rest prepays principal
    assert stack.book.functions.outstandingPrincipal(keys["alice"].address, b"CNY").call() == 120_000 - progress[2]
    items = outbox.items()
    assert {(i.status, i.outcome) for i in items} == {("done", "credited")}
    disbursement_tx = {i.tx_hash for i in items if i.kind == "disbursement"}
    repayment_tx = {i.tx_hash for i in items if i.kind == "repayment"}
    assert len(disbursement_tx) == len(repayment_tx) == 1 and disbursement_tx != repayment_tx
    assert len(events(w3, stack, "LoanDisbursed", disbursement_tx.pop())) == 2
    applied = events(w3, stack, "RepaymentApplied", repayment_tx.pop())
    assert sorted(e["args"]["amount"] for e in applied) == [5_000, 10_000, installment]
    for reference in ("PAY-1", "PAY-2", "COL-1", "COL-2", "COL-3"):
        assert stack.book.functions.isPaymentReferenceUsed(payment_ref(PROVIDER, reference)).call()
    assert worker.drain_once().claimed == 0  # nothing is sent twice


def test_large_batches_are_split_and_every_item_credited(stack, driver, keys, outbox, client):
    (loan_id,) = approved_loans(driver, keys, names=("carol",))
    now = driver.now
    outbox.put(confirmation("disbursement", loan_id, "PAY-9", 120_000, now))
    for n in range(122):
        outbox.put(confirmation("repayment", loan_id, f"COL-{n}", 100 + n, now))
    worker = OutboxWorker(outbox, client, stack.book, batch_size=50)
    credited = 0
    while (report := worker.drain_once()).claimed:
        # Full batches too: the gas estimate covers every item (one short of gas would be skipped, not fail).
        assert report.rejected == report.retried == 0 and report.node_error is None
        credited += report.credited
    assert credited == 123
    assert paid(stack, loan_id) == sum(100 + n for n in range(122))
    # Rounds of 50 claimed items: the payout and 49 repayments (two transactions), then 50, then 23.
    per_tx: dict[str, int] = {}
    for item in outbox.items():
        per_tx[item.tx_hash] = per_tx.get(item.tx_hash, 0) + 1
    assert sorted(per_tx.values()) == [1, 23, 49, 50]


def test_a_reference_already_credited_is_reported_and_the_rest_of_the_batch_goes_through(stack, driver, keys,
                                                                                          outbox, worker):
    loan_id = driver.active_loan(keys["alice"])
    now = driver.now
    # Credited earlier by another path (an earlier oracle, an operator): the book has the reference.
    driver.repay(loan_id, 7_000, payment_ref(PROVIDER, "COL-A"))
    outbox.put(confirmation("repayment", loan_id, "COL-A", 7_000, now))
    outbox.put(confirmation("repayment", loan_id, "COL-B", 3_000, now))
    outbox.put(confirmation("repayment", loan_id, "COL-C", 2_000, now))

    report = worker.drain_once()

    assert (report.credited, report.already_credited, report.rejected, report.batches) == (2, 1, 0, 1)
    assert rows(outbox) == {"COL-A": ("done", "already_credited"), "COL-B": ("done", "credited"),
                            "COL-C": ("done", "credited")}
    assert paid(stack, loan_id) == 7_000 + 3_000 + 2_000  # COL-A once, not twice


def test_a_refused_item_is_rejected_by_name_and_the_rest_is_credited(stack, driver, keys, outbox, worker):
    loan_id = driver.active_loan(keys["alice"])
    now = driver.now
    payoff = driver.payoff(loan_id)
    outbox.put(confirmation("repayment", loan_id, "COL-1", 4_000, now))
    outbox.put(confirmation("repayment", loan_id, "COL-USD", 1_000, now, currency="USD"))  # not the loan's money
    outbox.put(confirmation("repayment", loan_id, "COL-2", 6_000, now))
    outbox.put(confirmation("repayment", loan_id, "COL-BIG", payoff * 2, now))  # more than everything owed

    report = worker.drain_once()

    assert (report.credited, report.rejected) == (3, 1)
    assert rows(outbox) == {"COL-1": ("done", "credited"), "COL-USD": ("rejected", "CurrencyMismatch"),
                            "COL-2": ("done", "credited"), "COL-BIG": ("done", "credited")}
    # The overpayment closed the loan; what it paid beyond the payoff is the borrower's credit, on the book.
    progress = read_progress(stack.book, loan_id)
    assert read_loan(stack.book, loan_id).status is LoanStatus.OVERPAID
    # Every unit received is applied or held: nothing refused, nothing kept without a record.
    assert progress.credit_balance > 0
    assert paid(stack, loan_id) + progress.credit_balance == 4_000 + 6_000 + payoff * 2
    # Refused, so still free: an operator can credit it correctly.
    assert not stack.book.functions.isPaymentReferenceUsed(payment_ref(PROVIDER, "COL-USD")).call()
    assert worker.drain_once().claimed == 0  # rejected rows are not retried


def test_a_repayment_ahead_of_its_disbursement_waits_with_back_off(stack, driver, keys, outbox, client, clock):
    worker = OutboxWorker(outbox, client, stack.book)  # items back off 2, 4, 8 ... seconds of the outbox's clock
    (loan_id,) = approved_loans(driver, keys, names=("dave",))
    now = driver.now
    outbox.put(confirmation("repayment", loan_id, "COL-1", 5_000, now))

    first = worker.drain_once()
    assert (first.retried, first.credited, first.rejected) == (1, 0, 0)
    (item,) = outbox.items()
    assert (item.status, item.attempts, item.next_attempt_at) == ("pending", 1, int(clock.now) + 2)
    assert item.last_error.startswith("LoanBookInvalidStatus(")
    assert worker.drain_once().claimed == 0  # not due yet

    outbox.put(confirmation("disbursement", loan_id, "PAY-1", 120_000, now))
    clock.now += 2
    report = worker.drain_once()
    assert (report.claimed, report.credited) == (2, 2)
    assert paid(stack, loan_id) == 5_000


def test_the_closing_repayment_sent_again_is_already_credited_not_rejected(stack, driver, keys, outbox, worker):
    loan_id = driver.active_loan(keys["alice"])
    payoff = driver.payoff(loan_id)
    driver.repay(loan_id, payoff, payment_ref(PROVIDER, "COL-LAST"))
    assert status(stack, loan_id) == LoanStatus.REPAID
    # The book answers a second try with InvalidStatus (the loan is closed), not DuplicatePayment.
    outbox.put(confirmation("repayment", loan_id, "COL-LAST", payoff, driver.now))
    report = worker.drain_once()
    assert (report.already_credited, report.rejected, report.retried) == (1, 0, 0)
    assert rows(outbox) == {"COL-LAST": ("done", "already_credited")}


# ------------------------------------------------------------------ the node goes away


def test_node_down_items_wait_with_back_off_then_drain(w3, stack, driver, keys, outbox, node_proxy):
    loan_id = driver.active_loan(keys["alice"])
    now = driver.now
    for n in range(3):
        outbox.put(confirmation("repayment", loan_id, f"COL-{n}", 1_000, now))
    node_proxy.down()
    client = ChainClient(w3.__class__(w3.provider.__class__(node_proxy.url, request_kwargs={"timeout": 2})),
                         keys["oracle"], stack.errors)
    worker = OutboxWorker(outbox, client, stack.book, interval=0.05, max_backoff=0.4)

    report = worker.drain_once()
    assert report.node_error is not None and "NodeUnavailable" in report.node_error
    assert (report.credited, report.rejected, report.retried) == (0, 0, 0)
    assert {(i.status, i.attempts) for i in outbox.items()} == {("pending", 0)}  # the node's failure, not theirs
    assert all("NodeUnavailable" in i.last_error for i in outbox.items())

    stop, reports = threading.Event(), []
    thread = threading.Thread(target=worker.run, args=(stop, reports.append), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while worker.failures < 3:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert worker.next_delay() == 0.4  # 0.05 doubled per failed round, capped
        assert paid(stack, loan_id) == 0
        node_proxy.up()
        deadline = time.monotonic() + 10
        while outbox.counts() != {"done": 3}:
            assert time.monotonic() < deadline, outbox.counts()
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert worker.failures == 0 and worker.next_delay() == 0.05
    assert paid(stack, loan_id) == 3_000
    assert {(i.status, i.outcome) for i in outbox.items()} == {("done", "credited")}


# ------------------------------------------------------------------ a worker that dies mid-round


class Died(Exception):
    pass


def die_at(point: str):
    def fault(reached: str) -> None:
        if reached == point:
            raise Died(point)
    return fault


@pytest.mark.parametrize("point", ["before_send", "after_send"])
def test_a_worker_that_died_mid_batch_is_recovered_by_the_next(stack, driver, keys, outbox, client, point):
    loan_id = driver.active_loan(keys["alice"])
    now = driver.now
    for n in range(4):
        outbox.put(confirmation("repayment", loan_id, f"COL-{n}", 2_500, now))
    dying = OutboxWorker(outbox, client, stack.book, fault=die_at(point))
    with pytest.raises(Died):
        dying.drain_once()
    assert outbox.counts() == {"sending": 4}  # claimed, never marked
    assert paid(stack, loan_id) == (10_000 if point == "after_send" else 0)

    successor = OutboxWorker(outbox, client, stack.book)
    assert successor.recover() == 4
    expected = "already_credited" if point == "after_send" else None
    assert {(i.status, i.outcome) for i in outbox.items()} == (
        {("done", "already_credited")} if point == "after_send" else {("pending", None)})
    successor.drain_once()
    assert {i.status for i in outbox.items()} == {"done"}
    assert {i.outcome for i in outbox.items()} == {expected or "credited"}
    assert paid(stack, loan_id) == 10_000  # once


# ------------------------------------------------------------------ an item that can never succeed


def stored_as_is(outbox, driver, **fields) -> int:
    """A row written straight into the table, as an older version (or a bug) could have left it."""
    now = int(outbox.clock())
    values = {"provider": PROVIDER, "event_id": f"evt-{fields['reference']}", "kind": "repayment",
              "amount": 1_000, "currency": "CNY", "paid_at": driver.now, "received_at": now, "status": "pending",
              "attempts": 0, "next_attempt_at": 0, "updated_at": now}
    values.update(fields)
    values.setdefault("payment_ref", "0x" + payment_ref(PROVIDER, values["reference"]).hex())
    with outbox.sessions.begin() as session:
        item = OutboxItem(**values)
        session.add(item)
        session.flush()
        return item.id


def test_an_item_whose_preparation_raises_is_set_aside_and_the_repayment_after_it_is_credited(
        stack, driver, keys, outbox, worker):
    loan_id = driver.active_loan(keys["alice"])
    poison = stored_as_is(outbox, driver, loan_id=2**256, reference="COL-POISON")  # the currency lookup cannot encode it
    outbox.put(confirmation("repayment", loan_id, "COL-1", 3_000, driver.now))

    report = worker.drain_once()

    assert report.node_error is None and worker.failures == 0
    assert (report.credited, report.set_aside) == (1, 1)
    assert paid(stack, loan_id) == 3_000
    assert rows(outbox)["COL-1"] == ("done", "credited")
    bad = next(i for i in outbox.items() if i.id == poison)
    assert bad.status == SET_ASIDE and str(2**256) in bad.last_error
    assert [i.id for i in outbox.items(SET_ASIDE)] == [poison]
    assert worker.drain_once().claimed == 0  # never retried automatically


def test_items_the_contract_cannot_take_as_stored_are_set_aside_each_alone(stack, driver, keys, outbox, worker):
    loan_id = driver.active_loan(keys["alice"])
    stored_as_is(outbox, driver, loan_id=loan_id, reference="COL-BADREF", payment_ref="0x1234")
    stored_as_is(outbox, driver, loan_id=loan_id, reference="COL-KIND", kind="refund")
    stored_as_is(outbox, driver, loan_id=0, reference="COL-ZERO")
    outbox.put(confirmation("repayment", loan_id, "COL-1", 2_000, driver.now))

    report = worker.drain_once()

    assert (report.credited, report.set_aside, report.node_error) == (1, 3, None)
    assert rows(outbox) == {"COL-BADREF": (SET_ASIDE, "ItemUnusable"), "COL-KIND": (SET_ASIDE, "ItemUnusable"),
                            "COL-ZERO": (SET_ASIDE, "ItemUnusable"), "COL-1": ("done", "credited")}
    assert paid(stack, loan_id) == 2_000


def held_in_suspense(outbox) -> dict[str, tuple]:
    with outbox.sessions() as session:
        return {i.reference: (i.outbox_item_id, i.loan_id, i.amount, i.reason, i.state)
                for i in session.scalars(select(SuspenseItem))}


def test_a_repayment_set_aside_is_money_received_and_held_in_suspense_once(stack, driver, keys, outbox, worker):
    """Issue 14: an item that can never be sent is still money the rail delivered; it gets a suspense item in
    the transaction that sets it aside, and setting it aside again (a re-queued item) makes no second one."""
    loan_id = driver.active_loan(keys["alice"])
    poison = stored_as_is(outbox, driver, loan_id=2**256, reference="COL-POISON", amount=4_200)
    bad_ref = stored_as_is(outbox, driver, loan_id=loan_id, reference="COL-BADREF", payment_ref="0x1234")
    stored_as_is(outbox, driver, loan_id=loan_id, reference="COL-KIND", kind="refund")  # not money received
    stored_as_is(outbox, driver, loan_id=2**256, reference="PAY-POISON", kind="disbursement")  # money paid out

    assert worker.drain_once().set_aside == 4

    assert held_in_suspense(outbox) == {"COL-POISON": (poison, 2**256, 4_200, "ItemUnusable", "open"),
                                        "COL-BADREF": (bad_ref, loan_id, 1_000, "ItemUnusable", "open")}
    with outbox.sessions() as session:
        detail = session.scalar(select(SuspenseItem.detail).where(SuspenseItem.reference == "COL-POISON"))
    assert str(2**256) in detail
    # Sent round again (an operator re-queued it by hand): set aside again, still one item.
    with outbox.sessions.begin() as session:
        session.execute(update(OutboxItem).where(OutboxItem.id == poison).values(status="pending"))
    assert worker.drain_once().set_aside == 1
    assert len(held_in_suspense(outbox)) == 2


def test_a_stranded_item_that_cannot_be_looked_up_does_not_stop_recovery(stack, driver, keys, outbox, worker):
    loan_id = driver.active_loan(keys["alice"])
    stored_as_is(outbox, driver, loan_id=loan_id, reference="COL-BADREF", payment_ref="0xzz", status="sending")
    stored_as_is(outbox, driver, loan_id=loan_id, reference="COL-1", status="sending")

    assert worker.recover() == 2

    assert rows(outbox) == {"COL-BADREF": (SET_ASIDE, "ItemUnusable"), "COL-1": ("pending", None)}
    report = worker.drain_once()
    assert rows(outbox)["COL-1"] == ("done", "credited"), (report, outbox.items()[1].last_error)
    assert paid(stack, loan_id) == 1_000


def test_a_lookup_that_raises_for_one_item_sets_it_aside_but_a_node_failure_holds_the_batch(
        stack, driver, keys, outbox, worker, monkeypatch):
    import oracle.outbox as module
    from ledger.chain import NodeUnavailable
    good, odd = driver.active_loan(keys["alice"]), driver.active_loan(keys["bob"], ref=b"payout-2", report_id=2)
    outbox.put(confirmation("repayment", odd, "COL-ODD", 1_000, driver.now))
    outbox.put(confirmation("repayment", good, "COL-1", 1_500, driver.now))
    real = module.read_loan
    failure: list[Exception] = [NodeUnavailable("the node at x did not answer")]

    def read_loan(book, loan_id, **kw):
        if loan_id == odd:
            raise failure[0]
        return real(book, loan_id, **kw)

    monkeypatch.setattr(module, "read_loan", read_loan)
    held = worker.drain_once()  # the node is away: nobody's fault, everything waits
    assert held.node_error is not None and held.set_aside == 0
    assert {i.status for i in outbox.items()} == {"pending"} and paid(stack, good) == 0

    failure[0] = ValueError("cannot decode loan")  # raises for this item whatever the node does
    report = worker.drain_once()
    assert (report.node_error, report.set_aside, report.credited) == (None, 1, 1)
    assert rows(outbox) == {"COL-ODD": (SET_ASIDE, "ValueError"), "COL-1": ("done", "credited")}
    assert paid(stack, good) == 1_500


def test_a_chargeback_of_a_payment_held_in_suspense_closes_the_item_and_touches_no_loan(stack, outbox, worker,
                                                                                       driver):
    from dataclasses import replace

    from sqlalchemy import update

    from ledger.store.models.suspense import SuspenseItem
    from oracle import suspense

    now = driver.now
    for reference in ("COL-LOST", "COL-LOST-2"):
        outbox.put(confirmation("repayment", 9_999, reference, 2_000, now))  # no such loan: held in suspense
    worker.drain_once()
    with outbox.sessions.begin() as session:  # the second was refunded by an operator meanwhile
        session.execute(update(SuspenseItem).where(SuspenseItem.reference == "COL-LOST-2").values(state="refunded"))
    for reversal, original in (("REV-LOST", "COL-LOST"), ("REV-LOST-2", "COL-LOST-2")):
        outbox.put(replace(confirmation("reversal", 9_999, reversal, 2_000, now), reverses=original))

    report = worker.drain_once()

    outcomes = rows(outbox)
    # The rail took back money the book never had: the item's home is "gone back", with no transaction.
    assert outcomes["REV-LOST"] == ("done", "taken_from_suspense")
    # Refunded and charged back: the payer has it twice, which an operator must recover; shown, not hidden.
    assert outcomes["REV-LOST-2"] == ("rejected", "ReversedAndRefunded") and report.rejected == 1
    with outbox.sessions() as session:
        taken = suspense.find(session, PROVIDER, "COL-LOST")
        assert (taken.state, taken.resolved_by) == ("reversed", "rail")
        assert suspense.find(session, PROVIDER, "COL-LOST-2").state == "refunded"
    for reference in ("REV-LOST", "REV-LOST-2"):
        assert not stack.book.functions.isPaymentReferenceUsed(payment_ref(PROVIDER, reference)).call()


def test_a_repayment_to_a_loan_that_closed_is_held_in_suspense_at_once_not_retried(stack, driver, keys, outbox,
                                                                                  worker):
    from oracle import suspense

    loan_id = driver.active_loan(keys["alice"])
    driver.repay(loan_id, driver.payoff(loan_id), payment_ref(PROVIDER, "COL-CLOSE"))  # repaid: it never runs again
    outbox.put(confirmation("repayment", loan_id, "COL-AFTER", 3_000, driver.now))

    report = worker.drain_once()

    # A status that can never take the payment (unlike Approved, which a payout turns Active) is not retried for
    # eight minutes: the money is held at once, for an operator to refund or apply.
    assert (report.rejected, report.retried) == (1, 0)
    assert rows(outbox) == {"COL-AFTER": ("rejected", "LoanBookInvalidStatus")}
    with outbox.sessions() as session:
        held = suspense.find(session, PROVIDER, "COL-AFTER")
        assert (held.state, held.amount, held.reason) == ("open", 3_000, "LoanBookInvalidStatus")
