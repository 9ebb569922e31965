"""The client package (api.client) is the server's mirror, not its passenger.

Its models are checked against the OpenAPI document the server generates, so a renamed field, a
changed type or a new default on the server fails here rather than in a borrower's program; and it is
imported in a fresh interpreter to prove that no server module comes along with it. No chain is needed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from siwe import SiweMessage
from web3 import Web3

from api.app import create_app
from api.auth import siwe_message
from api.client import sign_in_message, terms_from
from api.client.models import REQUESTS, RESPONSES, NonceOut
from api.context import Context
from api.schemas import TermsIn as ServerTermsIn
from ledger.config import Settings
from ledger.store import open_store
from ledger.vault import Keyring, Vault

SERVER_MODULES = ("fastapi", "starlette", "sqlalchemy", "api.app", "api.auth", "api.schemas", "api.context",
                  "api.deps", "api.routes", "api.services", "ledger.store")
ADDRESS = "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc"
# What the client already speaks of the nonce route's message (issue 13, merged in main from another branch
# after this one started): checked like the rest once the server has it, skipped while it does not.
AWAITED = {"NonceIn", "NonceOut.message"}


@pytest.fixture(scope="module")
def components(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("client")
    settings = Settings(home=home, node_url="http://127.0.0.1:9", db_url=f"sqlite:///{home / 'api.db'}",
                        anchor_interval=0)
    sessions = open_store(settings.database_url)
    context = Context(settings=settings, sessions=sessions, vault=Vault(sessions, Keyring.generate()),
                      w3=Web3(Web3.HTTPProvider(settings.node_url)), jwt_secret=b"client-test-secret-of-32-bytes!!",
                      env={})
    return create_app(context).openapi()["components"]["schemas"]


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
    if server is None and model.__name__ in AWAITED:
        pytest.skip(f"the server has no {model.__name__} yet")
    assert _fields(mine, mine.get("$defs", {})) == _fields(server, components)
    assert set(mine.get("required", ())) == set(server.get("required", ()))


@pytest.mark.parametrize("model", RESPONSES, ids=lambda m: m.__name__)
def test_an_answer_read_by_the_client_has_the_fields_it_reads(model, components):
    mine = model.model_json_schema()
    server = _server(components, model.__name__)
    server_fields = _fields(server, components)
    for name, (shape, _) in _fields(mine, mine.get("$defs", {})).items():
        if name not in server_fields and f"{model.__name__}.{name}" in AWAITED:
            continue
        assert name in server_fields, f"{model.__name__}.{name} is not in the server's answer"
        assert shape == server_fields[name][0], f"{model.__name__}.{name} has another type on the server"
    assert set(mine.get("required", ())) <= set(server.get("required", ()))


@pytest.mark.parametrize("body", [
    {"principal": 120_000, "annual_rate_bps": 2400, "installments": 3, "interval_days": 30},
    {"principal": 5, "currency": "USD", "annual_rate_bps": 0, "amortization": "bullet", "installments": 1,
     "interval_days": 366, "grace_days": 0, "late_fee_bps": 10_000, "penalty_rate_bps": 65_535,
     "default_after_days": 1},
    {"principal": 99, "annual_rate_bps": 1, "amortization": "equal_principal", "installments": 12, "interval_days": 7},
])
def test_the_client_signs_the_terms_the_server_reads(body):
    assert terms_from(body) == ServerTermsIn(**body).to_terms()


def test_the_sign_in_message_is_the_one_the_server_builds():
    nonce = NonceOut(nonce="5f2b8c0e9a3d4b7c8e1f2a3b4c5d6e7f", domain="127.0.0.1:8000", uri="http://127.0.0.1:8000",
                     chain_id=31337, expires_at=0)
    mine = SiweMessage.from_message(message=sign_in_message(nonce, ADDRESS.lower()))
    server = SiweMessage.from_message(message=siwe_message(nonce.domain, nonce.uri, ADDRESS, nonce.chain_id,
                                                           nonce.nonce))
    timeless = {"issued_at", "expiration_time"}
    assert mine.model_dump(exclude=timeless) == server.model_dump(exclude=timeless)
    issued = datetime.fromisoformat(mine.issued_at.replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - issued).total_seconds()) < 60


def test_the_client_imports_no_server_module():
    code = ("import sys, api.client; api.client.LoanLedgerClient('http://127.0.0.1:9'); "
            f"print([m for m in sys.modules if m.startswith({SERVER_MODULES!r})])")
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert answer.stdout.strip() == "[]", answer.stdout + answer.stderr
