"""The score quorum with real signer processes (`loanledger oracle signer`) on the session's node: 2 of 3
signatures land a report; fewer, duplicated, or over other scores are refused; a signer whose bureau says
otherwise refuses to sign; signers killed with SIGKILL leave a quorum or set the report aside, and the
refresher goes on."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import keccak
from sqlalchemy import select

from ledger import manifest as manifests
from ledger import typed_data
from ledger.chain import ChainClient
from ledger.indexer import Indexer
from ledger.store import open_store
from ledger.store.models.score_quorum import ScoreProposal, ScoreSignature
from oracle.bureau.source import LocalBureau
from oracle.bureau.standin import create_app
from oracle.quorum import SET_ASIDE, SUBMITTED, QuorumPusher, failing
from oracle.refresh import ScoreRefresher
from oracle.scoring.scorecard import load_scorecard

LOANLEDGER = str(Path(sys.executable).with_name("loanledger"))
BUREAU_KEY = "quorum-test-bureau-key"
SIGNERS = [Account.from_key(keccak(text=f"loanledger test score signer {n}")) for n in (1, 2, 3)]
TIMEOUT = 4.0  # seconds a proposal waits for its quorum


@pytest.fixture
def quorum(w3, stack, keys):
    """Three score signers (SCORE_SIGNER_ROLE) and a threshold of two, as the local deployment has."""
    oracle, admin = stack.oracle, keys["admin"].address
    role = oracle.functions.SCORE_SIGNER_ROLE().call()
    for signer in SIGNERS:
        w3.eth.wait_for_transaction_receipt(oracle.functions.grantRole(role, signer.address).transact({"from": admin}))
    w3.eth.wait_for_transaction_receipt(oracle.functions.setSignerThreshold(2).transact({"from": admin}))
    return SIGNERS


@pytest.fixture
def bureau(serve_app):
    local = LocalBureau()
    with serve_app(create_app(local, BUREAU_KEY)) as url:
        yield local, url


class Signers:
    """The signer processes of one test, each with its own key (and, if given, its own bureau)."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env, self.logs, self.processes = env, logs, {}

    def start(self, n: int, bureau_url: str | None = None) -> None:
        log = self.logs / f"signer-{n}.log"
        line = f"score signer score_signer_{n} ("
        before = log.read_text().count(line) if log.exists() else 0  # a restarted signer appends to its log
        env = {**self.env, f"LOANLEDGER_SCORE_SIGNER_{n}_KEY": SIGNERS[n - 1].key.hex()}
        with log.open("ab") as out:
            self.processes[n] = subprocess.Popen(
                [LOANLEDGER, "oracle", "signer", "--name", f"score_signer_{n}", "--interval", "0.1",
                 *(["--bureau-url", bureau_url] if bureau_url else [])],
                env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while log.read_text().count(line) == before:
            assert self.processes[n].poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"signer {n} did not start: {log.read_text()[-3000:]}"
            time.sleep(0.1)

    def kill(self, n: int) -> None:
        self.processes[n].send_signal(signal.SIGKILL)
        self.processes[n].wait(timeout=10)

    def log(self, n: int) -> str:
        return (self.logs / f"signer-{n}.log").read_text()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=15)


@pytest.fixture
def setup(w3, stack, keys, quorum, bureau, tmp_path):
    _, bureau_url = bureau
    db_url = f"sqlite:///{tmp_path / 'quorum.db'}"
    sessions = open_store(db_url)
    env = {**os.environ, "LOANLEDGER_HOME": str(tmp_path / "home"), "LOANLEDGER_NODE_URL": w3.provider.endpoint_uri,
           "LOANLEDGER_MANIFEST": str(manifests.save(stack.manifest, tmp_path / "local.json")),
           "LOANLEDGER_DB_URL": db_url, "LOANLEDGER_BUREAU_URL": bureau_url, "LOANLEDGER_BUREAU_API_KEY": BUREAU_KEY}
    signers = Signers(env, tmp_path)
    scorecard = load_scorecard()
    pusher = QuorumPusher(stack.oracle, ChainClient(w3, keys["oracle"], stack.errors).transact, sessions,
                          scorecard.version, timeout=TIMEOUT, signers=len(SIGNERS))
    refresher = ScoreRefresher(sessions, LocalBureau(), scorecard, pusher,
                               chain_time=lambda: w3.eth.get_block("latest")["timestamp"])
    indexer = Indexer(w3, stack.manifest, sessions)
    try:
        yield signers, refresher, indexer, sessions
    finally:
        signers.stop()
        sessions.kw["bind"].dispose()


