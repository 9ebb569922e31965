"""The durable outbox: confirmations are stored before they are acknowledged, then pushed in batches.

Crash safety rests on two guards. Here: items are claimed (`sending`) in their own committed
transaction before their batch is sent, and a worker that starts finds the items a dead worker left in
`sending` and asks the chain whether their payment references were credited (`recover`). On-chain: the
loan book credits a reference once, ever, and its batch forms skip a failing item (`PaymentSkipped`)
instead of failing the batch, so re-sending an item that did reach the chain is harmless: it comes
back refused, the worker sees its reference is used, and settles it as `already_credited`.

Three kinds of failure are told apart. The node not answering (or the whole batch refused, e.g. the book
is paused) is the worker's problem: the items go back to `pending` untouched and the worker backs off
as a whole. One item refused by the contract is that item's: it is settled `rejected` with the error
name (a refused repayment is money received and not credited: the same transaction records it as a
suspense item for an operator to refund or apply, see ledger/store/models/suspense.py), or, for refusals
that may pass with time, retried with its own back-off. One item the worker
cannot even prepare (a row it cannot read, an id or reference the contract cannot encode, a lookup that
raises for it and not because the node is away) can never succeed: it is `set_aside` alone with the
reason, shown to operators (`loanledger oracle outbox`, the oracle's /healthz and /metrics) and never
retried automatically, so it cannot hold back the items queued after it. A repayment set aside is money
received too: it becomes a suspense item in the same transaction, like a rejected one (a row the worker
cannot read at all cannot be described: it stays an outbox item set aside, for an operator).

Money going back has no batch form on-chain: a credit refund (`confirmCreditRefund`), a reversal of a repayment
(`reverseRepayment`, with the reversed payment's allocation read from the chain's own events) and a returned
payout (`reverseDisbursement`) are sent one item per transaction, after a round's batches, and a refusal is
that item's alone, mapped as a batch's skipped items are. A suspense refund is off the book (the suspense
item it returns is the record): it is settled `done` with outcome `off_book` without a transaction, kept so a
redelivery finds it. A reversal the book refuses is money the rail took back that the book does not show:
it is settled `rejected`, counted in /healthz's attention and listed by `loanledger oracle outbox --status
rejected`, and its statement line stays unmatched in the reconciliation (rail only, with the outbox's reason).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import sessionmaker
from web3.contract import Contract
from web3.exceptions import BadFunctionCallOutput, TimeExhausted
from web3.logs import DISCARD

from ledger.book import LoanStatus, read_loan
from ledger.chain import ChainClient, NodeUnavailable, ReceiptTimeout, TransactionFailed
from ledger.encoding import to_0x_hex
from ledger.errors import ContractRevert
from ledger.store.models.outbox import OutboxItem
from ledger.store.models.suspense import SuspenseItem
from oracle import suspense
from oracle.payments.inbound import payment_ref as rail_payment_ref
from oracle.payments.webhook import Confirmation

log = logging.getLogger(__name__)

# Refusals that may pass with time: a repayment that overtook its loan's disbursement, a payment dated a
# little ahead of the chain's clock, an item that ran out of gas inside its batch (empty revert data).
# They are retried with back-off, MAX_ITEM_ATTEMPTS times, before they count as rejected (a repayment's
# status refusal only while its loan is not yet paid out: see _may_pass_with_time).
RETRYABLE = frozenset({"LoanBookInvalidStatus", "LoanBookInvalidPaymentTime", "OutOfGas"})
MAX_ITEM_ATTEMPTS = 8
ITEM_MAX_BACKOFF = 300.0  # seconds; 2, 4, 8 ... so an item is given about eight minutes in all
_DUPLICATE = "LoanBookDuplicatePayment"
_UINT40, _UINT96, _UINT256 = 2**40, 2**96, 2**256
KINDS = ("disbursement", "repayment")  # in the order a round pushes them
SINGLE_KINDS = ("credit_refund", "reversal", "payout_reversal")  # one per transaction, after the batches, in order
OFF_BOOK_KINDS = ("suspense_refund",)  # acknowledged and kept, never sent: the suspense item is the record
ALL_KINDS = (*KINDS, *SINGLE_KINDS, *OFF_BOOK_KINDS)
OFF_BOOK = "off_book"
_NOT_ON_CHAIN = "ReversedPaymentNotOnChain"  # a reversal whose payment the chain has not (yet) credited
SET_ASIDE = "set_aside"  # an item that can never succeed: kept, shown, never retried automatically
# The node (or the database) being away, not the item being wrong: the whole round backs off.
# BadFunctionCallOutput is an empty answer where the book should be (a node that lost its state).
_TRANSIENT = (NodeUnavailable, ReceiptTimeout, TimeExhausted, BadFunctionCallOutput, SQLAlchemyError,
              ConnectionError, TimeoutError, OSError)

# Fault injection for the crash-safety test: the worker process exits on the spot at a named point.
FAULT_ENV = "LOANLEDGER_OUTBOX_FAULT"  # the variable of the `outbox_fault` setting (tests only): see fault_injection
FAULT_POINTS = ("before_send", "after_send")
Fault = Callable[[str], None]


@dataclass
class DrainReport:
    claimed: int = 0
    credited: int = 0
    already_credited: int = 0
    rejected: int = 0
    retried: int = 0
    set_aside: int = 0
    off_book: int = 0
    batches: int = 0
    node_error: str | None = None  # set when the round stopped because the node (or the whole batch) failed
    errors: list[str] = field(default_factory=list)


class Outbox:
    """The table of confirmations, and the one way in."""

    def __init__(self, sessions: sessionmaker, clock: Callable[[], float] = time.time):
        self.sessions, self.clock = sessions, clock

    def put(self, confirmation: Confirmation) -> tuple[OutboxItem, bool]:
        """Stores a confirmation; returns (the row, True) or, for a retry or replay, (the first row, False)."""
        now = int(self.clock())
        ref = to_0x_hex(confirmation.payment_ref)
        item = OutboxItem(provider=confirmation.provider, event_id=confirmation.event_id, kind=confirmation.kind,
                          loan_id=confirmation.loan_id, reference=confirmation.reference, payment_ref=ref,
                          amount=confirmation.amount, currency=confirmation.currency, paid_at=confirmation.paid_at,
                          reverses=confirmation.reverses, received_at=now, status="pending", attempts=0, next_attempt_at=0, updated_at=now)
        try:
            with self.sessions.begin() as session:
                session.add(item)
            return item, True
        except IntegrityError:
            existing = self.find(confirmation.provider, confirmation.event_id, ref)
            if existing is None:  # the conflicting row vanished: nothing to return, the caller retries
                raise
            return existing, False

    def find(self, provider: str, event_id: str, payment_ref: str) -> OutboxItem | None:
        with self.sessions() as session:
            return session.scalars(select(OutboxItem).where(
                ((OutboxItem.provider == provider) & (OutboxItem.event_id == event_id))
                | (OutboxItem.payment_ref == payment_ref)).order_by(OutboxItem.id)).first()

    def counts(self) -> dict[str, int]:
        with self.sessions() as session:
            rows = session.execute(select(OutboxItem.status, func.count()).group_by(OutboxItem.status)).all()
        return {status: count for status, count in rows}

    def items(self, status: str | None = None) -> list[OutboxItem]:
        query = select(OutboxItem).order_by(OutboxItem.id)
        if status is not None:
            query = query.where(OutboxItem.status == status)
        with self.sessions() as session:
            return list(session.scalars(query))


class ItemUnusable(Exception):
    """This one item can never be sent as stored: it is set aside, the others go on."""


def is_transient(exc: BaseException) -> bool:
    """The node or the store is away (retry the round later), as opposed to something wrong with one item."""
    return isinstance(exc, _TRANSIENT) or type(exc).__module__.startswith(("requests", "urllib3"))


def batch_item(item: OutboxItem) -> tuple[int, bytes, int, int]:
    """The item as an ILoanBook.PaymentConfirmation; ItemUnusable when the contract cannot take it as it is."""
    if item.kind not in ALL_KINDS:
        raise ItemUnusable(f"kind {item.kind!r} is not one of {', '.join(ALL_KINDS)}")
    if not 1 <= item.loan_id < _UINT256:
        raise ItemUnusable(f"loan id {item.loan_id} is not a uint256 of at least 1")
    try:
        ref = bytes.fromhex(item.payment_ref.removeprefix("0x"))
    except (ValueError, AttributeError, TypeError):
        ref = b""
    if len(ref) != 32:
        raise ItemUnusable(f"payment reference {item.payment_ref!r} is not 32 bytes of hex")
    return item.loan_id, ref, item.amount, item.paid_at


@dataclass(frozen=True)
class _Settlement:
    status: str  # done | rejected | pending
    outcome: str | None
    error: str | None = None
    delay: float | None = None  # pending: seconds until the next attempt; counts an attempt


class OutboxWorker:
    """Pushes pending confirmations with the loan book's batch forms, signed by the oracle's ChainClient."""

    def __init__(self, outbox: Outbox, client: ChainClient, book: Contract, *, batch_size: int = 50,
                 interval: float = 1.0, max_backoff: float = 60.0, fault: Fault | None = None, from_block: int = 0):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.outbox, self.client = outbox, client
        # Bound to the client's node: estimates, calls and sends all go to the one node the client signs for.
        self.book = client.w3.eth.contract(address=book.address, abi=book.abi)
        self.batch_size, self.interval, self.max_backoff = batch_size, interval, max_backoff
        self.fault = fault or (lambda _point: None)
        self.from_block = from_block  # the book's deployment block: where a reversed payment's events are looked for
        self.recovered = False
        self._currencies: dict[int, str] = {}  # a loan's currency never changes: asked once per loan
        self.failures = 0  # consecutive rounds the node (or the whole batch) failed; drives the back-off

    @property
    def clock(self) -> Callable[[], float]:
        return self.outbox.clock

    # ------------------------------------------------------------------ recovery

    def recover(self) -> int:
        """Settles items a dead worker left in `sending`; returns how many it looked at."""
        with self.outbox.sessions() as session:
            stranded = list(session.scalars(select(OutboxItem).where(OutboxItem.status == "sending")))
        settlements = {}
        for item in stranded:
            # Not used: the batch never reached the chain, or it did and skipped the item, or it is still in
            # the mempool (then the re-sent item is refused and settled as already credited).
            try:
                used = self._reference_used(batch_item(item)[1])
            except Exception as exc:
                if is_transient(exc):
                    raise  # the node is away: recovery is tried again next round
                settlements[item.id] = _set_aside(exc)
                continue
            settlements[item.id] = _Settlement("done", "already_credited") if used else _Settlement("pending", None)
        self._settle(settlements, stranded)
        if stranded:
            log.info("recovered %d item(s) left in sending", len(stranded))
        self.recovered = True
        return len(stranded)

    # ------------------------------------------------------------------ one round

    def drain_once(self) -> DrainReport:
        """Recovers if not yet done, claims due items, pushes them: disbursements first, then repayments."""
        report = DrainReport()
        if not self.recovered:
            self.recover()
        claimed, unreadable = self._claim()
        report.claimed = len(claimed) + len(unreadable)
        self._set_aside_rows(unreadable, report)
        odd = [item for item in claimed if item.kind not in ALL_KINDS]  # no form on-chain would ever take them
        self._settle({item.id: _set_aside(ItemUnusable(f"kind {item.kind!r} is not one of {', '.join(ALL_KINDS)}"))
                      for item in odd}, odd, report)
        off_book = [item for item in claimed if item.kind in OFF_BOOK_KINDS]
        self._settle({item.id: _Settlement("done", OFF_BOOK) for item in off_book}, off_book, report)
        # Disbursements first: a repayment in the same round may be for a loan paid out in it.
        batches = [[item for item in claimed if item.kind == kind] for kind in KINDS]
        for batch in batches:
            if report.node_error is not None:
                self._release(batch, report.node_error)  # the node failed earlier in this round
            else:
                self._push(batch, report)
        # Then money going back, one transaction each: a refund or reversal may be of a payment credited above.
        for kind in SINGLE_KINDS:
            for item in (item for item in claimed if item.kind == kind):
                if report.node_error is not None:
                    self._release([item], report.node_error)
                else:
                    self._push_one(item, report)
        return report

    def next_delay(self) -> float:
        """Seconds to wait before the next round: the interval, doubling per consecutive failed round."""
        if self.failures == 0:
            return self.interval
        return min(self.interval * 2 ** self.failures, self.max_backoff)

    def run(self, stop: threading.Event, on_report: Callable[[DrainReport], None] | None = None) -> None:
        """Drains until `stop` is set; a failed round leaves the rows pending and backs off."""
        while not stop.is_set():
            try:
                report = self.drain_once()
            except Exception as exc:  # the node is down during recovery, or the database is: the rows are safe
                self.recovered = False  # rows may be left in `sending` by this round: settle them first next time
                log.warning("outbox round failed (%s: %s); retrying in %.1fs", type(exc).__name__, exc,
                            self.next_delay())
                self.failures += 1
                stop.wait(self.next_delay())
                continue
            if on_report is not None and report.claimed:
                on_report(report)
            if report.node_error is not None:
                self.failures += 1
                log.warning("outbox: %s; %d item(s) wait, retrying in %.1fs", report.node_error, report.claimed,
                            self.next_delay())
            else:
                self.failures = 0
                if report.claimed:
                    continue  # more may be waiting
            stop.wait(self.next_delay())

    # ------------------------------------------------------------------ internals

    def _claim(self) -> tuple[list[OutboxItem], dict[int, str]]:
        """Claims due items; returns them, and the ids of claimed rows that cannot be read, with the reason.

        Ids are claimed first and the rows read after, so one row the model cannot load (a value an older
        version wrote) is set aside alone instead of failing every round's query.
        """
        now = int(self.clock())
        with self.outbox.sessions.begin() as session:
            query = (select(OutboxItem.id).where(OutboxItem.status == "pending", OutboxItem.next_attempt_at <= now)
                     .order_by(OutboxItem.id).limit(self.batch_size))
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)  # several workers never claim the same row
            ids = list(session.scalars(query))
            if ids:
                session.execute(update(OutboxItem).where(OutboxItem.id.in_(ids))
                                .values(status="sending", updated_at=now))
        if not ids:
            return [], {}
        with self.outbox.sessions() as session:
            try:
                return list(session.scalars(select(OutboxItem).where(OutboxItem.id.in_(ids))
                                            .order_by(OutboxItem.id))), {}
            except Exception as exc:
                if is_transient(exc):
                    raise
                session.rollback()
        items, unreadable = [], {}
        for id_ in ids:  # one row spoils the query: read them one by one to find it
            with self.outbox.sessions() as session:
                try:
                    items.append(session.scalars(select(OutboxItem).where(OutboxItem.id == id_)).one())
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    unreadable[id_] = f"the stored row cannot be read: {type(exc).__name__}: {exc}"
        return items, unreadable

    def _set_aside_rows(self, unreadable: Mapping[int, str], report: DrainReport) -> None:
        if not unreadable:
            return
        now = int(self.clock())
        with self.outbox.sessions.begin() as session:
            for id_, reason in unreadable.items():
                session.execute(update(OutboxItem).where(OutboxItem.id == id_).values(
                    status=SET_ASIDE, outcome="UnreadableRow", last_error=reason, updated_at=now))
        for id_, reason in unreadable.items():
            report.set_aside += 1
            log.error("outbox item %d set aside: %s; an operator must look at it", id_, reason)

    def _push(self, items: list[OutboxItem], report: DrainReport) -> None:
        if not items:
            return
        settlements: dict[int, _Settlement] = {}
        try:
            sendable = self._screen(items, settlements)
        except Exception as exc:  # noqa: BLE001 - only transient errors leave _screen: the node did not answer
            self._node_failed(items, exc, report)
            return
        if sendable:
            kind = sendable[0].kind
            function = (self.book.functions.confirmDisbursements if kind == "disbursement"
                        else self.book.functions.confirmRepayments)
            report.batches += 1
            self.fault("before_send")
            try:
                receipt = self.client.transact(function([batch_item(i) for i in sendable]))
            except Exception as exc:  # noqa: BLE001 - node down, timeout, paused: the items wait for the next round
                settled = [i for i in items if i.id in settlements]
                self._settle(settlements, settled, report)
                self._node_failed(sendable, exc, report)
                return
            self.fault("after_send")
            try:
                self._outcomes(sendable, receipt, settlements)
            except Exception as exc:  # noqa: BLE001 - the node went away while we asked about skipped items
                # Mined but not settled: exactly the state a crash leaves, and recover() settles it.
                log.warning("outbox: could not settle a mined batch (%s); recovering next round", exc)
                self.recovered = False
                report.node_error = f"{type(exc).__name__}: {exc}"
                return
        self._settle(settlements, items, report)

    def _push_one(self, item: OutboxItem, report: DrainReport) -> None:
        """Sends one credit refund or reversal in its own transaction; its refusal is its own (see the module)."""
        settlements: dict[int, _Settlement] = {}
        try:
            # A chargeback of money held in suspense needs neither its loan nor the chain (nor the loan's
            # currency: a payment in the wrong money is held in suspense too), so it is settled first.
            taken_back = self._take_back_from_suspense(item) if item.kind == "reversal" and item.reverses else None
            if taken_back is not None:
                settlements[item.id] = taken_back
                call = None
            else:
                call = self._single_call(item, settlements) if self._screen([item], settlements) else None
        except Exception as exc:  # noqa: BLE001 - sorted here: the node's absence, or this item's own fault
            if is_transient(exc):
                self._node_failed([item], exc, report)  # the node did not answer: the item waits
                return
            call, settlements[item.id] = None, _set_aside(exc)  # raises for this item: never sendable as it is
        if call is None:
            self._settle(settlements, [item], report)
            return
        report.batches += 1
        self.fault("before_send")
        try:
            receipt = self.client.transact(call)
        except (ContractRevert, TransactionFailed) as exc:
            name = exc.name if isinstance(exc, ContractRevert) else "TransactionFailed"
            if isinstance(exc, ContractRevert) and not name.startswith("LoanBook"):
                self._node_failed([item], exc, report)  # the book as a whole refuses (paused, role revoked)
                return
            try:
                settlements[item.id] = self._refused(item, name, str(exc))
            except Exception as lookup:  # noqa: BLE001 - the node went away while we asked about the reference
                self._node_failed([item], lookup, report)
                return
            self._settle(settlements, [item], report)
            return
        except Exception as exc:  # noqa: BLE001 - node down, timeout: the item waits for the next round
            self._node_failed([item], exc, report)
            return
        self.fault("after_send")
        self._settle({item.id: _with_receipt(_Settlement("done", "credited"), receipt)}, [item], report)

    def _single_call(self, item: OutboxItem, settlements: dict[int, _Settlement]):
        """The book's function for a refund or reversal, or None with the item's settlement recorded."""
        loan_id, ref, amount, paid_at = batch_item(item)
        # The rail dates money going back by its own clock, and the book refuses a time after its latest block: on a
        # chain that makes blocks only on transactions the two part by seconds. The date is only recorded for a
        # refund or a reversal (no interest runs on it), so it is never later than the chain's clock.
        paid_at = min(paid_at, self.client.w3.eth.get_block("latest")["timestamp"])
        functions = self.book.functions
        if item.kind == "credit_refund":
            if item.reverses:  # the credit is on the loan the book credited the overpayment to (see below)
                loan_id = self._credited_to(rail_payment_ref(item.provider, item.reverses)) or loan_id
            return functions.confirmCreditRefund(loan_id, ref, amount, paid_at)
        if not item.reverses:
            settlements[item.id] = _set_aside(ItemUnusable(f"a {item.kind} names no payment it reverses"))
            return None
        original = rail_payment_ref(item.provider, item.reverses)
        if item.kind == "payout_reversal":
            return functions.reverseDisbursement(loan_id, original, ref, paid_at)
        paid = self._allocation(loan_id, original)
        credited = None if paid is not None else self._credited_to(original)
        if credited is not None and credited != loan_id:
            # The rail names the loan its payer typed; an operator applied the payment from suspense to another.
            loan_id, paid = credited, self._allocation(credited, original)
        if paid is not None:
            return functions.reverseRepayment(loan_id, original, ref, paid, paid_at)
        # The reversed payment is not on-chain (nor held in suspense: see _push_one): still on its way (retry),
        # or refused (then never: rejected).
        if self._reference_used(item.payment_ref):
            settlements[item.id] = _Settlement("done", "already_credited")
        else:
            settlements[item.id] = self._refused(item, _NOT_ON_CHAIN, f"{item.reverses} is not credited on-chain",
                                                 check_reference=False, retryable=True)
        return None

    def _take_back_from_suspense(self, item: OutboxItem) -> _Settlement | None:
        """A chargeback of a payment held in suspense: the item is `reversed` (idempotent), and the reversal
        needs no transaction. Refunded as well (or being refunded), the payer got it twice: an operator's."""
        now = int(self.clock())
        with self.outbox.sessions.begin() as session:
            held = suspense.find(session, item.provider, item.reverses)
            if held is None or held.state == suspense.APPLIED:
                return None
            if held.state in (suspense.OPEN, suspense.REVERSED):
                held.state, held.resolved_by, held.resolved_at = suspense.REVERSED, suspense.RAIL, now
                held.updated_at = now
                return _Settlement("done", suspense.TAKEN_FROM_SUSPENSE)
        log.error("reversal %s takes back %s, which suspense item %d already refunds (%s): the payer was paid "
                  "twice; an operator must recover it from the provider", item.reference, item.reverses, held.id,
                  held.state)
        return _Settlement("rejected", "ReversedAndRefunded",
                           f"{item.reverses} is held in suspense item {held.id}, {held.state}: refunded and reversed")

    def _credited_to(self, original: bytes) -> int | None:
        """The loan the book credited a payment reference to, from the chain's events (None: not credited)."""
        events, found = self.book.events, {"paymentRef": original}
        credited = (events.RepaymentApplied.get_logs(from_block=self.from_block, argument_filters=found)
                    or events.RecoveryApplied.get_logs(from_block=self.from_block, argument_filters=found))
        return credited[0]["args"]["loanId"] if credited else None

    def _allocation(self, loan_id: int, original: bytes) -> tuple[int, int, int, int, int, int] | None:
        """The reversed payment's ILoanBook.Allocation, from the chain's events for its reference (never the read
        model, which may lag the oracle): RepaymentApplied (+ OverpaymentHeld's credit), or RecoveryApplied."""
        events, found = self.book.events, {"loanId": loan_id, "paymentRef": original}
        applied = events.RepaymentApplied.get_logs(from_block=self.from_block, argument_filters=found)
        if applied:
            a = applied[0]["args"]
            held = events.OverpaymentHeld.get_logs(from_block=applied[0]["blockNumber"],
                                                   to_block=applied[0]["blockNumber"], argument_filters=found)
            credit = held[0]["args"]["credit"] if held else 0
            return a["principal"], a["interest"], a["lateFee"], a["penalty"], credit, 0
        recovered = events.RecoveryApplied.get_logs(from_block=self.from_block, argument_filters=found)
        if recovered:
            return 0, 0, 0, 0, 0, recovered[0]["args"]["amount"]
        return None

    def _refused(self, item: OutboxItem, name: str, error: str, *, check_reference: bool = True,
                 retryable: bool = False) -> _Settlement:
        """One item's refusal, mapped as a batch's skipped item is: its reference used => already credited."""
        if name == _DUPLICATE or (check_reference and self._reference_used(item.payment_ref)):
            return _Settlement("done", "already_credited")
        if (retryable or name in RETRYABLE) and item.attempts + 1 < MAX_ITEM_ATTEMPTS:
            return _Settlement("pending", None, error, min(2.0 ** (item.attempts + 1), ITEM_MAX_BACKOFF))
        return _Settlement("rejected", name, error)

    def _screen(self, items: list[OutboxItem], settlements: dict[int, _Settlement]) -> list[OutboxItem]:
        """Refuses what the contract cannot be asked or would credit in the wrong money; returns the rest."""
        sendable = []
        for item in items:
            try:
                batch_item(item)
            except ItemUnusable as exc:
                settlements[item.id] = _set_aside(exc)
                continue
            if not (0 < item.paid_at < _UINT40 and 0 < item.amount < _UINT96):
                settlements[item.id] = _Settlement("rejected", "InvalidConfirmation",
                                                   f"paid_at {item.paid_at} or amount {item.amount} out of range")
                continue
            try:
                currency = self._loan_currency(item.loan_id)
            except Exception as exc:
                if is_transient(exc):
                    raise  # the node is away: the whole batch waits
                settlements[item.id] = _set_aside(exc)  # raises for this item, round after round: never sendable
                continue
            # The book takes amounts in the loan's currency and has no other check: a payment in another
            # currency would be credited at face value. Unknown loans go on, and the book names the error.
            if currency is not None and currency != item.currency:
                settlements[item.id] = _Settlement("rejected", "CurrencyMismatch",
                                                   f"paid in {item.currency}, loan {item.loan_id} is in {currency}")
                continue
            sendable.append(item)
        return sendable

    def _loan_currency(self, loan_id: int) -> str | None:
        if loan_id not in self._currencies:
            try:
                loan = read_loan(self.book, loan_id, call=self.client.call)
            except ContractRevert:
                return None  # unknown loan: left to the batch, which reports LoanBookUnknownLoan
            self._currencies[loan_id] = loan.currency
        return self._currencies[loan_id]

    def _outcomes(self, items: list[OutboxItem], receipt, settlements: dict[int, _Settlement]) -> None:
        skipped = {
            to_0x_hex(event["args"]["paymentRef"]): bytes(event["args"]["reason"])
            for event in self.book.events.PaymentSkipped().process_receipt(receipt, errors=DISCARD)
        }
        for item in items:
            reason = skipped.get(item.payment_ref)
            if reason is None:
                settlements[item.id] = _Settlement("done", "credited")
                continue
            try:
                decoded = self.client.errors.decode(reason) if reason else None
            except Exception:  # noqa: BLE001 - our selector with arguments that do not decode: name it raw
                decoded = None
            name = decoded.name if decoded else ("OutOfGas" if not reason else f"UnknownRevert({to_0x_hex(reason)})")
            # The book checks a loan's status before the reference, so a re-sent item for a loan it closed or
            # paid out comes back as InvalidStatus: the reference, not the error, says whether it is credited.
            if name == _DUPLICATE or self._reference_used(item.payment_ref):
                settlements[item.id] = _Settlement("done", "already_credited")
            elif _may_pass_with_time(name, decoded) and item.attempts + 1 < MAX_ITEM_ATTEMPTS:
                delay = min(2.0 ** (item.attempts + 1), ITEM_MAX_BACKOFF)
                settlements[item.id] = _Settlement("pending", None, str(decoded or name), delay)
            else:
                settlements[item.id] = _Settlement("rejected", name, str(decoded or name))
        for item in items:
            settlements[item.id] = _with_receipt(settlements[item.id], receipt)

    def _reference_used(self, payment_ref: str | bytes) -> bool:
        ref = payment_ref if isinstance(payment_ref, bytes) else bytes.fromhex(payment_ref[2:])
        return bool(self.client.call(self.book.functions.isPaymentReferenceUsed(ref)))

    def _node_failed(self, items: list[OutboxItem], exc: Exception, report: DrainReport) -> None:
        error = str(exc) if isinstance(exc, ContractRevert) else f"{type(exc).__name__}: {exc}"
        report.node_error = error
        report.errors.append(error)
        self._release(items, error)

    def _release(self, items: list[OutboxItem], error: str | None) -> None:
        """Back to pending as they were: a failure of the node is not the items' attempt."""
        if not items:
            return
        now = int(self.clock())
        with self.outbox.sessions.begin() as session:
            session.execute(update(OutboxItem).where(OutboxItem.id.in_([i.id for i in items]),
                                                     OutboxItem.status == "sending")
                            .values(status="pending", last_error=error, updated_at=now))

    def _settle(self, settlements: Mapping[int, _Settlement], items: list[OutboxItem],
                report: DrainReport | None = None) -> None:
        """Writes every item's outcome in one transaction."""
        if not items:
            return
        now = int(self.clock())
        with self.outbox.sessions.begin() as session:
            for item in items:
                s = settlements[item.id]
                values: dict = {"status": s.status, "outcome": s.outcome, "last_error": s.error, "updated_at": now}
                if isinstance(s, _Mined):
                    values.update(tx_hash=s.tx_hash, block_number=s.block_number)
                if s.delay is not None:
                    values.update(attempts=item.attempts + 1, next_attempt_at=now + math.ceil(s.delay))
                session.execute(update(OutboxItem).where(OutboxItem.id == item.id).values(**values))
                if s.status in ("rejected", SET_ASIDE):
                    _hold_in_suspense(session, item, s.outcome, s.error, now)
        if report is not None:
            for item in items:
                s = settlements[item.id]
                if s.status == "rejected":
                    report.rejected += 1
                    _log_taken_back(item, s)
                    log.error("confirmation %s (%s of loan %s) refused: %s; the money needs an operator",
                              item.reference, item.kind, item.loan_id, s.error)
                elif s.status == SET_ASIDE:
                    report.set_aside += 1
                    log.error("outbox item %d (%s, reference %s) set aside: %s; an operator must look at it",
                              item.id, item.kind, item.reference, s.error)
                elif s.status == "pending":
                    report.retried += 1
                elif s.outcome == OFF_BOOK:
                    report.off_book += 1
                elif s.outcome == "credited":
                    report.credited += 1
                else:
                    report.already_credited += 1


