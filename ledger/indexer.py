"""The event indexer: follows the deployment's contracts from their deployment block into the store.

Each bounded block range is one database transaction: its decoded events, the read-model rows
they touch, the block hashes seen and the cursor commit together, so a crash anywhere leaves the
store at a range boundary and a restart resumes from the cursor. Before each range the stored
hash of the cursor block is compared with the node's; on a mismatch (a reorg) the indexer walks
back over the blocks it saw to the last one the node still has, deletes everything above it,
rebuilds the affected loans, borrowers and FourEyes proposals (ledger.store.proposals) from the remaining
events, and indexes forward again.

Nothing is read at a historical block: a node without history (a pruned node, anvil restarted from its
state file) has blocks and logs but no state before its head. Everything comes from the events, and
the one view needed, a loan's schedule, is read at the latest block: the contract's `schedule(loanId)` once
the loan is paid out, its pure `quote(terms)` before.

One event never stops the indexer: each loan and each borrower is projected inside a SAVEPOINT, and an event
whose projection raises (anything but the node or the database being away, which retries the whole round) is
set aside as a poison event (`indexer_poison_events`, logged at ERROR, counted by /readyz and /metrics): its
loan's partial writes are rolled back, the loan is projected again without it, the rest of the range commits
and the cursor advances. The event itself stays stored; the poison rows are keyed like it, so projecting the
loan again (a later range, a reorg) never counts it twice.

Every round also stamps the cursor's `polled_at` (the heartbeat): on a quiet chain the block lag stays 0
even when the indexer is dead, so /readyz judges the silence since the last round too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils.abi import event_abi_to_log_topic
from requests.exceptions import RequestException
from sqlalchemy import delete, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3
from web3.exceptions import BlockNotFound, ContractLogicError, Web3Exception

from ledger.artifacts import compile_contracts
from ledger.book import SCHEDULE_EVENTS
from ledger.encoding import to_0x_hex
from ledger.manifest import Manifest
from ledger.store import projection, proposals
from ledger.store.codec import args_to_json, to_json
from ledger.store.models.chain import ChainEvent, IndexerCursor, PoisonEvent, SeenBlock
from ledger.store.projection import EventKeys, LoanState
from ledger.typed_data import LoanTerms

log = logging.getLogger(__name__)


class IndexerError(RuntimeError):
    """The store cannot follow this chain (e.g. it was filled from another chain)."""


class _ChainMoved(Exception):
    """The node's chain changed while a range was being read; read it again."""


def stops_the_round(exc: BaseException) -> bool:
    """The node or the database is away, or the store cannot follow this chain: nothing about one event, so the
    whole round is rolled back and retried (the cursor is safe). Anything else raised while an event is projected
    is that event's own problem, and it is set aside."""
    if isinstance(exc, ContractLogicError):  # the contract refused a view about this loan: the loan's problem
        return False
    return isinstance(exc, (IndexerError, _ChainMoved, OperationalError, InterfaceError, Web3Exception,
                            RequestException, OSError))


# A heartbeat is written at most this often (seconds): a round every 50 ms must not be a write every 50 ms.
HEARTBEAT_EVERY = 1


@dataclass
class DecodedLog:
    contract: str
    address: str
    name: str
    args: dict
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int

    @property
    def key(self) -> tuple[str, int]:
        return self.tx_hash, self.log_index


class EventDecoder:
    """Logs of the manifest's contracts -> (contract name, event name, JSON args), ABIs from the artifacts."""

    def __init__(self, w3: Web3, manifest: Manifest, artifacts: dict[str, dict] | None = None):
        artifacts = artifacts or compile_contracts()
        self._events: dict[tuple[str, str], tuple[str, dict, Any]] = {}
        self.addresses: list[Any] = []  # checksummed; Any because web3's filter type wants its own str types
        for name, deployed in manifest.contracts.items():
            address = Web3.to_checksum_address(deployed.address)
            self.addresses.append(address)
            contract = w3.eth.contract(address=address, abi=artifacts[name]["abi"])
            for abi in artifacts[name]["abi"]:
                if abi["type"] != "event":
                    continue
                topic = to_0x_hex(event_abi_to_log_topic(abi))
                self._events[(address.lower(), topic)] = (name, abi, contract.events[abi["name"]]())

    def decode(self, raw) -> DecodedLog:
        address = Web3.to_checksum_address(raw["address"])
        found = self._events.get((address.lower(), to_0x_hex(raw["topics"][0]))) if raw["topics"] else None
        if found is None:
            raise IndexerError(f"log {to_0x_hex(raw['transactionHash'])}:{raw['logIndex']} from {address} matches no "
                               "event in the artifacts: are the manifest and the compiled sources from the same build?")
        contract, abi, event = found
        decoded = event.process_log(raw)
        return DecodedLog(contract=contract, address=address, name=abi["name"],
                          args=args_to_json(decoded["args"], abi["inputs"]), block_number=raw["blockNumber"],
                          block_hash=to_0x_hex(raw["blockHash"]), tx_hash=to_0x_hex(raw["transactionHash"]),
                          log_index=raw["logIndex"])


