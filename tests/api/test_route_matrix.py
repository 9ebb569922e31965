"""Every route x every role: who gets past each route's role gate, against a table written here.

Under test is the gate alone: for each route the app serves (method and path, found by enumerating the
app) and each identity (admin, operator, pauser, auditor, borrower, applicant, anonymous), is the request
let through or refused? The expectations are the table `ROUTES` below, one line per route, written from
what the README, docs/operator.md, docs/auditor.md, docs/borrower.md and issue 16 say each role may do,
and never read from the routes' own `require(...)` declarations: a test that asks the code under test
what to expect passes whatever the code declares, so a route that wrongly admits borrowers would pass.
A route the app serves and the table does not list fails, and so does a row for a route the app does not
serve, so adding, removing or re-gating a route means reviewing its line here.

A row the code does not satisfy yet is written as it should be and marked xfail (strict, `wrong_now`):
fixing the route turns the xfail into a failure, which forces the row's mark off.

Each identity is real: anvil keys holding the chain's roles, an auditor the admin added through the
API, a borrower who passed KYC and has a loan, a fresh wallet as the applicant, and no token at all.
What each holds is written here too (`HOLDS`) and checked against what the API reports.

Bodies are empty and no Idempotency-Key is sent: a request let through gets whatever the route says
next (422, 400, 404, 409...) but never 401 or 403; a refused one gets 401 `unauthenticated` without a
token and 403 `forbidden` with one. One request per (route, identity).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import pytest
from eth_account import Account
from fastapi.routing import APIRoute
from starlette.routing import Route

try:  # FastAPI >= 0.16x keeps included routers lazily; this yields their routes with the full path
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover - older FastAPI flattens them into app.routes
    iter_route_contexts = None

ROLES = ("admin", "operator", "pauser", "auditor", "borrower", "applicant")
ANONYMOUS = "anonymous"
IDENTITIES = (ANONYMOUS, *ROLES)
PUBLIC = "public"  # anyone, with a token or without
CHANGES = {"POST", "PUT", "PATCH", "DELETE"}

# The roles each identity holds, as GET /v1/auth/me must report them. A wallet that is not an auditor is a
# borrower once registered on-chain, else an applicant: the staff's own wallets are applicants too.
HOLDS = {
    "admin": frozenset({"admin", "applicant"}),
    "operator": frozenset({"operator", "applicant"}),
    "pauser": frozenset({"pauser", "applicant"}),
    "auditor": frozenset({"auditor"}),  # auditors change nothing, not even their own KYC
    "borrower": frozenset({"borrower"}),
    "applicant": frozenset({"applicant"}),
}


def wrong_now(why: str):
    """The row says what should hold and the route does not do it yet (issue 16)."""
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason=f"issue 16: {why}")


# (method, path, roles admitted) and, where the route does not do it yet, why. A route admits an identity
# holding any of its roles.
ROUTES = [
    # Anyone: health, metrics, the API's own documents, sign-in, the dashboard's and the app's pages and files (their data
    # is not public), the development login (404 unless switched on and asked from the machine itself),
    # and the product catalogue, browsed and quoted before signing in (docs/borrower.md).
    ("GET", "/healthz", PUBLIC),
    ("GET", "/readyz", PUBLIC),
    ("GET", "/metrics", PUBLIC),
    ("GET", "/docs", PUBLIC),
    ("GET", "/docs/oauth2-redirect", PUBLIC),
    ("GET", "/redoc", PUBLIC),
    ("GET", "/openapi.json", PUBLIC),
    ("POST", "/v1/auth/nonce", PUBLIC),
    ("POST", "/v1/auth/login", PUBLIC),
    ("POST", "/v1/auth/dev-login", PUBLIC),
    ("GET", "/dashboard", PUBLIC),
    ("GET", "/dashboard/static/{name}", PUBLIC),
    ("GET", "/app", PUBLIC),  # the borrower app's shell and files: static, its data comes from the /v1 routes
    ("GET", "/app/", PUBLIC),
    ("GET", "/app/{path:path}", PUBLIC),
    ("GET", "/v1/products", PUBLIC),
    ("GET", "/v1/products/{product_id}", PUBLIC),
    ("GET", "/v1/products/{product_id}/quote", PUBLIC),
    # Anyone signed in.
    ("GET", "/v1/auth/me", {"admin", "operator", "pauser", "auditor", "borrower", "applicant"}),
    # A wallet acting for itself (docs/borrower.md): KYC before registration, credit, how to repay.
    ("GET", "/v1/kyc", {"borrower", "applicant"}),
    ("POST", "/v1/kyc", {"borrower", "applicant"}),
    ("POST", "/v1/kyc/verify", {"borrower", "applicant"}),
    # Step-up codes (issue 17): a verified wallet asks for a code bound to one action; an applicant is let past the
    # gate (it is refused not_verified: there is no verified phone to text).
    ("POST", "/v1/step-up", {"borrower", "applicant"}),
    ("POST", "/v1/kyc/phone", {"borrower", "applicant"}),
    ("POST", "/v1/kyc/phone/verify", {"borrower", "applicant"}),
    # A card change (test_card_change.py): the same gate; a wallet without a verified record is refused not_verified.
    ("POST", "/v1/kyc/card", {"borrower", "applicant"}),
    ("POST", "/v1/kyc/card/verify", {"borrower", "applicant"}),
    # Wallet recovery (test_wallet_recovery_api.py): a new wallet claims its identity; operators confirm held ones.
    ("POST", "/v1/kyc/recovery", {"borrower", "applicant"}),
    ("GET", "/v1/kyc/recoveries", {"operator"}),
    ("POST", "/v1/kyc/recoveries/{address}/confirm", {"operator"}),
    ("GET", "/v1/credit", {"borrower", "applicant"}),
    ("GET", "/v1/loans/request-params", {"borrower", "applicant"}),
    ("GET", "/v1/me/language", {"borrower", "applicant"}),
    ("PUT", "/v1/me/language", {"borrower", "applicant"}),
    # The borrower app (issue 18): a borrower's own notices, as texted to them.
    ("GET", "/v1/me/notices", {"borrower", "applicant"}),
    ("GET", "/v1/loans/{loan_id}/repayment-instructions", {"borrower", "applicant"}),
    # Only a borrower registered on-chain applies and cancels its own applications.
    ("POST", "/v1/loans", {"borrower"}),
    ("POST", "/v1/loans/application-draft", {"borrower"}),
    ("POST", "/v1/loans/{loan_id}/cancel", {"borrower"}),
    ("GET", "/v1/loans/{loan_id}/cancel-draft", {"borrower"}),
    # Hardship (issue 17): a borrower asks for a reschedule of their loan and accepts an offer by signing it.
    ("POST", "/v1/loans/{loan_id}/reschedule-requests", {"borrower"}),
    ("POST", "/v1/loans/{loan_id}/reschedule/accept", {"borrower"}),
    # Loans: a wallet sees its own, the read-all roles every loan.
    ("GET", "/v1/loans", {"borrower", "applicant", "auditor", "operator", "admin"}),
    ("GET", "/v1/loans/{loan_id}", {"borrower", "applicant", "auditor", "operator", "admin"}),
    ("GET", "/v1/loans/{loan_id}/due", {"borrower", "applicant", "auditor", "operator", "admin"}),
    ("GET", "/v1/loans/{loan_id}/payments", {"borrower", "applicant", "auditor", "operator", "admin"}),
    ("GET", "/v1/loans/{loan_id}/reschedule", {"borrower", "applicant", "auditor", "operator", "admin"}),
    # Automatic debit (issue 17): the borrower signs a mandate and revokes it; staff read it.
    ("GET", "/v1/loans/{loan_id}/debit-mandate", {"borrower", "applicant", "auditor", "operator", "admin"}),
    ("POST", "/v1/loans/{loan_id}/debit-mandate", {"borrower"}),
    ("GET", "/v1/loans/{loan_id}/debit-mandate/typed-data", {"borrower"}),
    ("DELETE", "/v1/loans/{loan_id}/debit-mandate", {"borrower"}),
    # The audit reads (docs/auditor.md; the reconciliation "for auditors and operators", docs/operator.md).
    ("GET", "/v1/audit/loans", {"auditor", "operator", "admin"}),
    ("GET", "/v1/audit/loans/{loan_id}", {"auditor", "operator", "admin"}),
    ("GET", "/v1/audit/borrowers", {"auditor", "operator", "admin"}),
    ("GET", "/v1/audit/borrowers/{address}", {"auditor", "operator", "admin"}),
    ("GET", "/v1/audit/events", {"auditor", "operator", "admin"}),
    ("GET", "/v1/audit/payments", {"auditor", "operator", "admin"}),
    ("GET", "/v1/audit/report/portfolio", {"auditor", "operator", "admin"}),
    ("GET", "/v1/audit/verify/{check}", {"auditor", "operator", "admin"}),
    ("GET", "/v1/audit/export/{dataset}.{fmt}", {"auditor", "operator", "admin"}),
    ("GET", "/v1/audit/reconciliation", {"auditor", "operator", "admin"}),
    ("GET", "/v1/audit/reconciliation.csv", {"auditor", "operator", "admin"}),
    # The operator's lists: "operators, admins and auditors" (docs/operator.md).
    ("GET", "/v1/operator/payouts", {"operator", "admin", "auditor"}),
    ("GET", "/v1/operator/suspense", {"operator", "admin", "auditor"}),
    ("GET", "/v1/operator/credit-refunds", {"operator", "admin", "auditor"}),
    ("GET", "/v1/operator/debits", {"operator", "admin", "auditor"}),
    ("GET", "/v1/operator/policy", {"operator", "admin", "auditor"}),
    ("GET", "/v1/operator/notices", {"operator", "admin", "auditor"}),
    ("GET", "/v1/operator/reschedule-requests", {"operator", "admin", "auditor"}),
    # What to sign for a decision: for whoever makes decisions (operators, admins, pausers: issue 16, each
    # signs their own); it signs nothing and sends nothing, and the action's own role is checked next.
    ("POST", "/v1/operator/requests", {"operator", "admin", "pauser"}),
    # Operators act: borrowers, decisions, money, products, the automatic policy (docs/operator.md "Act").
    ("POST", "/v1/operator/borrowers/{address}/register", {"operator"}),
    ("POST", "/v1/operator/borrowers/{address}/revoke", {"operator"}),
    ("POST", "/v1/operator/loans/{loan_id}/approve", {"operator"}),
    ("POST", "/v1/operator/loans/{loan_id}/reject", {"operator"}),
    ("POST", "/v1/operator/loans/{loan_id}/disburse", {"operator"}),
    ("POST", "/v1/operator/loans/{loan_id}/write-off", {"operator"}),
    ("POST", "/v1/operator/loans/{loan_id}/declare-default", {"operator"}),
    ("POST", "/v1/operator/loans/{loan_id}/reschedule-offer", {"operator"}),
    ("POST", "/v1/operator/loans/{loan_id}/credit-refund", {"operator"}),
    ("POST", "/v1/operator/suspense/{item_id}/refund", {"operator"}),
    ("POST", "/v1/operator/suspense/{item_id}/apply", {"operator"}),
    ("POST", "/v1/operator/products", {"operator"}),
    ("POST", "/v1/operator/products/{product_id}/versions", {"operator"}),
    ("POST", "/v1/operator/products/{product_id}/retire", {"operator"}),
    ("PUT", "/v1/operator/policy", {"operator"}),
    # Maker-checker (FourEyes, issue 16): what moves or forgives money, and a role change the admin cannot make
    # alone, waits for a second person. Operators and admins see what awaits them and confirm or cancel it
    # (FourEyes then checks the call's own role, and that the confirmer is not the proposer); no one else.
    ("GET", "/v1/operator/proposals", {"operator", "admin"}),
    ("GET", "/v1/operator/proposals/{proposal_id}", {"operator", "admin"}),
    ("POST", "/v1/operator/proposals/{proposal_id}/confirm", {"operator", "admin"}),
    ("POST", "/v1/operator/proposals/{proposal_id}/cancel", {"operator", "admin"}),
    # Pausing is the pauser's, its own key (README, docs/operator.md "(pauser)", issue 16).
    ("POST", "/v1/operator/pause", {"pauser"}),
    ("POST", "/v1/operator/unpause", {"pauser"}),
    # The admin: roles, the score signer, the auditors' list (which the operators may read).
    ("POST", "/v1/operator/roles/grant", {"admin"}),
    ("POST", "/v1/operator/roles/revoke", {"admin"}),
    ("POST", "/v1/operator/oracle-signer/rotate", {"admin"}),
    ("POST", "/v1/operator/auditors", {"admin"}),
    ("DELETE", "/v1/operator/auditors/{address}", {"admin"}),
    ("GET", "/v1/operator/auditors", {"admin", "operator"}),
]
EXPECTED = {(method, path): (roles if roles == PUBLIC else frozenset(roles)) for method, path, roles, *_ in ROUTES}


def _row_params() -> list:
    params = []
    for method, path, roles, *mark in ROUTES:
        assert roles == PUBLIC or set(roles) <= set(ROLES), f"{method} {path}: unknown roles in {roles}"
        params.append(pytest.param(method, path, id=f"{method} {path}", marks=mark))
    return params


def _route_objects(app) -> list:
    return list(iter_route_contexts(app.routes)) if iter_route_contexts else list(app.routes)


def app_routes(app) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, HEAD aside."""
    out = []
    for route in _route_objects(app):
        original = getattr(route, "original_route", route)
        if not isinstance(original, APIRoute | Route):
            raise TypeError(f"a route of an unknown kind: {route!r}")
        out.extend((method, route.path) for method in sorted((route.methods or set()) - {"HEAD"}))
    return out


