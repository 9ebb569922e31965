"""Registering KYC-verified borrowers on-chain, as the oracle: the API's intents, sent with the oracle's key.

A completed KYC is an off-chain fact the oracle brings on-chain like a payment or a score, so the API, which holds
no key with a role, only records a registration intent (ledger/store/models/registrations.py) in the transaction
that stores the KYC record; this worker sends each pending one (BorrowerRegistry.registerBorrower admits
ORACLE_ROLE).

Retrying is safe because the worker asks before it sends: a timeout is not "it did not happen", so an intent that
was tried before (or is tried again after a crash) is first looked up with `borrowerOf`, and one already on-chain
with the intent's commitment is settled `done`/already_registered without a transaction. A refusal the registry
names (an expiry already past, a registry that is paused...) is that intent's alone: it is set aside with the
reason (counted in the oracle's /healthz attention and the `loanledger_oracle_registrations_set_aside` gauge), and
the others go on. The node being away is the worker's: the intent stays pending, untouched, and the round stops.

A KYC renewal is an intent of kind `update` (the API replaces the borrower's row): the worker sends
`updateBorrower` with the new expiry (and commitment), asking `borrowerOf` before any retry whether the registry
already holds them. A borrower revoked or unknown to the registry is the registry's refusal: set aside.

A wallet recovery is an intent of kind `recover` for the new wallet, naming the lost one (`recovered_from`): the
worker sends `recoverBorrower(old, new, ...)`, and before any retry asks the registry whether it already happened
(`successorOf(old)` is the new wallet and the new wallet holds the intent's commitment). A recovery above the
risk threshold is stored `held` and is not picked up until an operator's confirmation makes it pending.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select, update
from sqlalchemy.orm import sessionmaker
from web3.contract import Contract

from ledger.chain import ChainClient
from ledger.encoding import to_0x_hex
from ledger.errors import ContractRevert
from ledger.store.models.registrations import (
    DONE,
    PENDING,
    RECOVER,
    SET_ASIDE,
    UPDATE,
    RegistrationIntent,
)
from oracle.outbox import is_transient

log = logging.getLogger(__name__)

# Refusals that may pass with time: the registry paused for an incident. Retried with back-off, not set aside.
RETRYABLE = frozenset({"EnforcedPause"})
MAX_BACKOFF = 300.0


@dataclass
class RegistrationReport:
    registered: int = 0
    already_registered: int = 0
    updated: int = 0  # renewals: updateBorrower sent
    already_updated: int = 0
    recovered: int = 0  # wallet recoveries: recoverBorrower sent
    already_recovered: int = 0
    set_aside: int = 0
    retried: int = 0
    node_error: str | None = None
    errors: list[str] = field(default_factory=list)


def counts(sessions: sessionmaker) -> dict[str, int]:
    """Intents by status."""
    with sessions() as session:
        rows = session.execute(select(RegistrationIntent.status, func.count()).group_by(RegistrationIntent.status))
        return {status: count for status, count in rows}


def intents(sessions: sessionmaker, status: str | None = None) -> list[RegistrationIntent]:
    query = select(RegistrationIntent).order_by(RegistrationIntent.created_at, RegistrationIntent.borrower)
    if status is not None:
        query = query.where(RegistrationIntent.status == status)
    with sessions() as session:
        return list(session.scalars(query))


class RegistrationWorker:
    """Sends pending registration intents with the oracle's ChainClient, one transaction each, oldest first."""

    def __init__(self, sessions: sessionmaker, client: ChainClient, registry: Contract, *, batch_size: int = 20,
                 clock: Callable[[], float] = time.time):
        self.sessions, self.client, self.clock, self.batch_size = sessions, client, clock, batch_size
        # Bound to the client's node: calls and sends go to the one node the client signs for.
        self.registry = client.w3.eth.contract(address=registry.address, abi=registry.abi)

    def run_once(self) -> RegistrationReport:
        report = RegistrationReport()
        now = int(self.clock())
        with self.sessions() as session:
            due = list(session.scalars(
                select(RegistrationIntent).where(RegistrationIntent.status == PENDING,
                                                 RegistrationIntent.next_attempt_at <= now)
                .order_by(RegistrationIntent.created_at, RegistrationIntent.borrower).limit(self.batch_size)))
        for intent in due:
            try:
                self._send(intent, report)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                # The node is away (or the receipt did not come): the intent stays pending as it was; asked
                # about before it is sent again. The others wait for the next round.
                report.node_error = f"{type(exc).__name__}: {exc}"
                report.errors.append(report.node_error)
                try:
                    self._note(intent, error=report.node_error, attempt=True)
                except Exception:
                    log.warning("could not note the failed attempt of %s", intent.borrower, exc_info=True)
                log.warning("registration of %s not sent (%s); retried next round", intent.borrower,
                            report.node_error)
                break
        return report

    def _send(self, intent: RegistrationIntent, report: RegistrationReport) -> None:
        if intent.attempts > 0 and self._settled_on_chain(intent, report):
            return  # a previous attempt landed after all
        try:
            commitment = bytes.fromhex(intent.commitment.removeprefix("0x"))
            if intent.kind == RECOVER:
                call = self.registry.functions.recoverBorrower(intent.recovered_from, intent.borrower, commitment,
                                                               intent.kyc_expires_at)
            else:
                function = (self.registry.functions.updateBorrower if intent.kind == UPDATE
                            else self.registry.functions.registerBorrower)
                call = function(intent.borrower, commitment, intent.kyc_expires_at)
        except (ValueError, TypeError, AttributeError) as exc:  # never sendable as stored
            self._set_aside(intent, "ItemUnusable", f"{type(exc).__name__}: {exc}", report)
            return
        try:
            receipt = self.client.transact(call)
        except ContractRevert as exc:
            self._refused(intent, exc, report)
            return
        tx_hash = to_0x_hex(receipt["transactionHash"])
        if intent.kind == RECOVER:
            self._finish(intent, "recovered", tx_hash)
            report.recovered += 1
            log.info("moved the identity of %s to %s on-chain (tx %s)", intent.recovered_from, intent.borrower,
                     tx_hash)
            return
        if intent.kind == UPDATE:
            self._finish(intent, "updated", tx_hash)
            report.updated += 1
            log.info("renewed the KYC of %s on-chain until %s (tx %s)", intent.borrower, intent.kyc_expires_at,
                     tx_hash)
            return
        self._finish(intent, "registered", tx_hash)
        report.registered += 1
        log.info("registered %s on-chain (tx %s)", intent.borrower, tx_hash)

    def _settled_on_chain(self, intent: RegistrationIntent, report: RegistrationReport) -> bool:
        """True when the registry already holds what the intent asks (settled here: done; a registration with
        another commitment than the intent's is set aside). An update is settled once the registry holds its
        commitment and expiry; until then it is sent (again)."""
        record = self.client.call(self.registry.functions.borrowerOf(intent.borrower))
        commitment, expires_at, registered_at = record[0], record[1], record[2]
        if registered_at == 0:
            return False
        same_commitment = to_0x_hex(commitment).lower() == intent.commitment.lower()
        if intent.kind == RECOVER:
            successor = self.client.call(self.registry.functions.successorOf(intent.recovered_from))
            if same_commitment and successor.lower() == intent.borrower.lower():
                self._finish(intent, "already_recovered", None)
                report.already_recovered += 1
                return True
            return False  # the new wallet holds something else: the registry's refusal names it when sent
        if intent.kind == UPDATE:
            if same_commitment and expires_at == intent.kyc_expires_at:
                self._finish(intent, "already_updated", None)
                report.already_updated += 1
                return True
            return False
        if not same_commitment:
            self._set_aside(intent, "RegisteredWithAnotherCommitment",
                            f"{intent.borrower} is registered with {to_0x_hex(commitment)}, not the KYC record's "
                            f"{intent.commitment}", report)
        else:
            self._finish(intent, "already_registered", None)
            report.already_registered += 1
        return True

    def _refused(self, intent: RegistrationIntent, exc: ContractRevert, report: RegistrationReport) -> None:
        if exc.name == "RegistryAlreadyRegistered" and self._settled_on_chain(intent, report):
            return  # an operator's signed registration, or our own earlier attempt, got there first
        if exc.name in RETRYABLE:
            self._note(intent, error=str(exc), attempt=True)
            report.retried += 1
            return
        self._set_aside(intent, exc.name or "Refused", str(exc), report)

    # ------------------------------------------------------------------ writing the outcome

    def _finish(self, intent: RegistrationIntent, outcome: str, tx_hash: str | None) -> None:
        self._update(intent, status=DONE, outcome=outcome, last_error=None, tx_hash=tx_hash)

    def _set_aside(self, intent: RegistrationIntent, outcome: str, error: str, report: RegistrationReport) -> None:
        self._update(intent, status=SET_ASIDE, outcome=outcome[:64], last_error=error[:2000])
        report.set_aside += 1
        log.error("registration of %s set aside: %s; an operator must look at it (`loanledger oracle "
                  "registrations --status set_aside`)", intent.borrower, error)

    def _note(self, intent: RegistrationIntent, *, error: str, attempt: bool) -> None:
        attempts = intent.attempts + (1 if attempt else 0)
        delay = min(2.0 ** attempts, MAX_BACKOFF)
        self._update(intent, last_error=error[:2000], attempts=attempts,
                     next_attempt_at=int(self.clock()) + int(delay))

    def _update(self, intent: RegistrationIntent, **values) -> None:
        with self.sessions.begin() as session:
            session.execute(update(RegistrationIntent).where(RegistrationIntent.borrower == intent.borrower)
                            .values(updated_at=int(self.clock()), **values))
