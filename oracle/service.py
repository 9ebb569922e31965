"""The oracle as one process: the payment webhook endpoint, the outbox worker, KYC registrations, the action log's
anchors, and room for more workers.

`loanledger oracle run` builds an `OracleService` from the settings and runs it: uvicorn serves the
webhook endpoint, `/healthz` and `/metrics` (Prometheus) in the main thread, each background worker
(the outbox worker; the risk monitor plugs in the same way, see `BackgroundTask`) runs in its own thread until SIGTERM or
SIGINT, after which the server stops taking requests, every worker finishes its round, and the store
is closed. A worker never dies of one failed round: it logs and backs off.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from ledger.config import Settings
from ledger.secret_file import read_or_create
from oracle import collections as debits
from oracle import policy as auto_policy
from oracle import quorum as score_quorum
from oracle import registrations, suspense
from oracle.intake import payment_webhooks
from oracle.outbox import SET_ASIDE, Outbox, OutboxWorker
from oracle.payments.provider import PaymentProvider
from oracle.payments.reconcile import ScheduledReconciliation
from oracle.payments.webhook import DEFAULT_WINDOW, WebhookVerifier

log = logging.getLogger(__name__)

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8600


def bureau_api_key(settings: Settings) -> str:
    """The bureau's bearer key: the `bureau_api_key` setting (LOANLEDGER_BUREAU_API_KEY), else one made once
    in <home>/keys/bureau-api-key.

    The stand-in and the oracle on one machine read the same file, so the development stack needs no setup.
    """
    if settings.bureau_api_key:
        return settings.bureau_api_key.get_secret_value()
    return read_or_create(settings.home / "keys" / "bureau-api-key")


def every(interval: float, round_: Callable[[], object], what: str) -> Callable[[threading.Event], None]:
    """A BackgroundTask body running `round_` every `interval` seconds; a failed round is logged, not fatal."""
    def run(stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                round_()
            except Exception:  # noqa: BLE001 - node or store down for a moment: the next round retries
                log.exception("%s round failed; retrying in %.1fs", what, interval)
            stop.wait(interval)
    return run


@dataclass
class BackgroundTask:
    """A worker the service runs in a thread: `run(stop)` returns soon after `stop` is set.

    The outbox worker is one; the risk monitor (oracle/risk.py) is added the same way.
    """

    name: str
    run: Callable[[threading.Event], None]


@dataclass
class OracleService:
    sessions: sessionmaker
    verifier: WebhookVerifier | None
    worker: OutboxWorker | None
    tasks: list[BackgroundTask] = field(default_factory=list)
    reconciliation: ScheduledReconciliation | None = None  # its figures are exported at /metrics
    started_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.stop = threading.Event()
        self._threads: list[threading.Thread] = []
        if self.worker is not None:
            self.tasks.insert(0, BackgroundTask("outbox", self.worker.run))

    @property
    def outbox(self) -> Outbox:
        return Outbox(self.sessions)

    def add_task(self, task: BackgroundTask) -> None:
        if self._threads:
            raise RuntimeError("add background tasks before the service starts")
        self.tasks.append(task)

    # ------------------------------------------------------------------ the HTTP side

    def create_app(self) -> FastAPI:
        app = FastAPI(title="LoanLedger oracle", description="Payment webhooks in; confirmations pushed on-chain.")
        if self.verifier is not None:
            app.include_router(payment_webhooks(self.verifier, self.outbox))

        @app.get("/healthz")
        def healthz() -> JSONResponse:
            alive = {t.name: any(th.name == f"oracle-{t.name}" and th.is_alive() for th in self._threads)
                     for t in self.tasks}
            try:
                with self.sessions() as session:
                    session.execute(text("SELECT 1"))
                counted, store = {t.what: t.count(self.sessions) for t in TALLIES if t.attention}, "ok"
            except Exception as exc:  # noqa: BLE001 - reported, not raised: this is the health check
                counted, store = None, f"{type(exc).__name__}"
            healthy = store == "ok" and all(alive.values())
            worker = self.worker
            return JSONResponse(status_code=200 if healthy else 503, content={
                "status": "ok" if healthy else "degraded", "store": store, "tasks": alive,
                "outbox": counted[OUTBOX.what] if counted is not None else {},
                # What no retry will fix: the process is healthy (a restart would not help), an operator must act.
                # None: the store could not say.
                "attention": attention(counted),
                "node_failures": worker.failures if worker is not None else None,
                "webhooks": sorted(self.verifier.providers) if self.verifier is not None else [],
                "uptime": round(time.time() - self.started_at, 1)})

        registry = CollectorRegistry(auto_describe=True)
        for tally in TALLIES:  # the outbox's also exports the worker's failed rounds
            registry.register(_OutboxCollector(self.sessions, tally, self.worker) if tally is OUTBOX
                              else _TallyCollector(self.sessions, tally))
        if self.reconciliation is not None:
            registry.register(_ReconciliationCollector(self.reconciliation))

        @app.get("/metrics", response_class=Response)
        def metrics() -> Response:
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

        return app

    # ------------------------------------------------------------------ the process

    def start_tasks(self) -> None:
        for task in self.tasks:
            thread = threading.Thread(target=self._guarded, args=(task,), name=f"oracle-{task.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop_tasks(self, timeout: float = 60.0) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.error("%s did not stop within %.0fs", thread.name, timeout)

    def _guarded(self, task: BackgroundTask) -> None:
        # A task that raises out of run() is restarted after a pause: the process keeps its other duties.
        while not self.stop.is_set():
            try:
                task.run(self.stop)
                return
            except Exception:
                log.exception("%s stopped unexpectedly; restarting in 5s", task.name)
                self.stop.wait(5.0)

    def serve(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, http: bool = True,
              log_level: str = "info", stop_timeout: float = 60.0) -> None:
        """Runs until SIGTERM or SIGINT; returns once everything stopped."""
        # Ours first: uvicorn restores these when it returns and re-raises the signal it caught into them.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())
        self.start_tasks()
        try:
            if http:
                server = uvicorn.Server(uvicorn.Config(self.create_app(), host=host, port=port,
                                                       log_level=log_level, lifespan="off"))
                server.run()
            else:
                self.stop.wait()
        finally:
            self.stop_tasks(stop_timeout)
            self.sessions.kw["bind"].dispose()
        log.info("oracle stopped")


@dataclass(frozen=True)
class Gauge:
    """A metric: its name, its help text, and (for a sum) the statuses it adds up, or (for a family) its label."""

    name: str
    help: str
    statuses: tuple[str, ...] = ()
    label: str = "status"


@dataclass(frozen=True)
class Tally:
    """Something the store holds that the oracle counts by status for /healthz and /metrics.

    `count(sessions)` gives the counts by status, read at each request; `needs_person` is the gauge to alert on, the
    sum of the statuses an operator must act on; `by_status`, when there is one, exports every status under a label;
    `attention` lists the /healthz attention entries it gives, each the sum of its statuses.
    """

    what: str  # for the log line when the store cannot count them: "metrics: {what} could not be counted"
    count: Callable[[sessionmaker], Mapping[str, int]]
    needs_person: Gauge
    by_status: Gauge | None = None
    attention: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def metrics(self, counts: Mapping[str, int]):
        if self.by_status is not None:
            family = GaugeMetricFamily(self.by_status.name, self.by_status.help, labels=[self.by_status.label])
            for status, count in sorted(counts.items()):
                family.add_metric([status], count)
            yield family
        yield GaugeMetricFamily(self.needs_person.name, self.needs_person.help,
                                value=_sum(counts, self.needs_person.statuses))


def _sum(counts: Mapping[str, int], statuses: tuple[str, ...]) -> int:
    return sum(counts.get(status, 0) for status in statuses)


OUTBOX = Tally(
    "the outbox", lambda sessions: Outbox(sessions).counts(),
    # `loanledger oracle outbox --status set_aside`
    Gauge("loanledger_oracle_outbox_set_aside", "Outbox items set aside as never sendable: an operator must act",
          (SET_ASIDE,)),
    by_status=Gauge("loanledger_oracle_outbox_items", "Outbox items by status"),
    # A confirmation the book refused is settled `rejected` (its money held in suspense): an operator must act too.
    attention={"set_aside": (SET_ASIDE,), "rejected": ("rejected",)})

# The tallies /healthz and /metrics show, in the order /metrics exports them.
TALLIES: tuple[Tally, ...] = (
    OUTBOX,
    Tally("the suspense items", suspense.counts,
          Gauge("loanledger_oracle_suspense_open",
                "Received payments held in suspense that an operator has not resolved (open, or a refund not yet "
                "confirmed)", ("open", "refunding")),
          by_status=Gauge("loanledger_oracle_suspense_items", "Received payments held in suspense, by state",
                          label="state")),
    # Score reports set aside since the last one landed: the signers' quorum is not forming now
    # (`loanledger oracle proposals --state set_aside`).
    Tally("the score proposals", lambda sessions: {"failing": score_quorum.failing(sessions)},
          Gauge("loanledger_oracle_score_quorum_failing",
                "Score reports set aside (no quorum of score signers, or refused) since the last report that landed",
                ("failing",)),
          attention={"score_reports_set_aside": ("failing",)}),
    # KYC registrations the registry refused (`loanledger oracle registrations`).
    Tally("the registration intents", registrations.counts,
          Gauge("loanledger_oracle_registrations_set_aside",
                "KYC registrations the registry refused: an operator must act", (registrations.SET_ASIDE,)),
          by_status=Gauge("loanledger_oracle_registrations", "KYC registration intents by status"),
          attention={"registrations_set_aside": (registrations.SET_ASIDE,)}),
    # Loans the automatic policy's last round could not decide (a paused book, a key without POLICY_ROLE, a node
    # error): they wait for it or an operator. Read with what `loanledger oracle policy-status` lists, so both agree.
    Tally("the policy's set-aside loans", lambda sessions: {"set_aside": len(auto_policy.set_aside(sessions))},
          Gauge("loanledger_oracle_policy_set_aside",
                "Loans the automatic policy's last round set aside (a paused book, a key without POLICY_ROLE, a node "
                "error): an operator must act (loanledger oracle policy-status)", ("set_aside",)),
          attention={"policy_set_aside": ("set_aside",)}),
    # Automatic debits declined too often (oracle/collections.py): the borrower repays by hand; an operator follows up.
    Tally("the collection intents", debits.counts,
          Gauge("loanledger_oracle_collections_set_aside",
                "Automatic debits declined too often and set aside: an operator must follow up",
                (debits.SET_ASIDE,)),
          by_status=Gauge("loanledger_oracle_collections", "Automatic debit (collection) intents by status"),
          attention={"collections_set_aside": (debits.SET_ASIDE,)}),
)


def attention(counted: Mapping[str, Mapping[str, int]] | None) -> dict[str, int | None]:
    """/healthz's attention block from the tallies' counts (`counted` by Tally.what; None: the store is down)."""
    return {key: _sum(counted[tally.what], statuses) if counted is not None else None
            for tally in TALLIES for key, statuses in tally.attention.items()}


class _TallyCollector:
    """One tally's metrics, read at scrape time."""

    def __init__(self, sessions: sessionmaker, tally: Tally):
        self.sessions, self.tally = sessions, tally

    def collect(self):
        try:
            counts = self.tally.count(self.sessions)
        except Exception:  # the store is down: /healthz says so; a scrape still answers
            log.warning("metrics: %s could not be counted", self.tally.what, exc_info=True)
            return
        yield from self.tally.metrics(counts)


