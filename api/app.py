"""The FastAPI application: `create_app()` for `loanledger api` (uvicorn), tests and benchmarks."""

from __future__ import annotations

import gc
import importlib
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import errors, observability
from api.auth import RoleResolver
from api.context import Context
from api.notices.sender import NoticeSender
from api.otp import OtpService
from api.periodic import Periodic
from api.ratelimit import RateLimiter
from api.read_cache import CachedReadMiddleware, ReadCache
from api.services import credit_refunds
from api.sms import SmsSender, sms_provider
from api.stepup import StepUpService, protected_actions
from ledger.config import Settings, load_settings

ROUTERS = ("system", "audit", "auth", "stepup", "kyc", "loans", "products", "operator", "notices", "mandates",
           "dashboard", "app")

DESCRIPTION = """
LoanLedger exposes a permissioned lending ledger to three kinds of users.

* **Borrowers** sign in with their wallet (Sign-In with Ethereum), pass KYC with one-time codes, ask for
  quotes computed by the loan contract, apply with an EIP-712 signature the API relays, and follow
  their loans. They see only their own data.
* **Auditors** read everything (loans, pseudonymous borrowers, every event, payments, the portfolio),
  verify the index against the chain, and export; they change nothing.
* **Operators** register borrowers, approve or reject, order payouts, write off, pause, manage roles.

Every error is `{"error": {"code", "message"}}` with a stable code. POSTs that move money or change a
loan take an `Idempotency-Key` header. Amounts are integers in minor units; times are unix seconds.
"""


def create_app(context: Context | None = None, settings: Settings | None = None,
               sms: SmsSender | None = None) -> FastAPI:
    settings = settings or (context.settings if context else load_settings())
    context = context or Context.from_settings(settings)
    # The action log is anchored on-chain by the oracle process (oracle/anchoring.py), which holds the key the
    # anchor contract admits; the API holds no key with a role.
    # The automatic policy pays Overpaid loans' credit back (as an operator's `credit-refund` would).
    credit_refunder = Periodic("credit-refund-policy", settings.credit_refund_interval,
                               lambda: credit_refunds.refund_all_credit(context, f"policy-{uuid.uuid4().hex}"))
    read_cache = ReadCache(context)
    sms = sms or sms_provider(settings)
    # The risk monitor's SMS notices: rendered and sent here, where the vault (the phones) is (oracle/notify.py).
    notices = NoticeSender(context.sessions, context.vault, sms, max_attempts=settings.notice_max_attempts,
                           retry_after=settings.notice_retry_after,
                           successor=lambda wallet: context.bindings.registry.functions.successorOf(wallet).call())
    notice_sender = Periodic("notices", settings.notice_interval, notices.run_once)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        credit_refunder.start()
        notice_sender.start()
        # Everything imported and built so far lives as long as the process: kept out of the collector's
        # generations, so a full collection walks only what requests allocate (web3, SQLAlchemy and
        # pydantic leave a large heap whose every walk stalled all requests in flight).
        gc.collect()
        gc.freeze()
        yield
        credit_refunder.close()
        notice_sender.close()
        await read_cache.close()

    app = FastAPI(title="LoanLedger API", version="1", description=DESCRIPTION, lifespan=lifespan,
                  openapi_tags=[{"name": n} for n in ("auth", "kyc", "loans", "notices", "operator", "audit", "system")])
    app.state.credit_refunder = credit_refunder
    app.state.notices, app.state.notice_sender = notices, notice_sender
    app.state.context = context
    app.state.roles = RoleResolver(context)
    app.state.limiter = RateLimiter(settings.rate_limit_storage)
    app.state.sms = sms
    app.state.otp = OtpService(context.sessions, app.state.sms, app.state.limiter, context.jwt_secret)
    # Warns at start about each action the step_up_actions setting leaves without a code.
    app.state.step_up = StepUpService(context.sessions, app.state.sms, app.state.limiter, context.jwt_secret,
                                      protected_actions(settings.step_up_actions))
    app.state.metrics = observability.Metrics()
    app.state.read_cache = read_cache
    errors.install(app)
    # Added before the observability middleware, so it runs inside it: cached reads are observed too.
    app.add_middleware(CachedReadMiddleware, cache=read_cache, context=context, roles=app.state.roles)
    observability.install(app, app.state.metrics)
    for name in ROUTERS:
        app.include_router(importlib.import_module(f"api.routes.{name}").router)
    return app
