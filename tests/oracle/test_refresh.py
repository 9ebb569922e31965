"""Scores pushed for new borrowers and re-pushed when their loans move; limits follow behaviour."""

from __future__ import annotations

import pytest

from ledger.chain import ChainClient
from ledger.indexer import Indexer
from ledger.store import open_store
from oracle.bureau.source import LocalBureau
from oracle.refresh import ScoreRefresher
from oracle.scores import ScorePusher
from oracle.scoring.limits import RepaymentHistory, credit_limit
from oracle.scoring.scorecard import load_scorecard

DAY = 86_400


@pytest.fixture
def setup(w3, stack, keys, tmp_path):
    sessions = open_store(f"sqlite:///{tmp_path / 'refresh.db'}")
    indexer = Indexer(w3, stack.manifest, sessions)
    scorecard = load_scorecard()
    pusher = ScorePusher(stack.oracle, ChainClient(w3, keys["oracle"], stack.errors).transact, [keys["signer"]],
                         scorecard.version)
    bureau = LocalBureau()
    refresher = ScoreRefresher(sessions, bureau, scorecard, pusher,
                               chain_time=lambda: w3.eth.get_block("latest")["timestamp"])
    return indexer, refresher, bureau, scorecard


def test_a_new_borrower_is_scored_once_from_the_bureau(w3, stack, keys, driver, setup):
    indexer, refresher, bureau, scorecard = setup
    alice = keys["alice"].address
    driver.register(keys["alice"])
    indexer.run_once()
    assert refresher.due() == [alice]
    report = refresher.run_once()
    assert report.pushed == 1
    expected_score = scorecard.score(bureau.report(alice).attributes).score
    score, limit, _, version, _ = stack.oracle.functions.scoreOf(alice).call()
    assert (score, version) == (expected_score, scorecard.version)
    assert limit == credit_limit(expected_score, 800_000, RepaymentHistory())
    indexer.run_once()
    assert refresher.due() == [] and refresher.run_once().pushed == 0


def test_a_late_installment_lowers_the_limit(w3, stack, keys, driver, setup, loan_terms):
    indexer, refresher, bureau, _ = setup
    bob = keys["bob"]
    bureau.assign(bob.address, 0)
    driver.register(bob)
    indexer.run_once()
    refresher.run_once()
    indexer.run_once()
    first_limit = stack.oracle.functions.scoreOf(bob.address).call()[1]
    assert first_limit > 0
    loan_id = driver.request(bob, loan_terms)
    driver.approve(loan_id)
    driver.disburse(loan_id, loan_terms.principal, b"payout-bob")
    driver.advance(40 * DAY)  # the first installment is paid ten days late
    driver.repay(loan_id, 45_000, b"late-bob")
    indexer.run_once()
    assert refresher.due() == [bob.address]
    refresher.run_once()
    assert stack.oracle.functions.scoreOf(bob.address).call()[1] < first_limit


def test_a_revoked_borrower_is_not_scored(w3, stack, keys, driver, setup):
    indexer, refresher, _, _ = setup
    driver.register(keys["carol"])
    stack.registry.functions.revokeBorrower(keys["carol"].address, b"\x01" * 32).transact(
        {"from": keys["operator"].address})
    indexer.run_once()
    assert refresher.due() == []