class _OutboxCollector(_TallyCollector):
    """The outbox's tally, then the worker's consecutive failed rounds (when the outbox could be counted)."""

    def __init__(self, sessions: sessionmaker, tally: Tally, worker: OutboxWorker | None):
        super().__init__(sessions, tally)
        self.worker = worker

    def collect(self):
        counted = list(super().collect())
        yield from counted
        if counted and self.worker is not None:
            yield GaugeMetricFamily("loanledger_oracle_outbox_node_failures",
                                    "Consecutive outbox rounds the node (or the whole batch) failed",
                                    value=self.worker.failures)


class _ReconciliationCollector:
    """Statement lines and on-chain payments the last reconciliation run could not match, per provider."""

    def __init__(self, reconciliation: ScheduledReconciliation):
        self.reconciliation = reconciliation

    def collect(self):
        unmatched = GaugeMetricFamily("loanledger_oracle_reconciliation_unmatched",
                                      "Items of the previous UTC day's statement reconciliation that did not match "
                                      "(rail only, chain only, amount differs)", labels=["provider"])
        for provider, count in sorted(self.reconciliation.unmatched.items()):
            unmatched.add_metric([provider], count)
        yield unmatched


def build_verifier(providers: Mapping[str, PaymentProvider], window: int = DEFAULT_WINDOW) -> WebhookVerifier | None:
    return WebhookVerifier(providers, window=window) if providers else None
