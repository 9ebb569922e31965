"""The rail stand-in's card verification (oracle/payments/card_verifications.py) over its ASGI app: the bank's code
goes to the card's reserved phone in the SMS outbox; a key replays; the code expires and is attempt-limited."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from ledger.samples import sample_identity
from oracle.payments.card_verifications import BANK, CODE_TTL, CardDesk
from oracle.payments.rail import PaymentRail, create_app
from oracle.payments.signatures import RsaScheme


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _rail(tmp_path):
    clock, outbox = Clock(), tmp_path / "sms-outbox.jsonl"
    desk = CardDesk(outbox=outbox, clock=clock)
    return TestClient(create_app(PaymentRail("mockpay", RsaScheme.generate()), desk)), desk, clock, outbox


def _body(person: dict, **changes) -> dict:
    return {"card_number": person["bank_card"], "holder_name": person["name"], "id_number": person["id_number"],
            "phone": "+86" + person["phone"], **changes}


def _code(outbox) -> str:
    line = json.loads(outbox.read_text(encoding="utf-8").splitlines()[-1])
    return line["text"].split("code ")[1].split(" ")[0]


def test_the_bank_texts_its_code_to_the_reserved_phone_once_per_key(tmp_path):
    client, _, _, outbox = _rail(tmp_path)
    person = sample_identity(7)
    started = client.post("/v1/card-verifications", json=_body(person), headers={"idempotency-key": "k1"})
    assert started.status_code == 201 and started.json()["status"] == "code_sent"
    assert started.json()["phone"] == "****" + person["phone"][-4:] and "code" not in started.json()
    again = client.post("/v1/card-verifications", json=_body(person), headers={"idempotency-key": "k1"})
    assert (again.status_code, again.headers["idempotent-replayed"], again.json()["id"]) == (
        200, "true", started.json()["id"])
    lines = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 1 and lines[0]["sender"] == BANK and lines[0]["to"] == "+86" + person["phone"]
    other = client.post("/v1/card-verifications", json=_body(sample_identity(8)), headers={"idempotency-key": "k1"})
    assert other.status_code == 422 and other.json()["detail"]["code"] == "idempotency_conflict"
    confirmed = client.post(f"/v1/card-verifications/{started.json()['id']}/confirm", json={"code": _code(outbox)})
    assert confirmed.json()["status"] == "verified"


def test_refusals_by_name(tmp_path):
    client, desk, _, outbox = _rail(tmp_path)
    person = sample_identity(9)

    def refused(key: str, **changes) -> str:
        answer = client.post("/v1/card-verifications", json=_body(person, **changes), headers={"idempotency-key": key})
        assert answer.status_code == 422
        return answer.json()["detail"]["code"]
    assert refused("a", phone="+86" + sample_identity(10)["phone"]) == "card_phone_mismatch"
    assert refused("b", id_number=sample_identity(10)["id_number"]) == "card_holder_mismatch"
    assert refused("c", card_number=sample_identity(10)["bank_card"]) == "card_holder_mismatch"
    assert refused("d", card_number="6222021234567890128") == "card_unknown"
    assert not outbox.exists()  # nobody was texted
    desk.reserve_phone(person["bank_card"], sample_identity(10)["phone"])  # changed at the branch
    assert client.post("/v1/card-verifications", json=_body(person, phone="+86" + sample_identity(10)["phone"]),
                       headers={"idempotency-key": "e"}).status_code == 201


def test_the_code_expires_and_wrong_codes_lock_it(tmp_path):
    client, _, clock, outbox = _rail(tmp_path)
    person = sample_identity(11)
    first = client.post("/v1/card-verifications", json=_body(person), headers={"idempotency-key": "x"}).json()["id"]
    clock.now += CODE_TTL + 1
    expired = client.post(f"/v1/card-verifications/{first}/confirm", json={"code": _code(outbox)})
    assert (expired.status_code, expired.json()["detail"]["code"]) == (410, "code_expired")
    second = client.post("/v1/card-verifications", json=_body(person), headers={"idempotency-key": "y"}).json()["id"]
    right = _code(outbox)
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    answers = [client.post(f"/v1/card-verifications/{second}/confirm", json={"code": wrong}) for _ in range(3)]
    assert [a.json()["detail"]["code"] for a in answers] == ["wrong_code", "wrong_code", "too_many_attempts"]
    assert answers[0].json()["detail"]["attempts_left"] == 2
    locked = client.post(f"/v1/card-verifications/{second}/confirm", json={"code": right})
    assert locked.status_code == 429
