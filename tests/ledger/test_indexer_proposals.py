"""FourEyes' proposals in the index (ledger.store.proposals), on a real anvil and both stores: the list after a
proposal, a confirmation, a cancellation and an expiry, each proposal's indexed state the chain's `proposalOf`; a
reorg that drops a confirmation or a proposal takes it out of the index too; a store indexed before the table
existed gets it filled by the migration."""

from __future__ import annotations

from alembic import command
from sqlalchemy import select

from ledger import four_eyes, verify
from ledger.deploy import role_id
from ledger.four_eyes import ProposalState
from ledger.indexer import Indexer
from ledger.store import proposals
from ledger.store.migration import alembic_config
from ledger.store.models.chain import PoisonEvent
from ledger.store.models.four_eyes import FourEyesProposal

HOUR = 3_600
OPERATOR_ROLE = role_id("OPERATOR_ROLE")


def _propose(driver, stack, keys, account: str, expires_at: int) -> four_eyes.Proposal:
    """The admin proposes granting `account` the operator role on the registry (the second admin may confirm it)."""
    receipt = driver.send(four_eyes.propose(stack.four_eyes, stack.registry.functions.grantRole(OPERATOR_ROLE, account),
                                            expires_at), keys["admin"])
    return four_eyes.proposed(stack.four_eyes, receipt)


def _hex(proposal: four_eyes.Proposal) -> str:
    return "0x" + proposal.proposal_id.hex()


def _indexed(sessions) -> dict[str, FourEyesProposal]:
    with sessions() as session:
        return {row.proposal_id: row for row in session.scalars(select(FourEyesProposal))}


def _columns(row: FourEyesProposal) -> dict:
    return {column.name: getattr(row, column.name) for column in FourEyesProposal.__table__.columns}


def _open(sessions, now: int) -> list[str]:
    with sessions() as session:
        return [row.proposal_id for row in proposals.awaiting(session, now)]


def _assert_index_is_the_chain(sessions, stack) -> None:
    """Every indexed proposal's state is the chain's proposalOf, and its content hashes to its id."""
    rows = _indexed(sessions)
    for proposal_id, row in rows.items():
        proposer, expires_at, state, nonce = stack.four_eyes.functions.proposalOf(bytes.fromhex(proposal_id[2:])).call()
        assert (row.state, row.proposer, row.expires_at, row.nonce) == (
            ProposalState(state).name.lower(), proposer, expires_at, nonce)
        assert stack.four_eyes.functions.hashOperation(row.target, bytes.fromhex(row.data[2:]), row.expires_at,
                                                       row.proposer, row.nonce).call() == bytes.fromhex(proposal_id[2:])


def test_the_list_follows_proposals_confirmations_cancellations_and_expiry(w3, stack, keys, driver, sessions):
    indexer = Indexer(w3, stack.manifest, sessions, batch_size=5)
    short = _propose(driver, stack, keys, keys["dave"].address, driver.now + HOUR)
    confirmed = _propose(driver, stack, keys, keys["carol"].address, driver.now + 2 * HOUR)
    cancelled = _propose(driver, stack, keys, keys["eve"].address, driver.now + 2 * HOUR)
    indexer.run_once()
    assert _open(sessions, driver.now) == [_hex(short), _hex(confirmed), _hex(cancelled)]
    row = _indexed(sessions)[_hex(short)]
    assert (row.target, row.selector, row.state, row.closed_by) == (
        stack.registry.address, "0x" + bytes(four_eyes.Call.of(
            stack.registry.functions.grantRole(OPERATOR_ROLE, keys["dave"].address), 0).data[:4]).hex(), "pending",
        None)
    _assert_index_is_the_chain(sessions, stack)

    driver.send(four_eyes.confirm(stack.four_eyes, confirmed), keys["admin2"])
    driver.send(four_eyes.cancel(stack.four_eyes, cancelled.proposal_id), keys["admin"])
    indexer.run_once()
    assert _open(sessions, driver.now) == [_hex(short)]
    rows = _indexed(sessions)
    assert (rows[_hex(confirmed)].state, rows[_hex(confirmed)].closed_by) == ("executed", keys["admin2"].address)
    assert (rows[_hex(cancelled)].state, rows[_hex(cancelled)].closed_by) == ("cancelled", keys["admin"].address)
    _assert_index_is_the_chain(sessions, stack)

    # Expired: still pending on-chain (and in the index), no longer open.
    driver.advance(HOUR + 60)
    indexer.run_once()
    assert _open(sessions, driver.now) == []
    assert _indexed(sessions)[_hex(short)].state == "pending"
    assert four_eyes.proposal(stack.four_eyes, short.proposal_id).expired(driver.now)
    _assert_index_is_the_chain(sessions, stack)


