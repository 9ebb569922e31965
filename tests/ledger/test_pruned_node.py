"""The indexer and verification on a node that keeps no historical state (issue 14, defect 3).

A pruned node, or anvil restarted from its state file, has every block and log but answers
`BlockOutOfRangeError` for a call at any block before its head. An indexer that is behind must
still catch up there, and verification must answer (a pass or a clear failure line), never raise.
Both kinds of node are real anvils here: one started with --prune-history, one stopped with SIGINT
(dumping its --state file) and started again from it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner
from web3 import Web3
from web3.exceptions import Web3RPCError

from api.app import create_app
from api.client import LoanLedgerClient
from api.context import Context
from ledger import manifest as manifests
from ledger import verify
from ledger.book import LoanStatus
from ledger.chain import web3_for
from ledger.cli import app
from ledger.config import Settings
from ledger.deploy import deploy_stack
from ledger.indexer import Indexer
from ledger.node import anvil_command, free_port
from ledger.store.codec import to_json
from ledger.store.models.chain import IndexerCursor, Loan
from ledger.vault import Keyring, Vault

DAY = 86_400


def _start_anvil(port: int, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen(anvil_command(port, accounts=13, extra=extra),  # the session's keys, operator2 included
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}"))
    for _ in range(200):
        if w3.is_connected():
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("anvil did not start")


@pytest.fixture(params=["pruned", "restarted"])
def historyless(request, tmp_path):
    """(w3, settle): a dedicated anvil; `settle()` makes it lose its history (a restart from --state), or is a
    no-op for one started with --prune-history (it never had any)."""
    port = free_port()
    extra = ["--prune-history"] if request.param == "pruned" else ["--state", str(tmp_path / "state.json")]
    node = {"proc": _start_anvil(port, *extra)}

    def settle() -> None:
        if request.param == "restarted":
            node["proc"].send_signal(signal.SIGINT)  # anvil dumps its state on SIGINT
            node["proc"].wait(timeout=30)
            node["proc"] = _start_anvil(port, *extra)

    try:
        yield Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}")), settle
    finally:
        node["proc"].terminate()
        node["proc"].wait(timeout=10)


def _audit_verify_state(w3, keys, manifest_path, sessions, tmp_path) -> dict:
    """GET /v1/audit/verify/state as an auditor, through the API on this node (it used to answer 500)."""
    settings = Settings(home=tmp_path / "api", node_url=w3.provider.endpoint_uri, manifest=str(manifest_path),
                        api_domain="testserver", anchor_interval=0, auditors=keys["carol"].address)
    context = Context(settings=settings, sessions=sessions, vault=Vault(sessions, Keyring.generate()),
                      w3=web3_for(settings), jwt_secret=b"test-secret-of-thirty-two-bytes!", env={})
    with TestClient(create_app(context)) as http:
        auditor = LoanLedgerClient("http://testserver", keys["carol"], http=http)
        auditor.login()
        answer = http.get("/v1/audit/verify/state", headers={"authorization": f"Bearer {auditor.token}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def _assert_matches_chain(session, stack, loan_id: int) -> Loan:
    book = stack.book
    abi = {f["name"]: f for f in book.abi if f.get("type") == "function"}
    _, borrower, status, disbursed_at = book.functions.loanOf(loan_id).call()
    schedule = to_json(book.functions.schedule(loan_id).call(), abi["schedule"]["outputs"][0])
    progress = to_json(book.functions.progressOf(loan_id).call(), abi["progressOf"]["outputs"][0])
    row = session.get(Loan, loan_id)
    assert (row.borrower, row.status, row.disbursed_at, row.paid_installments, row.principal_repaid) == (
        borrower, LoanStatus(status).solidity_name, disbursed_at, progress["paidInstallments"],
        progress["principalRepaid"])
    assert [{"dueAt": r.due_at, "principal": r.principal, "interest": r.interest} for r in row.schedule] == schedule
    return row


def test_an_indexer_behind_a_node_without_history_catches_up_and_verifies(historyless, keys, sessions, db_url,
                                                                          tmp_path, driver_for):
    w3, settle = historyless
    stack = deploy_stack(w3, keys["admin"].address, operator=keys["operator"].address,
                         oracle=keys["oracle"].address, pauser=keys["pauser"].address,
                         score_signer=keys["signer"].address, second_operator=keys["operator2"].address,
                         admin_renounces=False)  # kept: the driver opens the catalogue's ceilings as the admin
    driver = driver_for(w3, stack)
    env = {"LOANLEDGER_HOME": str(tmp_path / "home"), "LOANLEDGER_NODE_URL": w3.provider.endpoint_uri,
           "LOANLEDGER_MANIFEST": str(manifests.save(stack.manifest, tmp_path / "local.json")),
           "LOANLEDGER_DB_URL": db_url}
    repaid = driver.active_loan(keys["alice"])
    first = stack.book.functions.schedule(repaid).call()[0]
    driver.repay(repaid, first[1] + first[2], b"repay-1")
    waiting = driver.approved_loan(keys["bob"], report_id=2)  # requested and approved, disbursed only later
    settle()
    with pytest.raises(Web3RPCError, match="BlockOutOfRange"):  # the node really keeps no history
        stack.book.functions.loanCount().call(block_identifier=w3.eth.block_number - 3)

    indexer = Indexer(w3, stack.manifest, sessions, batch_size=5)  # behind: many ranges, all in the past
    report = indexer.run_once()  # used to raise BlockOutOfRangeError (schedule() at each event's block) forever
    assert report.to_block == w3.eth.block_number
    with sessions() as session:
        assert _assert_matches_chain(session, stack, repaid).status == "Active"
        assert _assert_matches_chain(session, stack, waiting).status == "Approved"
        result = verify.recomputed_state(w3, stack.manifest, session)
        assert result.ok, result.details
        assert result.checked >= 4  # two loans, two borrowers
        assert verify.index_vs_chain(w3, stack.manifest, session).ok
    cli = CliRunner().invoke(app, ["verify", "state", "--json"], env=env)
    assert cli.exit_code == 0 and json.loads(cli.stdout)["ok"], cli.output
    assert _audit_verify_state(w3, keys, env["LOANLEDGER_MANIFEST"], sessions, tmp_path)["ok"]

    # The second loan is disbursed and the chain moves on; the index follows from the stored request.
    driver.advance(2 * DAY)
    driver.disburse(waiting, 120_000, b"payout-2")
    indexer.run_once()
    with sessions() as session:
        row = _assert_matches_chain(session, stack, waiting)
        assert row.status == "Active" and row.schedule[0].due_at == row.disbursed_at + 30 * DAY

    # Chain ahead of the index: the views cannot be read at the cursor block; a failure line, not an exception.
    driver.repay(repaid, 1_000, b"repay-2")
    settle()  # a restarted node has state from its restart on: restart it again
    with sessions() as session:
        cursor = session.scalars(select(IndexerCursor)).one()
        behind = verify.recomputed_state(w3, stack.manifest, session)
    assert not behind.ok
    cli = CliRunner().invoke(app, ["verify", "state", "--json"], env=env)
    assert cli.exit_code == 1, cli.output  # a failure line, not a traceback
    assert any("no state at block" in line for line in json.loads(cli.stdout)["details"]), cli.output
    audit = _audit_verify_state(w3, keys, env["LOANLEDGER_MANIFEST"], sessions, tmp_path)
    assert not audit["ok"] and any("no state at block" in line for line in audit["details"]), audit
    assert any(f"no state at block {cursor.block_number}" in line and "verify again" in line
               for line in behind.details), behind.details
