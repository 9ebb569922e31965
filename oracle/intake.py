"""The oracle's webhook endpoints: verify, store in the outbox, and only then acknowledge.

Each provider posts to `/v1/webhooks/{provider}`; the rail stand-in's layout names its provider in a
header, so `/v1/webhooks/payments` takes any of those (the URL the stand-in has always been given).

A provider retries until it gets a 2xx, so the answer is chosen carefully: 200 once the confirmation
is stored (or was stored before: a retry or a replay gets the first row back and changes nothing), a
4xx with a stable code when the webhook is not genuine or not well-formed (retrying will not help),
and 503 when the store cannot take it (retrying will).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from ledger.encoding import to_0x_hex
from oracle.outbox import Outbox
from oracle.payments.webhook import Confirmation, WebhookRejected, WebhookVerifier

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/v1/webhooks/payments"
PROVIDER_WEBHOOK_PATH = "/v1/webhooks/{provider}"


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}})


def _facts(c) -> tuple:
    """What a replay must repeat exactly; event id, timestamp and nonce may differ between deliveries."""
    ref = to_0x_hex(c.payment_ref)
    return c.kind, c.loan_id, ref, c.amount, c.currency, c.paid_at, c.reverses


def payment_webhooks(verifier: WebhookVerifier, outbox: Outbox) -> APIRouter:
    router = APIRouter(tags=["webhooks"])

    def verify_and_store(provider: str | None, headers, body: bytes) -> JSONResponse:
        try:
            confirmation: Confirmation = (verifier.verify(headers, body) if provider is None
                                          else verifier.verify_from(provider, headers, body))
        except WebhookRejected as exc:
            log.warning("webhook refused (%s): %s", exc.code, exc.message)
            return _error(exc.status, exc.code, exc.message)
        try:
            item, created = outbox.put(confirmation)
        except SQLAlchemyError:
            log.exception("the outbox could not store %s/%s", confirmation.provider, confirmation.event_id)
            return _error(503, "store_unavailable", "the confirmation could not be stored; retry later")
        if not created and _facts(item) != _facts(confirmation):
            # Same event id or reference, different facts: a forgery with a stolen key or a rail bug. Keep the
            # first; an operator sorts it out.
            log.error("conflicting replay of %s event %s / reference %s", confirmation.provider,
                      confirmation.event_id, confirmation.reference)
            return _error(409, "conflicting_replay",
                          f"{confirmation.provider} event {confirmation.event_id} / reference "
                          f"{confirmation.reference} was received before with different contents")
        return JSONResponse({"status": "accepted" if created else "duplicate", "id": item.id,
                             "payment_ref": item.payment_ref})

    @router.post(WEBHOOK_PATH, summary="A signed payment notification in the rail stand-in's layout")
    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        # Signature checks and the database write block: off the event loop.
        return await run_in_threadpool(verify_and_store, None, dict(request.headers), body)

    @router.post(PROVIDER_WEBHOOK_PATH, summary="A payment provider's signed payment notification, in its layout")
    async def receive_from(provider: str, request: Request) -> JSONResponse:
        body = await request.body()
        return await run_in_threadpool(verify_and_store, provider, dict(request.headers), body)

    return router
