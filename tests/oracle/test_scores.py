"""Score batches: signed by the score signers (EIP-712), pushed by the oracle, replay-proof by report id."""

from __future__ import annotations

import pytest
from web3 import Web3
from web3.logs import DISCARD

from ledger import typed_data
from ledger.chain import ChainClient
from ledger.errors import ContractRevert
from oracle.scores import MAX_BATCH, ScorePusher, ScoreUpdate


@pytest.fixture
def client(w3, keys, stack) -> ChainClient:
    return ChainClient(w3, keys["oracle"], stack.errors)


@pytest.fixture
def pusher(stack, client, keys) -> ScorePusher:
    return ScorePusher(stack.oracle, client.transact, [keys["signer"]], model_version=3)


def score_of(stack, address: str) -> tuple:
    score, limit, updated_at, model_version, report_id = stack.oracle.functions.scoreOf(address).call()
    return score, limit, model_version, report_id


def test_a_batch_is_signed_pushed_and_visible(w3, stack, keys, pusher, driver):
    before = stack.oracle.functions.lastReportId().call()
    updates = [ScoreUpdate(keys["alice"].address, 712, 250_000), ScoreUpdate(keys["bob"].address, 540, 40_000)]
    (report,) = pusher.push(updates)
    assert (report.report_id, report.count) == (before + 1, 2)
    assert score_of(stack, keys["alice"].address) == (712, 250_000, 3, before + 1)
    assert score_of(stack, keys["bob"].address) == (540, 40_000, 3, before + 1)
    assert stack.oracle.functions.scoreOf(keys["alice"].address).call()[2] == driver.now
    assert stack.oracle.functions.isFresh(keys["alice"].address).call()
    # Submitted by the oracle, signed by the score signer: the event says so.
    receipt = w3.eth.get_transaction_receipt(report.tx_hash)
    assert receipt["from"] == keys["oracle"].address
    (accepted,) = stack.oracle.events.ScoreReportAccepted().process_receipt(receipt, errors=DISCARD)
    assert (accepted["args"]["reportId"], accepted["args"]["modelVersion"], accepted["args"]["count"]) == (
        before + 1, 3, 2)


def test_the_next_push_takes_the_next_report_id(stack, keys, pusher):
    first = pusher.push([ScoreUpdate(keys["carol"].address, 600, 10_000)])[0]
    second = pusher.push([ScoreUpdate(keys["carol"].address, 650, 20_000)])[0]
    assert second.report_id == first.report_id + 1
    assert score_of(stack, keys["carol"].address) == (650, 20_000, 3, second.report_id)


def test_a_replayed_report_is_refused_and_changes_nothing(stack, keys, client, pusher):
    (pushed,) = pusher.push([ScoreUpdate(keys["dave"].address, 700, 90_000)])
    entries = [(keys["dave"].address, 300, 1)]
    message = typed_data.score_report(chain_id=client.chain_id, oracle=stack.oracle.address, report_id=pushed.report_id,
                                      model_version=3, updates=entries)
    signature = typed_data.sign(keys["signer"].key, message)
    with pytest.raises(ContractRevert) as refused:
        client.transact(stack.oracle.functions.pushScores(pushed.report_id, 3, entries, [signature]))
    assert refused.value.name == "OracleStaleReport"
    assert score_of(stack, keys["dave"].address) == (700, 90_000, 3, pushed.report_id)


def test_a_pusher_that_lost_the_race_for_an_id_takes_the_next(stack, keys, client, pusher, driver):
    # Another process takes the id this pusher is about to use, between its read and its send.
    real_transact, raced = client.transact, []

    def transact(function):
        if not raced:
            raced.append(True)
            driver.score(keys["eve"], report_id=stack.oracle.functions.lastReportId().call() + 1)
        return real_transact(function)

    racing = ScorePusher(stack.oracle, transact, [keys["signer"]], model_version=3)
    (report,) = racing.push([ScoreUpdate(keys["alice"].address, 701, 5_000)])
    assert report.report_id == stack.oracle.functions.lastReportId().call()
    assert score_of(stack, keys["alice"].address) == (701, 5_000, 3, report.report_id)


def test_a_signature_from_someone_not_a_score_signer_is_refused(stack, keys, client):
    impostor = ScorePusher(stack.oracle, client.transact, [keys["eve"]], model_version=3)
    with pytest.raises(ContractRevert) as refused:
        impostor.push([ScoreUpdate(keys["alice"].address, 850, 10**9)])
    assert refused.value.name == "OracleInvalidSigner"
    assert score_of(stack, keys["alice"].address)[0] == 0


def test_big_batches_are_split_into_reports(stack, keys, pusher):
    borrowers = [f"0x{n:040x}" for n in range(1, MAX_BATCH + 6)]
    updates = [ScoreUpdate(Web3.to_checksum_address(b), 500 + n % 300, 1_000 * n) for n, b in enumerate(borrowers)]
    reports = pusher.push(updates)
    assert [r.count for r in reports] == [MAX_BATCH, 5]
    assert reports[1].report_id == reports[0].report_id + 1
    assert score_of(stack, updates[-1].borrower)[:2] == (updates[-1].score, updates[-1].credit_limit)


@pytest.mark.parametrize("bad", [ScoreUpdate("0x" + "11" * 20, 2**16, 1), ScoreUpdate("0x" + "11" * 20, 1, 2**96)])
def test_values_outside_the_contracts_types_are_refused_before_signing(pusher, bad):
    with pytest.raises(ValueError, match="out of the contract's range"):
        pusher.push([bad])
