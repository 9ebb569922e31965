"""Verification an auditor runs: the index against the node, loans recomputed from their events
against the contract, an off-chain identity against its on-chain commitment, and the action log's
hash chain against itself and its on-chain anchors.

Each check returns a `VerificationResult` (ok flag, what was checked, one line per discrepancy)
and never changes anything. Contract views are read at the indexer's cursor block, so a chain
that moved on since the last indexing round does not show up as a discrepancy; a node that keeps no
state there (a pruned node, anvil restarted from its state file) gives a failure line saying so, not
an exception.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, Web3RPCError

from ledger.action_log import GENESIS, entry_hash
from ledger.artifacts import compile_contracts
from ledger.book import solidity_name
from ledger.encoding import to_0x_hex
from ledger.indexer import EventDecoder, loan_column
from ledger.manifest import Manifest
from ledger.store import proposals
from ledger.store.codec import to_json
from ledger.store.models.action_log import ActionLogEntry
from ledger.store.models.chain import Borrower, ChainEvent, IndexerCursor, Loan
from ledger.store.models.four_eyes import FourEyesProposal
from ledger.store.projection import (
    LoanEventError,
    LoanState,
    currency_code,
    fold_loan,
    loan_events,
    progress_json,
)
from ledger.typed_data import Amortization, LoanTerms

_EVENT_FIELDS = ("contract", "address", "name", "args", "block_number", "block_hash", "loan_id", "borrower")


@dataclass
class VerificationResult:
    check: str
    ok: bool = True
    checked: int = 0
    details: list[str] = field(default_factory=list)

    def fail(self, detail: str) -> None:
        self.ok = False
        self.details.append(detail)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StateUnavailable(Exception):
    """The node keeps no state at the block the views are read at (history pruned or not restored)."""

    def __init__(self, block: int | str, message: str):
        super().__init__(f"the node keeps no state at block {block} ({message})")
        self.block = block


class _Views:
    """The three contracts' view functions at one block, results in the codec's JSON form."""

    def __init__(self, w3: Web3, manifest: Manifest, artifacts: dict[str, dict], block: int | str):
        self.block = block
        self._abis = {name: artifacts[name]["abi"] for name in manifest.contracts}
        self._contracts = {name: w3.eth.contract(address=Web3.to_checksum_address(manifest.address(name)),
                                                 abi=artifacts[name]["abi"]) for name in manifest.contracts}

    def __call__(self, contract: str, function: str, *args) -> Any:
        bound = self._contracts[contract]
        abi = next(f for f in self._abis[contract] if f.get("type") == "function" and f["name"] == function)
        try:
            result = bound.functions[function](*args).call(block_identifier=self.block)
        except Web3RPCError as exc:  # not a revert (ContractLogicError): the node could not run the call there
            raise StateUnavailable(self.block, getattr(exc, "message", None) or str(exc)) from exc
        outputs = abi["outputs"]
        if len(outputs) == 1:
            return to_json(result, outputs[0])
        return {o["name"]: to_json(v, o) for o, v in zip(outputs, result, strict=True)}


def _cursor(session: Session, result: VerificationResult) -> IndexerCursor | None:
    cursor = session.get(IndexerCursor, "default")
    if cursor is None or cursor.block_hash is None:
        result.fail("nothing indexed yet: run `loanledger index` first")
        return None
    return cursor


# ---------------------------------------------------------------------- index vs chain

def index_vs_chain(w3: Web3, manifest: Manifest, session: Session, *, batch_size: int = 2_000,
                   artifacts: dict[str, dict] | None = None) -> VerificationResult:
    """Every stored event equals the node's log at its tx/log index, and every log up to the cursor is stored."""
    result = VerificationResult("index")
    cursor = _cursor(session, result)
    if cursor is None:
        return result
    if to_0x_hex(w3.eth.get_block(cursor.block_number)["hash"]) != cursor.block_hash:
        result.fail(f"cursor block {cursor.block_number} has another hash on the node (a reorg not yet indexed)")
    decoder = EventDecoder(w3, manifest, artifacts or compile_contracts())
    times: dict[int, int] = {}
    for start in range(manifest.start_block, cursor.block_number + 1, batch_size):
        end = min(cursor.block_number, start + batch_size - 1)
        on_chain = {d.key: d for d in map(decoder.decode, w3.eth.get_logs(
            {"fromBlock": start, "toBlock": end, "address": decoder.addresses}))}
        stored = {(e.tx_hash, e.log_index): e for e in session.scalars(
            select(ChainEvent).where(ChainEvent.block_number.between(start, end)))}
        for key in sorted(on_chain.keys() - stored.keys()):
            log = on_chain[key]
            result.fail(f"missing from the index: {log.name} at {key[0]}:{key[1]} (block {log.block_number})")
        for key in sorted(stored.keys() - on_chain.keys()):
            result.fail(f"not on the node: stored event #{stored[key].id} {stored[key].name} at {key[0]}:{key[1]}")
        for key in sorted(stored.keys() & on_chain.keys()):
            event, log = stored[key], on_chain[key]
            expected = {"contract": log.contract, "address": log.address, "name": log.name, "args": log.args,
                        "block_number": log.block_number, "block_hash": log.block_hash,
                        "loan_id": loan_column(log.args.get("loanId")), "borrower": log.args.get("borrower")}
            for name in _EVENT_FIELDS:
                if getattr(event, name) != expected[name]:
                    result.fail(f"event #{event.id} ({key[0]}:{key[1]}) {name}: stored {getattr(event, name)!r}, "
                                f"node {expected[name]!r}")
            if event.block_number not in times:
                times[event.block_number] = w3.eth.get_block(event.block_number)["timestamp"]
            if event.block_time != times[event.block_number]:
                result.fail(f"event #{event.id} block_time: stored {event.block_time}, node {times[event.block_number]}")
            result.checked += 1
    return result