def proposals(sessions) -> list[ScoreProposal]:
    with sessions() as session:
        return list(session.scalars(select(ScoreProposal).order_by(ScoreProposal.id)))


def answers(sessions, proposal_id: int) -> dict[str, ScoreSignature]:
    with sessions() as session:
        rows = session.scalars(select(ScoreSignature).where(ScoreSignature.proposal_id == proposal_id))
        return {row.signer: row for row in rows}


def scored(stack, borrower) -> tuple[int, int]:
    return tuple(stack.oracle.functions.scoreOf(borrower.address).call()[:2])


def test_two_of_three_signers_land_the_report_signed_over_what_each_computed(stack, keys, driver, setup):
    signers, refresher, indexer, sessions = setup
    for n in (1, 2, 3):
        signers.start(n)
    driver.register(keys["alice"])
    indexer.run_once()
    expected = refresher.update_for(keys["alice"].address)
    report = refresher.run_once()
    assert report.pushed == 1 and report.failed == {}
    assert scored(stack, keys["alice"]) == (expected.score, expected.credit_limit)
    (proposal,) = proposals(sessions)
    assert proposal.state == SUBMITTED and proposal.threshold == 2 and proposal.tx_hash
    # The transaction carries exactly the threshold's signatures, from distinct signers in ascending order.
    tx = stack.oracle.w3.eth.get_transaction(proposal.tx_hash)
    _, args = stack.oracle.decode_function_input(tx["input"])
    digest = bytes.fromhex(proposal.digest[2:])
    used = [Account._recover_hash(digest, signature=s) for s in args["signatures"]]
    assert len(used) == 2 and used == sorted(used, key=lambda a: int(a, 16))
    assert set(used) <= {s.address for s in SIGNERS}
    assert tx["from"] == keys["oracle"].address
    # The oracle holds no signer key: every signature came from a signer process's own row.
    signed = {a for a, row in answers(sessions, proposal.id).items() if row.verdict == "signed"}
    assert set(used) <= signed


def test_one_duplicated_or_mismatched_signatures_are_refused_by_the_contract(w3, stack, keys, quorum, revert_name):
    oracle, alice = keys["oracle"].address, keys["alice"].address
    report_id = stack.oracle.functions.lastReportId().call() + 1
    entries = [(alice, 700, 100_000)]

    def signed(signer, values):
        message = typed_data.score_report(chain_id=w3.eth.chain_id, oracle=stack.oracle.address, report_id=report_id,
                                          model_version=1, updates=values)
        return typed_data.sign(signer.key, message)

    first, second = sorted(quorum[:2], key=lambda a: int(a.address, 16))
    push = stack.oracle.functions.pushScores
    assert revert_name(push(report_id, 1, entries, [signed(first, entries)]), oracle) == "OracleInsufficientSignatures"
    assert revert_name(push(report_id, 1, entries, [signed(first, entries)] * 2), oracle) == "OracleInvalidSigner"
    # The second signer signed other scores for the same report: its signature does not count for these.
    other = [(alice, 800, 900_000)]
    assert revert_name(push(report_id, 1, entries, [signed(first, entries), signed(second, other)]),
                       oracle) == "OracleInvalidSigner"
    w3.eth.wait_for_transaction_receipt(
        push(report_id, 1, entries, [signed(first, entries), signed(second, entries)]).transact({"from": oracle}))
    assert scored(stack, keys["alice"]) == (700, 100_000)


