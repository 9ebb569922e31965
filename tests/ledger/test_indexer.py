"""The indexer on a real anvil: a loan's life into the read model, restarts, and reorgs."""

from __future__ import annotations

from sqlalchemy import func, select

from ledger.book import LoanStatus
from ledger.indexer import Indexer
from ledger.store.codec import to_json
from ledger.store.models.chain import Borrower, ChainEvent, IndexerCursor, Loan, Payment, ScoreRecord
from ledger.store.projection import progress_json

DAY = 86_400


def _views(stack, loan_id: int) -> tuple[dict, dict, list[dict]]:
    book = stack.book
    abi = {f["name"]: f for f in book.abi if f.get("type") == "function"}
    terms, borrower, status, disbursed_at = book.functions.loanOf(loan_id).call()
    progress = to_json(book.functions.progressOf(loan_id).call(), abi["progressOf"]["outputs"][0])
    schedule = to_json(book.functions.schedule(loan_id).call(), abi["schedule"]["outputs"][0])
    loan = {"borrower": borrower, "status": LoanStatus(status).solidity_name, "disbursed_at": disbursed_at,
            "principal": terms[0]}
    return loan, progress, schedule


def _assert_read_model_matches_chain(session, stack, loan_id: int) -> Loan:
    loan, progress, schedule = _views(stack, loan_id)
    row = session.get(Loan, loan_id)
    assert (row.borrower, row.status, row.disbursed_at, row.principal) == (
        loan["borrower"], loan["status"], loan["disbursed_at"], loan["principal"])
    assert progress_json(row) == progress
    assert [{"dueAt": r.due_at, "principal": r.principal, "interest": r.interest} for r in row.schedule] == schedule
    return row


def test_lifecycle_with_late_repayment_and_payoff_matches_the_contract_views(w3, stack, keys, driver, sessions, loan_terms):
    alice = keys["alice"]
    indexer = Indexer(w3, stack.manifest, sessions, batch_size=7)
    loan_id = driver.active_loan(alice)
    indexer.run_once()
    with sessions() as session:
        row = _assert_read_model_matches_chain(session, stack, loan_id)
        assert row.status == "Active" and row.next_due_at == row.disbursed_at + 30 * DAY
        assert len(row.schedule) == 3 and sum(r.principal for r in row.schedule) == loan_terms.principal
        assert [p.kind for p in row.payments] == ["disbursement"]
        borrower = session.get(Borrower, alice.address)
        assert borrower.registered and borrower.identity_commitment == "0x" + "11" * 32
        assert borrower.score == 700 and [s.credit_limit for s in borrower.scores] == [1_000_000]

    # First installment paid on its due date (a day early, its full amount would pay it and prepay the interest not
    # yet accrued as principal, re-basing the schedule); then silence until 12 days after the second due date (9 days after its 3-day grace): late fee
    # and penalty are owed.
    first = stack.book.functions.schedule(loan_id).call()[0]
    driver.advance(first[0] - driver.now)
    driver.repay(loan_id, first[1] + first[2], b"repay-1")
    driver.advance(30 * DAY + 12 * DAY)
    indexer.run_once()
    with sessions() as session:
        row = _assert_read_model_matches_chain(session, stack, loan_id)
        assert row.paid_installments == 1 and row.days_past_due == 12
        late_fee_due = stack.book.functions.amountDue(loan_id, driver.now).call()[2]
        assert late_fee_due > 0 and row.late_fee_unpaid == 0  # nothing accrued on-chain until a confirmation

    driver.repay(loan_id, driver.payoff(loan_id) - 1_000, b"repay-2")
    driver.repay(loan_id, driver.payoff(loan_id), b"repay-3")
    report = indexer.run_once()
    assert report.events >= 4
    with sessions() as session:
        row = _assert_read_model_matches_chain(session, stack, loan_id)
        assert row.status == "Repaid" and row.next_due_at is None and row.days_past_due == 0
        assert row.late_fee_paid > 0 and row.penalty_paid > 0 and row.principal_repaid == loan_terms.principal
        payments = row.payments
        assert [p.kind for p in payments] == ["disbursement", "repayment", "repayment", "repayment"]
        repaid = payments[1:]
        # Every unit of every repayment is allocated somewhere, and nothing twice.
        assert all(p.amount == p.principal + p.interest + p.late_fee + p.penalty for p in repaid)
        assert sum(p.principal for p in repaid) == loan_terms.principal
        assert sum(p.interest for p in repaid) == row.interest_paid
        names = session.scalars(select(ChainEvent.name).where(ChainEvent.loan_id == loan_id)
                                .order_by(ChainEvent.block_number, ChainEvent.log_index)).all()
        # repay-2 pays the charges and the overdue installment, and the rest is part of the third, ahead of its date
        # (short of covering it: nothing is re-based).
        assert names == ["LoanRequested", "LoanApproved", "LoanDisbursed", "RepaymentApplied", "LateChargesAccrued",
                         "RepaymentApplied", "RepaymentApplied", "LoanRepaid"]


