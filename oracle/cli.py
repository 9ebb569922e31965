"""The oracle's commands: `loanledger oracle train|run|outbox|proposals|signer|policy`, and the development
stand-ins `rail` and `bureau`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

oracle_app = typer.Typer(help="Credit scoring and payment confirmations.", no_args_is_help=True)


@oracle_app.command("train")
def train_command(
    as_json: bool = typer.Option(False, "--json", help='Print {"auc": ..., "ks": ..., "gini": ...} only.'),
    out: Path = typer.Option(None, "--out", help="Folder for scorecard-v<N>.json (default: the repo's models)."),
    seed: int = typer.Option(20261124, "--seed", help="Seed of the stratified split."),
) -> None:
    """Train the scorecard on the German Credit data and report AUC, KS and Gini on a held-out split."""
    try:
        from oracle.scoring.train import train, write_model
        result = train(seed=seed)
    except ImportError as exc:
        raise typer.BadParameter(f"training needs the `train` extra (pip install -e '.[train]'): {exc}") from exc
    path = write_model(result, out) if out else write_model(result)
    if as_json:
        typer.echo(json.dumps(result.metrics))
        return
    table = Table(title=f"scorecard v{result.model['version']} (held-out {result.model['training']['held_out']})")
    for name in ("auc", "ks", "gini"):
        table.add_column(name.upper(), justify="right")
    table.add_row(*(f"{value:.4f}" for value in result.metrics.values()))
    Console().print(table)
    Console().print(f"written to {path}")


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@oracle_app.command("run")
def run_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address the webhook endpoint listens on."),
    port: int = typer.Option(8600, "--port", help="Port of the webhook endpoint and /healthz."),
    provider: list[str] = typer.Option(
        [], "--provider", help="A stand-in-layout provider whose webhooks are accepted: NAME=rsa:PEM_FILE or "
        "NAME=hmac:ENV_VAR (repeatable). Default: the `payment_providers` setting, else the rail stand-in's key."),
    window: int = typer.Option(300, "--window", min=1, help="Seconds a webhook's timestamp may be off our clock."),
    webhooks: bool = typer.Option(True, "--webhooks/--no-webhooks", help="Serve the webhook endpoint."),
    worker: bool = typer.Option(True, "--worker/--no-worker", help="Run the outbox worker, the KYC registration "
                                "worker and the action log's anchoring (`anchor_interval`)."),
    batch_size: int = typer.Option(50, "--batch-size", min=1, max=200, help="Confirmations per transaction."),
    interval: float = typer.Option(1.0, "--interval", min=0.01, help="Seconds between outbox rounds when idle."),
    max_backoff: float = typer.Option(60.0, "--max-backoff", min=0.01, help="Longest wait while the node is down."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
    risk: bool = typer.Option(True, "--risk/--no-risk", help="Run the risk monitor (reminders, warnings, defaults)."),
    reminder_days: int = typer.Option(3, "--reminder-days", min=0, help="Days before a due date to remind."),
    notify_webhook: str = typer.Option(None, "--notify-webhook", help="POST notices here (HMAC-signed with "
                                       "LOANLEDGER_NOTIFY_SECRET); default: the borrower's phone, "
                                       "sent by the API's notice sender."),
    scores: bool = typer.Option(True, "--scores/--no-scores", help="Score new borrowers and refresh after loan events."),
    monitor_interval: float = typer.Option(2.0, "--monitor-interval", min=0.1,
                                           help="Seconds between risk and scoring rounds."),
    reconcile: bool = typer.Option(True, "--reconcile/--no-reconcile",
                                   help="Reconcile the providers' statements of the previous UTC day."),
    reconcile_interval: float = typer.Option(3600.0, "--reconcile-interval", min=0.1,
                                             help="Seconds between reconciliation runs (each re-reads yesterday)."),
    quorum_timeout: float = typer.Option(10.0, "--quorum-timeout", min=0.1,
                                         help="Seconds a score report waits for its quorum of score signers "
                                              "(`loanledger oracle signer`) before it is set aside."),
) -> None:
    """Run the oracle: payment webhooks, the outbox worker, KYC registrations, action-log anchors, the risk monitor
    and score refreshes, until SIGTERM."""
    from ledger.cli._common import fail
    from ledger.config import load_settings
    from oracle.outbox import fault_injection
    from oracle.payments.config import ProviderConfigError, webhook_providers
    from oracle.service import OracleService, build_verifier

    _logging(log_level)
    settings = load_settings()
    try:
        providers = webhook_providers(settings, settings.environ, provider) if webhooks else {}
    except ProviderConfigError as exc:
        raise fail(str(exc)) from None
    if webhooks and not providers:
        raise fail("no payment provider is configured: set `payment_providers` (see oracle/payments/config.py), "
                   "pass --provider NAME=rsa:PEM_FILE, or start the rail stand-in (`loanledger rail`) once "
                   "to create its key")
    if not (webhooks or worker):
        raise fail("nothing to run: --no-webhooks and --no-worker together")
    try:
        fault = fault_injection(settings.outbox_fault)
    except ValueError as exc:
        raise fail(str(exc)) from None

    from ledger.chain import SignerNotConfigured, load_account
    from ledger.store import open_store
    try:
        account = load_account(settings, "oracle") if worker else None
    except SignerNotConfigured as exc:
        raise fail(str(exc)) from None
    sessions = open_store(settings.database_url)
    outbox_worker = (_outbox_worker(settings, sessions, account, batch_size, interval, max_backoff, fault)
                     if worker else None)
    service = OracleService(sessions, build_verifier(providers, window) if webhooks else None, outbox_worker)
    if reconcile:
        _add_reconciliation(service, settings, sessions, reconcile_interval)
    if worker:
        # KYC registrations and the action log's anchors: sent with the oracle's key, as the outbox's are.
        for task in _chain_tasks(settings, sessions, outbox_worker, interval):
            service.add_task(task)
    if risk or scores:
        shared = outbox_worker.client if outbox_worker else None  # one nonce manager per key per process
        for task in _monitor_tasks(settings, sessions, risk, scores, reminder_days, notify_webhook, monitor_interval,
                                   shared, quorum_timeout):
            service.add_task(task)
    logging.getLogger("oracle").info(
        "oracle: webhooks %s, outbox worker %s, store %s", f"on http://{host}:{port}" if webhooks else "off",
        "on" if worker else "off", settings.database_url.split("@")[-1])
    service.serve(host, port, http=webhooks, log_level=log_level)


@oracle_app.command("outbox")
def outbox_command(
    status: str = typer.Option(None, "--status", help="Only items in this status: pending, sending, done, rejected, "
                               "set_aside (never sendable as stored: an operator must act)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per item."),
) -> None:
    """List the outbox's payment confirmations with their status and, for refused or set-aside ones, why."""
    from ledger.config import load_settings
    from ledger.store import open_store
    from oracle.outbox import Outbox

    sessions = open_store(load_settings().database_url)
    try:
        items = Outbox(sessions).items(status)
    finally:
        sessions.kw["bind"].dispose()
    columns = ("id", "status", "outcome", "kind", "provider", "reference", "loan_id", "amount", "currency",
               "attempts", "last_error")
    if as_json:
        for item in items:
            # Ids and amounts as strings: they may be past what a JSON reader's doubles hold exactly.
            typer.echo(json.dumps({c: str(v) if c in ("loan_id", "amount") else v
                                   for c in columns for v in [getattr(item, c)]}))
        return
    table = Table(title=f"outbox: {len(items)} item(s)" + (f" {status}" if status else ""))
    for column in columns:
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(*("" if getattr(item, c) is None else str(getattr(item, c)) for c in columns))
    Console().print(table)


