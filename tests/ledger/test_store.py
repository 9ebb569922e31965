"""The store on SQLite and PostgreSQL: migrations match the models, amounts past int64 survive."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select

from ledger.store import migrate
from ledger.store.migration import check
from ledger.store.models import Base
from ledger.store.models.chain import Borrower, ChainEvent, Loan, Payment, ScheduleRow, ScoreRecord

UINT96_MAX = 2**96 - 1


def _loan(**overrides) -> Loan:
    values = {"id": 1, "borrower": "0x" + "ab" * 20, "status": "Active", "principal": UINT96_MAX, "currency": "CNY",
                  "annual_rate_bps": 2400, "amortization": "Annuity", "installments": 2, "interval": 30 * 86_400,
                  "grace_period": 3 * 86_400, "late_fee_bps": 500, "penalty_rate_bps": 1800, "default_after": 90 * 86_400,
                  "request_nonce": 0, "requested_at": 1_700_000_000, "last_event_block": 7}
    values.update(overrides)
    return Loan(**values)


def test_migrations_create_every_table_and_match_the_models(db_url):
    engine = migrate(db_url)
    try:
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
        check(engine)  # raises when a model changed without a migration
        migrate(engine)  # a second start finds nothing to do
    finally:
        engine.dispose()


def test_loan_with_schedule_and_payments_round_trips_uint96_amounts(sessions):
    ref = "0x" + "01" * 32
    with sessions.begin() as session:
        loan = _loan(principal_repaid=UINT96_MAX - 1)
        loan.schedule = [ScheduleRow(number=1, due_at=100, principal=2**70, interest=3),
                         ScheduleRow(number=2, due_at=200, principal=UINT96_MAX - 2**70, interest=0)]
        loan.payments = [Payment(payment_ref=ref, kind="disbursement", amount=UINT96_MAX, paid_at=99,
                                 tx_hash="0x" + "02" * 32, block_number=7, log_index=0)]
        session.add(loan)
    with sessions() as session:
        loan = session.get(Loan, 1)
        assert loan.principal == UINT96_MAX and type(loan.principal) is int
        assert loan.principal_repaid == UINT96_MAX - 1
        assert [(r.number, r.principal) for r in loan.schedule] == [(1, 2**70), (2, UINT96_MAX - 2**70)]
        assert sum(r.principal for r in loan.schedule) == loan.principal
        assert loan.payments[0].amount == UINT96_MAX
        # Ordering and comparison stay numeric (on SQLite the text is zero-padded for this).
        small = _loan(id=2, principal=9)
        session.add(small)
        session.flush()
        assert session.scalars(select(Loan.id).order_by(Loan.principal)).all() == [2, 1]
        assert session.scalars(select(Loan.id).where(Loan.principal > 10)).all() == [1]


def test_amounts_refuse_floats_and_negatives_and_store_nothing(sessions):
    for bad in (1.5, -1):
        with pytest.raises(Exception, match="minor units|out of range"), sessions.begin() as session:
            session.add(_loan(principal=bad))
    with sessions() as session:
        assert session.scalars(select(Loan)).all() == []


def test_event_unique_per_tx_and_log_index_and_json_args_keep_big_ints(sessions):
    args = {"loanId": 1, "amount": UINT96_MAX, "paymentRef": "0x" + "00" * 32, "terms": {"principal": 5}}
    row = {"contract": "LoanBook", "address": "0x" + "cd" * 20, "name": "RepaymentApplied", "args": args, "block_number": 3,
               "block_hash": "0x" + "aa" * 32, "block_time": 1, "tx_hash": "0x" + "bb" * 32, "log_index": 0, "loan_id": 1}
    with sessions.begin() as session:
        session.add(ChainEvent(**row))
    with sessions() as session:
        assert session.scalars(select(ChainEvent)).one().args == args
    with pytest.raises(Exception, match="(?i)unique|duplicate"), sessions.begin() as session:
        session.add(ChainEvent(**row))
    with sessions() as session:
        assert len(session.scalars(select(ChainEvent)).all()) == 1


def test_borrower_score_history(sessions):
    address = "0x" + "ef" * 20
    with sessions.begin() as session:
        session.add(Borrower(address=address, registered=True, identity_commitment="0x" + "11" * 32))
        for n, score in enumerate((600, 720)):
            session.add(ScoreRecord(borrower=address, score=score, credit_limit=UINT96_MAX, model_version=1,
                                    report_id=n + 1, block_time=n, block_number=n, tx_hash=f"0x{n:064x}", log_index=0))
    with sessions() as session:
        borrower = session.get(Borrower, address)
        assert [s.score for s in borrower.scores] == [600, 720]
        assert borrower.scores[-1].credit_limit == UINT96_MAX