@dataclass
class World:
    tokens: dict[str, str | None]   # identity -> bearer token (None: anonymous)
    holds: dict[str, frozenset[str]]  # identity -> every role it holds, as the API reports them
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
    holds = {name: frozenset(c.me()["roles"]) for name, c in clients.items()}
    tokens = {name: c.token for name, c in clients.items()} | {ANONYMOUS: None}
    return World(tokens=tokens, holds=holds, loan_id=loan_id, borrower=keys["alice"].address,
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


def call(http, method: str, path: str, token: str | None, **kwargs):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    if method in CHANGES and "json" not in kwargs:
        kwargs["json"] = {}
    return http.request(method, path, headers=headers, **kwargs)


@dataclass(frozen=True)
class Answer:
    status: int
    code: str | None  # the error body's code, if any
    text: str

    @classmethod
    def of(cls, response) -> Answer:
        try:
            code = response.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = None
        return cls(response.status_code, code, response.text[:120])


@dataclass
class Measured:
    answers: dict[tuple[str, str], dict[str, Answer]]  # (method, path) -> identity -> its answer
    holds: dict[str, frozenset[str]]
    loan_id: int


def ask_every_route(app, http, world: World) -> Measured:
    openapi = app.openapi()
    answers = {}
    for method, path in app_routes(app):
        url = fill(path, world, openapi, method)
        answers[method, path] = {who: Answer.of(call(http, method, url, world.tokens[who])) for who in IDENTITIES}
    return Measured(answers=answers, holds=world.holds, loan_id=world.loan_id)


@pytest.fixture(scope="module")
def _measured() -> dict:
    return {}


@pytest.fixture
def measured(request, w3, stack, _measured) -> Measured:
    """Every route's answer to every identity. Setting the identities up (KYC, a score, a loan) takes seconds
    and needs the function-scoped `api`, so the first test here asks every route once as every identity and
    the others read what it got. `w3` and `stack` are named so that the contracts are deployed before the
    test's chain snapshot and what the asking changed is reverted after it, as after any test."""
    if "error" in _measured:
        pytest.fail(f"asking the routes failed in an earlier test: {_measured['error']}")
    if "done" not in _measured:
        try:
            app = request.getfixturevalue("api")[0]
            _measured["done"] = ask_every_route(app, request.getfixturevalue("http"), request.getfixturevalue("world"))
        except Exception as exc:
            _measured["error"] = repr(exc)
            raise
    return _measured["done"]


def judge(admits, who: str, answer: Answer) -> str | None:
    """Why `answer` is not what `who` should get from a route admitting `admits`; None when it is."""
    if admits == PUBLIC or (who != ANONYMOUS and HOLDS[who] & admits):
        if answer.status in (401, 403):
            return f"{who}: {answer.status} (expected past the gate) {answer.text}"
        return None
    expected = (401, "unauthenticated") if who == ANONYMOUS else (403, "forbidden")
    if (answer.status, answer.code) != expected:
        return f"{who}: {answer.status} {answer.code} (expected {expected[0]} {expected[1]}) {answer.text}"
    return None


def test_the_table_lists_exactly_the_routes_the_app_serves(offline_app):
    served = set(app_routes(offline_app))
    # A sample of what must be there, so an enumeration that silently finds nothing fails.
    for sample in (("GET", "/v1/loans/{loan_id}"), ("POST", "/v1/loans"), ("POST", "/v1/operator/pause"),
                   ("GET", "/healthz"), ("POST", "/v1/operator/auditors"), ("GET", "/v1/auth/me"),
                   ("GET", "/openapi.json")):
        assert sample in served
    assert len(served) >= 35
    listed = [(method, path) for method, path, *_ in ROUTES]
    assert len(listed) == len(set(listed)), "a route is listed twice"
    unlisted = sorted(served - set(listed))
    assert not unlisted, f"routes the app serves and the table does not list (add a reviewed row): {unlisted}"
    gone = sorted(set(listed) - served)
    assert not gone, f"rows for routes the app does not serve (remove them): {gone}"


def test_each_identity_holds_the_roles_the_table_assumes(measured):
    assert measured.holds == HOLDS


@pytest.mark.parametrize(("method", "path"), _row_params())
def test_the_route_admits_exactly_its_roles(method, path, measured):
    served = (method, path) in measured.answers
    assert served, f"the app does not serve {method} {path}"
    admits = EXPECTED[method, path]
    answers = measured.answers[method, path]
    wrong = [problem for who in IDENTITIES if (problem := judge(admits, who, answers[who]))]
    assert not wrong, f"{method} {path} admits {admits if admits == PUBLIC else sorted(admits)}:\n" + "\n".join(wrong)


def test_auditors_change_nothing(measured):
    """Every POST/PUT/DELETE outside sign-in refuses an auditor, in the table and in fact."""
    changing = [(m, p) for m, p in measured.answers if m in CHANGES and not p.startswith("/v1/auth/")]
    assert len(changing) >= 20
    for method, path in changing:
        admits = EXPECTED.get((method, path))
        assert admits is not None and admits != PUBLIC and not (HOLDS["auditor"] & admits), \
            f"the table lets an auditor {method} {path}: {admits}"
        answer = measured.answers[method, path]["auditor"]
        assert (answer.status, answer.code) == (403, "forbidden"), (method, path, answer)
    # ...while reading still works (the loan the borrower applied for).
    assert measured.answers["GET", "/v1/loans/{loan_id}"]["auditor"].status == 200


def test_another_borrowers_loan_is_not_found_on_every_loan_route(api, http, world):
    """Bob asking for Alice's loan gets the answer a loan that does not exist gets: 404, never 403."""
    served = set(app_routes(api[0]))
    loan_routes = [(m, p) for (m, p), admits in EXPECTED.items()
                   if "{loan_id}" in p and admits != PUBLIC and "borrower" in admits and (m, p) in served]
    assert any(m == "GET" for m, _ in loan_routes) and any(m == "POST" for m, _ in loan_routes)
    # A body every loan route's model takes (each reads its own fields): a cancellation's, a debit mandate's.
    cancel_body = {"deadline": 2**40, "signature": "0x" + "11" * 65, "card": "**** 0000", "max_amount": 1,
                   "valid_until": 2**39, "nonce": 1}
    for method, path in loan_routes:
        answers = {}
        for name, loan_id in (("someone else's", world.loan_id), ("missing", 10_000)):
            headers = {"authorization": f"Bearer {world.other_borrower_token}"}
            body = None
            if method != "GET":  # past validation and idempotency, to the ownership check
                headers["idempotency-key"], body = str(uuid.uuid4()), cancel_body
            response = http.request(method, path.replace("{loan_id}", str(loan_id)), headers=headers, json=body)
            answers[name] = (response.status_code, response.json()["error"]["code"])
        assert answers["someone else's"] == answers["missing"] == (404, "not_found"), (method, path, answers)
        if method == "GET":  # the owner does see it: the 404 is about ownership
            owner = http.get(fill(path, world), headers={"authorization": f"Bearer {world.tokens['borrower']}"})
            assert owner.status_code == 200, (method, path, owner.text)
