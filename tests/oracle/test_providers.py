"""The rail seam: a second provider with its own headers, signature and payload proves it, in and out;
providers come from the settings; the stand-in honours idempotency keys on its orders."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from eth_utils import keccak

from ledger.config import load_settings
from oracle.payments.config import (
    ProviderConfigError,
    load_providers,
    payout_provider,
    provider_settings,
    webhook_providers,
)
from oracle.payments.inbound import (
    BadSignature,
    MalformedWebhook,
    OutsideTimeWindow,
    UnknownProvider,
    minor_units,
)
from oracle.payments.provider import (
    LookupUnsupported,
    OrderRefused,
    PaymentOrder,
    ProviderApi,
    RailUnavailable,
    RefundOrder,
)
from oracle.payments.providers import HmacJsonProvider, StandinProvider
from oracle.payments.providers.hmac_json import secret_bytes, sign
from oracle.payments.rail import PaymentRail, create_app
from oracle.payments.signatures import RsaScheme, signature_headers
from oracle.payments.webhook import WebhookVerifier

NOW = 1_800_000_000
SECRET = "whsec_" + "c2VjcmV0LW9mLXRyYWRlcGF5"  # base64 of "secret-of-tradepay"
RAIL = RsaScheme.generate()


def trade(event: str = "charge.succeeded", **payment) -> dict:
    body = {"trade_no": "2026113022001400001", "out_trade_no": "LL-7-C1", "total_amount": "412.88",
            "currency": "CNY", "paid_at": datetime.fromtimestamp(NOW - 5, UTC).isoformat(),
            "metadata": {"loan_id": "7"}, "buyer_logon_id": "138****0000"}  # providers add fields of their own
    body.update(payment)
    return {"event": event, "payment": body}


def tradepay_signed(payload: dict, secret: str = SECRET, webhook_id: str = "msg_1", timestamp: int = NOW,
                    ) -> tuple[dict, bytes]:
    body = json.dumps(payload).encode()
    return {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret_bytes(secret), webhook_id, timestamp, body)}, body


def standin_signed(loan_id: int = 7, reference: str = "COL-0001") -> tuple[dict, bytes]:
    body = json.dumps({"id": "evt_1", "type": "payment.succeeded", "created_at": NOW, "data": {
        "direction": "collection", "loan_id": loan_id, "reference": reference, "amount": 41_288,
        "currency": "CNY", "paid_at": NOW - 5}}).encode()
    return signature_headers("mockpay", RAIL, body, timestamp=NOW, nonce="n-1"), body


@pytest.fixture
def verifier() -> WebhookVerifier:
    return WebhookVerifier({"mockpay": RsaScheme.from_pem(RAIL.public_pem()),
                            "tradepay": HmacJsonProvider("tradepay", secret_bytes(SECRET))}, clock=lambda: NOW)


# ------------------------------------------------------------------ inbound


def test_both_layouts_become_the_same_confirmation(verifier):
    theirs = verifier.verify_from("tradepay", *tradepay_signed(trade()))
    ours = verifier.verify(*standin_signed())
    for c in (theirs, ours):
        assert (c.kind, c.loan_id, c.amount, c.currency, c.paid_at) == ("repayment", 7, 41_288, "CNY", NOW - 5)
    assert (theirs.provider, theirs.reference, theirs.event_id) == ("tradepay", "2026113022001400001", "msg_1")
    assert theirs.payment_ref == keccak(b"tradepay:2026113022001400001")
    assert verifier.verify_from("tradepay", *tradepay_signed(trade("transfer.succeeded"))).kind == "disbursement"


def test_a_rotated_secret_may_send_several_signatures(verifier):
    headers, body = tradepay_signed(trade())
    headers["webhook-signature"] = "v1,b2xkLXNlY3JldC1zaWduYXR1cmU= " + headers["webhook-signature"]
    assert verifier.verify_from("tradepay", headers, body).amount == 41_288


@pytest.mark.parametrize(("amount", "currency", "minor"), [
    ("412.88", "CNY", 41_288), ("1200", "CNY", 120_000), ("0.5", "CNY", 50), ("1200", "JPY", 1200),
    ("792281625142643375935439503.33", "CNY", 2**96 - 3),  # past float precision, still exact
])
def test_decimal_amounts_become_exact_minor_units(amount, currency, minor):
    assert minor_units(amount, currency, "amount") == minor


@pytest.mark.parametrize(("change", "words"), [
    ({"total_amount": "412.885"}, "fraction of a minor unit"),     # money is not rounded on the way in
    ({"total_amount": "12.5", "currency": "JPY"}, "fraction of a minor unit"),
    ({"total_amount": 412.88}, "payment.total_amount"),           # a JSON number: never a float
    ({"total_amount": "4.1288e2"}, "not a decimal amount"),
    ({"total_amount": "-1.00"}, "not a decimal amount"),
    ({"total_amount": "0.00"}, "amount: 0"),                       # the shared amount bound
    ({"total_amount": "792281625142643375935439504.00"}, "amount:"),  # past uint96
    ({"metadata": {"loan_id": 7}}, "loan_id"),                     # merchant metadata comes back as strings
    ({"paid_at": "2026-11-30T13:00:00"}, "no time zone"),
    ({"trade_no": "has space"}, "trade_no"),
])
def test_malformed_trades_are_refused_naming_the_field(verifier, change, words):
    with pytest.raises(MalformedWebhook) as refused:
        verifier.verify_from("tradepay", *tradepay_signed(trade(**change)))
    assert words in refused.value.message


def test_an_unknown_event_is_refused(verifier):
    with pytest.raises(MalformedWebhook):
        verifier.verify_from("tradepay", *tradepay_signed(trade("charge.pending")))


def test_tampered_unsigned_and_foreign_webhooks_are_refused_with_stable_codes(verifier):
    headers, body = tradepay_signed(trade())
    with pytest.raises(BadSignature) as tampered:
        verifier.verify_from("tradepay", headers, body.replace(b"412.88", b"912.88"))
    assert tampered.value.code == "bad_signature"
    with pytest.raises(BadSignature):
        verifier.verify_from("tradepay", {**headers, "webhook-id": "msg_2"}, body)  # the id is signed too
    with pytest.raises(BadSignature):
        verifier.verify_from("tradepay", *tradepay_signed(trade(), secret="whsec_Z3Vlc3M="))
    with pytest.raises(MalformedWebhook) as unsigned:
        verifier.verify_from("tradepay", {k: v for k, v in headers.items() if k != "webhook-signature"}, body)
    assert "webhook-signature" in unsigned.value.message
    # Each provider's webhook sent to the other's endpoint, and to one nobody configured.
    with pytest.raises(MalformedWebhook):
        verifier.verify_from("tradepay", *standin_signed())
    with pytest.raises(MalformedWebhook):
        verifier.verify_from("mockpay", headers, body)
    with pytest.raises(UnknownProvider) as unknown:
        verifier.verify_from("evilpay", headers, body)
    assert unknown.value.code == "unknown_provider"


def test_a_stand_in_webhook_naming_another_provider_is_refused_on_this_ones_path():
    verifier = WebhookVerifier({"mockpay": RsaScheme.from_pem(RAIL.public_pem()), "otherpay": RAIL},
                               clock=lambda: NOW)
    with pytest.raises(UnknownProvider):
        verifier.verify_from("otherpay", *standin_signed())


def test_the_time_window_is_the_same_for_every_provider(verifier):
    with pytest.raises(OutsideTimeWindow):
        verifier.verify_from("tradepay", *tradepay_signed(trade(), timestamp=NOW - 301))
    assert verifier.verify_from("tradepay", *tradepay_signed(trade(), timestamp=NOW - 300)).amount == 41_288


# ------------------------------------------------------------------ outbound


def test_the_second_provider_orders_in_its_own_layout_with_the_idempotency_key():
    seen = []

    def tradepay_api(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"trade_no": "2026113022001400002", "status": "PROCESSING"},
                              headers={"Idempotent-Replayed": "true"} if len(seen) > 1 else {})

    api = ProviderApi("tradepay", "https://api.tradepay.test", api_key="sk-test",
                      http=httpx.Client(transport=httpx.MockTransport(tradepay_api)))
    provider = HmacJsonProvider("tradepay", None, api)
    first = provider.order_payout(PaymentOrder(7, 120_000, "CNY"), "payout:7")
    again = provider.order_payout(PaymentOrder(7, 120_000, "CNY"), "payout:7")
    refund = provider.order_refund(RefundOrder(7, "2026113022001400002", 5, "CNY"), "refund:7:1")
    assert (first.provider, first.rail_reference, first.replayed, again.replayed) == (
        "tradepay", "2026113022001400002", False, True)
    assert refund.rail_reference == "2026113022001400002"
    assert [r.url.path for r in seen] == ["/v1/transfers", "/v1/transfers", "/v1/refunds"]
    assert {r.headers["idempotency-key"] for r in seen[:2]} == {"payout:7"}
    assert seen[0].headers["authorization"] == "Bearer sk-test"
    assert json.loads(seen[0].content) == {"out_trade_no": "payout:7", "total_amount": "1200.00", "currency": "CNY",
                                           "metadata": {"loan_id": "7"}}
    assert json.loads(seen[2].content)["refund_amount"] == "0.05"


def test_the_stand_in_pays_once_per_idempotency_key(serve_app):
    rail = PaymentRail("mockpay", RAIL)  # no webhook URL: the money stays with the rail
    with serve_app(create_app(rail)) as url:
        provider = StandinProvider("mockpay", None, ProviderApi("mockpay", url))
        first = provider.order_payout(PaymentOrder(3, 120_000, "CNY", paid_at=NOW), "payout:3")
        retried = provider.order_payout(PaymentOrder(3, 120_000, "CNY", paid_at=NOW + 60), "payout:3")
        with pytest.raises(OrderRefused) as reused:
            provider.order_payout(PaymentOrder(3, 999_999, "CNY"), "payout:3")
        other = provider.order_collection(PaymentOrder(3, 41_288, "CNY"), "collection:3:1")
        refund = provider.order_refund(RefundOrder(3, other.rail_reference, 288, "CNY"), "refund:3:1")
        refund_again = provider.order_refund(RefundOrder(3, other.rail_reference, 288, "CNY"), "refund:3:1")
        with pytest.raises(OrderRefused):
            provider.order_refund(RefundOrder(3, other.rail_reference, 41_001, "CNY"), "refund:3:2")  # > what is left
        unkeyed = [httpx.post(f"{url}/v1/payouts", json={"loan_id": 4, "amount": 1}).status_code for _ in range(2)]
    assert (first.replayed, retried.replayed, retried.rail_reference) == (False, True, first.rail_reference)
    assert reused.value.status == 422
    assert [(p.direction, p.loan_id, p.amount) for p in rail.payments.values()] == [
        ("payout", 3, 120_000), ("collection", 3, 41_288), ("payout", 4, 1), ("payout", 4, 1)]
    assert unkeyed == [201, 201]  # without a key every order is a new payment, as before
    assert (refund.rail_reference, refund_again.replayed) == (refund_again.rail_reference, True)
    assert [(r.payment_reference, r.amount) for r in rail.refunds.values()] == [(other.rail_reference, 288)]


def test_a_rail_that_does_not_answer_is_unavailable():
    provider = StandinProvider("mockpay", None, ProviderApi("mockpay", "http://127.0.0.1:9", timeout=2))
    with pytest.raises(RailUnavailable):
        provider.order_payout(PaymentOrder(1, 1, "CNY"), "k")
    with pytest.raises(RailUnavailable):
        provider.find_order("k")


def test_the_stand_in_answers_what_an_order_key_made_and_that_an_unknown_key_made_nothing(serve_app):
    rail = PaymentRail("mockpay", RAIL)
    key = "payout:31337:0x5FbDB2315678afecb367f032d93F642f64180aa3:3"  # colons and a hex address, as sent
    with serve_app(create_app(rail)) as url:
        provider = StandinProvider("mockpay", None, ProviderApi("mockpay", url))
        assert provider.find_order(key) is None  # never taken: re-sending is safe
        paid = provider.order_payout(PaymentOrder(3, 120_000, "CNY", paid_at=NOW), key)
        found = provider.find_order(key)
        listed = httpx.get(f"{url}/v1/payments", params={"loan_id": 3, "direction": "payout"}).json()
    assert (found.provider, found.rail_reference, found.replayed) == ("mockpay", paid.rail_reference, True)
    assert found.details["amount"] == 120_000
    assert [p["reference"] for p in listed] == [paid.rail_reference]
    assert len(rail.payments) == 1  # asking moved no money


def test_a_provider_without_an_order_lookup_says_so_and_the_same_key_is_the_safe_retry():
    api = ProviderApi("tradepay", "https://api.tradepay.test",
                      http=httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(500))))
    with pytest.raises(LookupUnsupported):
        HmacJsonProvider("tradepay", None, api).find_order("payout:7")


# ------------------------------------------------------------------ settings


def test_without_configuration_the_stand_in_at_rail_url_is_the_one_provider(tmp_path):
    settings = load_settings({"LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_RAIL_URL": "http://rail:8700"})
    assert {n: (e.kind, e.url) for n, e in provider_settings(settings).items()} == {
        "mockpay": ("standin", "http://rail:8700")}
    assert payout_provider(settings, {}).api.url == "http://rail:8700"
    assert webhook_providers(settings, {}) == {}  # no stand-in key yet: nothing to verify with
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "rail.pem").write_bytes(RAIL.private_pem())
    (standin,) = webhook_providers(settings, {}).values()
    assert standin.scheme.public_pem() == RAIL.public_pem() and standin.scheme.private_key is None


def test_providers_from_the_config_file_side_by_side(tmp_path):
    (tmp_path / "mockpay.pem").write_bytes(RAIL.public_pem())
    (tmp_path / "loanledger.toml").write_text(f"""
