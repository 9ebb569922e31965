"""The payment-rail stand-in (`loanledger rail`): pays out, collects, and notifies by signed webhook.

It behaves like a mobile-payment provider towards the oracle: every payment gets the rail's own
reference, and a `payment.succeeded` webhook signed with the rail's RSA key is delivered to the
configured URL and retried with back-off until it is acknowledged with a 2xx. Payments are kept in
memory (it is a development tool); its key is kept on disk so the oracle can trust it across restarts.

Orders honour an `Idempotency-Key` header as payment providers do: the same key again answers with the
first order's payment (200, `Idempotent-Replayed: true`) and moves no money; the same key with another
order is refused (422); `GET /v1/orders/{key}` answers what an order key made (404: never taken), so a
caller whose answer was lost can ask before re-sending. A refund is notified as `refund.succeeded`, echoing the
order's `purpose` ("credit": it pays back a loan's credit balance and is confirmed on-chain; "suspense": it
returns money the book never took).

What a real provider reports as events, the stand-in takes as test/admin orders: `POST
/v1/payments/{reference}/reverse` (a chargeback or bounced debit of a collection: `payment.reversed`) and
`POST /v1/payments/{reference}/return` (a payout the receiving bank sent back: `payout.returned`). Each makes a
reversal with its own reference naming the original, once per original (asking again answers the same one).
Every webhook is signed and delivered the same way, retried until acknowledged.

`GET /v1/statements/{YYYY-MM-DD}` is the day's settlement statement (every payout, collection, refund,
reversal and return executed that UTC day), as providers publish daily statement files for reconciliation (oracle.payments.reconcile).

Automatic debit (issue 17): a collection order may name the card it debits (`card`, masked: "**** 1234"). A card
set short of funds (`PUT /v1/cards/{last4}/funds` {"sufficient": false}, a test order as banks' sandboxes have) is
declined: the order answers 201 with `status: "failed"`, `reason: "insufficient_funds"` and moves no money, and a
signed `collection.failed` webhook naming the order's key follows; the same Idempotency-Key again answers that failure
(a retry of a declined debit is a new order with a new key).

`GET /checkout` is a hosted checkout page for a payer sent by a merchant (oracle.payments.checkout): it places a
collection as `POST /v1/collections` does and sends the payer back.

`/v1/card-verifications` binds a card as banks do: the bank texts its own code to the card's reserved phone
(oracle.payments.card_verifications).
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

import httpx
from fastapi import FastAPI, Header, HTTPException, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from oracle.payments.card_verifications import CardDesk, card_router
from oracle.payments.checkout import checkout_router
from oracle.payments.signatures import RsaScheme, signature_headers

log = logging.getLogger(__name__)


@dataclass
class RailPayment:
    reference: str
    direction: Literal["payout", "collection"]
    loan_id: int
    amount: int
    currency: str
    paid_at: int
    event_id: str
    delivered: bool = False
    attempts: int = 0
    last_error: str | None = None

    def event(self) -> dict:
        return {"id": self.event_id, "type": "payment.succeeded", "created_at": self.paid_at,
                "data": {"direction": self.direction, "loan_id": self.loan_id, "reference": self.reference,
                         "amount": self.amount, "currency": self.currency, "paid_at": self.paid_at}}


@dataclass
class RailRefund:
    reference: str
    payment_reference: str
    loan_id: int
    amount: int
    currency: str
    refunded_at: int
    purpose: Literal["credit", "suspense"] = "suspense"
    event_id: str = ""
    delivered: bool = False
    attempts: int = 0
    last_error: str | None = None

    def event(self) -> dict:
        return {"id": self.event_id, "type": "refund.succeeded", "created_at": self.refunded_at,
                "data": {"reference": self.reference, "payment_reference": self.payment_reference,
                         "loan_id": self.loan_id, "amount": self.amount, "currency": self.currency,
                         "refunded_at": self.refunded_at, "purpose": self.purpose}}


REVERSAL_EVENTS = {"reversal": "payment.reversed", "return": "payout.returned"}


@dataclass
class RailReversal:
    """A payment the rail took back: a collection charged back or bounced ("reversal"), a payout the receiving
    bank returned ("return"). Its own reference; `payment_reference` names the original."""

    reference: str
    kind: Literal["reversal", "return"]
    payment_reference: str
    loan_id: int
    amount: int
    currency: str
    reversed_at: int
    event_id: str
    delivered: bool = False
    attempts: int = 0
    last_error: str | None = None

    def event(self) -> dict:
        return {"id": self.event_id, "type": REVERSAL_EVENTS[self.kind], "created_at": self.reversed_at,
                "data": {"reference": self.reference, "payment_reference": self.payment_reference,
                         "loan_id": self.loan_id, "amount": self.amount, "currency": self.currency,
                         "reversed_at": self.reversed_at}}


@dataclass
class RailDeclined:
    """A collection the card's bank declined: no money moved; `reason` as providers name it; notified as
    `collection.failed`, naming the order's Idempotency-Key (`order_key`) as providers echo the merchant's order id."""

    reference: str
    order_key: str
    loan_id: int
    amount: int
    currency: str
    card: str
    declined_at: int
    event_id: str
    reason: str = "insufficient_funds"
    status: str = "failed"
    delivered: bool = False
    attempts: int = 0
    last_error: str | None = None

    def event(self) -> dict:
        return {"id": self.event_id, "type": "collection.failed", "created_at": self.declined_at,
                "data": {"reference": self.reference, "order_key": self.order_key, "loan_id": self.loan_id,
                         "amount": self.amount, "currency": self.currency, "card": self.card, "reason": self.reason,
                         "declined_at": self.declined_at}}


Notified = RailPayment | RailRefund | RailReversal | RailDeclined  # what the rail sends a webhook for


class IdempotencyConflict(Exception):
    """An idempotency key reused for a different order."""


@dataclass
class PaymentRail:
    provider: str
    scheme: RsaScheme
    webhook_url: str | None = None
    clock: Callable[[], float] = time.time
    max_backoff: float = 30.0
    payments: dict[str, RailPayment] = field(default_factory=dict)
    refunds: dict[str, RailRefund] = field(default_factory=dict)
    reversals: dict[str, RailReversal] = field(default_factory=dict)  # by the original payment's reference
    short_of_funds: set[str] = field(default_factory=set)  # last four digits of cards whose debits are declined
    declined: dict[str, RailDeclined] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._serial = itertools.count(1)
        self._lock = threading.Lock()
        self._orders_lock = threading.Lock()  # held across a whole order, so a concurrent retry waits for it
        self._orders: dict[str, tuple[tuple, RailPayment | RailRefund]] = {}
        self._http = httpx.Client(timeout=5.0)

    def once(self, key: str | None, order: tuple, make: Callable[[], RailPayment | RailRefund],
             ) -> tuple[RailPayment | RailRefund, bool]:
        """(the result of `make()`, False), or for a key seen before (its first result, True)."""
        if key is None:
            return make(), False
        with self._orders_lock:
            seen = self._orders.get(key)
            if seen is not None:
                if seen[0] != order:
                    raise IdempotencyConflict(f"Idempotency-Key {key!r} was used for a different order")
                return seen[1], True
            made = make()
            self._orders[key] = (order, made)
            return made, False

    def find_order(self, key: str) -> RailPayment | RailRefund | None:
        """The payment or refund an order with this key made, if the rail took one (providers' order query)."""
        with self._orders_lock:  # an order in progress is answered once it is made, never as "not taken"
            seen = self._orders.get(key)
        return None if seen is None else seen[1]

    def statement(self, day: date) -> list[dict]:
        """Every payment and refund executed on this UTC day, in the order made: what a provider's daily file lists."""
        start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
        end = start + int(timedelta(days=1).total_seconds())
        with self._lock:
            made = [(p.paid_at, {"reference": p.reference, "direction": p.direction, "loan_id": p.loan_id,
                                 "amount": p.amount, "currency": p.currency, "paid_at": p.paid_at})
                    for p in self.payments.values()]
            made += [(r.refunded_at, {"reference": r.reference, "direction": "refund", "loan_id": r.loan_id,
                                      "amount": r.amount, "currency": r.currency, "paid_at": r.refunded_at,
                                      "payment_reference": r.payment_reference})
                     for r in self.refunds.values()]
            made += [(r.reversed_at, {"reference": r.reference, "direction": r.kind, "loan_id": r.loan_id,
                                      "amount": r.amount, "currency": r.currency, "paid_at": r.reversed_at,
                                      "payment_reference": r.payment_reference})
                     for r in self.reversals.values()]
        return [entry for at, entry in made if start <= at < end]

    def refund(self, payment_reference: str, amount: int, currency: str,
               purpose: Literal["credit", "suspense"] = "suspense", *, deliver: bool = True) -> RailRefund:
        """Returns money against a payment and notifies the oracle (`refund.succeeded`) in the background."""
        with self._lock:
            payment = self.payments.get(payment_reference)
            if payment is None:
                raise KeyError(payment_reference)
            refunded = sum(r.amount for r in self.refunds.values() if r.payment_reference == payment_reference)
            if currency != payment.currency or amount > payment.amount - refunded:
                left = payment.amount - refunded
                raise ValueError(f"{payment_reference} has {left} {payment.currency} left to refund")
            refund = RailRefund(reference=f"REF-{next(self._serial):08d}-{secrets.token_hex(3)}",
                                payment_reference=payment_reference, loan_id=payment.loan_id, amount=amount,
                                currency=currency, refunded_at=int(self.clock()), purpose=purpose,
                                event_id=f"evt_{secrets.token_hex(8)}")
            self.refunds[refund.reference] = refund
        self._notify(refund, deliver)
        return refund

    def reverse(self, payment_reference: str, kind: Literal["reversal", "return"], *,
                deliver: bool = True) -> tuple[RailReversal, bool]:
        """Takes a payment back (once per payment); returns (the reversal, whether it was made before)."""
        direction = "collection" if kind == "reversal" else "payout"
        with self._lock:
            payment = self.payments.get(payment_reference)
            if payment is None:
                raise KeyError(payment_reference)
            if payment.direction != direction:
                raise ValueError(f"{payment_reference} is a {payment.direction}: only a {direction} has a {kind}")
            seen = self.reversals.get(payment_reference)
            if seen is not None:
                return seen, True
            prefix = "REV" if kind == "reversal" else "RET"
            reversal = RailReversal(reference=f"{prefix}-{next(self._serial):08d}-{secrets.token_hex(3)}", kind=kind,
                                    payment_reference=payment_reference, loan_id=payment.loan_id,
                                    amount=payment.amount, currency=payment.currency,
                                    reversed_at=int(self.clock()), event_id=f"evt_{secrets.token_hex(8)}")
            self.reversals[payment_reference] = reversal
        self._notify(reversal, deliver)
        return reversal, False

    def notified(self, reference: str) -> Notified | None:
        """The payment, refund or reversal with this (its own) reference."""
        with self._lock:
            found = self.payments.get(reference) or self.refunds.get(reference) or self.declined.get(reference)
            return found or next((r for r in self.reversals.values() if r.reference == reference), None)

    def _notify(self, made: Notified, deliver: bool) -> None:
        if deliver and self.webhook_url:
            threading.Thread(target=self.deliver_until_acknowledged, args=(made,), daemon=True).start()

    def pay(self, direction: Literal["payout", "collection"], loan_id: int, amount: int, currency: str = "CNY",
            *, paid_at: int | None = None, deliver: bool = True) -> RailPayment:
        """Moves the money (here: records it) and notifies the oracle in the background."""
        with self._lock:
            serial = next(self._serial)
            prefix = "PAY" if direction == "payout" else "COL"
            payment = RailPayment(reference=f"{prefix}-{serial:08d}-{secrets.token_hex(3)}", direction=direction,
                                  loan_id=loan_id, amount=amount, currency=currency,
                                  paid_at=int(paid_at if paid_at is not None else self.clock()),
                                  event_id=f"evt_{secrets.token_hex(8)}")
            self.payments[payment.reference] = payment
        self._notify(payment, deliver)
        return payment

    def decline(self, order_key: str, loan_id: int, amount: int, currency: str, card: str, *,
                deliver: bool = True) -> RailDeclined:
        """Records a debit the card's bank declined for want of funds (no money moves) and notifies the oracle."""
        with self._lock:
            declined = RailDeclined(reference=f"DEC-{next(self._serial):08d}-{secrets.token_hex(3)}",
                                    order_key=order_key, loan_id=loan_id, amount=amount, currency=currency, card=card,
                                    declined_at=int(self.clock()), event_id=f"evt_{secrets.token_hex(8)}")
            self.declined[declined.reference] = declined
        self._notify(declined, deliver)
        return declined

    def signed_webhook(self, payment: Notified) -> tuple[dict[str, str], bytes]:
        body = json.dumps(payment.event(), separators=(",", ":")).encode()
        headers = signature_headers(self.provider, self.scheme, body, timestamp=int(self.clock()),
                                    nonce=secrets.token_hex(12))
        return {**headers, "Content-Type": "application/json"}, body

    def deliver_once(self, payment: Notified) -> bool:
        """One delivery attempt; signed afresh, so a retry carries a new timestamp and nonce."""
        if not self.webhook_url:
            raise RuntimeError("no webhook URL is configured")
        headers, body = self.signed_webhook(payment)
        payment.attempts += 1
        try:
            response = self._http.post(self.webhook_url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            payment.last_error = f"{type(exc).__name__}: {exc}"
            return False
        payment.delivered = 200 <= response.status_code < 300
        payment.last_error = None if payment.delivered else f"HTTP {response.status_code}: {response.text[:200]}"
        return payment.delivered

    def deliver_until_acknowledged(self, payment: Notified, give_up_after: float = 3600.0) -> bool:
        delay, deadline = 0.2, time.monotonic() + give_up_after
        while not self.deliver_once(payment):
            if time.monotonic() > deadline:
                log.error("webhook for %s not acknowledged; giving up: %s", payment.reference, payment.last_error)
                return False
            log.warning("webhook for %s not acknowledged (%s); retrying in %.1fs", payment.reference,
                        payment.last_error, delay)
            time.sleep(delay)
            delay = min(delay * 2, self.max_backoff)
        return True


def load_or_create_key(path: Path) -> RsaScheme:
    """The rail's signing key, created once (mode 0600)."""
    if path.exists():
        return RsaScheme.from_pem(path.read_bytes())
    scheme = RsaScheme.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(scheme.private_pem())
    return scheme


class PaymentOrder(BaseModel):
    loan_id: int = Field(ge=1)
    amount: int = Field(ge=1, lt=2**96)
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    paid_at: int | None = Field(default=None, ge=1, description="Defaults to now; demos set it to chain time.")
    card: str | None = Field(default=None, max_length=32, description="a debit's card, masked (\"**** 1234\")")


class RefundOrder(BaseModel):
    loan_id: int = Field(ge=1)
    payment_reference: str = Field(min_length=1, max_length=64)
    amount: int = Field(ge=1, lt=2**96)
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    purpose: Literal["credit", "suspense"] = "suspense"


class Funds(BaseModel):
    sufficient: bool = Field(description="false: the card's debits are declined for insufficient funds")


IdempotencyKey = Annotated[str | None, Header(max_length=255, description="same key, same order: same payment")]


def create_app(rail: PaymentRail, cards: CardDesk | None = None) -> FastAPI:
    """`cards`: the bank side of card verification (texts to the SMS outbox it names; none: a desk that texts
    nothing, its codes readable only in memory)."""
    app = FastAPI(title="LoanLedger payment-rail stand-in",
                  description="Pays out and collects; notifies by RSA-SHA256-signed webhook; verifies cards.")
    app.state.cards = cards = cards or CardDesk()
    app.include_router(card_router(cards))

    def _pay(direction: Literal["payout", "collection"], order: PaymentOrder, key: str | None,
             response: Response) -> dict:
        # paid_at is left out of what must match: a retry is sent later, with a later time, for the same money.
        facts = (direction, order.loan_id, order.amount, order.currency)
        try:
            payment, replayed = rail.once(key, facts, lambda: rail.pay(direction, order.loan_id, order.amount,
                                                                       order.currency, paid_at=order.paid_at))
        except IdempotencyConflict as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        if replayed:
            response.status_code, response.headers["Idempotent-Replayed"] = 200, "true"
        return asdict(payment)

    def _checkout(loan_id: int, amount: int, currency: str, key: str) -> dict:
        return _pay("collection", PaymentOrder(loan_id=loan_id, amount=amount, currency=currency), key, Response())

    app.include_router(checkout_router(_checkout))

    @app.post("/v1/payouts", status_code=201)
    def payout(order: PaymentOrder, response: Response, idempotency_key: IdempotencyKey = None) -> dict:
        return _pay("payout", order, idempotency_key, response)

    @app.post("/v1/collections", status_code=201)
    def collection(order: PaymentOrder, response: Response, idempotency_key: IdempotencyKey = None) -> dict:
        """Collects; a debit of a card short of funds is declined (`status: failed`, no money moved)."""
        if order.card and order.card[-4:] in rail.short_of_funds:
            facts = ("collection", order.loan_id, order.amount, order.currency)
            try:
                made, replayed = rail.once(idempotency_key, facts, lambda: rail.decline(
                    idempotency_key or "", order.loan_id, order.amount, order.currency, order.card))
            except IdempotencyConflict as exc:
                raise HTTPException(status_code=422, detail=str(exc)) from None
            if replayed:
                response.status_code, response.headers["Idempotent-Replayed"] = 200, "true"
            return asdict(made)
        return _pay("collection", order, idempotency_key, response)

    @app.put("/v1/cards/{last4}/funds")
    def funds(last4: str, body: Funds) -> dict:
        """Test order: makes the card's debits succeed or be declined for insufficient funds."""
        (rail.short_of_funds.discard if body.sufficient else rail.short_of_funds.add)(last4[-4:])
        return {"card": f"**** {last4[-4:]}", "sufficient": body.sufficient}

    @app.post("/v1/refunds", status_code=201)
    def refund(order: RefundOrder, response: Response, idempotency_key: IdempotencyKey = None) -> dict:
        """Returns money against a payment; `refund.succeeded` (echoing the purpose) follows by webhook."""
        facts = ("refund", order.payment_reference, order.amount, order.currency, order.purpose)
        try:
            made, replayed = rail.once(idempotency_key, facts,
                                       lambda: rail.refund(order.payment_reference, order.amount, order.currency,
                                                           order.purpose))
        except IdempotencyConflict as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        except KeyError:
            raise HTTPException(status_code=404, detail=f"no payment {order.payment_reference}") from None
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        if replayed:
            response.status_code, response.headers["Idempotent-Replayed"] = 200, "true"
        return asdict(made)

    @app.get("/v1/orders/{idempotency_key:path}")
    def order(idempotency_key: str) -> dict:
        """The payment (or refund) the order sent with this Idempotency-Key made; 404: no such order was taken."""
        found = rail.find_order(idempotency_key)
        if found is None:
            raise HTTPException(status_code=404, detail=f"no order with key {idempotency_key}")
        return asdict(found)

    @app.get("/v1/payments")
    def payments(loan_id: int | None = None, direction: Literal["payout", "collection"] | None = None) -> list[dict]:
        """Every payment the rail made, optionally for one loan and direction (as a provider's statement)."""
        return [asdict(p) for p in list(rail.payments.values())
                if (loan_id is None or p.loan_id == loan_id) and (direction is None or p.direction == direction)]

    @app.get("/v1/statements/{day}")
    def statement(day: date) -> dict:
        """The settlement statement of one UTC day (YYYY-MM-DD): every payment and refund executed that day."""
        entries = rail.statement(day)
        return {"provider": rail.provider, "date": day.isoformat(), "count": len(entries), "entries": entries}

    @app.get("/v1/payments/{reference}")
    def payment(reference: str) -> dict:
        found = rail.payments.get(reference)
        if found is None:
            raise HTTPException(status_code=404, detail=f"no payment {reference}")
        return asdict(found)

    @app.post("/v1/payments/{reference}/redeliver")
    def redeliver(reference: str) -> dict:
        """Sends the webhook of a payment, refund or reversal again (providers do; the oracle must not act twice)."""
        found = rail.notified(reference)
        if found is None:
            raise HTTPException(status_code=404, detail=f"no payment, refund or reversal {reference}")
        return {"acknowledged": rail.deliver_once(found), "attempts": found.attempts}

    def _take_back(reference: str, kind: Literal["reversal", "return"], response: Response) -> dict:
        try:
            reversal, seen = rail.reverse(reference, kind)
        except KeyError:
            raise HTTPException(status_code=404, detail=f"no payment {reference}") from None
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        if seen:
            response.status_code = 200
        return asdict(reversal)

    @app.post("/v1/payments/{reference}/reverse", status_code=201)
    def reverse(reference: str, response: Response) -> dict:
        """A chargeback or bounced debit of a collection (`payment.reversed`); once per payment."""
        return _take_back(reference, "reversal", response)

    @app.post("/v1/payments/{reference}/return", status_code=201)
    def payout_return(reference: str, response: Response) -> dict:
        """A payout returned by the receiving bank (`payout.returned`); once per payout."""
        return _take_back(reference, "return", response)

    @app.get("/v1/public-key", response_class=PlainTextResponse)
    def public_key() -> str:
        return rail.scheme.public_pem().decode()

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "provider": rail.provider, "payments": len(rail.payments)}

    return app
