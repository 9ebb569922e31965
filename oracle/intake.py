"""The oracle's webhook endpoints: verify, store in the outbox, and only then acknowledge.

Each provider posts to `/v1/webhooks/{provider}`; the rail stand-in's layout names its provider in a
header, so `/v1/webhooks/payments` takes any of those (the URL the stand-in has always been given).

A provider retries until it gets a 2xx, so the answer is chosen carefully: 200 once the confirmation
is stored (or was stored before: a retry or a replay gets the first row back and changes nothing), a
4xx with a stable code when the webhook is not genuine or not well-formed (retrying will not help),
and 503 when the store cannot take it (retrying will).

An authentic repayment whose content the loan book could never take (`RefusedPayment`: a loan id past
uint256, an unknown currency, an amount past uint96...) is money the rail has moved: it is held as a
suspense item (oracle/suspense.py), nothing goes to the outbox, and the answer is 200 with status
`held_in_suspense`, since the rail stand-in, like providers, redelivers anything but a 2xx and a redelivery
would change nothing. A webhook whose signature fails is not money we know of: refused, nothing stored.

Redeliveries are compared with the payment as first received (the suspense item's facts when it has
one, as an operator's apply re-points the outbox row to another loan): the same facts are a `duplicate`
(200), other facts under the same reference or event id a `409 conflicting_replay`.
"""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from ledger.encoding import to_0x_hex
from oracle import collections as debits
from oracle import suspense
from oracle.outbox import Outbox
from oracle.payments.inbound import DeclinedDebit, RefusedPayment
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
        except RefusedPayment as refused:
            return hold(refused)
        except DeclinedDebit as declined:  # automatic debit: no money moved, the collection run's intent is told
            try:
                status = debits.record_decline(outbox.sessions, declined, int(time.time()))
            except SQLAlchemyError:
                return _error(503, "store_unavailable", "the decline could not be recorded; retry later")
            return JSONResponse({"status": status, "reference": declined.reference})
        except WebhookRejected as exc:
            log.warning("webhook refused (%s): %s", exc.code, exc.message)
            return _error(exc.status, exc.code, exc.message)
        try:
            held = suspense.held(outbox.sessions, confirmation.provider, confirmation.reference)
            if held is not None and held.outbox_item_id is None:
                # Held by the intake (its first delivery was refused), maybe applied since: not for the outbox.
                return held_answer(held, confirmation, "duplicate")
            item, created = outbox.put(confirmation)
        except SQLAlchemyError:
            log.exception("the outbox could not store %s/%s", confirmation.provider, confirmation.event_id)
            return _error(503, "store_unavailable", "the confirmation could not be stored; retry later")
        first_facts_differ = (_facts(item) != _facts(confirmation) if held is None
                              else not suspense.same_payment(held, confirmation))
        if not created and first_facts_differ:
            return conflict(confirmation)
        return JSONResponse({"status": "accepted" if created else "duplicate", "id": item.id,
                             "payment_ref": item.payment_ref})

    def hold(refused: RefusedPayment) -> JSONResponse:
        """An authentic payment refused on its content: held in suspense, once; answered 200 so the rail stops."""
        c = refused.confirmation
        try:
            first = suspense.held(outbox.sessions, c.provider, c.reference)
            if first is not None:  # held before (maybe applied since, with an outbox row of its own)
                return held_answer(first, c, "duplicate")
            seen = suspense.received(outbox.sessions, to_0x_hex(c.payment_ref))
            if seen is not None:  # accepted before under this reference: this delivery is not that payment
                if _facts(seen) == _facts(c):
                    return JSONResponse({"status": "duplicate", "id": seen.id, "payment_ref": seen.payment_ref})
                return conflict(c)
            item, created = suspense.hold_refused_webhook(outbox.sessions, refused, int(time.time()))
        except SQLAlchemyError:
            log.exception("the suspense item of %s/%s could not be stored", c.provider, c.reference)
            return _error(503, "store_unavailable", "the payment could not be recorded; retry later")
        if created:
            log.error("%s payment %s held in suspense (%s): %s; an operator must refund or apply it", c.provider,
                      c.reference, refused.reason, refused.message)
            return held_answer(item, c, "held_in_suspense")
        return held_answer(item, c, "duplicate")

    def held_answer(item, confirmation: Confirmation, status: str) -> JSONResponse:
        if status == "duplicate" and not suspense.same_payment(item, confirmation):
            return conflict(confirmation)
        return JSONResponse({"status": status, "suspense_item_id": item.id, "state": item.state,
                             "reason": item.reason, "payment_ref": item.payment_ref})

    def conflict(confirmation: Confirmation) -> JSONResponse:
        # Same event id or reference, different facts: a forgery with a stolen key or a rail bug. Keep the
        # first; an operator sorts it out.
        log.error("conflicting replay of %s event %s / reference %s", confirmation.provider,
                  confirmation.event_id, confirmation.reference)
        return _error(409, "conflicting_replay",
                      f"{confirmation.provider} event {confirmation.event_id} / reference "
                      f"{confirmation.reference} was received before with different contents")

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