payout_provider = "tradepay"

[payment_providers.mockpay]
kind = "standin"
key_file = "{tmp_path / 'mockpay.pem'}"

[payment_providers.tradepay]
kind = "hmac_json"
url = "https://api.tradepay.test"
secret_env = "TRADEPAY_WEBHOOK_SECRET"
""")
    settings = load_settings({"LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_RAIL_URL": "http://rail:8700"})
    env = {"TRADEPAY_WEBHOOK_SECRET": SECRET}
    providers = webhook_providers(settings, env)
    assert {n: type(p) for n, p in providers.items()} == {"mockpay": StandinProvider, "tradepay": HmacJsonProvider}
    assert providers["mockpay"].api.url == "http://rail:8700"  # the stand-in's URL defaults to rail_url
    verifier = WebhookVerifier(providers, clock=lambda: NOW)
    assert verifier.verify_from("tradepay", *tradepay_signed(trade())).provider == "tradepay"
    assert verifier.verify(*standin_signed()).provider == "mockpay"
    assert payout_provider(settings, {}).name == "tradepay"  # ordering needs no webhook secret
    with pytest.raises(ProviderConfigError, match="TRADEPAY_WEBHOOK_SECRET is not set"):
        load_providers(settings, {}, webhooks=True)


def test_providers_from_the_environment_as_json_and_bad_entries(tmp_path):
    table = {"tradepay": {"kind": "hmac_json", "url": "https://api.tradepay.test", "secret_env": "S"}}
    settings = load_settings({"LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_PAYMENT_PROVIDERS": json.dumps(table)})
    assert list(webhook_providers(settings, {"S": SECRET})) == ["tradepay"]
    bad = load_settings({"LOANLEDGER_HOME": str(tmp_path),
                         "LOANLEDGER_PAYMENT_PROVIDERS": json.dumps({"x": {"kind": "carrier-pigeon"}})})
    with pytest.raises(ProviderConfigError, match="payment provider x: kind"):
        provider_settings(bad)