def test_a_reorg_takes_dropped_confirmations_and_proposals_out_of_the_index(w3, stack, keys, driver, sessions):
    indexer = Indexer(w3, stack.manifest, sessions, batch_size=2)
    kept = _propose(driver, stack, keys, keys["dave"].address, driver.now + HOUR)
    indexer.run_once()
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    driver.send(four_eyes.confirm(stack.four_eyes, kept), keys["admin2"])
    dropped = _propose(driver, stack, keys, keys["carol"].address, driver.now + HOUR)
    indexer.run_once()
    assert set(_indexed(sessions)) == {_hex(kept), _hex(dropped)}
    assert _indexed(sessions)[_hex(kept)].state == "executed"

    # The node drops those blocks and mines others at the same heights (and more): a cancellation this time.
    assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True
    driver.send(four_eyes.cancel(stack.four_eyes, kept.proposal_id), keys["admin"])
    driver.advance(60)
    driver.advance(60)
    report = indexer.run_once()
    assert report.reorgs
    rows = _indexed(sessions)
    assert set(rows) == {_hex(kept)}
    assert (rows[_hex(kept)].state, rows[_hex(kept)].closed_by) == ("cancelled", keys["admin"].address)
    _assert_index_is_the_chain(sessions, stack)


def test_the_migration_fills_the_table_from_the_events_already_indexed(w3, stack, keys, driver, sessions):
    indexer = Indexer(w3, stack.manifest, sessions)
    confirmed = _propose(driver, stack, keys, keys["dave"].address, driver.now + HOUR)
    driver.send(four_eyes.confirm(stack.four_eyes, confirmed), keys["admin2"])
    _propose(driver, stack, keys, keys["carol"].address, driver.now + HOUR)
    indexer.run_once()
    before = {pid: _columns(row) for pid, row in _indexed(sessions).items()}
    assert len(before) == 2

    # A store at 0017 with these events (the indexer ran before the table existed) upgraded to 0018.
    config = alembic_config(sessions.kw["bind"])
    command.downgrade(config, "0017")
    command.upgrade(config, "head")
    after = {pid: _columns(row) for pid, row in _indexed(sessions).items()}
    assert after == before


def test_a_proposal_event_that_cannot_be_projected_is_set_aside_and_the_rest_goes_on(w3, stack, keys, driver,
                                                                                     sessions, monkeypatch):
    fold = proposals.fold_proposal

    def fold_refusing_cancellations(events):
        events = list(events)
        if any(e.name == "Cancelled" for e in events):
            raise ValueError("cannot project a cancellation")  # as a projector bug would
        return fold(events)

    monkeypatch.setattr(proposals, "fold_proposal", fold_refusing_cancellations)
    cancelled = _propose(driver, stack, keys, keys["dave"].address, driver.now + HOUR)
    driver.send(four_eyes.cancel(stack.four_eyes, cancelled.proposal_id), keys["admin"])
    other = _propose(driver, stack, keys, keys["carol"].address, driver.now + HOUR)
    assert Indexer(w3, stack.manifest, sessions).run_once().poisoned == 1
    with sessions() as session:
        [poison] = session.scalars(select(PoisonEvent)).all()
        assert (poison.contract, poison.name, poison.error_type) == ("FourEyes", "Cancelled", "ValueError")
    rows = _indexed(sessions)
    assert rows[_hex(cancelled)].state == "pending"  # projected without the event set aside
    assert rows[_hex(other)].state == "pending"


def test_verification_compares_each_proposal_with_the_chain_and_names_a_wrong_row(w3, stack, keys, driver, sessions):
    confirmed = _propose(driver, stack, keys, keys["dave"].address, driver.now + HOUR)
    driver.send(four_eyes.confirm(stack.four_eyes, confirmed), keys["admin2"])
    pending = _propose(driver, stack, keys, keys["carol"].address, driver.now + HOUR)
    Indexer(w3, stack.manifest, sessions).run_once()
    with sessions() as session:
        result = verify.recomputed_state(w3, stack.manifest, session)
    assert result.ok, result.details
    assert result.checked >= 2

    with sessions.begin() as session:
        session.get(FourEyesProposal, _hex(pending)).state = "cancelled"
    with sessions() as session:
        result = verify.recomputed_state(w3, stack.manifest, session)
    assert not result.ok
    assert result.details == [f"proposal {_hex(pending)} (read model) state: 'cancelled' != node 'pending'"]