# ---------------------------------------------------------------------- recomputed state

def recomputed_state(w3: Web3, manifest: Manifest, session: Session, loan_id: int | None = None, *,
                     artifacts: dict[str, dict] | None = None) -> VerificationResult:
    """Each loan recomputed from its stored events, and its read-model rows, equal the contract's views.

    Without `loan_id`: every loan the index or the contract knows, every borrower row
    against the registry and the credit oracle, and every FourEyes proposal (recomputed from its events, and its
    row) against FourEyes' `proposalOf`.
    """
    result = VerificationResult("state")
    cursor = _cursor(session, result)
    if cursor is None:
        return result
    views = _Views(w3, manifest, artifacts or compile_contracts(), cursor.block_number)
    try:
        if loan_id is not None:
            loan_ids = [loan_id]
        else:
            count = views("LoanBook", "loanCount")
            known: set[int] = set(session.scalars(select(ChainEvent.loan_id).where(
                ChainEvent.loan_id.is_not(None), ChainEvent.contract == "LoanBook",
                ChainEvent.name == "LoanRequested")))
            known |= set(session.scalars(select(Loan.id)))
            loan_ids = sorted(known | set(range(1, count + 1)))
        for lid in loan_ids:
            _check_loan(session, views, lid, result)
        if loan_id is None:
            for row in session.scalars(select(Borrower).order_by(Borrower.address)):
                _check_borrower(views, row, result)
            for proposal_id in _proposal_ids(session):
                _check_proposal(session, views, proposal_id, result)
    except StateUnavailable as exc:
        result.fail(f"cannot compare with the contract: {exc}; the index is at block {cursor.block_number}: "
                    "let the indexer reach the node's head, then verify again")
    return result


def _check_loan(session: Session, views: _Views, loan_id: int, result: VerificationResult) -> None:
    result.checked += 1
    try:
        state = fold_loan(loan_events(session, loan_id))
    except LoanEventError as exc:
        result.fail(f"loan {loan_id}: events do not replay: {exc}")
        return
    try:
        loan = views("LoanBook", "loanOf", loan_id)
    except ContractLogicError:
        loan = None
    if state is None or loan is None:
        if state is not None or loan is not None:
            result.fail(f"loan {loan_id}: {'on the node' if loan else 'in the index'} only")
        return
    prefix = f"loan {loan_id}"
    chain_schedule = views("LoanBook", "schedule", loan_id)
    _compare(result, prefix + " (from events)", {
        "terms": state.terms, "borrower": state.borrower, "status": int(state.status),
        "disbursedAt": state.disbursed_at, "progress": state.progress(),
        "schedule": _schedule_from_terms(views, state)},
        {**loan, "progress": views("LoanBook", "progressOf", loan_id), "schedule": chain_schedule})
    row = session.get(Loan, loan_id)
    if row is None:
        result.fail(f"{prefix}: no read-model row")
        return
    _compare(result, prefix + " (read model)", _row_view(row), _state_view(state, chain_schedule))


def _schedule_from_terms(views: _Views, state: LoanState) -> list[dict[str, int]]:
    """The schedule the terms and the disbursement time give: the contract's pure quote from that time (the
    contract's dates: a monthly schedule's follow the calendar). After a prepayment re-based it (ScheduleRebased),
    the quote of the same terms on the principal and installments left, from the installment it was re-based at:
    that is the plan the book walks (Prepayment.rebase), on the loan's own dates."""
    fields = {**state.terms, "currency": bytes.fromhex(state.terms["currency"].removeprefix("0x"))}
    passed = payment_ray = 0
    if state.rebased_at is not None:
        fields.update(principal=state.rebased_principal, installments=state.rebased_installments)
        # The event's payment: on actual days a re-based plan keeps the pace of repayment (LoanBook._rebase).
        passed, payment_ray = state.rebased_at, state.rebased_payment_ray
    terms = LoanTerms(**fields).as_tuple()  # ABI order, whatever order the stored JSON kept
    return views("LoanBook", "quote", terms, state.disbursed_at, passed, payment_ray)


