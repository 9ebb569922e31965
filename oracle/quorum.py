"""The quorum of score signers: the refresher proposes a report, independent signers re-score and sign it.

A score report lands only with `signerThreshold` distinct SCORE_SIGNER_ROLE signatures (contracts/
CreditOracle.sol), as a Chainlink OCR report needs f+1. Each signer is its own process with its own key
(`loanledger oracle signer --name score_signer_N`): it reads the proposal, scores every borrower again from
its own bureau read (the same scorecard, the ledger's repayment history), and signs the report's EIP-712
digest only over the values IT computed. A proposal whose values differ from its own is refused, with why.
The oracle's refresher (`QuorumPusher`) holds no signer key: it proposes, collects, and submits with the
oracle key once the threshold of matching signatures is in, in ascending signer order as the contract wants.

Transport: a mailbox in the shared store (`score_proposals`, `score_signatures`; ledger/store/models/
score_quorum.py), not an HTTP endpoint per signer. Every signer needs the store anyway (the repayment history
it scores from is the read model), so the store adds no new channel, no listening port and no credential to
protect; it works across machines once the store is PostgreSQL; a signer that is down simply does not answer
(nothing to time out on a socket, nothing to retry); and every proposal, signature and refusal stays on record
for an audit. Signatures in the table are not trusted: the refresher recovers each one against the digest and
checks its signer holds SCORE_SIGNER_ROLE, and the contract checks them again.

What does not gather its quorum by the proposal's deadline is set aside (state `set_aside`, the reason, an
ERROR log line, and `loanledger_oracle_score_quorum_failing` in /metrics) and the refresher goes on: its
borrowers stay due and are proposed again next round. Borrowers a signer disputed are left out and the rest
proposed again at once, so one borrower whose records differ does not hold back everybody else's scores.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker
from web3.contract import Contract

from ledger import typed_data
from ledger.encoding import to_0x_hex
from ledger.errors import ContractRevert, LoanLedgerError
from ledger.store.models.score_quorum import ScoreProposal, ScoreSignature
from oracle.scores import MAX_BATCH, PushedReport, ScoreUpdate

log = logging.getLogger(__name__)

OPEN, SUBMITTED, SET_ASIDE = "open", "submitted", "set_aside"
SIGNED, REFUSED = "signed", "refused"
DEFAULT_TIMEOUT = 10.0  # seconds the refresher waits for a quorum before setting a proposal aside

Entry = tuple[str, int, int]  # (borrower, score, credit limit), as the contract's ScoreUpdate


class Scores(Protocol):
    """What re-scores a borrower (oracle.refresh.Scorer)."""

    def update_for(self, address: str) -> ScoreUpdate: ...


@dataclass(frozen=True)
class Collected:
    """What a proposal gathered: the valid signatures by signer address, and each refusal's disputed borrowers."""

    signatures: dict[str, bytes]
    refusals: dict[str, tuple[str, list[str]]]  # signer -> (reason, disputed borrowers)


