"""Keeping scores and limits on-chain current: who needs a (new) score, from what, pushed how.

A registered borrower is scored when they have no score yet, and again whenever their loans moved
since their last score (so on-time repayments raise the limit, lateness lowers it, a default freezes
it), and, if `refresh_after` is set, when the score is older than that. A score that simply ages is
otherwise left to go stale on purpose: the loan book then refuses to approve on it, which is the
safe failure. Inputs: the bureau's record (the scorecard's attributes), the declared monthly income
(the bureau's `monthly_income` when it has one, else the configured default) and the ledger's
repayment history from the read model. The oracle's refresher pushes through `oracle.quorum.QuorumPusher`: each
report is proposed to the score signer processes, which re-score with their own `Scorer` and sign only matching
values; borrowers whose report gathers no quorum stay due and are proposed again next round.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from ledger.book import LoanStatus
from ledger.store.models.chain import Borrower, Loan, ScoreRecord
from oracle.bureau.source import BureauError, CreditBureau
from oracle.quorum import QuorumPusher
from oracle.scores import ScorePusher, ScoreUpdate
from oracle.scoring.limits import RepaymentHistory, credit_limit
from oracle.scoring.scorecard import Scorecard

log = logging.getLogger(__name__)

DEFAULT_MONTHLY_INCOME = 800_000  # minor units: 8,000 CNY
# A loan that ever went into default, whether still owed or written off, as the read model names them.
_DEFAULTED = (LoanStatus.DEFAULTED.solidity_name, LoanStatus.WRITTEN_OFF.solidity_name)


@dataclass
class RefreshReport:
    considered: int = 0
    pushed: int = 0
    reports: list[int] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def history_of(loans: list[Loan]) -> RepaymentHistory:
    """On-time and late installments, and defaults, as the read model shows them.

    An installment counts as late when its loan was ever charged a late fee (the fee is charged once
    per overdue installment, so fee > 0 means at least one late installment); the others paid count on time.
    """
    defaulted = any(loan.status in _DEFAULTED for loan in loans)
    late = sum(1 for loan in loans if loan.late_fee_paid + loan.late_fee_unpaid > 0)
    on_time = sum(loan.paid_installments for loan in loans) - late
    return RepaymentHistory(on_time=max(on_time, 0), late=late, defaulted=defaulted)


class Scorer:
    """One borrower's score and limit: the bureau's record through the scorecard, the limit moved by the ledger's
    repayment history. The refresher proposes with one; every score signer re-scores with its own."""

    def __init__(self, sessions: sessionmaker, bureau: CreditBureau, scorecard: Scorecard, *,
                 default_income: int = DEFAULT_MONTHLY_INCOME):
        self.sessions, self.bureau, self.scorecard, self.default_income = sessions, bureau, scorecard, default_income

    def update_for(self, address: str) -> ScoreUpdate:
        report = self.bureau.report(address)
        score = self.scorecard.score(report.attributes).score
        income = int(report.attributes.get("monthly_income", self.default_income))
        with self.sessions() as session:
            loans = list(session.scalars(select(Loan).where(Loan.borrower == address)))
        return ScoreUpdate(address, max(0, min(score, 65_535)), credit_limit(score, income, history_of(loans)))


class ScoreRefresher:
    def __init__(self, sessions: sessionmaker, bureau: CreditBureau, scorecard: Scorecard,
                 pusher: ScorePusher | QuorumPusher, *, chain_time: Callable[[], int],
                 refresh_after: int | None = None, default_income: int = DEFAULT_MONTHLY_INCOME):
        self.sessions, self.bureau, self.scorecard, self.pusher = sessions, bureau, scorecard, pusher
        self.chain_time, self.refresh_after, self.default_income = chain_time, refresh_after, default_income
        self.scorer = Scorer(sessions, bureau, scorecard, default_income=default_income)
        # Loan block each borrower was last pushed for: the read model may not show our push yet.
        self._pushed_for: dict[str, int] = {}

    def due(self) -> list[str]:
        """Registered, unrevoked borrowers whose score is missing, behind their loans, or (optionally) old."""
        return list(self._due())

    def _due(self) -> dict[str, int]:
        """The borrowers due, each with the block of their newest loan event (-1: no loans)."""
        now = self.chain_time()
        with self.sessions() as session:
            last_score_block = dict(session.execute(
                select(ScoreRecord.borrower, func.max(ScoreRecord.block_number)).group_by(ScoreRecord.borrower)).all())
            last_loan_block = dict(session.execute(
                select(Loan.borrower, func.max(Loan.last_event_block)).group_by(Loan.borrower)).all())
            rows = session.scalars(select(Borrower).where(Borrower.registered.is_(True), Borrower.revoked.is_(False))
                                   .order_by(Borrower.address)).all()
        due = {}
        for row in rows:
            scored = last_score_block.get(row.address)
            loan_block = last_loan_block.get(row.address, -1)
            if row.address in self._pushed_for and self._pushed_for[row.address] >= loan_block:
                continue
            if (scored is None or row.score_updated_at is None or loan_block > scored
                    or (self.refresh_after is not None and now - row.score_updated_at > self.refresh_after)):
                due[row.address] = loan_block
        return due

    def update_for(self, address: str) -> ScoreUpdate:
        return self.scorer.update_for(address)

    def run_once(self) -> RefreshReport:
        report = RefreshReport()
        updates = []
        loan_blocks = self._due()
        for address in loan_blocks:
            report.considered += 1
            try:
                updates.append(self.update_for(address))
            except BureauError as exc:  # this borrower waits for the next round; the others go on
                report.failed[address] = str(exc)
                log.warning("no score for %s this round: %s", address, exc)
        if updates:
            landed: set[str] = set()
            for pushed in self.pusher.push(updates):
                report.pushed += pushed.count
                report.reports.append(pushed.report_id)
                landed.update(pushed.borrowers)
            # A quorum that did not form leaves its borrowers due: the next round proposes them again.
            set_aside = getattr(self.pusher, "set_aside", {})
            for update in updates:
                if update.borrower in landed:
                    self._pushed_for[update.borrower] = loan_blocks[update.borrower]
                else:
                    report.failed[update.borrower] = set_aside.get(update.borrower, "not pushed")
        return report
