"""The automatic approval policy as its own process (`loanledger oracle policy`): a bounded signer.

It holds one key, the policy's (LOANLEDGER_POLICY_KEY, POLICY_ROLE on the loan book), and the book lets that key
approve, or reject with the book's reason, only a loan its product made autoApprovable at application (the
product's flag and automatic-approval principal); everything else waits for an operator. The API holds no key for
it: an application is answered Requested, and this process decides shortly after.

Each round, while the operators have the policy switched on (api.services.decisions.auto_approve_enabled), it takes
the Requested, auto-approvable loans of the read model, oldest first, and for each runs the book's checks as the
policy would (an eth_call of `approve` from its address): it sends the approval, or the rejection with the book's
reason for a stale score, a credit limit or an ineligible borrower (decisions.REJECTIONS), records the decision in
the action log (actor "policy", signed_by its address, the transaction) and orders the payout of an approval
(api.services.payouts: one order per loan). Any other refusal (paused, a node error) sets that loan aside for the
round, with a warning, and the others go on.

Crash safety: the transaction's hash is logged (`policy.sending`) before the node sees it. The chain is asked first
every round: a loan no longer Requested is decided; one whose last sent decision the node still holds is left
alone; one whose decision reverted or was never mined is decided again. Approved loans the policy approved with no
payout order (a crash between the approval and the order) get their order at the start of each round.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, TransactionNotFound

from api.errors import ApiError
from api.services.decisions import (
    REJECTIONS,
    auto_approve_enabled,
    reason_bytes,
    request_payout,
)
from ledger.action_log import ActionLog
from ledger.book import LoanStatus, read_loan
from ledger.chain import ChainClient
from ledger.config import Settings
from ledger.contracts import Bindings
from ledger.encoding import to_0x_hex
from ledger.errors import LoanLedgerError
from ledger.store.models.action_log import ActionLogEntry
from ledger.store.models.api import ApiSetting
from ledger.store.models.chain import ChainEvent, Loan
from ledger.store.models.payouts import PayoutOrder

log = logging.getLogger(__name__)

ACTOR = "policy"  # the action log's actor for what the policy does (signed_by: its address)
SENDING = "policy.sending"  # the decision's transaction, logged before the node sees it
SET_ASIDE = "policy_set_aside"  # ApiSetting: the loans the last round set aside, and why (JSON), for operators
APPROVED = "approved"


@dataclass
class PolicyContext:
    """The smallest context the policy and the payouts service read: store, chain, settings; no key in it (the
    policy's own key is the ChainClient the Policy is given)."""

    settings: Settings
    sessions: sessionmaker
    w3: Web3
    bindings: Bindings
    env: Mapping[str, str] | None = None  # the payout provider's secrets: the settings' environment unless given

    @cached_property
    def action_log(self) -> ActionLog:
        return ActionLog(self.sessions)

    def chain_time(self) -> int:
        return self.w3.eth.get_block("latest")["timestamp"]


@dataclass(frozen=True)
class Round:
    """What one round did: decisions by loan, loans set aside (and why), payouts ordered for earlier approvals."""

    decided: dict[int, str] = field(default_factory=dict)
    set_aside: dict[int, str] = field(default_factory=dict)
    reconciled: list[int] = field(default_factory=list)


class Policy:
    """The automatic policy's rounds. `context`: a PolicyContext (or the API's, in tests); `client`: the policy key."""

    def __init__(self, context, client: ChainClient, *, fault: str = ""):
        self.context, self.client, self.fault = context, client, fault
        self._noted: dict[int, str] | None = None  # the set-aside loans last written to the store

    @property
    def address(self) -> str:
        return self.client.address

    def holds_role(self) -> bool:
        """Whether its key holds POLICY_ROLE on the loan book (without it, the book refuses every decision)."""
        book = self.context.bindings.book
        return book.functions.hasRole(book.functions.POLICY_ROLE().call(), self.address).call()

    def run(self, stop: threading.Event, interval: float, max_backoff: float = 30.0) -> None:
        failures = 0
        while not stop.is_set():
            try:
                self.run_once()
                failures = 0
            except Exception:  # node or store down for a while: later rounds retry, less and less often
                failures = min(failures + 1, 16)  # 2**16 rounds' wait is past any backoff: no float overflow
                log.exception("policy round failed (%d+ in a row); retrying in %.1fs", failures,
                              min(interval * 2 ** failures, max_backoff))
            stop.wait(min(interval * 2 ** failures, max_backoff) if failures else interval)

    def run_once(self) -> Round:
        """Orders the payouts earlier approvals lack, then, while the policy is on, decides the waiting loans."""
        done = Round(reconciled=self.order_missing_payouts())
        if not auto_approve_enabled(self.context):
            self._note_set_aside({})
            return done
        for loan_id in self.waiting():
            try:
                decision = self.decide(loan_id)
            except (LoanLedgerError, ContractLogicError) as exc:  # paused, a node error, ...: the others go on
                done.set_aside[loan_id] = str(exc)[:300]
                if (self._noted or {}).get(loan_id) != done.set_aside[loan_id]:  # once, not every round
                    log.warning("policy set loan %d aside: %s", loan_id, exc)
                continue
            if decision is not None:
                done.decided[loan_id] = decision
        self._note_set_aside(done.set_aside)
        return done

    def waiting(self) -> list[int]:
        """The Requested, auto-approvable loans of the read model, oldest first."""
        with self.context.sessions() as session:
            return list(session.scalars(select(Loan.id).where(Loan.status == LoanStatus.REQUESTED.solidity_name,
                                                              Loan.auto_approvable.is_(True))
                                        .order_by(Loan.requested_at, Loan.id)))

    def decide(self, loan_id: int) -> str | None:
        """Approves `loan_id` or rejects it with the book's reason; None if it is not (or no longer) ours to decide
        now: decided already (the read model lags), or its last decision still with the node."""
        book = self.context.bindings.book
        if read_loan(book, loan_id).status is not LoanStatus.REQUESTED or self._in_flight(loan_id):
            return None
        call, decision = self.call_for(loan_id)
        receipt = self.client.transact(call, before_send=lambda tx: self._log(SENDING, loan_id, decision, tx))
        self._log("loan.approve" if decision == APPROVED else "loan.reject", loan_id, decision,
                  to_0x_hex(receipt["transactionHash"]))
        log.info("policy %s loan %d", decision, loan_id)
        if decision == APPROVED:
            self._fault("after_approve")
            self._order(loan_id)
        return decision

    def call_for(self, loan_id: int) -> tuple[ContractFunction, str]:
        """The book's checks as the policy would face them: `approve`, or `reject` with the book's reason when it
        refuses for a stale score, a credit limit or an ineligible borrower; any other refusal is raised."""
        book = self.context.bindings.book
        approve = book.functions.approve(loan_id)
        try:
            approve.call({"from": self.address})
        except ContractCustomError as exc:
            refused = self.context.bindings.errors.from_exception(exc)
            reason = REJECTIONS.get(refused.name) if refused is not None else None
            if reason is None:
                raise refused or exc from None
            return book.functions.reject(loan_id, reason_bytes(reason)), f"rejected:{reason}"
        return approve, APPROVED

    def order_missing_payouts(self) -> list[int]:
        """Orders the payout of each Approved loan this policy key approved that has no payout order yet (the
        policy stopped between the approval and the order); the loans it ordered."""
        with self.context.sessions() as session:
            rows = session.execute(
                select(ChainEvent.loan_id, ChainEvent.args).join(Loan, Loan.id == ChainEvent.loan_id)
                .outerjoin(PayoutOrder, PayoutOrder.loan_id == Loan.id)
                .where(ChainEvent.name == "LoanApproved", Loan.status == LoanStatus.APPROVED.solidity_name,
                       PayoutOrder.loan_id.is_(None))
                .order_by(ChainEvent.loan_id)).all()
        ours = [loan_id for loan_id, args in rows if str(args.get("actor", "")).lower() == self.address.lower()]
        for loan_id in ours:
            log.warning("loan %d was approved by the policy without its payout order: ordering it now", loan_id)
            self._order(loan_id)
        return ours

    # ------------------------------------------------------------------------------------------- steps

    def _order(self, loan_id: int) -> None:
        """The payout order (a provider that does not answer leaves it recorded: a retry reconciles it first)."""
        try:
            request_payout(self.context, loan_id, ACTOR, _request_id(loan_id))
        except ApiError as exc:  # e.g. cancelled meanwhile (the read model lags): nothing to pay out
            log.warning("no payout ordered for loan %d: %s", loan_id, exc.message)

    def _in_flight(self, loan_id: int) -> bool:
        """Whether the last decision sent for `loan_id` is still with the node (mined or pending): then it is not
        sent again. A reverted or dropped one is decided anew."""
        with self.context.sessions() as session:
            details = session.scalar(
                select(ActionLogEntry.details).where(ActionLogEntry.actor == ACTOR, ActionLogEntry.action == SENDING,
                                                     ActionLogEntry.details.contains(f'"loan_id":{loan_id},'))
                .order_by(ActionLogEntry.seq.desc()).limit(1))
        if details is None:
            return False
        tx_hash = json.loads(details)["tx"]
        try:
            receipt = self.context.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            try:
                self.context.w3.eth.get_transaction(tx_hash)
            except TransactionNotFound:
                return False  # never reached the node, or dropped: nobody else holds its signed bytes
            log.info("loan %d: the policy's decision %s is still pending", loan_id, tx_hash)
            return True
        return receipt["status"] == 1  # mined: the chain's status is the decision (a revert: decide again)

    def _log(self, action: str, loan_id: int, decision: str, tx_hash: str) -> None:
        self.context.action_log.append(ACTOR, action, _request_id(loan_id),
                                       {"loan_id": loan_id, "decision": decision, "signed_by": self.address,
                                        "tx": tx_hash})

    def _note_set_aside(self, set_aside: dict[int, str]) -> None:
        """The loans this round set aside (none: an empty list), where operators and the dashboard can see them."""
        if set_aside == self._noted:
            return
        self._noted = dict(set_aside)
        with self.context.sessions.begin() as session:
            session.merge(ApiSetting(name=SET_ASIDE, value=json.dumps({str(k): v for k, v in set_aside.items()}),
                                     updated_by=self.address, updated_at=int(time.time())))

    def _fault(self, point: str) -> None:
        """The `policy_fault` setting (tests only): exit on the spot at `point`, or stop there (SIGSTOP) for the
        crash test to SIGKILL the process."""
        if self.fault == point:
            log.warning("fault injection: exiting at %s", point)
            os._exit(70)
        if self.fault == f"stop_{point}":
            log.warning("fault injection: stopping at %s", point)
            os.kill(os.getpid(), signal.SIGSTOP)


def set_aside(sessions: sessionmaker) -> dict[int, str]:
    """The loans the policy's last round set aside, and why."""
    with sessions() as session:
        value = session.scalar(select(ApiSetting.value).where(ApiSetting.name == SET_ASIDE))
    return {int(k): v for k, v in json.loads(value or "{}").items()}


def _request_id(loan_id: int) -> str:
    return f"policy:loan:{loan_id}"