@dataclass
class IndexReport:
    """What one `run_once` did."""

    from_block: int
    to_block: int
    events: int = 0
    ranges: int = 0
    reorgs: list[int] = field(default_factory=list)  # fork points walked back to
    poisoned: int = 0  # events newly set aside because their projection raised


class Indexer:
    """Follows the manifest's contracts into the store behind `sessions`."""

    def __init__(self, w3: Web3, manifest: Manifest, sessions: sessionmaker, *, batch_size: int = 1_000,
                 confirmations: int = 0, name: str = "default", artifacts: dict[str, dict] | None = None,
                 clock: Callable[[], float] = time.time):
        if batch_size < 1 or confirmations < 0:
            raise ValueError("batch_size must be at least 1 and confirmations not negative")
        self.w3, self.manifest, self.sessions = w3, manifest, sessions
        self.batch_size, self.confirmations, self.name = batch_size, confirmations, name
        self.clock = clock  # the heartbeat's and the poison events' time, not the chain's
        artifacts = artifacts or compile_contracts()
        self.decoder = EventDecoder(w3, manifest, artifacts)
        self.book = w3.eth.contract(address=Web3.to_checksum_address(manifest.address("LoanBook")),
                                    abi=artifacts["LoanBook"]["abi"])
        # schedule(loanId) and quote(terms) both answer Installment[]: one decoding for both.
        self._schedule_abi = next(f for f in artifacts["LoanBook"]["abi"]
                                  if f.get("type") == "function" and f["name"] == "schedule")["outputs"][0]
        self._prefetched: dict[tuple[int, bool], list[dict[str, int]]] = {}  # one range's reads
        self.chain_id = w3.eth.chain_id

    # ------------------------------------------------------------------ public

    def run_once(self) -> IndexReport:
        """Index everything up to the node's head (minus confirmations); returns what was done."""
        with self.sessions() as session:
            start = self._cursor(session).block_number
        report = IndexReport(from_block=start + 1, to_block=start)
        while True:
            head = self.w3.eth.block_number - self.confirmations
            try:
                with self.sessions.begin() as session:
                    cursor = self._cursor(session)
                    # The heartbeat is stamped last in each transaction: a write before the range's chain reads
                    # would hold SQLite's write lock while the node answers.
                    if self._rewind_if_forked(session, cursor, report):
                        self._beat(cursor)
                        continue
                    if cursor.block_number >= head:
                        self._beat(cursor)
                        report.to_block = cursor.block_number
                        return report
                    to_block = min(head, cursor.block_number + self.batch_size)
                    report.events += self._index_range(session, cursor, to_block, report)
                    self._beat(cursor)
                    report.ranges += 1
            except _ChainMoved:
                log.info("the chain changed while a range was read; reading it again")

    def follow(self, poll_interval: float = 2.0, stop: threading.Event | None = None,
               on_report: Callable[[IndexReport], None] | None = None) -> None:
        """Keep indexing until `stop` is set; errors of one round are logged and retried after the interval."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                report = self.run_once()
                if on_report is not None:
                    on_report(report)
            except IndexerError:
                raise
            except Exception:  # the node or the database is down for a moment; the cursor is safe
                log.exception("indexing round failed; retrying in %.1fs", poll_interval)
            stop.wait(poll_interval)

    # ------------------------------------------------------------------ cursor and reorgs

    def _cursor(self, session: Session) -> IndexerCursor:
        cursor = session.get(IndexerCursor, self.name)
        if cursor is None:
            cursor = IndexerCursor(name=self.name, chain_id=self.chain_id,
                                   block_number=self.manifest.start_block - 1, block_hash=None, block_time=0)
            session.add(cursor)
        elif cursor.chain_id != self.chain_id:
            raise IndexerError(f"the store was indexed from chain {cursor.chain_id}, the node is chain {self.chain_id}")
        return cursor

    def _beat(self, cursor: IndexerCursor) -> None:
        """The heartbeat, committed with the round's transaction: this indexer reached the node and the store."""
        now = int(self.clock())
        if cursor.polled_at is None or now - cursor.polled_at >= HEARTBEAT_EVERY:
            cursor.polled_at = now

    def _hash_on_chain(self, number: int) -> str | None:
        try:
            return to_0x_hex(self.w3.eth.get_block(number)["hash"])
        except BlockNotFound:
            return None

    def _rewind_if_forked(self, session: Session, cursor: IndexerCursor, report: IndexReport) -> bool:
        if cursor.block_hash is None or self._hash_on_chain(cursor.block_number) == cursor.block_hash:
            return False
        fork = self.manifest.start_block - 1
        fork_block: SeenBlock | None = None
        for seen in session.scalars(select(SeenBlock).where(SeenBlock.number <= cursor.block_number)
                                    .order_by(SeenBlock.number.desc())):
            if self._hash_on_chain(seen.number) == seen.hash:
                fork, fork_block = seen.number, seen
                break
        log.warning("reorg: block %d changed; rewinding to block %d", cursor.block_number, fork)
        gone = session.scalars(select(ChainEvent).where(ChainEvent.block_number > fork)).all()
        loans = {e.loan_id for e in gone if e.contract == "LoanBook" and e.loan_id is not None}
        borrowers = {e.borrower for e in gone if e.contract != "LoanBook" and e.borrower is not None}
        gone_proposals = {p for e in gone if (p := proposals.proposal_of(e.contract, e.name, e.args)) is not None}
        session.execute(delete(ChainEvent).where(ChainEvent.block_number > fork))
        session.execute(delete(SeenBlock).where(SeenBlock.number > fork))
        # Set-aside events of the dropped blocks are gone with them; if the new chain has them again they are
        # projected (and, if they still fail, set aside) afresh, once.
        session.execute(delete(PoisonEvent).where(PoisonEvent.block_number > fork))
        as_of = fork_block.time if fork_block else 0
        self._rebuild(session, loans, borrowers, as_of, report, proposal_ids=gone_proposals)
        cursor.block_number = fork
        cursor.block_hash = fork_block.hash if fork_block else None
        cursor.block_time = as_of
        report.reorgs.append(fork)
        return True

    # ------------------------------------------------------------------ one range

    def _index_range(self, session: Session, cursor: IndexerCursor, to_block: int, report: IndexReport) -> int:
        from_block = cursor.block_number + 1
        last = self.w3.eth.get_block(to_block)
        raw_logs = self.w3.eth.get_logs({"fromBlock": from_block, "toBlock": to_block,
                                         "address": self.decoder.addresses})
        blocks = {to_block: last}
        for raw in raw_logs:
            number = raw["blockNumber"]
            if number not in blocks:
                blocks[number] = self.w3.eth.get_block(number)
            if to_0x_hex(raw["blockHash"]) != to_0x_hex(blocks[number]["hash"]):
                raise _ChainMoved
        # A reorg after the first read of `to_block` changes its hash: read the range again.
        if to_0x_hex(self.w3.eth.get_block(to_block)["hash"]) != to_0x_hex(last["hash"]):
            raise _ChainMoved

        decoded_logs = [self.decoder.decode(raw)
                        for raw in sorted(raw_logs, key=lambda r: (r["blockNumber"], r["logIndex"]))]
        # Every chain read happens before the first write: on SQLite a write transaction locks out the
        # API's writes, so it must not wait on the node. The schedules read here are what `schedule_of` uses.
        changed = self._schedules_changed(session, decoded_logs)
        self._prefetched = {(loan_id, disbursed): self.read_schedule(loan_id, terms, disbursed)
                            for loan_id, (terms, disbursed) in changed.items()}
        loans: set[int] = set()
        borrowers: set[str] = set()
        proposal_ids: set[str] = set()
        for decoded in decoded_logs:
            event = ChainEvent(contract=decoded.contract, address=decoded.address, name=decoded.name,
                               args=decoded.args, block_number=decoded.block_number, block_hash=decoded.block_hash,
                               block_time=blocks[decoded.block_number]["timestamp"], tx_hash=decoded.tx_hash,
                               log_index=decoded.log_index, loan_id=loan_column(decoded.args.get("loanId")),
                               borrower=decoded.args.get("borrower"))
            session.add(event)
            if event.contract == "LoanBook" and event.loan_id is not None:
                loans.add(event.loan_id)
            elif event.borrower is not None:
                borrowers.add(event.borrower)
            if (proposal_id := proposals.proposal_of(event.contract, event.name, event.args)) is not None:
                proposal_ids.add(proposal_id)
        for number, block in blocks.items():
            session.merge(SeenBlock(number=number, hash=to_0x_hex(block["hash"]), time=block["timestamp"]))
        session.flush()
        try:
            self._rebuild(session, loans, borrowers, last["timestamp"], report, set(changed), proposal_ids)
        finally:
            self._prefetched = {}
        cursor.block_number, cursor.block_hash, cursor.block_time = to_block, to_0x_hex(last["hash"]), last["timestamp"]
        log.info("indexed blocks %d-%d: %d events", from_block, to_block, len(raw_logs))
        return len(raw_logs)

    @staticmethod
    def _schedules_changed(session: Session, decoded_logs: list[DecodedLog]) -> dict[int, tuple[dict, bool]]:
        """{loan id: (its terms (JSON), paid out in the range)} for the loans whose schedule a range's event
        can have changed.

        Repayments, charges and status changes leave the schedule as it is, so they cost nothing; a
        disbursement of a loan requested in an earlier range counts (its schedule becomes absolute), its
        terms taken from the stored request; a batch item naming an unknown loan (PaymentSkipped with no
        LoanRequested) has no terms and costs nothing either.
        """
        book = [d for d in decoded_logs if d.contract == "LoanBook" and d.args.get("loanId") is not None]
        terms = {d.args["loanId"]: d.args["terms"] for d in book if d.name == "LoanRequested"}
        # (A prepayment's re-base, a reschedule or a reversal of a repayment happens only to a loan paid out.)
        disbursed = {d.args["loanId"] for d in book
                     if d.name in ("LoanDisbursed", "ScheduleRebased", "RepaymentReversed", "RescheduleAccepted")}
        changed: dict[int, tuple[dict, bool]] = {}
        for loan_id in {d.args["loanId"] for d in book if d.name in SCHEDULE_EVENTS}:
            if loan_id not in terms:
                stored = session.scalars(select(ChainEvent.args).where(
                    ChainEvent.contract == "LoanBook", ChainEvent.name == "LoanRequested",
                    ChainEvent.loan_id == loan_id)).first()
                if stored is None:
                    continue
                terms[loan_id] = stored["terms"]
            changed[loan_id] = (terms[loan_id], loan_id in disbursed)
        return changed

    def _rebuild(self, session: Session, loans: set[int], borrowers: set[str], as_of: int, report: IndexReport,
                 schedules_changed: set[int] | None = None, proposal_ids: set[str] = frozenset()) -> None:
        """Rebuild the given loans, borrowers and FourEyes proposals, each on its own (a poison event costs its
        loan's projection of that event, nothing else); `schedules_changed` None (a reorg) recomputes every loan's
        schedule."""
        session.flush()
        skip = set(session.execute(select(PoisonEvent.tx_hash, PoisonEvent.log_index)).tuples())
        for loan_id in sorted(loans):
            changed = schedules_changed is None or loan_id in schedules_changed

            def rebuild_loan(skip: EventKeys, loan_id: int = loan_id, changed: bool = changed) -> None:
                projection.rebuild_loan(session, loan_id, self.schedule_of, as_of, schedule_changed=changed, skip=skip)

            self._project_apart(session, rebuild_loan, lambda loan_id=loan_id: projection.loan_events(session, loan_id),
                                skip, report)
        for address in sorted(borrowers):
            def rebuild_borrower(skip: EventKeys, address: str = address) -> None:
                projection.rebuild_borrower(session, address, skip=skip)

            self._project_apart(session, rebuild_borrower,
                                lambda address=address: projection.borrower_events(session, address), skip, report)
        for proposal_id in sorted(proposal_ids):
            def rebuild_proposal(skip: EventKeys, proposal_id: str = proposal_id) -> None:
                proposals.rebuild_proposal(session, proposal_id, skip=skip)

            self._project_apart(session, rebuild_proposal,
                                lambda proposal_id=proposal_id: proposals.proposal_events(session, proposal_id), skip,
                                report)
        projection.refresh_delinquency(session, as_of)

    def _project_apart(self, session: Session, rebuild: Callable[[EventKeys], object],
                       events_of: Callable[[], Sequence[ChainEvent]], skip: set[tuple[str, int]],
                       report: IndexReport) -> None:
        """`rebuild(skip)` inside a SAVEPOINT; when it raises for an event's sake, the savepoint's writes are
        rolled back, the culprit event is set aside (added to `skip`) and the rebuild tried again without it.

        The culprit is the first event (chain order) whose projection, with the events before it, raises; each
        is new, so there are at most as many tries as events: when no event is left to blame (the failure does
        not come from one), the error goes up and the round fails as before. (Only this rare path reads the
        events twice, and its search may read a schedule from the node inside the write transaction.)
        """
        events: Sequence[ChainEvent] | None = None
        while True:
            try:
                with session.begin_nested():
                    rebuild(skip)
                    session.flush()  # constraint violations surface here, inside the savepoint
                return
            except Exception as exc:
                if stops_the_round(exc):
                    raise
                events = events if events is not None else events_of()
                found = _first_failing(session, rebuild, projection.without(events, skip), skip)
                if found is None:
                    raise
                culprit, error = found
                self._set_aside(session, culprit, error, report)
                skip.add((culprit.tx_hash, culprit.log_index))

    def _set_aside(self, session: Session, event: ChainEvent, exc: Exception, report: IndexReport) -> None:
        """Record `event` as a poison event (once: a row already there keeps its first sighting) and alert."""
        if session.scalar(select(PoisonEvent.id).where(PoisonEvent.tx_hash == event.tx_hash,
                                                       PoisonEvent.log_index == event.log_index)) is not None:
            return
        message = str(exc)[:2000]
        session.add(PoisonEvent(chain_id=self.chain_id, contract=event.contract, address=event.address,
                                name=event.name, block_number=event.block_number, tx_hash=event.tx_hash,
                                log_index=event.log_index, loan_id=event.loan_id, borrower=event.borrower,
                                error_type=type(exc).__name__, error=message, first_seen=int(self.clock())))
        session.flush()
        report.poisoned += 1
        log.error("poison event set aside: %s %s:%d (block %d, loan %s) cannot be projected: %s: %s; the rest "
                  "goes on without it (`loanledger indexer poison` lists them)", event.name, event.tx_hash,
                  event.log_index, event.block_number, event.loan_id, type(exc).__name__, message)

    def schedule_of(self, state: LoanState) -> list[dict[str, int]]:
        """The loan's schedule as the contract gives it for `state` (read by `read_schedule`, once a range)."""
        disbursed = state.disbursed_at != 0
        rows = self._prefetched.get((state.id, disbursed))
        return rows if rows is not None else self.read_schedule(state.id, state.terms, disbursed)

    def read_schedule(self, loan_id: int, terms: dict, disbursed: bool) -> list[dict[str, int]]:
        """The contract's own rows, never read at a past block (a pruned node has no state there): once paid
        out, `schedule(loanId)` at the latest block (it changes only with the events that re-read it);
        before, the terms' `quote`, which is what `schedule` answers until the disbursement fixes the dates."""
        if disbursed:
            rows = self.book.functions.schedule(loan_id).call(block_identifier="latest")
        else:
            fields = {**terms, "currency": bytes.fromhex(terms["currency"].removeprefix("0x"))}
            # From time 0, as `schedule` gives an undisbursed loan's dates (a fixed interval's: seconds after payout).
            rows = self.book.functions.quote(LoanTerms(**fields).as_tuple(), 0, 0, 0).call(block_identifier="latest")
        return to_json(rows, self._schedule_abi)


def loan_column(loan_id: int | None) -> int | None:
    """The id as the `loan_id` column can hold it (signed 64 bits). A batch item naming a larger id (a
    PaymentSkipped: the book never made such a loan) keeps it in `args` and is filed under no loan, like any
    unknown loan; storing it would fail the whole range, every round, and stop the indexer there."""
    return loan_id if loan_id is not None and 0 <= loan_id < 2**63 else None


def _first_failing(session: Session, rebuild: Callable[[EventKeys], object], taken: list[ChainEvent],
                   skip: set[tuple[str, int]]) -> tuple[ChainEvent, Exception] | None:
    """The first of `taken` whose projection with the events before it raises, and its error (each try rolled
    back); None when none does, or when the failure does not come back."""
    for k in range(1, len(taken) + 1):
        later = {(e.tx_hash, e.log_index) for e in taken[k:]}
        attempt = session.begin_nested()
        try:
            rebuild(skip | later)
            session.flush()
        except Exception as exc:  # any failure of the shorter history names its last event
            attempt.rollback()
            if stops_the_round(exc):
                raise
            return taken[k - 1], exc
        attempt.rollback()
    return None
