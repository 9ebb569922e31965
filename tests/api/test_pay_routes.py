"""The API the app's pay area needs (issue 18): a checkout link to the rail's hosted checkout that returns only to this
API's own app, the rail's checkout page paying once per page, a borrower's own notices (never another's), newest
first and paged, and a DebitMandate's typed data that the mandate route accepts once signed."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import step_up_codes
from api_outcomes import api_error

from ledger import typed_data
from ledger.identity import KycRecord
from ledger.samples import sample_identity
from ledger.store.models.notices import NoticeDelivery
from ledger.store.models.notifications import Notification

APP = "http://testserver/app/"


@pytest.fixture
def active_loan(api, borrower, application, driver) -> int:
    loan_id = borrower.apply(**application)["loan_id"]
    driver.approve(loan_id)
    driver.disburse(loan_id, application["principal"], b"payout-pay-routes")
    assert api[1].wait_indexed(driver.w3.eth.block_number)
    return loan_id


def test_a_checkout_link_returns_only_to_this_apis_app_and_the_rail_takes_the_payment_once(
        api, borrower, active_loan, rail):
    loan_id = active_loan
    due = borrower.due(loan_id)
    back = f"{APP}#/pay?loan={loan_id}"
    how = borrower._request("GET", f"/v1/loans/{loan_id}/repayment-instructions", params={"return_to": back})
    assert due["total"] == 0 and how["checkout_for"] == "due"
    assert how["checkout_amount"] == due["owed_at_next_due"] > 0  # nothing due yet: the next installment, the book's
    link = urlsplit(how["checkout_url"])
    assert f"{link.scheme}://{link.netloc}" == rail.url and link.path == "/checkout"
    assert parse_qs(link.query) == {"loan": [str(loan_id)], "amount": [str(due["owed_at_next_due"])],
                                    "currency": ["CNY"], "return": [back]}
    payoff = borrower._request("GET", f"/v1/loans/{loan_id}/repayment-instructions",
                               params={"return_to": back, "pay": "payoff"})
    assert payoff["checkout_amount"] == borrower.due(loan_id)["payoff"]
    assert borrower.repayment_instructions(loan_id)["checkout_url"] is None  # no return address: no link
    for elsewhere in ("https://evil.example/app/", "http://testserver.evil.example/app/", "//evil.example/app/",
                      "http://testserver/dashboard", "http://testserver/app/../dashboard", "javascript:alert(1)",
                      "http://user@testserver/app/", "https://testserver/app/", "http://testserver:81/app/"):
        refused = api_error(borrower._request, "GET", f"/v1/loans/{loan_id}/repayment-instructions",
                            params={"return_to": elsewhere})
        assert (refused.status, refused.code) == (422, "invalid_return_url"), elsewhere

    # The rail's page shows what is paid and where the payer goes back; paying sends them back with the reference.
    page = httpx.get(how["checkout_url"], timeout=10)
    assert page.status_code == 200 and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    amount = due["owed_at_next_due"]
    assert f"{amount // 100:,}.{amount % 100:02d} CNY" in page.text and "testserver" in page.text
    form = {name: value for name, value in
            re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text)}
    form["return"] = form["return"].replace("&amp;", "&")
    paid = httpx.post(f"{rail.url}/checkout", data=form, timeout=10)
    assert paid.status_code == 303
    returned = urlsplit(paid.headers["location"])
    assert returned.fragment == f"/pay?loan={loan_id}"  # the app's route is kept
    answer = parse_qs(returned.query)
    assert answer["rail_status"] == ["paid"]
    again = httpx.post(f"{rail.url}/checkout", data=form, timeout=10)  # a double tap: the same order, paid once
    assert urlsplit(again.headers["location"]).query == returned.query
    collected = httpx.get(f"{rail.url}/v1/payments", params={"loan_id": loan_id, "direction": "collection"}).json()
    assert [(p["reference"], p["amount"]) for p in collected] == [(answer["rail_reference"][0], amount)]
    # The rail's page takes no other return than an http(s) address, nor a form it did not draw.
    assert httpx.get(f"{rail.url}/checkout", params={"loan": loan_id, "amount": 1, "return": "javascript:x"}
                     ).status_code == 422
    assert httpx.post(f"{rail.url}/checkout", data={**form, "key": "mine"}).status_code == 422


def _record(sessions, borrower: str, loan_id: int, kind: str, installment: int, *, sms: bool = True) -> None:
    facts = {"kind": kind, "loan_id": loan_id, "installment": installment, "borrower": borrower,
             "due_at": 1_800_000_000, "amount_due": 41_130, "currency": "CNY",
             "detail": {"days_past_due": 4, "late_fee": 2_000, "penalty": 130}}
    with sessions.begin() as session:
        notice = Notification(loan_id=loan_id, installment=installment, borrower=borrower, kind=kind,
                              channel="sms" if sms else "log", status="queued" if sms else "sent",
                              due_at=1_800_000_000, amount_due=41_130, created_at=1_799_800_000 + installment)
        session.add(notice)
        session.flush()
        if sms:
            session.add(NoticeDelivery(notification_id=notice.id, borrower=borrower,
                                       idempotency_key=f"notice-pay-{loan_id}-{kind}-{installment}",
                                       facts=json.dumps(facts), status="pending", attempts=0, next_attempt_at=0,
                                       created_at=1_799_800_000, updated_at=1_799_800_000))


def test_a_borrower_reads_their_own_notices_newest_first_in_their_language_and_paged(api, client_for, keys):
    app, context = api
    alice, bob = client_for(keys["alice"]), client_for(keys["bob"])
    context.vault.put(keys["alice"].address, KycRecord(**sample_identity(0)))
    _record(context.sessions, keys["alice"].address, 3, "reminder", 1)
    _record(context.sessions, keys["bob"].address, 4, "reminder", 1)
    _record(context.sessions, keys["alice"].address, 3, "overdue_warning", 1)
    _record(context.sessions, keys["alice"].address, 3, "default_notice", 0, sms=False)
    app.state.notices.run_once()  # alice's texts go out; bob has no phone on file: his is set aside

    mine = alice._request("GET", "/v1/me/notices")
    assert mine["language"] == "zh-CN" and mine["next_cursor"] is None
    assert [(n["kind"], n["delivery"]) for n in mine["notices"]] == [
        ("default_notice", "sent"), ("overdue_warning", "accepted"), ("reminder", "accepted")]
    warning = mine["notices"][1]
    assert warning["text"] == ("【LoanLedger】您的借款（编号3）第1期已逾期4天（还款日2027年1月15日），当前应还411.30元，"
                               "其中滞纳金20.00元、罚息1.30元。请尽快还款。")
    # Exactly what was texted to her phone.
    assert warning["text"] in [m["text"] for m in app.state.sms.messages(sample_identity(0)["phone"])]
    alice._request("PUT", "/v1/me/language", json_body={"language": "en"})
    first = alice._request("GET", "/v1/me/notices", params={"limit": 2})
    assert first["language"] == "en" and [n["kind"] for n in first["notices"]] == ["default_notice", "overdue_warning"]
    assert first["notices"][1]["text"].startswith("LoanLedger: installment 1 of your loan 3 is 4 days overdue")
    rest = alice._request("GET", "/v1/me/notices", params={"limit": 2, "cursor": first["next_cursor"]})
    assert [n["kind"] for n in rest["notices"]] == ["reminder"] and rest["next_cursor"] is None
    asked = alice._request("GET", "/v1/me/notices", params={"language": "zh-CN", "limit": 1})
    assert asked["notices"][0]["text"].startswith("【LoanLedger】您的借款（编号3）已被认定为违约")
    # Bob's own, never hers; and a cursor this API did not hand out is refused.
    theirs = bob._request("GET", "/v1/me/notices")["notices"]
    assert [(n["loan_id"], n["delivery"]) for n in theirs] == [(4, "set_aside")]
    past_hers = bob._request("GET", "/v1/me/notices", params={"cursor": first["next_cursor"]})["notices"]
    assert [n["loan_id"] for n in past_hers] == [4]
    assert api_error(alice._request, "GET", "/v1/me/notices", params={"cursor": "bm90LWEtY3Vyc29y"}).code == \
        "invalid_cursor"


def test_the_debit_mandates_typed_data_from_the_api_signed_as_is_is_accepted(api, borrower, active_loan, keys):
    app, _ = api
    loan_id = active_loan
    proposal = borrower._request("GET", f"/v1/loans/{loan_id}/debit-mandate/typed-data")
    assert proposal["max_amount"] == borrower.due(loan_id)["owed_at_next_due"]  # the book's next installment
    chosen = borrower._request("GET", f"/v1/loans/{loan_id}/debit-mandate/typed-data",
                               params={"max_amount": 50_000, "valid_until": proposal["valid_until"]})
    typed = chosen["typed_data"]
    assert typed["primaryType"] == "DebitMandate" and "EIP712Domain" in typed["types"]
    assert typed["message"] == {"borrower": keys["alice"].address, "loanId": loan_id, "card": chosen["card"],
                                "maxAmount": 50_000, "validUntil": proposal["valid_until"], "nonce": 1}
    assert chosen["card"].startswith("**** ") and "**** " + sample_identity(11)["bank_card"][-4:] == chosen["card"]
    assert "at most CNY 500.00 a time" in chosen["summary"]["en"] and "500.00元" in chosen["summary"]["zh-CN"]
    signature = "0x" + bytes(typed_data.sign(keys["alice"].key, json.loads(json.dumps(typed)))).hex()
    code = step_up_codes.code_for(app, borrower, "debit_mandate", loan_id=loan_id)
    made = borrower._request("POST", f"/v1/loans/{loan_id}/debit-mandate", step_up_code=code, json_body={
        "card": chosen["card"], "max_amount": 50_000, "valid_until": chosen["valid_until"], "nonce": chosen["nonce"],
        "signature": signature})
    assert (made["max_amount"], made["nonce"]) == (50_000, 1)
    assert borrower._request("GET", f"/v1/loans/{loan_id}/debit-mandate/typed-data")["nonce"] == 2