@oracle_app.command("proposals")
def proposals_command(
    state: str = typer.Option(None, "--state", help="Only proposals in this state: open, submitted, set_aside."),
    limit: int = typer.Option(50, "--limit", min=1, help="The newest this many."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per proposal."),
) -> None:
    """The score reports proposed to the score signers: which landed, which were set aside and why, who signed
    and who refused what."""
    from dataclasses import asdict

    from ledger.config import load_settings
    from ledger.store import open_store
    from oracle.quorum import recent

    sessions = open_store(load_settings().database_url)
    try:
        views = recent(sessions, state, limit)
    finally:
        sessions.kw["bind"].dispose()
    if as_json:
        for view in views:
            typer.echo(json.dumps(asdict(view)))
        return
    table = Table(title=f"score proposals: {len(views)}" + (f" {state}" if state else ""))
    for column in ("id", "report", "state", "borrowers", "signed", "refused", "reason", "tx"):
        table.add_column(column, overflow="fold")
    for v in views:
        table.add_row(str(v.id), str(v.report_id), v.state, str(v.borrowers), f"{len(v.signed)}/{v.threshold} "
                      + ", ".join(v.signed), "; ".join(f"{name}: {why}" for name, why in v.refused.items()),
                      v.reason or "", v.tx_hash or "")
    Console().print(table)


def _add_reconciliation(service, settings, sessions, interval: float) -> None:
    """The scheduled reconciliation run and its gauge (`loanledger_oracle_reconciliation_unmatched`)."""
    from oracle.payments.config import ProviderConfigError, load_providers
    from oracle.payments.reconcile import ScheduledReconciliation
    from oracle.service import BackgroundTask, every

    try:
        providers = load_providers(settings, settings.environ, webhooks=False)
    except ProviderConfigError as exc:  # the oracle's other duties do not wait for a provider's API key
        logging.getLogger("oracle").warning("reconciliation is off: %s", exc)
        return
    service.reconciliation = ScheduledReconciliation(providers, sessions)
    service.add_task(BackgroundTask("reconciliation", every(interval, service.reconciliation.run_once,
                                                            "reconciliation")))


def _chain_tasks(settings, sessions, outbox_worker, interval: float):
    """The registration worker (completed KYCs registered on-chain) and the action log's anchoring, signing with the
    outbox worker's client (one nonce manager per key per process)."""
    from ledger.cli._common import manifest
    from ledger.contracts import bind
    from oracle.anchoring import Anchorer
    from oracle.registrations import RegistrationWorker
    from oracle.service import BackgroundTask, every

    client = outbox_worker.client
    bindings = bind(client.w3, manifest(settings))
    registrations = RegistrationWorker(sessions, client, bindings.registry)
    tasks = [BackgroundTask("registrations", every(interval, registrations.run_once, "registration"))]
    if settings.anchor_interval > 0:
        anchorer = Anchorer(sessions, client, bindings.anchor)
        tasks.append(BackgroundTask("anchor", every(settings.anchor_interval, anchorer.anchor_once,
                                                    "action-log anchor")))
    return tasks


@oracle_app.command("registrations")
def registrations_command(
    status: str = typer.Option(None, "--status", help="Only intents in this status: pending, done, set_aside "
                               "(the registry refused it: an operator must act)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per intent."),
) -> None:
    """The KYC registrations the oracle sends: which landed, which wait, which were set aside and why."""
    from ledger.config import load_settings
    from ledger.store import open_store
    from oracle.registrations import intents

    sessions = open_store(load_settings().database_url)
    try:
        rows = intents(sessions, status)
    finally:
        sessions.kw["bind"].dispose()
    columns = ("borrower", "status", "outcome", "kyc_expires_at", "attempts", "tx_hash", "last_error")
    if as_json:
        for row in rows:
            typer.echo(json.dumps({c: getattr(row, c) for c in columns}))
        return
    table = Table(title=f"registrations: {len(rows)}" + (f" {status}" if status else ""))
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if getattr(row, c) is None else str(getattr(row, c)) for c in columns))
    Console().print(table)