def _hold_in_suspense(session, item: OutboxItem, outcome: str | None, error: str | None, now: int) -> None:
    """A repayment refused or set aside is money received and not credited: it becomes a suspense item (one
    per received payment) in the transaction that settles it, so nothing refused is without a record. A
    refused disbursement is money paid out, not received: the payout orders answer for it."""
    if item.kind != "repayment":
        return
    held = session.scalar(select(SuspenseItem).where(
        (SuspenseItem.outbox_item_id == item.id)
        | ((SuspenseItem.provider == item.provider) & (SuspenseItem.reference == item.reference))))
    if held is not None:
        if held.state == "applied":  # an operator re-queued it for another loan, and the book refused that too
            held.state, held.reason, held.resolved_by, held.resolved_at = "open", (outcome or "Refused")[:64], None, None
            held.detail, held.updated_at = None if error is None else error[:2000], now
        return
    session.add(suspense.outbox_item(item, outcome or "Refused", error, now))


def _log_taken_back(item: OutboxItem, s: _Settlement) -> None:
    """A refused reversal is money the rail took back that the book does not show: say so, apart from the rest."""
    if item.kind in ("reversal", "payout_reversal"):
        log.error("the rail took back %s (%s of loan %s, %s %s) but the book refused to record it (%s): the ledger "
                  "overstates what was received or paid out until an operator acts", item.reverses, item.kind,
                  item.loan_id, item.amount, item.currency, s.outcome)


