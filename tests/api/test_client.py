"""The client package (api.client) is the server's mirror, not its passenger.

Its models are checked against the OpenAPI document the server generates, so a renamed field, a
changed type or a new default on the server fails here rather than in a borrower's program; and it is
imported in a fresh interpreter to prove that no server module comes along with it. No chain is needed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from api.auth import siwe_message
from api.client import ApiError, LoanLedgerClient
from api.client.models import REQUESTS, RESPONSES
from ledger import typed_data

SERVER_MODULES = ("fastapi", "starlette", "sqlalchemy", "api.app", "api.auth", "api.schemas", "api.context",
                  "api.deps", "api.routes", "api.services", "ledger.store")
ADDRESS = "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc"


@pytest.fixture(scope="module")
def components(offline_app) -> dict:
    return offline_app.openapi()["components"]["schemas"]


def _resolve(schema: dict, defs: dict) -> dict:
    while True:
        if "$ref" in schema:
            schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
        elif len(schema.get("allOf", ())) == 1:
            schema = schema["allOf"][0]
        else:
            return schema


def _shape(schema: dict, defs: dict):
    """What a client relies on of a schema: its JSON type, enum values, items and properties (not its docs)."""
    s = _resolve(schema, defs)
    if "anyOf" in s:
        return "anyOf", frozenset(_shape(option, defs) for option in s["anyOf"])
    if "enum" in s:
        return "enum", tuple(sorted(s["enum"]))
    if s.get("type") == "array":
        return "array", _shape(s.get("items", {}), defs)
    if "properties" in s:
        return "object", tuple(sorted((name, _shape(p, defs), json.dumps(p.get("default")))
                                      for name, p in s["properties"].items()))
    return (s.get("type"),)


def _fields(schema: dict, defs: dict) -> dict[str, tuple]:
    """Each property's shape and default (a default decides what the server reads when a field is left out)."""
    return {name: (_shape(p, defs), json.dumps(p.get("default"))) for name, p in schema["properties"].items()}


def _server(components: dict, name: str) -> dict | None:
    return components.get(name) or components.get(f"{name}-Input")


@pytest.mark.parametrize("model", REQUESTS, ids=lambda m: m.__name__)
def test_a_request_body_is_the_servers(model, components):
    mine = model.model_json_schema()
    server = _server(components, model.__name__)
    assert _fields(mine, mine.get("$defs", {})) == _fields(server, components)
    assert set(mine.get("required", ())) == set(server.get("required", ()))


@pytest.mark.parametrize("model", RESPONSES, ids=lambda m: m.__name__)
def test_an_answer_read_by_the_client_has_the_fields_it_reads(model, components):
    mine = model.model_json_schema()
    server = _server(components, model.__name__)
    server_fields = _fields(server, components)
    for name, (shape, _) in _fields(mine, mine.get("$defs", {})).items():
        assert name in server_fields, f"{model.__name__}.{name} is not in the server's answer"
        assert shape == server_fields[name][0], f"{model.__name__}.{name} has another type on the server"
    assert set(mine.get("required", ())) <= set(server.get("required", ()))


PARAMS = {"chain_id": 31337, "loan_book": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0", "nonce": 4,
          "deadline": 1_767_228_600}