def _monitor_tasks(settings, sessions, risk: bool, scores: bool, reminder_days: int, notify_webhook: str | None,
                   interval: float, oracle=None, quorum_timeout: float = 10.0):
    """The risk monitor (declares defaults as the oracle) and the score refresher (proposes each report to the
    score signers, submits it as the oracle once a quorum signed it; it holds no signer key)."""
    from ledger.chain import ChainClient, SignerNotConfigured, load_account, web3_for
    from ledger.cli._common import fail, manifest
    from ledger.contracts import bind
    from oracle.service import BackgroundTask, bureau_api_key, every

    w3 = oracle.w3 if oracle is not None else web3_for(settings)
    bindings = bind(w3, manifest(settings))
    try:
        if oracle is None:
            oracle = ChainClient(w3, load_account(settings, "oracle"), bindings.errors,
                                 receipt_timeout=settings.tx_timeout)
    except SignerNotConfigured as exc:
        raise fail(str(exc)) from None
    chain_time = lambda: w3.eth.get_block("latest")["timestamp"]  # noqa: E731
    tasks = []
    if risk:
        from oracle.notify import SmsQueue, WebhookSender
        from oracle.risk import RiskMonitor
        secret = settings.notify_secret.get_secret_value().encode() if settings.notify_secret else b""
        sender = WebhookSender(notify_webhook, secret) if notify_webhook else SmsQueue(bindings.book.address)
        monitor = RiskMonitor(sessions, bindings.book, sender, client=oracle, reminder_days=reminder_days)
        tasks.append(BackgroundTask("risk", every(interval, monitor.run_once, "risk monitor")))
        # Automatic debit (issue 17): on due dates, the mandated loans' amounts due are debited through the rail.
        import httpx

        from oracle.collections import CollectionRun
        debits = CollectionRun(sessions, bindings.book, httpx.Client(base_url=settings.rail_url, timeout=10.0))
        tasks.append(BackgroundTask("collections", every(interval, debits.run_once, "collection run")))
    if scores:
        from oracle.bureau.source import HttpBureau
        from oracle.quorum import QuorumPusher
        from oracle.refresh import ScoreRefresher
        from oracle.scoring.scorecard import load_scorecard
        scorecard = load_scorecard()
        signers = len(bindings.manifest.granted("CreditOracle").get("SCORE_SIGNER_ROLE", [])) or None
        pusher = QuorumPusher(bindings.oracle, oracle.transact, sessions, scorecard.version, timeout=quorum_timeout,
                              signers=signers)
        bureau = HttpBureau(settings.bureau_url, bureau_api_key(settings))
        refresher = ScoreRefresher(sessions, bureau, scorecard, pusher, chain_time=chain_time)
        tasks.append(BackgroundTask("scores", every(interval, refresher.run_once, "score refresher")))
    return tasks