def test_a_signer_whose_bureau_differs_refuses_and_the_others_go_on_without_that_borrower(
        stack, keys, driver, setup, serve_app, caplog):
    signers, refresher, indexer, sessions = setup
    alice, bob = keys["alice"].address, keys["bob"].address
    scorecard = load_scorecard()
    # Signer 3's bureau has another record for alice (a different applicant): it scores her differently.
    usual = refresher.update_for(alice)
    other = LocalBureau()
    index = next(i for i in range(len(other.applicants))
                 if scorecard.score(other.applicants[i]).score != usual.score)
    other.assign(alice, index)
    with serve_app(create_app(other, BUREAU_KEY)) as other_url:
        signers.start(1)
        signers.start(2, bureau_url=other_url)
        signers.start(3, bureau_url=other_url)
        driver.register(keys["alice"])
        driver.register(keys["bob"])
        indexer.run_once()
        with caplog.at_level(logging.ERROR, logger="oracle.quorum"):
            report = refresher.run_once()
    # Alice's values have one matching signature: her report is set aside, with signer 3's reason on record.
    assert alice in report.failed and "refused" in report.failed[alice]
    assert scored(stack, keys["alice"]) == (0, 0)
    first, second = proposals(sessions)
    # Set aside as soon as two refusals make the threshold unreachable: signer 1's signature may not be in yet.
    assert first.state == SET_ASIDE and re.search(r"[01] matching signature\(s\) of the 2 needed", first.reason)
    # Two of three refused: the threshold could not be met, so the proposal was not waited for to its deadline.
    assert first.decided_at - first.created_at < TIMEOUT
    assert answers(sessions, first.id)[SIGNERS[1].address].verdict == "refused"
    refusal = answers(sessions, first.id)[SIGNERS[2].address]
    assert refusal.verdict == "refused" and refusal.signature is None
    assert f"{alice}: proposed score {usual.score}" in refusal.reason and json.loads(refusal.disputed) == [alice]
    assert "refused report" in signers.log(3)
    assert any("set aside" in r.getMessage() for r in caplog.records)
    # Bob's scores were proposed again without alice, and the signers signed them.
    assert second.state == SUBMITTED and [e[0] for e in json.loads(second.entries)] == [bob]
    assert report.pushed == 1 and scored(stack, keys["bob"])[0] > 0


def test_one_signer_killed_the_other_two_still_reach_the_quorum(stack, keys, driver, setup):
    signers, refresher, indexer, sessions = setup
    for n in (1, 2, 3):
        signers.start(n)
    signers.kill(2)
    driver.register(keys["carol"])
    indexer.run_once()
    report = refresher.run_once()
    assert report.pushed == 1 and report.failed == {}
    (proposal,) = proposals(sessions)
    assert proposal.state == SUBMITTED
    assert set(answers(sessions, proposal.id)) == {SIGNERS[0].address, SIGNERS[2].address}


def test_two_signers_killed_the_report_is_set_aside_and_the_refresher_keeps_going(stack, keys, driver, setup, caplog):
    signers, refresher, indexer, sessions = setup
    for n in (1, 2, 3):
        signers.start(n)
    signers.kill(1)
    signers.kill(3)
    driver.register(keys["dave"])
    indexer.run_once()
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="oracle.quorum"):
        report = refresher.run_once()
    assert time.monotonic() - started < TIMEOUT + 5  # waited for the quorum's deadline, not forever
    assert report.pushed == 0 and "1 matching signature(s) of the 2 needed" in report.failed[keys["dave"].address]
    assert scored(stack, keys["dave"]) == (0, 0)
    (proposal,) = proposals(sessions)
    assert proposal.state == SET_ASIDE
    assert [r for r in caplog.records if r.levelno == logging.ERROR and "set aside" in r.getMessage()]
    assert failing(sessions) == 1  # what /metrics and /healthz alert on
    # Still due, and proposed again next round: a signer back makes the quorum.
    assert refresher.due() == [keys["dave"].address]
    signers.start(3)
    report = refresher.run_once()
    assert report.pushed == 1 and scored(stack, keys["dave"])[0] > 0, (report, signers.log(3)[-3000:])
    assert failing(sessions) == 0