def _state_view(state: LoanState, schedule: list[dict]) -> dict[str, Any]:
    return {
        "borrower": state.borrower, "status": state.status.solidity_name, "principal": state.terms["principal"],
        "currency": currency_code(state.terms["currency"]),
        "amortization": solidity_name(Amortization(state.terms["amortization"])),
        "disbursed_at": state.disbursed_at, "progress": state.progress(),
        "principal_written_off": state.principal_written_off, "schedule": schedule,
        "payments": sorted((p.reference, p.kind, p.amount, p.principal, p.interest, p.late_fee, p.penalty, p.credit,
                            p.recovery, p.reverses, p.tx_hash) for p in state.payments),
    }


def _row_view(row: Loan) -> dict[str, Any]:
    return {
        "borrower": row.borrower, "status": row.status, "principal": row.principal, "currency": row.currency,
        "amortization": row.amortization, "disbursed_at": row.disbursed_at,
        "progress": progress_json(row),
        "principal_written_off": row.principal_written_off,
        "schedule": [{"dueAt": r.due_at, "principal": r.principal, "interest": r.interest} for r in row.schedule],
        "payments": sorted((p.payment_ref, p.kind, p.amount, p.principal, p.interest, p.late_fee, p.penalty, p.credit,
                            p.recovery, p.reverses, p.tx_hash) for p in row.payments),
    }


def _check_borrower(views: _Views, row: Borrower, result: VerificationResult) -> None:
    result.checked += 1
    record = views("BorrowerRegistry", "borrowerOf", row.address)
    score = views("CreditOracle", "scoreOf", row.address)
    zero = to_0x_hex(bytes(32))
    _compare(result, f"borrower {row.address}", {
        "identityCommitment": row.identity_commitment or zero, "kycExpiresAt": row.kyc_expires_at or 0,
        "registeredAt": row.registered_at or 0, "revoked": row.revoked,
        "score": row.score or 0, "creditLimit": row.credit_limit or 0, "modelVersion": row.model_version or 0,
        "updatedAt": row.score_updated_at or 0,
    }, {**record, **{k: score[k] for k in ("score", "creditLimit", "modelVersion", "updatedAt")}})


def _proposal_ids(session: Session) -> list[str]:
    """Every proposal the index has events or a row for (one the chain has but the index misses shows up as a
    missing event, in `index_vs_chain`)."""
    ids = {e.args.get("proposalId") for e in session.scalars(select(ChainEvent).where(
        ChainEvent.contract == proposals.CONTRACT, ChainEvent.name.in_(proposals.PROPOSAL_EVENTS)))}
    return sorted((ids - {None}) | set(session.scalars(select(FourEyesProposal.proposal_id))))


def _check_proposal(session: Session, views: _Views, proposal_id: str, result: VerificationResult) -> None:
    result.checked += 1
    prefix = f"proposal {proposal_id}"
    try:
        folded = proposals.fold_proposal(proposals.proposal_events(session, proposal_id))
    except proposals.ProposalEventError as exc:
        result.fail(f"{prefix}: events do not replay: {exc}")
        return
    chain = views("FourEyes", "proposalOf", proposal_id)
    state = ("none", proposals.PENDING, proposals.EXECUTED, proposals.CANCELLED)[chain["state"]]
    theirs = {"proposer": chain["proposer"], "expires_at": chain["expiresAt"], "nonce": chain["nonce"],
              "state": state}
    if folded is None:
        result.fail(f"{prefix}: a row without events")
        return
    _compare(result, prefix + " (from events)", {k: folded[k] for k in theirs}, theirs)
    row = session.get(FourEyesProposal, proposal_id)
    if row is None:
        result.fail(f"{prefix}: no read-model row")
        return
    _compare(result, prefix + " (read model)", {k: getattr(row, k) for k in folded}, folded)


def _compare(result: VerificationResult, prefix: str, ours: dict, theirs: dict) -> None:
    for key, value in ours.items():
        if value != theirs.get(key):
            result.fail(f"{prefix} {key}: {value!r} != node {theirs.get(key)!r}")


# ---------------------------------------------------------------------- identity

Commitment = bytes | str