class QuorumPusher:
    """Proposes each report to the signers through the store and pushes it once a quorum has signed it.

    `push` has ScorePusher's shape: the reports that landed. Borrowers left out (no quorum, or disputed) are in
    `set_aside` (borrower -> why) until the next push.
    """

    def __init__(self, credit_oracle: Contract, transact: Callable[[Any], Any], sessions: sessionmaker,
                 model_version: int, *, timeout: float = DEFAULT_TIMEOUT, poll: float = 0.1, signers: int | None = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self.contract, self.transact, self.sessions = credit_oracle, transact, sessions
        # How many signers there are (the deployment's), when known: once enough have refused that the threshold
        # cannot be met, the proposal is not waited for any longer.
        self.signers = signers
        self.model_version, self.timeout, self.poll, self.clock, self.sleep = model_version, timeout, poll, clock, sleep
        self.set_aside: dict[str, str] = {}

    def push(self, updates: Sequence[ScoreUpdate], *, attempts: int = 3) -> list[PushedReport]:
        self.set_aside = {}
        self._expire_open()
        pushed = []
        for start in range(0, len(updates), MAX_BATCH):
            entries = [u.as_tuple() for u in updates[start:start + MAX_BATCH]]
            report = self._push_batch(entries, attempts)
            if report is not None:
                pushed.append(report)
        return pushed

    def _push_batch(self, entries: list[Entry], attempts: int) -> PushedReport | None:
        tries = 0
        while entries:
            proposal, collected = self._propose_and_collect(entries)
            threshold = proposal.threshold
            if len(collected.signatures) >= threshold:
                chosen = sorted(collected.signatures, key=lambda a: int(a, 16))[:threshold]
                try:
                    receipt = self.transact(self.contract.functions.pushScores(
                        proposal.report_id, self.model_version, entries, [collected.signatures[a] for a in chosen]))
                except ContractRevert as exc:
                    tries += 1
                    if exc.name == "OracleStaleReport" and tries < attempts:
                        self._decide(proposal.id, SET_ASIDE, "another report took this id first; proposed again")
                        continue
                    self._give_up(proposal.id, entries, f"the credit oracle refused the report: {exc}")
                    return None
                tx_hash = to_0x_hex(receipt["transactionHash"])
                self._decide(proposal.id, SUBMITTED, None, tx_hash)
                log.info("score report %d landed with %d of %d signatures (%s): %d borrower(s)",
                         proposal.report_id, threshold, len(collected.signatures), ", ".join(chosen), len(entries))
                return PushedReport(report_id=proposal.report_id, count=len(entries), tx_hash=tx_hash,
                                    block_number=receipt["blockNumber"], gas_used=receipt["gasUsed"],
                                    borrowers=tuple(entry[0] for entry in entries))
            why = (f"{len(collected.signatures)} matching signature(s) of the {threshold} needed"
                   + "".join(f"; {signer} refused: {reason}" for signer, (reason, _) in collected.refusals.items()))
            disputed = {b.lower() for _, named in collected.refusals.values() for b in named}
            keep = [entry for entry in entries if entry[0].lower() not in disputed]
            if disputed and keep and len(keep) < len(entries):
                # One borrower's differing records must not hold back the others: they go again without it.
                self._give_up(proposal.id, [e for e in entries if e[0].lower() in disputed], why,
                              detail=f"proposing the other {len(keep)} again")
                entries = keep
                continue
            self._give_up(proposal.id, entries, why)
            return None
        return None

    # ------------------------------------------------------------------ the mailbox

    def _propose_and_collect(self, entries: list[Entry]) -> tuple[ScoreProposal, Collected]:
        oracle = self.contract.functions
        threshold = oracle.signerThreshold().call()
        report_id = oracle.lastReportId().call() + 1
        digest = bytes(oracle.reportDigest(report_id, self.model_version, entries).call())
        now = self.clock()
        proposal = ScoreProposal(report_id=report_id, model_version=self.model_version,
                                 chain_id=self.contract.w3.eth.chain_id, oracle=self.contract.address,
                                 entries=json.dumps([list(e) for e in entries]), digest=to_0x_hex(digest),
                                 threshold=threshold, state=OPEN, created_at=int(now),
                                 deadline=int(now + self.timeout) + 1)
        with self.sessions.begin() as session:
            session.add(proposal)
        role = oracle.SCORE_SIGNER_ROLE().call()
        holds: dict[str | int, bool] = {}  # signer -> holds SCORE_SIGNER_ROLE, asked once (row id: a bad signature)
        deadline = now + self.timeout
        while True:
            collected = self._collected(proposal.id, digest, role, holds)
            hopeless = self.signers is not None and len(collected.refusals) > self.signers - threshold
            if len(collected.signatures) >= threshold or hopeless or self.clock() >= deadline:
                return proposal, collected
            self.sleep(self.poll)

    def _collected(self, proposal_id: int, digest: bytes, role: bytes, holds: dict[str | int, bool]) -> Collected:
        with self.sessions() as session:
            rows = session.scalars(select(ScoreSignature).where(ScoreSignature.proposal_id == proposal_id)
                                   .order_by(ScoreSignature.id)).all()
        signatures, refusals = {}, {}
        for row in rows:
            if row.verdict == REFUSED:
                refusals[row.signer] = (row.reason or "", json.loads(row.disputed or "[]"))
                continue
            signature = bytes.fromhex(row.signature.removeprefix("0x"))
            try:
                signer = Account._recover_hash(digest, signature=signature)
            except Exception:  # noqa: BLE001 - a malformed signature is one that does not count
                signer = None
            # Not over this report's values (or not by whom it says), or not a score signer: it does not count.
            if signer is None or signer.lower() != row.signer.lower():
                if row.id not in holds:  # said once
                    log.warning("proposal %d: the signature recorded for %s is not its signature over this report",
                                proposal_id, row.signer)
                holds[row.id] = False
                continue
            if signer not in holds:
                holds[signer] = self.contract.functions.hasRole(role, signer).call()
                if not holds[signer]:
                    log.warning("proposal %d: %s signed but does not hold SCORE_SIGNER_ROLE", proposal_id, signer)
            if holds[signer]:
                signatures[signer] = signature
        return Collected(signatures, refusals)

    def _decide(self, proposal_id: int, state: str, reason: str | None, tx_hash: str | None = None) -> None:
        with self.sessions.begin() as session:
            proposal = session.get(ScoreProposal, proposal_id)
            proposal.state, proposal.reason, proposal.tx_hash = state, reason, tx_hash
            proposal.decided_at = int(self.clock())

    def _give_up(self, proposal_id: int, entries: list[Entry], why: str, detail: str = "") -> None:
        self._decide(proposal_id, SET_ASIDE, why)
        for borrower, _, _ in entries:
            self.set_aside[borrower] = why
        log.error("score report proposal %d set aside (%s): %s%s", proposal_id,
                  ", ".join(e[0] for e in entries), why, f"; {detail}" if detail else "")

    def _expire_open(self) -> None:
        """Proposals left open past their deadline (their proposer stopped while waiting) will never be submitted."""
        with self.sessions.begin() as session:
            for proposal in session.scalars(select(ScoreProposal).where(ScoreProposal.state == OPEN,
                                                                        ScoreProposal.deadline < int(self.clock()))):
                proposal.state, proposal.reason = SET_ASIDE, "abandoned: the proposer stopped waiting for it"
                proposal.decided_at = int(self.clock())


@dataclass(frozen=True)
class ProposalView:
    """A proposal with its signers' answers, for `loanledger oracle proposals`."""

    id: int
    report_id: int
    state: str
    borrowers: int
    threshold: int
    signed: list[str]
    refused: dict[str, str]  # signer name -> why
    reason: str | None
    tx_hash: str | None
    created_at: int


def recent(sessions: sessionmaker, state: str | None = None, limit: int = 50) -> list[ProposalView]:
    """The newest proposals (in `state`, if given), newest first, each with who signed and who refused why."""
    query = select(ScoreProposal).order_by(ScoreProposal.id.desc()).limit(limit)
    if state is not None:
        query = query.where(ScoreProposal.state == state)
    with sessions() as session:
        rows = session.scalars(query).all()
        answers: dict[int, list[ScoreSignature]] = {row.id: [] for row in rows}
        for answer in session.scalars(select(ScoreSignature).where(ScoreSignature.proposal_id.in_(list(answers)))
                                      .order_by(ScoreSignature.id)):
            answers[answer.proposal_id].append(answer)
    return [ProposalView(id=row.id, report_id=row.report_id, state=row.state, borrowers=len(json.loads(row.entries)),
                         threshold=row.threshold, signed=[a.name for a in answers[row.id] if a.verdict == SIGNED],
                         refused={a.name: a.reason or "" for a in answers[row.id] if a.verdict == REFUSED},
                         reason=row.reason, tx_hash=row.tx_hash, created_at=row.created_at) for row in rows]


def failing(sessions: sessionmaker) -> int:
    """Proposals set aside since the last report that landed: above zero, the quorum is not forming now."""
    with sessions() as session:
        last_landed = session.scalar(select(func.max(ScoreProposal.id)).where(ScoreProposal.state == SUBMITTED)) or 0
        return session.scalar(select(func.count()).select_from(ScoreProposal).where(
            ScoreProposal.state == SET_ASIDE, ScoreProposal.id > last_landed)) or 0


class ScoreSigner:
    """One score signer: answers each open proposal once, signing only what it computed itself."""

    def __init__(self, name: str, account: LocalAccount, sessions: sessionmaker, scores: Scores, *, chain_id: int,
                 oracle: str, model_version: int, clock: Callable[[], float] = time.time):
        self.name, self.account, self.sessions, self.scores = name, account, sessions, scores
        self.chain_id, self.oracle, self.model_version, self.clock = chain_id, oracle, model_version, clock

    def run(self, stop: threading.Event, interval: float) -> None:
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:  # store down for a moment: the next round retries
                log.exception("%s: round failed; retrying in %.1fs", self.name, interval)
            stop.wait(interval)

    def run_once(self) -> int:
        """Answers the open proposals not yet answered; how many it answered."""
        answered = select(ScoreSignature.proposal_id).where(ScoreSignature.signer == self.account.address)
        with self.sessions() as session:
            waiting = session.scalars(select(ScoreProposal).where(
                ScoreProposal.state == OPEN, ScoreProposal.deadline >= int(self.clock()),
                ScoreProposal.id.not_in(answered)).order_by(ScoreProposal.id)).all()
        for proposal in waiting:
            self._record(proposal, *self.answer(proposal))
        return len(waiting)

    def answer(self, proposal: ScoreProposal) -> tuple[bytes | None, str | None, list[str]]:
        """(signature, None, []) over its own values when they are the proposal's; else (None, why, disputed)."""
        if (proposal.chain_id, proposal.oracle.lower()) != (self.chain_id, self.oracle.lower()):
            return None, f"proposed for chain {proposal.chain_id} oracle {proposal.oracle}, not this deployment", []
        if proposal.model_version != self.model_version:
            why = f"proposed with scorecard v{proposal.model_version}, this signer scores with v{self.model_version}"
            return None, why, []
        computed: list[Entry] = []
        differences, disputed = [], []
        for borrower, score, limit in json.loads(proposal.entries):
            try:
                own = self.scores.update_for(borrower)
                own.as_tuple()  # within the contract's types
            except (LoanLedgerError, ValueError) as exc:  # no record, a record the scorecard cannot read, ...
                differences.append(f"{borrower}: cannot score ({exc})")
                disputed.append(borrower)
                continue
            if (own.score, own.credit_limit) != (score, limit):
                differences.append(f"{borrower}: proposed score {score} limit {limit}, computed score {own.score} "
                                   f"limit {own.credit_limit}")
                disputed.append(borrower)
            computed.append(own.as_tuple())
        if differences:
            return None, "; ".join(differences), disputed
        message = typed_data.score_report(chain_id=self.chain_id, oracle=self.oracle, report_id=proposal.report_id,
                                          model_version=self.model_version, updates=computed)
        return typed_data.sign(self.account.key, message), None, []

    def _record(self, proposal: ScoreProposal, signature: bytes | None, reason: str | None,
                disputed: list[str]) -> None:
        row = ScoreSignature(proposal_id=proposal.id, signer=self.account.address, name=self.name,
                             verdict=SIGNED if signature is not None else REFUSED,
                             signature=to_0x_hex(signature) if signature is not None else None, reason=reason,
                             disputed=json.dumps(disputed) if disputed else None, created_at=int(self.clock()))
        try:
            with self.sessions.begin() as session:
                session.add(row)
        except IntegrityError:  # another process with this key answered first
            return
        if signature is None:
            log.warning("%s refused report %d (proposal %d): %s", self.name, proposal.report_id, proposal.id, reason)
        else:
            log.info("%s signed report %d (proposal %d, %d borrower(s))", self.name, proposal.report_id, proposal.id,
                     len(json.loads(proposal.entries)))