def test_signatures_in_the_store_are_checked_not_trusted(w3, stack, keys, quorum, tmp_path):
    """Rows anyone with the store could write count only when they are a score signer's signature over this
    report's values: a stranger's, one over other scores, one claiming another signer's name do not."""
    from ledger.store.models.score_quorum import ScoreSignature as Row
    from oracle.quorum import ScoreSigner
    from oracle.scores import ScoreUpdate

    sessions = open_store(f"sqlite:///{tmp_path / 'forged.db'}")
    alice = keys["alice"].address
    values = {"honest": (alice, 700, 100_000), "other": (alice, 800, 900_000)}

    class Fixed:  # a signer's own scores, without a bureau
        def __init__(self, entry):
            self.entry = entry

        def update_for(self, address):
            return ScoreUpdate(*self.entry)

    def message(proposal, entry):
        return typed_data.score_report(chain_id=w3.eth.chain_id, oracle=stack.oracle.address,
                                       report_id=proposal.report_id, model_version=1, updates=[entry])

    def forge(_seconds):
        (proposal,) = [p for p in proposals(sessions) if p.state == "open"]
        stranger = Account.create()
        rows = [(stranger.address, typed_data.sign(stranger.key, message(proposal, values["honest"]))),
                (quorum[0].address, typed_data.sign(quorum[0].key, message(proposal, values["other"]))),
                (quorum[1].address, typed_data.sign(quorum[2].key, message(proposal, values["honest"])))]
        with sessions.begin() as session:
            for n, (signer, signature) in enumerate(rows):
                if not session.scalars(select(Row).where(Row.proposal_id == proposal.id, Row.signer == signer)).first():
                    session.add(Row(proposal_id=proposal.id, signer=signer, name=f"forged-{n}", verdict="signed",
                                    signature="0x" + signature.hex(), created_at=0))
        time.sleep(0.05)

    client = ChainClient(w3, keys["oracle"], stack.errors)
    pusher = QuorumPusher(stack.oracle, client.transact, sessions, 1, timeout=1.0, sleep=forge)
    assert pusher.push([ScoreUpdate(*values["honest"])]) == []
    assert "0 matching signature(s) of the 2 needed" in pusher.set_aside[alice]
    assert scored(stack, keys["alice"]) == (0, 0)

    # Signers that computed the same values sign them; one that computed others refuses and says why.
    def answer(_seconds):
        open_ = [p for p in proposals(sessions) if p.state == "open"]
        for n, entry in ((0, values["honest"]), (1, values["other"]), (2, values["honest"])):
            signer = ScoreSigner(f"score_signer_{n + 1}", quorum[n], sessions, Fixed(entry), chain_id=w3.eth.chain_id,
                                 oracle=stack.oracle.address, model_version=1)
            assert signer.run_once() == len(open_)
        time.sleep(0.05)

    pusher = QuorumPusher(stack.oracle, client.transact, sessions, 1, timeout=5.0, sleep=answer)
    assert len(pusher.push([ScoreUpdate(*values["honest"])])) == 1
    assert scored(stack, keys["alice"]) == (700, 100_000)
    refused = answers(sessions, proposals(sessions)[-1].id)[quorum[1].address]
    assert refused.verdict == "refused" and "proposed score 700 limit 100000, computed score 800" in refused.reason
    sessions.kw["bind"].dispose()


def test_the_cli_lists_proposals_with_who_signed_and_who_refused_why(tmp_path):
    from typer.testing import CliRunner

    from ledger.cli import app

    db_url = f"sqlite:///{tmp_path / 'cli.db'}"
    sessions = open_store(db_url)
    with sessions.begin() as session:
        for state, reason in (("submitted", None), ("set_aside", "1 matching signature(s) of the 2 needed")):
            proposal = ScoreProposal(report_id=7, model_version=1, chain_id=31337, oracle="0x" + "11" * 20,
                                     entries=json.dumps([["0x" + "22" * 20, 600, 1_000]]), digest="0x" + "00" * 32,
                                     threshold=2, state=state, reason=reason, created_at=1, deadline=2)
            session.add(proposal)
            session.flush()
            session.add(ScoreSignature(proposal_id=proposal.id, signer=SIGNERS[0].address, name="score_signer_1",
                                       verdict="signed", signature="0x" + "00" * 65, created_at=1))
            session.add(ScoreSignature(proposal_id=proposal.id, signer=SIGNERS[2].address, name="score_signer_3",
                                       verdict="refused", reason="0x22..: computed score 590", created_at=1))
    sessions.kw["bind"].dispose()
    result = CliRunner().invoke(app, ["oracle", "proposals", "--state", "set_aside", "--json"],
                                env={**os.environ, "LOANLEDGER_DB_URL": db_url})
    assert result.exit_code == 0, result.output
    (line,) = result.output.strip().splitlines()
    shown = json.loads(line)
    assert (shown["state"], shown["signed"], shown["threshold"], shown["borrowers"]) == (
        "set_aside", ["score_signer_1"], 2, 1)
    assert shown["refused"] == {"score_signer_3": "0x22..: computed score 590"}
    assert "1 matching signature(s)" in shown["reason"]
    table = CliRunner().invoke(app, ["oracle", "proposals"], env={**os.environ, "LOANLEDGER_DB_URL": db_url,
                                                                   "COLUMNS": "300"})
    assert table.exit_code == 0 and "set_aside" in table.output and "submitted" in table.output
