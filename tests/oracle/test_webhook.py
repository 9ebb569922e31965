"""Payment webhooks: signed by the provider, inside the time window, well-formed — or refused by name."""

from __future__ import annotations

import json

import pytest
from eth_utils import keccak

from oracle.payments.signatures import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    HmacScheme,
    RsaScheme,
    signature_headers,
)
from oracle.payments.webhook import (
    BadSignature,
    MalformedWebhook,
    OutsideTimeWindow,
    UnknownProvider,
    WebhookVerifier,
)

NOW = 1_800_000_000
RAIL = RsaScheme.generate()


def event(**data) -> dict:
    payment = {"direction": "collection", "loan_id": 7, "reference": "COL-0001", "amount": 41_212,
               "currency": "CNY", "paid_at": NOW - 5}
    payment.update(data)
    return {"id": "evt_1", "type": "payment.succeeded", "created_at": NOW - 4, "data": payment}


def signed(payload: dict, scheme=RAIL, provider="mockpay", timestamp=NOW, nonce="n-1") -> tuple[dict, bytes]:
    body = json.dumps(payload).encode()
    return signature_headers(provider, scheme, body, timestamp=timestamp, nonce=nonce), body


@pytest.fixture
def verifier() -> WebhookVerifier:
    public_only = RsaScheme.from_pem(RAIL.public_pem())
    return WebhookVerifier({"mockpay": public_only, "hmacpay": HmacScheme(b"s3cret")}, clock=lambda: NOW)


def test_a_signed_collection_becomes_a_repayment_confirmation(verifier):
    confirmation = verifier.verify(*signed(event()))
    assert (confirmation.kind, confirmation.loan_id, confirmation.amount, confirmation.paid_at) == (
        "repayment", 7, 41_212, NOW - 5)
    assert confirmation.payment_ref == keccak(b"mockpay:COL-0001")
    assert (confirmation.provider, confirmation.event_id, confirmation.currency) == ("mockpay", "evt_1", "CNY")


def test_a_payout_becomes_a_disbursement(verifier):
    assert verifier.verify(*signed(event(direction="payout"))).kind == "disbursement"


def test_hmac_scheme(verifier):
    confirmation = verifier.verify(*signed(event(), scheme=HmacScheme(b"s3cret"), provider="hmacpay"))
    assert confirmation.payment_ref == keccak(b"hmacpay:COL-0001")
    with pytest.raises(BadSignature):
        verifier.verify(*signed(event(), scheme=HmacScheme(b"guess"), provider="hmacpay"))


def test_a_forged_signature_is_refused(verifier):
    with pytest.raises(BadSignature) as refused:
        verifier.verify(*signed(event(), scheme=RsaScheme.generate()))
    assert refused.value.code == "bad_signature"


def test_an_altered_body_or_header_no_longer_verifies(verifier):
    headers, body = signed(event())
    with pytest.raises(BadSignature):
        verifier.verify(headers, body.replace(b"41212", b"91212"))
    with pytest.raises(BadSignature):
        verifier.verify({**headers, HEADER_NONCE: "n-2"}, body)
    with pytest.raises(BadSignature):
        verifier.verify({**headers, HEADER_TIMESTAMP: str(NOW + 1)}, body)
    with pytest.raises(BadSignature):
        verifier.verify({**headers, HEADER_SIGNATURE: "not base64!"}, body)


def test_the_rsa_scheme_name_must_match_the_provider(verifier):
    headers, body = signed(event(), scheme=HmacScheme(b"s3cret"))  # mockpay signs with RSA
    with pytest.raises(BadSignature):
        verifier.verify(headers, body)


def test_an_unknown_provider_is_refused(verifier):
    with pytest.raises(UnknownProvider):
        verifier.verify(*signed(event(), provider="evilpay"))


@pytest.mark.parametrize("timestamp", [NOW - 301, NOW + 301])
def test_a_webhook_outside_the_time_window_is_refused(verifier, timestamp):
    with pytest.raises(OutsideTimeWindow) as refused:
        verifier.verify(*signed(event(), timestamp=timestamp))
    assert "301s" in refused.value.message


@pytest.mark.parametrize("change, field", [
    ({"amount": 0}, "data.amount"),
    ({"amount": 12.5}, "data.amount"),        # money is never a float
    ({"amount": "100"}, "data.amount"),
    ({"amount": 2**96}, "data.amount"),
    ({"loan_id": 0}, "data.loan_id"),
    ({"direction": "refund"}, "data.direction"),
    ({"reference": "has space"}, "data.reference"),
    ({"currency": "cny"}, "data.currency"),
])
def test_malformed_payloads_are_refused_naming_the_field(verifier, change, field):
    with pytest.raises(MalformedWebhook) as refused:
        verifier.verify(*signed(event(**change)))
    # The layout's errors name the payload's path; bounds are the shared check's, which names the field.
    assert field in refused.value.message or refused.value.message.startswith(field.removeprefix("data.") + ":")


def test_missing_headers_and_non_json_bodies_are_refused(verifier):
    headers, body = signed(event())
    with pytest.raises(MalformedWebhook) as missing:
        verifier.verify({k: v for k, v in headers.items() if k != HEADER_SIGNATURE}, body)
    assert HEADER_SIGNATURE in missing.value.message
    junk = b"not json"
    with pytest.raises(MalformedWebhook):
        verifier.verify(signature_headers("mockpay", RAIL, junk, timestamp=NOW, nonce="n"), junk)


def test_keys_round_trip_through_pem():
    signer = RsaScheme.from_pem(RAIL.private_pem())
    message = b"x"
    RsaScheme.from_pem(RAIL.public_pem()).verify(message, signer.sign(message))
    with pytest.raises(ValueError):
        RsaScheme.from_pem(RAIL.public_pem()).sign(message)