@dataclass(frozen=True)
class _Mined(_Settlement):
    tx_hash: str = ""
    block_number: int = 0


def _may_pass_with_time(name: str, decoded: ContractRevert | None) -> bool:
    """A refusal worth retrying: RETRYABLE, except a status refusal for a loan that will never take the payment
    again (repaid, overpaid, cancelled, rejected): only one not yet paid out may still become Active."""
    if name != "LoanBookInvalidStatus" or decoded is None or "status" not in decoded.arguments:
        return name in RETRYABLE
    return LoanStatus(decoded.arguments["status"]) in (LoanStatus.REQUESTED, LoanStatus.APPROVED)


def _set_aside(exc: BaseException) -> _Settlement:
    outcome = "ItemUnusable" if isinstance(exc, ItemUnusable) else type(exc).__name__
    return _Settlement(SET_ASIDE, outcome[:64], f"{type(exc).__name__}: {exc}"[:2000])


def _with_receipt(s: _Settlement, receipt) -> _Mined:
    return _Mined(s.status, s.outcome, s.error, s.delay, tx_hash=to_0x_hex(receipt["transactionHash"]),
                  block_number=receipt["blockNumber"])


def fault_injection(spec: str) -> Fault | None:
    """The `outbox_fault` setting, `after_send[:N]` (LOANLEDGER_OUTBOX_FAULT): exit the process (no cleanup)
    the Nth time that point is reached; empty: no fault.

    Only for the crash-safety tests: it makes "killed between the send and the mark" happen on purpose. It is
    a setting, not a private variable, so that it is documented and validated with the others.
    """
    if not spec:
        return None
    point, _, nth = spec.partition(":")
    if point not in FAULT_POINTS or (nth and not nth.isdigit()):
        raise ValueError(f"{FAULT_ENV} must be one of {', '.join(FAULT_POINTS)}, optionally with :N")
    remaining = [int(nth or 1)]

    def fault(reached: str) -> None:
        if reached == point:
            remaining[0] -= 1
            if remaining[0] <= 0:
                log.warning("fault injection: exiting at %s", point)
                os._exit(70)

    return fault
