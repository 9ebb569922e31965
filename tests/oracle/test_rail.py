"""The payment-rail stand-in: signed webhooks the oracle's verifier accepts, retried until acknowledged."""

from __future__ import annotations

import time

import httpx
from fastapi import FastAPI, Request, Response

from oracle.payments.rail import PaymentRail, create_app, load_or_create_key
from oracle.payments.signatures import RsaScheme
from oracle.payments.webhook import WebhookRejected, WebhookVerifier, payment_ref


def receiver(verifier: WebhookVerifier, fail_first: int = 0):
    """A webhook endpoint that verifies, records, and refuses the first `fail_first` deliveries."""
    app, seen, refused = FastAPI(), [], []

    @app.get("/healthz")
    def healthz() -> dict:
        return {}

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        body = await request.body()
        try:
            confirmation = verifier.verify(request.headers, body)
        except WebhookRejected as exc:
            refused.append(exc.code)
            return Response(status_code=exc.status)
        if len(seen) + len(refused) < fail_first:
            refused.append("unavailable")
            return Response(status_code=503)
        seen.append(confirmation)
        return Response(status_code=200)

    return app, seen, refused


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_payout_and_collection_arrive_signed_and_normalised(serve_app, tmp_path):
    scheme = load_or_create_key(tmp_path / "rail.pem")
    assert (tmp_path / "rail.pem").stat().st_mode & 0o777 == 0o600
    assert load_or_create_key(tmp_path / "rail.pem").public_pem() == scheme.public_pem()  # kept across restarts
    verifier = WebhookVerifier({"mockpay": RsaScheme.from_pem(scheme.public_pem())})
    app, seen, refused = receiver(verifier)
    with serve_app(app) as hook_url:
        rail = PaymentRail("mockpay", scheme, webhook_url=f"{hook_url}/hook")
        with serve_app(create_app(rail)) as rail_url:
            paid = httpx.post(f"{rail_url}/v1/payouts", json={"loan_id": 3, "amount": 120_000}).json()
            collected = httpx.post(f"{rail_url}/v1/collections", json={"loan_id": 3, "amount": 41_000}).json()
            wait_for(lambda: len(seen) == 2)
            assert httpx.get(f"{rail_url}/v1/public-key").text.encode() == scheme.public_pem()
            assert httpx.get(f"{rail_url}/v1/payments/{paid['reference']}").json()["delivered"] is True
            bad = httpx.post(f"{rail_url}/v1/payouts", json={"loan_id": 3, "amount": 12.5})
            assert bad.status_code == 422
    by_kind = {c.kind: c for c in seen}
    assert by_kind["disbursement"].amount == 120_000 and by_kind["repayment"].amount == 41_000
    assert by_kind["repayment"].payment_ref == payment_ref("mockpay", collected["reference"])
    assert refused == []


def test_unacknowledged_webhooks_are_retried_with_fresh_signatures(serve_app):
    scheme = RsaScheme.generate()
    verifier = WebhookVerifier({"mockpay": RsaScheme.from_pem(scheme.public_pem())})
    app, seen, refused = receiver(verifier, fail_first=2)
    with serve_app(app) as hook_url:
        rail = PaymentRail("mockpay", scheme, webhook_url=f"{hook_url}/hook")
        payment = rail.pay("collection", 9, 500)
        wait_for(lambda: len(seen) == 1)
    assert refused == ["unavailable", "unavailable"]
    assert payment.attempts == 3 and payment.delivered
    assert seen[0].event_id == payment.event_id


def test_a_redelivery_carries_the_same_event_and_reference(serve_app):
    scheme = RsaScheme.generate()
    verifier = WebhookVerifier({"mockpay": RsaScheme.from_pem(scheme.public_pem())})
    app, seen, _ = receiver(verifier)
    with serve_app(app) as hook_url:
        rail = PaymentRail("mockpay", scheme, webhook_url=f"{hook_url}/hook")
        with serve_app(create_app(rail)) as rail_url:
            payment = rail.pay("collection", 9, 500, deliver=False)
            assert httpx.post(f"{rail_url}/v1/payments/{payment.reference}/redeliver").json()["acknowledged"]
            assert httpx.post(f"{rail_url}/v1/payments/{payment.reference}/redeliver").json()["attempts"] == 2
            assert httpx.post(f"{rail_url}/v1/payments/nope/redeliver").status_code == 404
    assert [c.event_id for c in seen] == [payment.event_id] * 2
    assert seen[0].payment_ref == seen[1].payment_ref


def test_a_webhook_from_another_key_is_refused_by_the_receiver(serve_app):
    verifier = WebhookVerifier({"mockpay": RsaScheme.generate()})
    app, seen, refused = receiver(verifier)
    with serve_app(app) as hook_url:
        rail = PaymentRail("mockpay", RsaScheme.generate(), webhook_url=f"{hook_url}/hook")
        assert rail.deliver_once(rail.pay("payout", 1, 10, deliver=False)) is False
    assert seen == [] and refused == ["bad_signature"]