def test_loan_status_enum_matches_the_contract(w3, stack, keys, driver, sessions):
    bob = keys["bob"]
    driver.register(bob)
    loan_id = driver.request(bob)
    assert LoanStatus(stack.book.functions.loanOf(loan_id).call()[2]) is LoanStatus.REQUESTED
    Indexer(w3, stack.manifest, sessions).run_once()
    with sessions() as session:
        row = _assert_read_model_matches_chain(session, stack, loan_id)
        assert row.status == "Requested" and row.schedule[0].due_at == 30 * DAY  # relative before disbursement
    send_cancel = stack.book.functions.cancel(loan_id).transact({"from": bob.address})
    w3.eth.wait_for_transaction_receipt(send_cancel)
    assert LoanStatus(stack.book.functions.loanOf(loan_id).call()[2]) is LoanStatus.CANCELLED
    Indexer(w3, stack.manifest, sessions).run_once()
    with sessions() as session:
        assert session.get(Loan, loan_id).status == "Cancelled"


def test_restart_resumes_from_the_cursor_and_reads_only_new_blocks(w3, stack, keys, driver, sessions):
    alice = keys["alice"]
    loan_id = driver.active_loan(alice)
    first = Indexer(w3, stack.manifest, sessions).run_once()
    assert first.from_block == stack.manifest.start_block and first.to_block == w3.eth.block_number
    with sessions() as session:
        stored = session.scalar(select(func.count()).select_from(ChainEvent))

    driver.repay(loan_id, 10_000, b"repay-1")
    restarted = Indexer(w3, stack.manifest, sessions)  # a new process: only the cursor carries over
    report = restarted.run_once()
    assert report.from_block == first.to_block + 1 and report.to_block == w3.eth.block_number
    # One RepaymentApplied (part of the first installment, ahead of its date: nothing re-based); nothing from before
    # is read again
    assert report.events == 1
    assert restarted.run_once().events == 0
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(ChainEvent)) == stored + 1
        assert session.get(IndexerCursor, "default").block_number == w3.eth.block_number
        _assert_read_model_matches_chain(session, stack, loan_id)


def test_reorg_replaces_stale_rows_and_rebuilds_the_read_model(w3, stack, keys, driver, sessions):
    alice, bob = keys["alice"], keys["bob"]
    loan_id = driver.active_loan(alice)
    indexer = Indexer(w3, stack.manifest, sessions, batch_size=3)
    indexer.run_once()
    fork_point = w3.eth.block_number

    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    driver.repay(loan_id, 20_000, b"stale-repayment")
    driver.register(bob)
    driver.score(bob, score=650, limit=5_000, report_id=2)
    indexer.run_once()
    with sessions() as session:
        assert session.get(Payment, "0x" + b"stale-repayment".ljust(32, b"\0").hex()) is not None
        assert session.get(Borrower, bob.address) is not None

    # The node drops those blocks and mines different ones at the same heights (and more).
    assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True
    driver.repay(loan_id, 30_000, b"canonical-repayment")
    driver.advance(DAY)
    driver.advance(DAY)
    report = indexer.run_once()
    assert report.reorgs and report.reorgs[0] <= fork_point
    with sessions() as session:
        refs = {p.payment_ref for p in session.scalars(select(Payment))}
        assert "0x" + b"stale-repayment".ljust(32, b"\0").hex() not in refs
        assert "0x" + b"canonical-repayment".ljust(32, b"\0").hex() in refs
        assert session.get(Borrower, bob.address) is None
        assert session.scalars(select(ScoreRecord).where(ScoreRecord.borrower == bob.address)).all() == []
        row = _assert_read_model_matches_chain(session, stack, loan_id)
        assert row.principal_repaid + row.interest_paid == 30_000
        on_chain = {(e.block_number, e.block_hash) for e in session.scalars(select(ChainEvent))}
        assert all("0x" + w3.eth.get_block(n)["hash"].hex().removeprefix("0x") == h for n, h in on_chain)


def test_follow_picks_up_new_blocks_until_stopped(w3, stack, keys, driver, sessions):
    import threading

    indexer = Indexer(w3, stack.manifest, sessions)
    driver.register(keys["bob"])
    stop, rounds = threading.Event(), []

    # The loop runs in this thread; between its rounds a new loan is requested, and once the
    # store has it the loop is told to stop (bounded: at most 50 rounds).
    driver.product()  # published before: the loop then sees the application alone

    def on_report(report):
        rounds.append(report)
        if len(rounds) == 1:
            driver.request(keys["bob"])
        with sessions() as session:
            if session.get(Loan, 1) is not None or len(rounds) >= 50:
                stop.set()

    indexer.follow(0.01, stop=stop, on_report=on_report)
    with sessions() as session:
        assert session.get(Loan, 1).status == "Requested"
    assert rounds[0].events > 0  # deployment and registration
    assert sum(r.events for r in rounds[1:]) == 1  # then LoanRequested, read once


def _count_schedule_reads(indexer: Indexer) -> list[int]:
    """Every schedule read (`schedule` or `quote`) the indexer makes from now on, as the loans' principals."""
    calls: list[int] = []
    read = indexer.read_schedule

    def counted(loan_id: int, terms: dict, disbursed: bool) -> list[dict[str, int]]:
        calls.append(terms["principal"])
        return read(loan_id, terms, disbursed)

    indexer.read_schedule = counted  # type: ignore[method-assign]
    return calls


