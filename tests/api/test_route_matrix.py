"""Every route x every role, read from the app itself: a route added later is covered without editing this file.

A route admits the roles its `require(...)` dependency names (`_check.roles`); a route that depends on
the sign-in alone admits every signed-in role; a route with neither must be on the explicit public
list. Each identity is real: anvil keys holding the chain's roles, an auditor the admin added through
the API, a borrower who passed KYC and has a loan, a fresh wallet as the applicant.

Only the role gate is under test here, so bodies are empty and no Idempotency-Key is sent: an admitted
role gets past the gate and then whatever the route says (422, 400, 404, 409...), never 401 or 403.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import pytest
from eth_account import Account
from fastapi.routing import APIRoute
from starlette.routing import Route

from api import auth

try:  # FastAPI >= 0.16x keeps included routers lazily; this yields their routes with the full path
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover - older FastAPI flattens them into app.routes
    iter_route_contexts = None

# Routes anyone may call. A route without `require` (or the sign-in dependency) that is not here fails the test.
PUBLIC = {"/healthz", "/readyz", "/metrics", "/v1/auth/nonce", "/v1/auth/login",
          "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json",
          # The dashboard's page and files are public (its data is not); dev-login answers 404 unless it is
          # switched on and asked from the machine itself.
          "/dashboard", "/dashboard/static/{name}", "/v1/auth/dev-login",
          # A borrower browses the loan products before signing in.
          "/v1/products", "/v1/products/{product_id}", "/v1/products/{product_id}/quote"}
ROLES = ("admin", "operator", "pauser", "auditor", "borrower", "applicant")
ANONYMOUS = "anonymous"
CHANGES = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    admits: frozenset[str] | None  # None: public

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _required_roles(dependant) -> list[tuple[str, ...]]:
    found = []
    for sub in dependant.dependencies:
        roles = getattr(sub.call, "roles", None)
        if roles is not None:
            found.append(tuple(roles))
        found.extend(_required_roles(sub))
    return found


def _signs_in(dependant) -> bool:
    return any(sub.call is auth.principal or _signs_in(sub) for sub in dependant.dependencies)


def _route_objects(app) -> list:
    return list(iter_route_contexts(app.routes)) if iter_route_contexts else list(app.routes)


def endpoints(app) -> list[Endpoint]:
    """Every (method, path) the app serves and the roles it admits (None = public)."""
    out = []
    for route in _route_objects(app):
        original = getattr(route, "original_route", route)
        methods = sorted((route.methods or set()) - {"HEAD"})
        if isinstance(original, APIRoute):
            required = _required_roles(route.dependant)
            if required:
                # Nested `require`s would all have to pass: the route admits their intersection.
                admits = frozenset.intersection(*(frozenset(r) for r in required))
            elif _signs_in(route.dependant):
                admits = frozenset(ROLES)
            else:
                admits = None
        elif isinstance(original, Route):
            admits = None
        else:
            raise AssertionError(f"a route of an unknown kind: {route!r}")
        for method in methods:
            endpoint = Endpoint(method, route.path, admits)
            if admits is None:
                assert route.path in PUBLIC, f"{endpoint} has no role dependency and is not on the public list"
            out.append(endpoint)
    return out


@dataclass
class World:
    tokens: dict[str, str | None]   # role -> bearer token (None: anonymous)
    roles: dict[str, frozenset[str]]  # role -> every role that identity holds, as the API reports them
    loan_id: int
    borrower: str
    other_borrower_token: str


@pytest.fixture
def world(api, keys, driver, client_for, kyc, application) -> World:
    admin = client_for(keys["admin"])
    auditor_key, applicant_key = Account.create(), Account.create()
    admin.add_auditor(auditor_key.address)
    alice, bob = client_for(keys["alice"]), client_for(keys["bob"])
    kyc(alice, 1)
    kyc(bob, 2)
    driver.score(keys["alice"])
    alice.login()
    bob.login()
    loan_id = alice.apply(**application)["loan_id"]
    clients = {"admin": admin, "operator": client_for(keys["operator"]), "pauser": client_for(keys["pauser"]),
               "auditor": client_for(auditor_key), "borrower": alice, "applicant": client_for(applicant_key)}
    roles = {name: frozenset(c.me()["roles"]) for name, c in clients.items()}
    for name, held in roles.items():
        assert name in held, f"the {name} identity holds {sorted(held)}"
    tokens = {name: c.token for name, c in clients.items()} | {ANONYMOUS: None}
    return World(tokens=tokens, roles=roles, loan_id=loan_id, borrower=keys["alice"].address,
                 other_borrower_token=bob.token)


def fill(path: str, world: World, openapi: dict | None = None, method: str = "get") -> str:
    """Plausible path values: the borrower's real loan; the borrower's address (not an auditor's: DELETE
    /v1/operator/auditors/{address} must not remove an identity the matrix signs in as); for any other
    parameter, the first value its schema allows (e.g. /v1/audit/verify/{check}), else 1."""
    values = {"loan_id": str(world.loan_id), "address": world.borrower, "borrower": world.borrower}
    declared = {}
    for param in ((openapi or {}).get("paths", {}).get(path, {}).get(method.lower(), {}).get("parameters", [])):
        schema = param.get("schema", {})
        if "$ref" in schema:  # an Enum parameter is a named schema
            schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        enum = schema.get("enum") or [None]
        if param.get("in") == "path" and enum[0] is not None:
            declared[param["name"]] = str(enum[0])
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1)) or declared.get(m.group(1), "1"), path)


def call(http, endpoint: Endpoint, path: str, token: str | None, **kwargs):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    if endpoint.method in CHANGES and "json" not in kwargs:
        kwargs["json"] = {}
    return http.request(endpoint.method, path, headers=headers, **kwargs)


def test_the_route_list_is_complete(api):
    found = {str(e) for e in endpoints(api[0])}
    # A sample of what must be there, so an enumeration that silently finds nothing fails.
    for expected in ("GET /v1/loans/{loan_id}", "POST /v1/loans", "POST /v1/operator/pause", "GET /healthz",
                     "POST /v1/operator/auditors", "GET /v1/auth/me", "GET /openapi.json"):
        assert expected in found
    assert len(found) >= 35


def test_every_route_admits_exactly_its_roles(api, http, world):
    failures = []
    checked = 0
    openapi = api[0].openapi()
    for endpoint in endpoints(api[0]):
        path = fill(endpoint.path, world, openapi, endpoint.method)
        for role in (ANONYMOUS, *ROLES):
            response = call(http, endpoint, path, world.tokens[role])
            checked += 1
            status = response.status_code
            if endpoint.admits is None:
                expected, ok = "not 401/403", status not in (401, 403)
            elif role == ANONYMOUS:
                expected, ok = "401", status == 401 and response.json()["error"]["code"] == "unauthenticated"
            elif world.roles[role] & endpoint.admits:
                expected, ok = "not 401/403", status not in (401, 403)
            else:
                expected, ok = "403", status == 403 and response.json()["error"]["code"] == "forbidden"
            if not ok:
                failures.append(f"{endpoint} as {role}: {status} (expected {expected}) {response.text[:120]}")
    assert not failures, f"{len(failures)} of {checked} route x role checks failed:\n" + "\n".join(failures)


def test_another_borrowers_loan_is_not_found_on_every_loan_route(api, http, world):
    """Bob asking for Alice's loan gets the answer a loan that does not exist gets: 404, never 403."""
    loan_routes = [e for e in endpoints(api[0]) if "{loan_id}" in e.path and e.admits and "borrower" in e.admits]
    assert any(e.method == "GET" for e in loan_routes) and any(e.method == "POST" for e in loan_routes)
    cancel_body = {"deadline": 2**40, "signature": "0x" + "11" * 65}
    for endpoint in loan_routes:
        answers = {}
        for name, loan_id in (("someone else's", world.loan_id), ("missing", 10_000)):
            path = endpoint.path.replace("{loan_id}", str(loan_id))
            headers = {"authorization": f"Bearer {world.other_borrower_token}"}
            body = None
            if endpoint.method != "GET":  # past validation and idempotency, to the ownership check
                headers["idempotency-key"], body = str(uuid.uuid4()), cancel_body
            response = http.request(endpoint.method, path, headers=headers, json=body)
            answers[name] = (response.status_code, response.json()["error"]["code"])
        assert answers["someone else's"] == answers["missing"] == (404, "not_found"), (str(endpoint), answers)
        if endpoint.method == "GET":  # the owner does see it: the 404 is about ownership
            owner = http.get(fill(endpoint.path, world), headers={"authorization": f"Bearer {world.tokens['borrower']}"})
            assert owner.status_code == 200, (str(endpoint), owner.text)


def test_auditors_change_nothing(api, http, world):
    """Every POST/PUT/DELETE outside sign-in refuses an auditor, by declaration and in fact."""
    changing = [e for e in endpoints(api[0]) if e.method in CHANGES and not e.path.startswith("/v1/auth/")]
    assert len(changing) >= 20
    for endpoint in changing:
        assert endpoint.admits is not None and not (world.roles["auditor"] & endpoint.admits), \
            f"{endpoint} admits {sorted(endpoint.admits or [])}; the auditor holds {sorted(world.roles['auditor'])}"
        response = call(http, endpoint, fill(endpoint.path, world), world.tokens["auditor"])
        assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden"), str(endpoint)
    # ...while reading still works.
    assert http.get(f"/v1/loans/{world.loan_id}",
                    headers={"authorization": f"Bearer {world.tokens['auditor']}"}).status_code == 200
