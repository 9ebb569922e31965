"""One event the read model cannot take never stops the indexer: it is set aside once, the rest goes on.

The chain is real (anvil); the poison is made by teaching the loan projection to refuse one repayment, as a
projector bug or an event from a newer contract would: everything else about the round is the real code.
"""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import func, select

from ledger.indexer import Indexer
from ledger.store import projection
from ledger.store.models.chain import IndexerCursor, Loan, PoisonEvent

POISON = b"poison-repayment"


def _ref(raw: bytes) -> str:
    return "0x" + raw.ljust(32, b"\0").hex()


@pytest.fixture(params=["in_the_fold", "after_the_rows_are_written"])
def refuses_the_poison_repayment(request, monkeypatch):
    """The loan projection raises on the repayment whose reference is POISON, and only on it: either while
    replaying the events, or after the loan's row was already rewritten (the savepoint must undo that)."""
    if request.param == "in_the_fold":
        fold = projection.fold_loan

        def fold_refusing(events):
            events = list(events)
            for ev in events:
                if ev.name == "RepaymentApplied" and ev.args["paymentRef"] == _ref(POISON):
                    raise ValueError(f"cannot project repayment {ev.args['paymentRef']}")
            return fold(events)

        monkeypatch.setattr(projection, "fold_loan", fold_refusing)
    else:
        sync = projection._sync_payments

        def sync_refusing(row, state):
            sync(row, state)
            if any(p.reference == _ref(POISON) for p in state.payments):
                raise ValueError(f"cannot project repayment {_ref(POISON)}")

        monkeypatch.setattr(projection, "_sync_payments", sync_refusing)


def _poison(session) -> list[PoisonEvent]:
    return list(session.scalars(select(PoisonEvent)))


def _refs(session, loan_id: int) -> list[str]:
    return [p.payment_ref for p in session.get(Loan, loan_id).payments]


def test_a_poison_event_is_set_aside_once_and_the_rest_is_projected(
        w3, stack, keys, driver, sessions, clock, caplog, refuses_the_poison_repayment):
    alice_loan = driver.active_loan(keys["alice"])
    bob_loan = driver.active_loan(keys["bob"], ref=b"payout-2", report_id=2)
    driver.repay(alice_loan, 10_000, POISON)
    driver.repay(alice_loan, 20_000, b"after-the-poison")
    driver.repay(bob_loan, 30_000, b"bob-repayment")
    indexer = Indexer(w3, stack.manifest, sessions, batch_size=3, clock=clock)

    with caplog.at_level(logging.ERROR, logger="ledger.indexer"):
        report = indexer.run_once()

    assert report.poisoned == 1 and report.to_block == w3.eth.block_number
    assert any("poison event set aside" in r.message and r.levelno == logging.ERROR for r in caplog.records)
    with sessions() as session:
        assert session.get(IndexerCursor, "default").block_number == w3.eth.block_number
        [poison] = _poison(session)
        assert (poison.name, poison.loan_id, poison.error_type) == ("RepaymentApplied", alice_loan, "ValueError")
        assert "cannot project repayment" in poison.error and poison.first_seen == int(clock.now)
        assert poison.chain_id == w3.eth.chain_id and poison.contract == "LoanBook"
        # The events before and after it, on its own loan and on the others, are all in the read model.
        assert _refs(session, alice_loan) == [_ref(b"payout-1"), _ref(b"after-the-poison")]
        assert session.get(Loan, alice_loan).principal_repaid + session.get(Loan, alice_loan).interest_paid == 20_000
        assert _refs(session, bob_loan)[-1] == _ref(b"bob-repayment")

    # Later rounds, a restarted indexer, and a new event on the same loan: the poison is not counted again.
    clock.now += 60
    driver.repay(alice_loan, 5_000, b"later-repayment")
    assert indexer.run_once().poisoned == 0
    assert Indexer(w3, stack.manifest, sessions, clock=clock).run_once().poisoned == 0
    with sessions() as session:
        [poison] = _poison(session)
        assert poison.first_seen == int(clock.now) - 60
        assert _refs(session, alice_loan)[-1] == _ref(b"later-repayment")


def test_a_reorg_above_the_poison_keeps_one_record_and_a_reorg_below_drops_it(
        w3, stack, keys, driver, sessions, refuses_the_poison_repayment):
    loan_id = driver.active_loan(keys["alice"])
    before_poison = w3.provider.make_request("evm_snapshot", [])["result"]
    driver.repay(loan_id, 10_000, POISON)
    indexer = Indexer(w3, stack.manifest, sessions, batch_size=2)
    assert indexer.run_once().poisoned == 1

    # A reorg above the poison event rebuilds its loan from the stored events: the poison stays set aside, once.
    above = w3.provider.make_request("evm_snapshot", [])["result"]
    driver.repay(loan_id, 20_000, b"stale-repayment")
    indexer.run_once()
    assert w3.provider.make_request("evm_revert", [above])["result"] is True
    driver.repay(loan_id, 30_000, b"canonical-repayment")
    driver.advance(1)
    report = indexer.run_once()
    assert report.reorgs and report.poisoned == 0
    with sessions() as session:
        assert len(_poison(session)) == 1
        assert _refs(session, loan_id) == [_ref(b"payout-1"), _ref(b"canonical-repayment")]

    # A reorg below it: the chain no longer has the event, so nothing is set aside any more.
    assert w3.provider.make_request("evm_revert", [before_poison])["result"] is True
    driver.repay(loan_id, 40_000, b"instead-of-the-poison")
    driver.advance(1)
    driver.advance(1)
    driver.advance(1)
    report = indexer.run_once()
    assert report.reorgs and report.poisoned == 0
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(PoisonEvent)) == 0
        assert _refs(session, loan_id) == [_ref(b"payout-1"), _ref(b"instead-of-the-poison")]