def test_a_batch_item_for_an_unknown_loan_does_not_stop_the_indexer(w3, stack, keys, driver, sessions):
    """The oracle's batch names loan 999, which was never requested: the book answers PaymentSkipped(999),
    `schedule(999)` would revert, and the indexer must go on past it to what comes next."""
    alice = keys["alice"]
    loan_id = driver.active_loan(alice)
    indexer = Indexer(w3, stack.manifest, sessions)
    indexer.run_once()
    ghost_ref = b"ghost-repayment".ljust(32, b"\0")
    receipt = driver.send(stack.book.functions.confirmRepayments([(999, ghost_ref, 5_000, driver.now)]), keys["oracle"])
    assert [e["args"]["loanId"] for e in stack.book.events.PaymentSkipped().process_receipt(receipt)] == [999]
    driver.repay(loan_id, 10_000, b"after-the-ghost")

    report = indexer.run_once()  # used to raise: schedule(999) reverted, and follow() retried it forever

    # PaymentSkipped, then RepaymentApplied (part of the first installment, ahead of its date: nothing re-based)
    assert report.to_block == w3.eth.block_number and report.events == 2
    with sessions() as session:
        assert session.get(IndexerCursor, "default").block_number == w3.eth.block_number
        skipped = session.scalars(select(ChainEvent).where(ChainEvent.name == "PaymentSkipped")).one()
        assert skipped.loan_id == 999 and session.get(Loan, 999) is None
        row = _assert_read_model_matches_chain(session, stack, loan_id)
        assert [p.payment_ref for p in row.payments][-1] == "0x" + b"after-the-ghost".ljust(32, b"\0").hex()


def test_follow_keeps_advancing_past_an_unknown_loan(w3, stack, keys, driver, sessions):
    import threading

    driver.send(stack.book.functions.confirmRepayments([(999, b"\x01" * 32, 5_000, driver.now)]), keys["oracle"])
    indexer = Indexer(w3, stack.manifest, sessions)
    stop, rounds = threading.Event(), []

    def on_report(report):
        rounds.append(report)
        if len(rounds) == 1:
            driver.register(keys["bob"])  # an ordinary event after the skipped item
        with sessions() as session:
            if session.get(Borrower, keys["bob"].address) is not None or len(rounds) >= 50:
                stop.set()

    deadline = threading.Timer(30, stop.set)  # a round that fails never reports: bound the wait anyway
    deadline.start()
    try:
        indexer.follow(0.01, stop=stop, on_report=on_report)
    finally:
        deadline.cancel()
    assert rounds, "no indexing round succeeded"
    with sessions() as session:
        assert session.get(Borrower, keys["bob"].address).registered
        assert session.get(IndexerCursor, "default").block_number == w3.eth.block_number


def test_schedules_are_read_only_when_they_can_have_changed(w3, stack, keys, driver, sessions, loan_terms):
    alice = keys["alice"]
    indexer = Indexer(w3, stack.manifest, sessions)
    calls = _count_schedule_reads(indexer)
    loan_id = driver.active_loan(alice)
    indexer.run_once()
    # Requested and disbursed in one range: one read of the terms' quote, shifted to the disbursement.
    assert calls == [loan_terms.principal]
    with sessions() as session:
        _assert_read_model_matches_chain(session, stack, loan_id)

    calls.clear()
    driver.advance(30 * DAY)  # on the first due date: these pay what is due, nothing ahead of schedule
    driver.repay(loan_id, 10_000, b"repay-1")
    driver.repay(loan_id, 20_000, b"repay-2")
    assert indexer.run_once().events == 2
    assert calls == []  # repayments of what is due leave the schedule as it is
    with sessions() as session:
        row = _assert_read_model_matches_chain(session, stack, loan_id)
        assert row.next_due_at == row.schedule[row.paid_installments].due_at

    # Beyond the second installment (what is left of the first, all of the second, and more): early repayment
    # re-bases the schedule (ScheduleRebased), read once.
    driver.repay(loan_id, 60_000, b"repay-3")
    assert indexer.run_once().events == 2
    assert calls == [loan_terms.principal]
    with sessions() as session:
        _assert_read_model_matches_chain(session, stack, loan_id)


def test_a_loan_disbursed_in_a_later_range_gets_its_absolute_schedule(w3, stack, keys, driver, sessions):
    indexer = Indexer(w3, stack.manifest, sessions)
    loan_id = driver.approved_loan(keys["alice"])
    indexer.run_once()
    with sessions() as session:
        row = _assert_read_model_matches_chain(session, stack, loan_id)
        assert row.status == "Approved" and row.schedule[0].due_at == 30 * DAY  # relative until disbursed
    driver.advance(5 * DAY)
    driver.disburse(loan_id, 120_000, b"payout-later")
    indexer.run_once()
    with sessions() as session:
        row = _assert_read_model_matches_chain(session, stack, loan_id)
        assert row.status == "Active" and row.schedule[0].due_at == row.disbursed_at + 30 * DAY
