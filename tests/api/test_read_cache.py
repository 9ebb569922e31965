"""The auditor read cache never answers with what the indexer has since changed, nor with an old chain time;
metrics, request ids and token expiry behave as without it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from eth_account import Account

from api import auth
from api.errors import ApiError
from api.read_cache import SharedRead

DAY = 86_400


@pytest.fixture
def auditor(api, keys, client_for):
    account = Account.create()
    client_for(keys["admin"]).add_auditor(account.address)
    return client_for(account)


def _indexed(context, w3) -> None:
    assert context.wait_indexed(w3.eth.block_number)


def _loan_in(page: dict, loan_id: int) -> dict:
    return next(loan for loan in page["loans"] if loan["id"] == loan_id)


def test_a_read_after_the_indexer_stores_an_event_shows_it(api, w3, driver, keys, auditor):
    app, context = api
    cache = app.state.read_cache
    loan_id = driver.active_loan(keys["alice"], ref=b"payout-cache")
    _indexed(context, w3)
    before, page, report = auditor.audit(f"loans/{loan_id}"), auditor.audit("loans", limit=20), auditor.portfolio()
    assert before["status"] == "Active" and report["outstanding_principal"] == before["principal"]

    hits = cache.hits
    assert auditor.audit(f"loans/{loan_id}") == before and auditor.audit("loans", limit=20) == page
    assert cache.hits == hits + 2  # both answered from the cache: the index has not moved

    driver.repay(loan_id, driver.payoff(loan_id), b"payoff-cache")
    _indexed(context, w3)
    after = auditor.audit(f"loans/{loan_id}")
    assert after["status"] == "Repaid" and after["principal_repaid"] == before["principal"]
    assert [e["name"] for e in after["events"]][-2:] == ["RepaymentApplied", "LoanRepaid"]
    assert len(after["payments"]) == len(before["payments"]) + 1
    assert _loan_in(auditor.audit("loans", limit=20), loan_id)["status"] == "Repaid"
    moved = auditor.portfolio()
    assert moved["indexed_block"] > report["indexed_block"]
    assert moved["outstanding_principal"] == report["outstanding_principal"] - before["principal"] == 0
    repaid = next(s for s in moved["by_status"] if s["status"] == "Repaid")
    assert repaid["count"] == 1 and repaid["principal_repaid"] == before["principal"]


def test_the_portfolio_is_computed_at_the_chain_time_of_each_request(api, w3, driver, keys, auditor):
    _, context = api
    driver.active_loan(keys["bob"], ref=b"payout-clock")
    _indexed(context, w3)
    first = auditor.portfolio()
    assert first["delinquency"][0]["count"] == 1  # current

    driver.advance(40 * DAY)  # a new block 40 days on: the first installment (30 days) is 10 days late
    # Asked at once, whether or not the indexer has stored the new block yet.
    later = auditor.portfolio()
    assert later["as_of"] == w3.eth.get_block("latest")["timestamp"] >= first["as_of"] + 40 * DAY
    assert [b["count"] for b in later["delinquency"]][:2] == [0, 1]  # now in "1-29"
    assert later["portfolio_at_risk"][0]["count"] == 1


def test_cached_answers_keep_request_ids_and_route_metrics(api, http, auditor):
    headers = {"authorization": f"Bearer {auditor.token}"}
    for request_id in ("audit-1", "audit-2"):
        answer = http.get("/v1/audit/loans?limit=5", headers={**headers, "x-request-id": request_id})
        assert answer.status_code == 200 and answer.headers["x-request-id"] == request_id
        assert answer.headers["content-type"] == "application/json"
    assert http.get("/v1/audit/loans/7", headers=headers).json()["error"]["code"] == "not_found"
    assert len(http.get("/healthz").headers["x-request-id"]) == 32  # made up when not given
    http.post("/healthz")
    http.get("/no/such/route")
    metrics = http.get("/metrics").text
    assert 'loanledger_http_requests_total{method="GET",route="/v1/audit/loans",status="200"} 2.0' in metrics
    assert 'loanledger_http_requests_total{method="GET",route="/v1/audit/loans/{loan_id}",status="404"} 1.0' in metrics
    assert 'loanledger_http_requests_total{method="POST",route="unmatched",status="405"} 1.0' in metrics
    assert 'loanledger_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in metrics
    assert 'loanledger_http_request_seconds_count{method="GET",route="/v1/audit/loans"} 2.0' in metrics


def test_a_verified_token_still_expires(monkeypatch):
    context = SimpleNamespace(jwt_secret=b"a-secret-of-at-least-thirty-two-bytes",
                              settings=SimpleNamespace(token_minutes=1))
    token, expires_at = auth.issue_token(context, "0x" + "ab" * 20)
    assert auth.decode_token(context, token) == "0x" + "ab" * 20  # verified, and remembered
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: expires_at, monotonic=lambda: 0.0))
    with pytest.raises(ApiError) as expired:
        auth.decode_token(context, token)
    assert expired.value.code == "token_expired"
    with pytest.raises(ApiError) as forged:
        auth.decode_token(context, token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    assert forged.value.code == "invalid_token"


def test_a_shared_read_is_never_older_than_the_caller():
    async def scenario() -> list[int]:
        started: list[int] = []
        release = asyncio.Event()

        async def read() -> int:
            started.append(len(started) + 1)
            number = len(started)
            await release.wait()
            return number

        shared = SharedRead(read)
        first = asyncio.ensure_future(shared())
        await asyncio.sleep(0)  # read 1 is running
        second, third = asyncio.ensure_future(shared()), asyncio.ensure_future(shared())
        await asyncio.sleep(0)
        release.set()
        return [await first, await second, await third, len(started)]

    # The two callers who came while read 1 ran share read 2, begun after they asked; no third read.
    assert asyncio.run(scenario()) == [1, 2, 2, 2]


def test_roles_expiring_together_are_resolved_once(monkeypatch):
    import threading

    resolver = auth.RoleResolver(context=None)
    calls, gate = [], threading.Event()

    def resolve(address):
        calls.append(address)
        gate.wait(5)
        return frozenset({"auditor"})

    monkeypatch.setattr(resolver, "_resolve", resolve)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(resolver.roles("0xabc"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    while not calls:
        threading.Event().wait(0.01)
    gate.set()
    for thread in threads:
        thread.join(5)
    assert calls == ["0xabc"] and answers == [frozenset({"auditor"})] * 8


def test_roles_near_expiry_are_refreshed_in_the_background_and_forget_wins(monkeypatch):
    resolver = auth.RoleResolver(context=None)
    answers = iter([frozenset({"auditor"}), frozenset({"operator"}), frozenset({"admin"})])
    monkeypatch.setattr(resolver, "_resolve", lambda address: next(answers))
    assert resolver.roles("0xabc") == {"auditor"}

    async def refresh_after(seconds: float) -> None:
        at, roles = resolver._cache["0xabc"]
        resolver._cache["0xabc"] = (at - seconds, roles)
        resolver.refresh_ahead("0xabc")
        await asyncio.gather(*resolver._refreshes)

    asyncio.run(refresh_after(1.0))  # young: not refreshed
    assert resolver.cached("0xabc") == {"auditor"}
    asyncio.run(refresh_after(auth.ROLE_REFRESH_AHEAD_SECONDS))  # near expiry, still served, refreshed
    assert resolver.cached("0xabc") == {"operator"}

    # A resolution that began before forget() (a role just changed) is not kept.
    def resolve_across_forget(address):
        resolver.forget(address)
        return frozenset({"stale"})

    monkeypatch.setattr(resolver, "_resolve", resolve_across_forget)
    resolver.forget("0xabc")
    assert resolver.roles("0xabc") == {"stale"} and resolver.cached("0xabc") is None


def test_a_known_answer_still_needs_the_role(api, http, auditor, keys, client_for):
    headers = {"authorization": f"Bearer {auditor.token}"}
    cache = api[0].state.read_cache
    body = http.get("/v1/audit/loans?limit=3", headers=headers).json()
    hits = cache.hits
    assert http.get("/v1/audit/loans?limit=3", headers=headers).json() == body and cache.hits == hits + 1
    operator = client_for(keys["operator"])  # staff may read: the same answer
    assert http.get("/v1/audit/loans?limit=3", headers={"authorization": f"Bearer {operator.token}"}).json() == body
    applicant = client_for(Account.create())
    for given, status, code in (({"authorization": f"Bearer {applicant.token}"}, 403, "forbidden"),
                                ({}, 401, "unauthenticated"),
                                ({"authorization": "Basic " + auditor.token}, 401, "unauthenticated"),
                                ({"authorization": "Bearer " + auditor.token[:-3] + "abc"}, 401, "invalid_token")):
        answer = http.get("/v1/audit/loans?limit=3", headers=given)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), given