@oracle_app.command("signer")
def signer_command(
    name: str = typer.Option(..., "--name", help="Which score signer: its key is LOANLEDGER_<NAME>_KEY or the "
                             "keystore <keystore dir>/<name>.json (e.g. score_signer_2)."),
    bureau_url: str = typer.Option(None, "--bureau-url", help="The bureau it scores from (default: the "
                                   "`bureau_url` setting); its own read, not the oracle's."),
    interval: float = typer.Option(0.2, "--interval", min=0.01, help="Seconds between looks for new proposals."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
) -> None:
    """Run one score signer until SIGTERM: re-score each proposed report's borrowers, sign only matching values.

    Run N of them, each with its own key, beside `loanledger oracle run`; the credit oracle accepts a report
    with `signerThreshold` of their signatures (`loanledger roles` shows it).
    """
    import signal
    import threading

    from ledger.chain import SignerNotConfigured, load_account
    from ledger.cli._common import fail, manifest
    from ledger.config import load_settings
    from ledger.store import open_store
    from oracle.bureau.source import HttpBureau
    from oracle.quorum import ScoreSigner
    from oracle.refresh import Scorer
    from oracle.scoring.scorecard import load_scorecard
    from oracle.service import bureau_api_key

    _logging(log_level)
    settings = load_settings()
    try:
        account = load_account(settings, name)
    except SignerNotConfigured as exc:
        raise fail(str(exc)) from None
    deployed = manifest(settings)
    sessions = open_store(settings.database_url)
    scorecard = load_scorecard()
    scorer = Scorer(sessions, HttpBureau(bureau_url or settings.bureau_url, bureau_api_key(settings)), scorecard)
    signer = ScoreSigner(name, account, sessions, scorer, chain_id=deployed.chain_id,
                         oracle=deployed.address("CreditOracle"), model_version=scorecard.version)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    logging.getLogger("oracle").info("score signer %s (%s): scorecard v%d, bureau %s, store %s", name,
                                     account.address, scorecard.version, bureau_url or settings.bureau_url,
                                     settings.database_url.split("@")[-1])
    try:
        signer.run(stop, interval)
    finally:
        sessions.kw["bind"].dispose()
    logging.getLogger("oracle").info("score signer %s stopped", name)


@oracle_app.command("policy")
def policy_command(
    interval: float = typer.Option(0.2, "--interval", min=0.01, help="Seconds between rounds."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
) -> None:
    """Run the automatic approval policy until SIGTERM: approve, or reject with the loan book's reason, the
    Requested loans their product made autoApprovable, and order the payouts of its approvals.

    It holds only the policy key (LOANLEDGER_POLICY_KEY or the keystore <keystore dir>/policy.json: POLICY_ROLE on
    the loan book, which admits it only for autoApprovable loans); operators switch it on and off through the API.
    """
    import signal
    import threading

    from ledger.chain import ChainClient, SignerNotConfigured, load_account, web3_for
    from ledger.cli._common import fail, manifest
    from ledger.config import load_settings
    from ledger.contracts import bind
    from ledger.store import open_store
    from oracle.policy import Policy, PolicyContext

    _logging(log_level)
    settings = load_settings()
    try:
        account = load_account(settings, "policy")
    except SignerNotConfigured as exc:
        raise fail(str(exc)) from None
    w3 = web3_for(settings)
    bindings = bind(w3, manifest(settings))
    sessions = open_store(settings.database_url)
    context = PolicyContext(settings, sessions, w3, bindings)
    client = ChainClient(w3, account, bindings.errors, receipt_timeout=settings.tx_timeout)
    policy = Policy(context, client, fault=settings.policy_fault)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    logging.getLogger("oracle").info("automatic policy (%s): loan book %s, store %s", account.address,
                                     bindings.book.address, settings.database_url.split("@")[-1])
    try:
        if not policy.holds_role():
            logging.getLogger("oracle").warning("the policy key %s does not hold POLICY_ROLE on the loan book: the "
                                                "book will refuse its decisions (grant it, or configure the "
                                                "deployed policy key)", account.address)
    except Exception as exc:  # noqa: BLE001 - the node may be down at start: the rounds wait for it
        logging.getLogger("oracle").warning("could not check the policy key's role: %s", exc)
    try:
        policy.run(stop, interval)
    finally:
        sessions.kw["bind"].dispose()
    logging.getLogger("oracle").info("automatic policy stopped")


@oracle_app.command("policy-status")
def policy_status_command(as_json: bool = typer.Option(False, "--json", help="One JSON object.")) -> None:
    """Whether the automatic policy is switched on, and the loans its last round set aside (and why): what an
    operator must look at (a paused book, a key without POLICY_ROLE, a node error). The oracle's /healthz
    (attention.policy_set_aside) and loanledger_oracle_policy_set_aside count the same list
    (oracle.policy.set_aside)."""
    from types import SimpleNamespace

    from api.services.decisions import auto_approve_enabled
    from ledger.config import load_settings
    from ledger.store import open_store
    from oracle.policy import set_aside

    settings = load_settings()
    sessions = open_store(settings.database_url)
    try:
        status = {"auto_approve": auto_approve_enabled(SimpleNamespace(sessions=sessions, settings=settings)),
                  "set_aside": {str(k): v for k, v in set_aside(sessions).items()}}
    finally:
        sessions.kw["bind"].dispose()
    if as_json:
        typer.echo(json.dumps(status))
        return
    typer.echo(f"automatic policy: {'on' if status['auto_approve'] else 'off'}; "
               f"{len(status['set_aside'])} loan(s) set aside by its last round")
    for loan_id, why in status["set_aside"].items():
        typer.echo(f"  loan {loan_id}: {why}")


def _outbox_worker(settings, sessions, account, batch_size: int, interval: float, max_backoff: float, fault):
    """The worker, signing as the oracle; the node may be down at start (the worker waits for it)."""
    from ledger.chain import ChainClient, NodeUnavailable, connect, web3_for
    from ledger.cli._common import deployment, fail, manifest
    from ledger.contracts import bind
    from oracle.outbox import Outbox, OutboxWorker

    try:
        connect(settings, timeout=settings.tx_timeout)
    except NodeUnavailable as exc:
        logging.getLogger("oracle").warning("%s; the outbox worker will wait for it", exc)
        bindings = bind(web3_for(settings), manifest(settings))
    else:
        bindings = deployment(settings)  # checks the node holds the manifest's contracts
        book = bindings.book
        if not book.functions.hasRole(book.functions.ORACLE_ROLE().call(), account.address).call():
            raise fail(f"the oracle signer {account.address} does not hold ORACLE_ROLE on the LoanBook at "
                       f"{book.address}: grant it (`loanledger roles`) or configure the right key")
    client = ChainClient(bindings.book.w3, account, bindings.errors, receipt_timeout=settings.tx_timeout)
    return OutboxWorker(Outbox(sessions), client, bindings.book, batch_size=batch_size, interval=interval,
                        max_backoff=max_backoff, fault=fault, from_block=bindings.manifest.start_block)


rail_app = typer.Typer(help="The payment-rail stand-in, and reconciliation against any configured provider.",
                       invoke_without_command=True, no_args_is_help=False)


@rail_app.callback()
def rail_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8700, "--port"),
    provider: str = typer.Option("mockpay", "--provider", help="The provider name the webhooks are signed as."),
    webhook_url: str = typer.Option("http://127.0.0.1:8600/v1/webhooks/payments", "--webhook-url",
                                    help="Where payment notifications go (the oracle's endpoint)."),
    key: Path = typer.Option(None, "--key", help="The rail's RSA key (default <home>/keys/rail.pem, created once)."),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Run the payment-rail stand-in: pays out and collects, notifies by RSA-SHA256-signed webhook.

    `loanledger rail reconcile --date D` instead reconciles a provider's statement against the ledger.
    """
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from ledger.config import load_settings
    from oracle.payments.card_verifications import CardDesk
    from oracle.payments.config import rail_key_path
    from oracle.payments.rail import PaymentRail, create_app, load_or_create_key

    _logging(log_level)
    settings = load_settings()
    path = key or rail_key_path(settings.home)
    rail = PaymentRail(provider, load_or_create_key(path), webhook_url=webhook_url or None)
    logging.getLogger("oracle").info("rail stand-in %s on http://%s:%d, key %s, webhooks to %s", provider, host,
                                     port, path, webhook_url)
    # The bank's card codes go to the development SMS outbox, where the borrower's handset is simulated.
    uvicorn.run(create_app(rail, CardDesk(outbox=settings.sms_outbox_path)), host=host, port=port,
                log_level=log_level)


@rail_app.command("reconcile")
def reconcile_command(
    day: str = typer.Option(..., "--date", help="The UTC day of the statement, YYYY-MM-DD."),
    provider: str = typer.Option(None, "--provider", help="Only this configured provider (default: every one "
                                 "whose adapter reads statements)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON report per provider."),
    as_csv: bool = typer.Option(False, "--csv", help="Every row as CSV (one header; the provider is a column)."),
) -> None:
    """Match a provider's settlement statement for a day against the ledger; exit 1 unless everything matched.

    Categories: matched, amount_differs, rail_only (with the outbox's status and reason when the oracle
    received it), chain_only. Reads the store the indexer fills: run it after the indexer has caught up.
    """
    from datetime import date

    from ledger.cli._common import fail
    from ledger.config import load_settings
    from ledger.store import open_store
    from oracle.payments.config import ProviderConfigError, load_providers
    from oracle.payments.provider import ProviderError
    from oracle.payments.reconcile import CSV_COLUMNS, reconcile_day

    try:
        when = date.fromisoformat(day)
    except ValueError:
        raise typer.BadParameter(f"{day!r} is not a date (YYYY-MM-DD)", param_hint="--date") from None
    if as_json and as_csv:
        raise typer.BadParameter("--json and --csv together", param_hint="--json")
    settings = load_settings()
    try:
        providers = load_providers(settings, settings.environ, webhooks=False)
    except ProviderConfigError as exc:
        raise fail(str(exc)) from None
    if provider is not None:
        if provider not in providers:
            raise fail(f"no payment provider named {provider!r} is configured (configured: {', '.join(providers)})")
        providers = {provider: providers[provider]}
    sessions = open_store(settings.database_url)
    try:
        reports, skipped = reconcile_day(providers, when, sessions)
    except ProviderError as exc:
        raise fail(str(exc), code=2) from None
    finally:
        sessions.kw["bind"].dispose()
    if skipped and len(providers) == 1:
        raise fail(next(iter(skipped.values())))
    for why in skipped.values():
        logging.getLogger("oracle").warning("%s; skipped", why)
    if as_json:
        for report in reports:
            typer.echo(json.dumps(report.as_json()))
    elif as_csv:
        typer.echo(",".join(CSV_COLUMNS))
        for report in reports:
            typer.echo(report.as_csv().split("\n", 1)[1], nl=False)
    else:
        for report in reports:
            counts = report.counts
            table = Table(title=f"{report.provider} {when}: " + ", ".join(f"{c} {n}" for c, n in counts.items()))
            for column in ("category", "reference", "direction", "kind", "loan_id", "rail_amount", "ledger_amount",
                           "outbox_status", "outbox_reason"):
                table.add_column(column, overflow="fold")
            for row in report.rows:
                if row.category != "matched":
                    table.add_row(*("" if v is None else str(v) for v in (
                        row.category, row.reference or row.payment_ref, row.direction, row.kind, row.loan_id,
                        row.rail_amount, row.ledger_amount, row.outbox_status, row.outbox_reason)))
            Console().print(table)
    if not all(report.balanced for report in reports):
        raise typer.Exit(1)


def bureau_command(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8800, "--port"),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Run the credit-bureau stand-in: German Credit records behind a bureau's HTTP API.

    Clients present a bearer key: LOANLEDGER_BUREAU_API_KEY, else the one kept in <home>/keys/bureau-api-key.
    """
    import uvicorn

    from ledger.cli._common import fail
    from ledger.config import load_settings
    from oracle.bureau.source import BureauError, LocalBureau
    from oracle.bureau.standin import create_app
    from oracle.service import bureau_api_key

    _logging(log_level)
    api_key = bureau_api_key(load_settings())
    try:
        bureau = LocalBureau()
    except BureauError as exc:
        raise fail(str(exc)) from None
    uvicorn.run(create_app(bureau, api_key), host=host, port=port, log_level=log_level)


def register(app: typer.Typer) -> None:
    app.add_typer(oracle_app, name="oracle")
    app.add_typer(rail_app, name="rail")
    app.command("bureau")(bureau_command)
