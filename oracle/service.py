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
                counts, store = self.outbox.counts(), "ok"
                quorum_failing = score_quorum.failing(self.sessions)
                registrations_set_aside = registrations.counts(self.sessions).get(registrations.SET_ASIDE, 0)
            except Exception as exc:  # noqa: BLE001 - reported, not raised: this is the health check
                counts, store, quorum_failing, registrations_set_aside = {}, f"{type(exc).__name__}", None, None
            healthy = store == "ok" and all(alive.values())
            worker = self.worker
            return JSONResponse(status_code=200 if healthy else 503, content={
                "status": "ok" if healthy else "degraded", "store": store, "tasks": alive, "outbox": counts,
                # Items no retry will send: the process is healthy (a restart would not help), an operator must act
                # (`loanledger oracle outbox --status set_aside`).
                "attention": {"set_aside": counts.get(SET_ASIDE, 0), "rejected": counts.get("rejected", 0),
                              # Score reports set aside since the last one landed: the signers' quorum is not forming.
                              "score_reports_set_aside": quorum_failing,
                              # KYC registrations the registry refused (`loanledger oracle registrations`).
                              "registrations_set_aside": registrations_set_aside},
                "node_failures": worker.failures if worker is not None else None,
                "webhooks": sorted(self.verifier.providers) if self.verifier is not None else [],
                "uptime": round(time.time() - self.started_at, 1)})

        registry = CollectorRegistry(auto_describe=True)
        registry.register(_OutboxCollector(self))
        registry.register(_SuspenseCollector(self.sessions))
        registry.register(_ScoreQuorumCollector(self.sessions))
        registry.register(_RegistrationCollector(self.sessions))
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


class _OutboxCollector:
    """The outbox's items by status, read at scrape time; set-aside items also as their own gauge to alert on."""

    def __init__(self, service: OracleService):
        self.service = service

    def collect(self):
        try:
            counts = self.service.outbox.counts()
        except Exception:  # the store is down: /healthz says so; a scrape still answers
            log.warning("metrics: the outbox could not be counted", exc_info=True)
            return
        by_status = GaugeMetricFamily("loanledger_oracle_outbox_items", "Outbox items by status", labels=["status"])
        for status, count in sorted(counts.items()):
            by_status.add_metric([status], count)
        yield by_status
        yield GaugeMetricFamily("loanledger_oracle_outbox_set_aside",
                                "Outbox items set aside as never sendable: an operator must act",
                                value=counts.get(SET_ASIDE, 0))
        worker = self.service.worker
        if worker is not None:
            yield GaugeMetricFamily("loanledger_oracle_outbox_node_failures",
                                    "Consecutive outbox rounds the node (or the whole batch) failed",
                                    value=worker.failures)


class _SuspenseCollector:
    """Suspense items by state, read at scrape time, and those an operator still has to resolve as their own gauge."""

    def __init__(self, sessions: sessionmaker):
        self.sessions = sessions

    def collect(self):
        try:
            counts = suspense.counts(self.sessions)
        except Exception:  # the store is down: /healthz says so; a scrape still answers
            log.warning("metrics: the suspense items could not be counted", exc_info=True)
            return
        by_state = GaugeMetricFamily("loanledger_oracle_suspense_items",
                                     "Received payments held in suspense, by state", labels=["state"])
        for state, count in sorted(counts.items()):
            by_state.add_metric([state], count)
        yield by_state
        yield GaugeMetricFamily("loanledger_oracle_suspense_open",
                                "Received payments held in suspense that an operator has not resolved "
                                "(open, or a refund not yet confirmed)",
                                value=counts.get("open", 0) + counts.get("refunding", 0))


class _ScoreQuorumCollector:
    """Score report proposals set aside since the last report landed: to alert on (the signers' quorum is down)."""

    def __init__(self, sessions: sessionmaker):
        self.sessions = sessions

    def collect(self):
        try:
            count = score_quorum.failing(self.sessions)
        except Exception:  # the store is down: /healthz says so; a scrape still answers
            log.warning("metrics: the score proposals could not be counted", exc_info=True)
            return
        yield GaugeMetricFamily("loanledger_oracle_score_quorum_failing",
                                "Score reports set aside (no quorum of score signers, or refused) since the last "
                                "report that landed", value=count)


class _RegistrationCollector:
    """KYC registration intents by status, and those set aside (the registry refused them) as their own gauge."""

    def __init__(self, sessions: sessionmaker):
        self.sessions = sessions

    def collect(self):
        try:
            counts = registrations.counts(self.sessions)
        except Exception:  # the store is down: /healthz says so; a scrape still answers
            log.warning("metrics: the registration intents could not be counted", exc_info=True)
            return
        by_status = GaugeMetricFamily("loanledger_oracle_registrations", "KYC registration intents by status",
                                      labels=["status"])
        for status, count in sorted(counts.items()):
            by_status.add_metric([status], count)
        yield by_status
        yield GaugeMetricFamily("loanledger_oracle_registrations_set_aside",
                                "KYC registrations the registry refused: an operator must act",
                                value=counts.get(registrations.SET_ASIDE, 0))


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
