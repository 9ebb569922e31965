"""Verification passes on a clean index and fails on each kind of tampering."""

from __future__ import annotations

import pytest
from eth_utils import keccak
from sqlalchemy import select

from ledger import verify
from ledger.indexer import Indexer
from ledger.store.models.chain import Borrower, ChainEvent, Loan, ScheduleRow

DAY = 86_400


@pytest.fixture
def indexed(w3, stack, keys, driver, sessions):
    """Alice's loan, disbursed and partly repaid after a late installment; Bob registered; all indexed."""
    loan_id = driver.active_loan(keys["alice"])
    driver.advance(45 * DAY)
    driver.repay(loan_id, 50_000, b"repay-1")
    driver.register(keys["bob"], commitment=keccak(b"bob's salted record"))
    Indexer(w3, stack.manifest, sessions).run_once()
    return loan_id


def _all(w3, stack, sessions, loan_id=None):
    with sessions() as session:
        return (verify.index_vs_chain(w3, stack.manifest, session),
                verify.recomputed_state(w3, stack.manifest, session, loan_id))


def test_clean_index_verifies(w3, stack, sessions, indexed):
    index, state = _all(w3, stack, sessions)
    assert index.ok and index.details == []
    assert state.ok, state.details
    with sessions() as session:
        assert index.checked == session.query(ChainEvent).count()
    assert state.checked == 1 + 2 + 1  # one loan, two borrowers, the product's publication (a FourEyes proposal)
    assert verify.recomputed_state(w3, stack.manifest, sessions(), indexed).ok


def test_tampered_event_amount_fails_both_checks(w3, stack, sessions, indexed):
    with sessions.begin() as session:
        event = session.scalars(select(ChainEvent).where(ChainEvent.name == "RepaymentApplied")).one()
        event.args = {**event.args, "principal": event.args["principal"] + 1}
    index, state = _all(w3, stack, sessions, indexed)
    assert not index.ok and any("args" in d for d in index.details)
    assert not state.ok and any("principalRepaid" in d for d in state.details)


def test_deleted_event_is_reported_missing(w3, stack, sessions, indexed):
    with sessions.begin() as session:
        session.delete(session.scalars(select(ChainEvent).where(ChainEvent.name == "LoanApproved")).one())
    index, state = _all(w3, stack, sessions)
    assert not index.ok and any("missing from the index: LoanApproved" in d for d in index.details)
    assert not state.ok and any("LoanDisbursed" in d and "cannot follow status Requested" in d for d in state.details)


def test_tampered_read_model_row_fails_state(w3, stack, sessions, indexed):
    with sessions.begin() as session:
        session.get(Loan, indexed).interest_paid += 1
    index, state = _all(w3, stack, sessions, indexed)
    assert index.ok  # the events are intact...
    assert not state.ok and any("read model" in d and "interestPaid" in d for d in state.details)
    with sessions.begin() as session:
        session.get(Loan, indexed).interest_paid -= 1
        session.get(ScheduleRow, (indexed, 2)).principal += 1
    assert not verify.recomputed_state(w3, stack.manifest, sessions(), indexed).ok


def test_tampered_borrower_row_fails_state(w3, stack, keys, sessions, indexed):
    with sessions.begin() as session:
        session.get(Borrower, keys["bob"].address).identity_commitment = "0x" + "22" * 32
    state = verify.recomputed_state(w3, stack.manifest, sessions())
    assert not state.ok and any("identityCommitment" in d for d in state.details)


def test_identity_matches_only_the_registered_commitment(w3, stack, keys, indexed):
    bob = keys["bob"].address
    assert verify.identity(w3, stack.manifest, bob, keccak(b"bob's salted record")).ok
    assert verify.identity(w3, stack.manifest, bob, lambda: keccak(b"bob's salted record")).ok
    wrong = verify.identity(w3, stack.manifest, bob, keccak(b"someone else's record"))
    assert not wrong.ok and "differs" in wrong.details[0]
    assert not verify.identity(w3, stack.manifest, keys["carol"].address, keccak(b"x")).ok
    assert not verify.identity(w3, stack.manifest, "not-an-address", keccak(b"x")).ok
    assert not verify.identity(w3, stack.manifest, bob, b"short").ok


def test_nothing_indexed_is_a_failure_not_a_pass(w3, stack, sessions):
    index, state = _all(w3, stack, sessions)
    assert not index.ok and not state.ok and "nothing indexed" in index.details[0]


def test_cli_index_then_verify_json_and_exit_codes(w3, stack, keys, driver, db_url, tmp_path):
    import json

    from typer.testing import CliRunner

    from ledger import manifest as manifests
    from ledger.cli import app

    driver.active_loan(keys["alice"])
    env = {"LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_NODE_URL": w3.provider.endpoint_uri,
           "LOANLEDGER_DB_URL": db_url,
           "LOANLEDGER_MANIFEST": str(manifests.save(stack.manifest, tmp_path / "local.json"))}
    runner = CliRunner()
    indexed = runner.invoke(app, ["index", "--json"], env=env)
    assert indexed.exit_code == 0, indexed.output
    assert json.loads(indexed.stdout.splitlines()[-1])["to_block"] == w3.eth.block_number
    for args in (["verify", "index", "--json"], ["verify", "state", "--loan", "1", "--json"]):
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["ok"] is True
    wrong = runner.invoke(app, ["verify", "identity", keys["alice"].address, "--commitment", "0x" + "22" * 32], env=env)
    assert wrong.exit_code == 1 and "FAILED" in wrong.stdout
    right = runner.invoke(app, ["verify", "identity", keys["alice"].address, "--commitment", "0x" + "11" * 32], env=env)
    assert right.exit_code == 0 and "OK" in right.stdout
    neither = runner.invoke(app, ["verify", "identity", keys["alice"].address], env=env)
    assert neither.exit_code == 2