def test_the_node_going_away_mid_projection_retries_the_round_and_sets_nothing_aside(
        w3, stack, keys, driver, sessions, monkeypatch):
    """Only an event's own failure is set aside: a node or database error still rolls the whole range back."""
    loan_id = driver.active_loan(keys["alice"])
    indexer = Indexer(w3, stack.manifest, sessions)
    fold = projection.fold_loan

    def node_gone(events):
        raise ConnectionError("the node went away")

    monkeypatch.setattr(projection, "fold_loan", node_gone)
    with pytest.raises(ConnectionError):
        indexer.run_once()
    with sessions() as session:
        assert _poison(session) == [] and session.get(Loan, loan_id) is None
        assert session.get(IndexerCursor, "default") is None  # the first range rolled back, cursor and all
    monkeypatch.setattr(projection, "fold_loan", fold)
    assert indexer.run_once().poisoned == 0
    with sessions() as session:
        assert session.get(Loan, loan_id).status == "Active"


def test_every_round_stamps_the_heartbeat_even_on_a_quiet_chain(w3, stack, sessions, clock):
    indexer = Indexer(w3, stack.manifest, sessions, clock=clock)
    indexer.run_once()
    with sessions() as session:
        assert session.get(IndexerCursor, "default").polled_at == int(clock.now)
    clock.now += 300  # no block in between: the cursor stays, the heartbeat moves
    block = w3.eth.block_number
    assert indexer.run_once().to_block == block
    with sessions() as session:
        cursor = session.get(IndexerCursor, "default")
        assert (cursor.block_number, cursor.polled_at) == (block, int(clock.now))


def test_loanledger_indexer_poison_lists_what_was_set_aside(w3, stack, keys, driver, tmp_path,
                                                            refuses_the_poison_repayment):
    from typer.testing import CliRunner

    from ledger import manifest as manifests
    from ledger.cli import app

    env = {"LOANLEDGER_HOME": str(tmp_path / "home"), "LOANLEDGER_DB_URL": f"sqlite:///{tmp_path / 'cli.db'}",
           "LOANLEDGER_NODE_URL": w3.provider.endpoint_uri,
           "LOANLEDGER_MANIFEST": str(manifests.save(stack.manifest, tmp_path / "local.json"))}
    runner = CliRunner()
    assert "no poison events" in runner.invoke(app, ["indexer", "poison"], env=env).output
    loan_id = driver.active_loan(keys["alice"])
    driver.repay(loan_id, 10_000, POISON)
    indexed = runner.invoke(app, ["index"], env=env)
    assert indexed.exit_code == 0 and "1 poison event(s) set aside" in indexed.output, indexed.output

    listed = runner.invoke(app, ["indexer", "poison", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    [row] = [json.loads(line) for line in listed.output.splitlines()]
    assert (row["name"], row["loan_id"], row["error_type"]) == ("RepaymentApplied", loan_id, "ValueError")
    table = " ".join(runner.invoke(app, ["indexer", "poison"], env=env).output.split())
    assert "1 poison event set aside" in table and "RepaymentApplied" in table


def test_a_borrower_event_that_cannot_be_projected_is_set_aside_too(w3, stack, keys, driver, sessions, monkeypatch):
    from ledger.store.models.chain import Borrower

    rebuild = projection.rebuild_borrower

    def rebuild_refusing_score_650(session, address, *, skip=()):
        if any(e.name == "ScoreUpdated" and e.args["score"] == 650
               for e in projection.without(projection.borrower_events(session, address), skip)):
            raise KeyError("creditLimit")
        return rebuild(session, address, skip=skip)

    monkeypatch.setattr(projection, "rebuild_borrower", rebuild_refusing_score_650)
    bob, carol = keys["bob"], keys["carol"]
    driver.register(bob)
    driver.score(bob, score=650, report_id=1)
    driver.register(carol)
    driver.score(carol, score=700, report_id=2)
    assert Indexer(w3, stack.manifest, sessions).run_once().poisoned == 1
    with sessions() as session:
        [poison] = _poison(session)
        assert (poison.name, poison.borrower, poison.error_type) == ("ScoreUpdated", bob.address, "KeyError")
        assert session.get(Borrower, bob.address).registered and session.get(Borrower, bob.address).score is None
        assert session.get(Borrower, carol.address).score == 700


def test_a_skipped_batch_item_naming_loan_2_256_minus_1_does_not_stop_the_indexer(w3, stack, keys, driver, sessions):
    """A real event: the book answers PaymentSkipped for a loan id no column holds. Storing it used to fail the
    range (SQLite: OverflowError, PostgreSQL: bigint out of range) every round, so nothing after it was indexed."""
    from ledger.store.models.chain import ChainEvent
    from ledger.verify import index_vs_chain

    loan_id = driver.active_loan(keys["alice"])
    huge = 2**256 - 1
    driver.send(stack.book.functions.confirmRepayments([(huge, b"\x02" * 32, 5_000, driver.now)]), keys["oracle"])
    driver.repay(loan_id, 10_000, b"after-the-huge-id")

    report = Indexer(w3, stack.manifest, sessions).run_once()

    assert report.to_block == w3.eth.block_number and report.poisoned == 0
    with sessions() as session:
        skipped = session.scalars(select(ChainEvent).where(ChainEvent.name == "PaymentSkipped")).one()
        assert skipped.args["loanId"] == huge and skipped.loan_id is None  # kept whole, filed under no loan
        assert _refs(session, loan_id)[-1] == _ref(b"after-the-huge-id")
        # and the audit of the index against the node agrees with how it was filed
        assert index_vs_chain(w3, stack.manifest, session).ok