def identity(w3: Web3, manifest: Manifest, borrower: str, commitment: Commitment | Callable[[], Commitment], *,
             artifacts: dict[str, dict] | None = None, block: int | str = "latest") -> VerificationResult:
    """The commitment of an off-chain KYC record equals the borrower's commitment in the registry.

    `commitment` is the 32-byte value, or a callable that computes it from the record and salt
    (e.g. `lambda: identity_commitment(record, salt)` from ledger.identity).
    """
    result = VerificationResult("identity", checked=1)
    try:
        borrower = Web3.to_checksum_address(borrower)
    except ValueError:
        result.fail(f"not an address: {borrower!r}")
        return result
    value = commitment() if callable(commitment) else commitment
    ours = to_0x_hex(value)
    if len(ours) != 66:
        result.fail(f"a commitment is 32 bytes, got {len(ours) // 2 - 1}")
        return result
    record = _Views(w3, manifest, artifacts or compile_contracts(), block)("BorrowerRegistry", "borrowerOf", borrower)
    if record["registeredAt"] == 0:
        result.fail(f"{borrower} is not registered")
    elif record["identityCommitment"] != ours:
        result.fail(f"{borrower}: the record's commitment {ours} differs from the registry's "
                    f"{record['identityCommitment']}")
    else:
        result.details.append(f"{borrower}: commitment matches the registry (KYC expires at {record['kycExpiresAt']}"
                              f"{', revoked' if record['revoked'] else ''})")
    return result


# ---------------------------------------------------------------------- action log

# How far from its seq a moved entry is looked for, to say "written as seq N" rather than "edited".
_MOVED_WINDOW = 64


@dataclass
class ActionLogResult(VerificationResult):
    first_bad_seq: int | None = None  # the lowest seq the log can no longer vouch for
    anchors: int = 0                  # on-chain anchors compared

    def fail_at(self, seq: int, detail: str) -> None:
        self.fail(detail)
        self.first_bad_seq = seq if self.first_bad_seq is None else min(self.first_bad_seq, seq)


def verify_action_log(sessions: sessionmaker, anchor_contract: Contract | None = None, *,
                      block: int | str = "latest") -> ActionLogResult:
    """The action log's hash chain recomputed from seq 1, and, given the ActionLogAnchor contract, every
    on-chain anchor compared with the stored entry it covers.

    The walk stops at the first entry that breaks the chain (everything after it hangs on it) and names
    it in `first_bad_seq`; anchors catch what the chain alone cannot: entries cut off the end, and a log
    rewritten from some point on with every hash recomputed.
    """
    result = ActionLogResult("log")
    with sessions() as session:
        _walk_chain(session, result)
        if anchor_contract is not None:
            _check_anchors(session, anchor_contract, block, result)
    return result


def _walk_chain(session: Session, result: ActionLogResult) -> None:
    expected, prev = 1, GENESIS
    for row in session.scalars(select(ActionLogEntry).order_by(ActionLogEntry.seq)).yield_per(1_000):
        if row.seq != expected:
            result.fail_at(expected, f"seq {expected}: missing: the log goes from seq {expected - 1} to seq {row.seq} "
                                     f"(entries removed)")
            return
        fields = (row.at, row.actor, row.action, row.request_id, row.details, row.prev_hash)
        if entry_hash(row.seq, *fields) != row.hash:
            moved = next((s for s in range(max(1, row.seq - _MOVED_WINDOW), row.seq + _MOVED_WINDOW + 1)
                          if s != row.seq and entry_hash(s, *fields) == row.hash), None)
            if moved is not None:
                result.fail_at(row.seq, f"seq {row.seq}: out of order: this entry was written as seq {moved} "
                                        f"(entries reordered, or removed and renumbered)")
            else:
                result.fail_at(row.seq, f"seq {row.seq}: edited: its fields do not hash to its stored hash {row.hash}")
            return
        if row.prev_hash != prev:
            result.fail_at(row.seq, f"seq {row.seq}: prev_hash {row.prev_hash} is not seq {row.seq - 1}'s hash {prev} "
                                    f"(an entry before it was rewritten, removed or reordered)")
            return
        result.checked += 1
        expected, prev = row.seq + 1, row.hash


def _check_anchors(session: Session, anchor: Contract, block: int | str, result: ActionLogResult) -> None:
    count = anchor.functions.anchorCount().call(block_identifier=block)
    for sequence in range(1, count + 1):
        head, entries, anchored_at = anchor.functions.anchorAt(sequence).call(block_identifier=block)
        result.anchors += 1
        row = session.get(ActionLogEntry, entries)
        if row is None:
            result.fail_at(entries, f"seq {entries}: anchor #{sequence} (at {anchored_at}) covers {entries} entries "
                                    f"but the log has no seq {entries} (entries removed)")
        elif row.hash != to_0x_hex(head):
            result.fail_at(entries, f"seq {entries}: hash {row.hash} differs from anchor #{sequence}'s head "
                                    f"{to_0x_hex(head)} (the log up to seq {entries} was rewritten)")