def _apply_against(account, **apply_args) -> tuple[list[str], dict]:
    """A client applying against a server whose product 7 is at version 3; (paths asked, the body sent)."""
    asked, sent = [], {}

    def server(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path == "/v1/products/7":
            return httpx.Response(200, json={"id": 7, "version": 3, "latest_version": 3})
        if request.url.path == "/v1/loans/request-params":
            return httpx.Response(200, json=PARAMS)
        sent.update(json.loads(request.content))
        return httpx.Response(201, json={"loan_id": 1, "status": "Requested", "tx_hash": "0x", "decision": None})

    http = httpx.Client(transport=httpx.MockTransport(server), base_url="http://api.test")
    LoanLedgerClient("http://api.test", account, http=http, token="t").apply(7, 120_000, 3, **apply_args)
    return asked, sent


@pytest.mark.parametrize("version", [None, 2])
def test_the_client_signs_the_application_it_sends(version):
    account = Account.create()
    asked, body = _apply_against(account, version=version)
    assert (body["product_id"], body["product_version"], body["principal"], body["installments"]) == (
        7, version or 3, 120_000, 3)  # the latest version unless one is named
    assert ("/v1/products/7" in asked) == (version is None)
    message = typed_data.loan_application(
        chain_id=PARAMS["chain_id"], book=PARAMS["loan_book"], borrower=account.address, product_id=7,
        product_version=body["product_version"], principal=120_000, installments=3, nonce=PARAMS["nonce"],
        deadline=body["deadline"])
    assert typed_data.recover(message, bytes.fromhex(body["signature"][2:])) == account.address


def _sign_in_against(nonce_answer: dict, account=None) -> tuple[list[dict], LoanLedgerClient]:
    """A client signing in against a server whose nonce route answers `nonce_answer`; `seen` holds the bodies."""
    seen: list[dict] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append({"path": request.url.path, **json.loads(request.content or b"{}")})
        if request.url.path == "/v1/auth/nonce":
            return httpx.Response(200, json=nonce_answer)
        return httpx.Response(200, json={"token": "t", "expires_at": 1, "address": ADDRESS, "roles": []})

    http = httpx.Client(transport=httpx.MockTransport(server), base_url="http://api.test")
    return seen, LoanLedgerClient("http://api.test", account or Account.create(), http=http)


NONCE = {"nonce": "5f2b8c0e9a3d4b7c8e1f2a3b4c5d6e7f", "domain": "127.0.0.1:8000", "uri": "http://127.0.0.1:8000",
         "chain_id": 31337, "expires_at": 0}


def test_the_client_signs_the_message_the_server_wrote():
    account = Account.create()
    message = siwe_message(NONCE["domain"], NONCE["uri"], account.address, NONCE["chain_id"], NONCE["nonce"])
    seen, client = _sign_in_against({**NONCE, "message": message}, account)
    client.login()
    asked, login = seen
    assert asked == {"path": "/v1/auth/nonce", "address": client.account.address}
    assert login["message"] == message
    signer = Account.recover_message(encode_defunct(text=message), signature=login["signature"])
    assert signer == client.account.address and client.token == "t"


def test_a_server_that_writes_no_message_is_refused_before_anything_is_signed():
    seen, client = _sign_in_against({**NONCE, "message": None})
    with pytest.raises(ApiError) as refused:
        client.login()
    assert refused.value.code == "no_sign_in_message"
    assert [s["path"] for s in seen] == ["/v1/auth/nonce"]  # no login attempted


def test_the_client_imports_no_server_module():
    code = ("import sys, api.client; api.client.LoanLedgerClient('http://127.0.0.1:9'); "
            f"print([m for m in sys.modules if m.startswith({SERVER_MODULES!r})])")
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert answer.stdout.strip() == "[]", answer.stdout + answer.stderr


def _polled(statuses: list[str]) -> tuple[LoanLedgerClient, list[str]]:
    """A client whose server answers GET /v1/loans/5 with each of `statuses` in turn (the last one from then on)."""
    answered = []

    def server(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/loans/5"
        answered.append(statuses[min(len(answered), len(statuses) - 1)])
        return httpx.Response(200, json={"loan_id": 5, "status": answered[-1]})

    http = httpx.Client(transport=httpx.MockTransport(server), base_url="http://api.test")
    return LoanLedgerClient("http://api.test", Account.create(), http=http, token="t"), answered


def test_waiting_for_a_decision_polls_the_loan_until_it_is_no_longer_requested():
    client, answered = _polled(["Requested", "Requested", "Rejected"])
    assert client.wait_for_decision(5, timeout=5, interval=0.01)["status"] == "Rejected"
    assert answered == ["Requested", "Requested", "Rejected"]
    client, _ = _polled(["Requested"])
    with pytest.raises(TimeoutError, match="loan 5 is still Requested"):
        client.wait_for_decision(5, timeout=0.05, interval=0.01)
