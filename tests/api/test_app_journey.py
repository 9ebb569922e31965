"""Issue 18's headline journey in a real phone-sized Chromium against the real stack (anvil and the contracts, the
API on a real port, the rail process, the oracle's registration worker, the automatic policy, the risk monitor):
a new borrower goes from first run to a repaid loan through the app alone, in Chinese and once in English.

Every borrower action is a tap or a keystroke in the app: the wallet made on the phone and its backup downloaded,
the sign-in, the real-name verification (codes read off the development SMS outbox as the borrower reads their
phone), the quote, the application (a step-up code, the wallet's signature), each payment through the rail's
checkout. The harness runs only the back office's rounds (registration, the score, the policy, the payout, the
risk monitor's reminder, the rail's confirmations) and reads the API, as the borrower, with the key from the
downloaded backup, to hold every amount and status word the screens show against it and the chain.

In Chinese the borrower pays each installment on its due date; in English the first, then the rest early with
the exact payoff."""

from __future__ import annotations

import phone as phone_module
import pytest
from api_outcomes import loan_status
from app_steps import (amount_of, ask_quote, check, clean, cny, first_run, sign_application,
                       submit_identity, switch_language, texted, through_checkout, yuan)
from eth_account import Account

from ledger.book import LoanStatus
from ledger.samples import sample_identity
from oracle.notify import SmsQueue
from oracle.risk import RiskMonitor

PASSCODE = "journey passcode 8"
DAY = 86_400
HOUR = 3_600


def _rows(phone, selector: str) -> list[tuple[int, int, int]]:
    return [tuple(row) for row in phone.page.eval_on_selector_all(selector, """nodes => nodes.map(n => [
        Number(n.dataset.number), Number(n.dataset.principal), Number(n.dataset.interest)])""")]


def _tab(phone, route: str) -> None:
    phone.page.click(f"#tabs a[href='#/{route}']")
    phone.wait_screen(route)


def _open_loan(phone, loan_id: int) -> None:
    """From the loans tab, the loan's own page (a fresh draw of it)."""
    _tab(phone, "loans")
    phone.page.click(f"#loan-{loan_id}")
    phone.wait_screen("loan")


@pytest.mark.parametrize("locale, finish", [("zh-CN", "installments"), ("en", "payoff")])
def test_a_new_borrower_goes_from_first_run_to_a_repaid_loan_through_the_app_alone(
        locale, finish, api, phone_for, publish, operator, client_for, registrar, driver, policy, rail, confirm,
        stack, w3):
    app, context = api
    words = phone_module.messages(locale)
    page = None

    def money(minor: int) -> str:
        return yuan(minor, locale)

    def step(name: str, scan: bool = False) -> None:
        """journey-<step>-<locale>.png; key screens are scanned by axe too."""
        if scan:
            check(phone, f"journey-{name}-{locale}")
        else:
            page.evaluate("window.scrollTo(0, 0)")
            phone.screenshot(f"journey-{name}-{locale}")
            assert phone.missing_messages() == [], name

    person = sample_identity(81 if locale == "zh-CN" else 82)
    product_id = publish(name="小额周转" if locale == "zh-CN" else "Quick cash", annual_rate_bps=1_200,
                         service_fee_bps=100)
    operator.set_auto_approve(True)

    # First run: a fresh phone; the language chosen by a tap; a wallet made on it, its backup downloaded.
    phone = phone_for(locale)
    page = phone.page
    phone.open()
    phone.wait_screen("welcome")
    switch_language(phone, locale, "welcome")
    assert page.get_attribute("html", "lang") == locale
    step("welcome", scan=True)
    address, backup = first_run(phone, PASSCODE)
    assert context.w3.eth.get_transaction_count(address) == 0  # a new key: nothing on the chain knows it
    # The test reads the API as the borrower with the key from the backup they downloaded (as the CLI would).
    me = client_for(Account.from_key(Account.decrypt(backup, PASSCODE)))
    assert me.kyc_status()["status"] == "none"
    page.wait_for_selector("#home-next[data-status='none']")
    assert page.inner_text("#home-kyc-summary") == words["kyc.home.none"]
    step("home")

    # Real-name verification in the app; the oracle registers it; the screen follows by itself.
    page.click("#home-next-link")
    page.wait_for_selector("#kyc-status[data-status='none']")
    page.click("#kyc-next-submit")
    page.wait_for_selector("#kyc-form")
    step("kyc-form", scan=True)
    submit_identity(phone, app, person)
    assert me.kyc_status()["status"] == "registering"
    assert page.inner_text("#kyc-status h2") == words["kyc.status.registering"]
    step("kyc-registering")
    assert registrar().registered == 1
    page.wait_for_selector("#kyc-status[data-status='registered']")
    assert page.inner_text("#kyc-status h2") == words["kyc.status.registered"]
    assert stack.registry.functions.isEligible(address).call()
    step("kyc-registered")

    # The scoring round; score and limit, with their age, as the API holds them.
    driver.score(Account.from_key(Account.decrypt(backup, PASSCODE)), score=712, limit=500_000)
    assert context.wait_indexed(w3.eth.block_number)
    page.click("#kyc-next-apply")
    phone.wait_screen("credit")
    credit = me.credit()
    assert (credit["score"], credit["credit_limit"], credit["available"]) == (712, 500_000, 500_000)
    assert page.inner_text("#credit-score") == "712"
    assert page.inner_text("#credit-limit") == money(credit["credit_limit"])
    assert page.inner_text("#credit-available") == money(credit["available"])
    assert page.inner_text("#credit-age") and page.get_attribute("#credit-card", "data-fresh") == "true"
    step("credit", scan=True)

    # Products, a quote (the API's numbers, row for row), the application in words, a code, a signature.
    _tab(phone, "products")
    card = page.inner_text(f"article[data-product='{product_id}']")
    assert ("小额周转" if locale == "zh-CN" else "Quick cash") in card
    step("products")
    page.click(f"#quote-{product_id}")
    phone.wait_screen("quote")
    ask_quote(phone, "1200", 3)
    quote = me.quote(product_id, 120_000, 3)
    assert _rows(phone, "#quote-schedule tbody tr") == [
        (r["number"], r["principal"], r["interest"]) for r in quote["schedule"]]
    for selector, key in (("#quote-principal", "principal"), ("#quote-fee", "service_fee"),
                          ("#quote-paid-out", "net_paid_out"), ("#quote-cost", "total_cost"),
                          ("#quote-repaid", "total_repaid")):
        assert amount_of(phone, selector) == quote[key] and page.inner_text(selector) == money(quote[key]), key
    step("quote", scan=True)
    page.click("#quote-apply")
    phone.wait_screen("apply")
    summary = page.inner_text("#apply-summary")
    assert money(120_000) in summary and money(quote["total_cost"]) in summary
    step("apply", scan=True)
    loan_id = sign_application(phone, app, address)
    assert page.get_attribute("#apply-status", "data-status") == "Requested"
    assert words["loans.status.Requested"] in page.inner_text("#apply-status")
    [made] = me.loans()
    assert (made["id"], made["status"], made["principal"]) == (loan_id, "Requested", 120_000)
    assert loan_status(stack, loan_id) == LoanStatus.REQUESTED
    step("applied")

    # The loan's page as the policy approves and the payout lands.
    page.click("#follow-loan")
    phone.wait_screen("loan")
    assert page.inner_text("#loan-status") == words["loans.status.Requested"]
    assert policy().decided == {loan_id: "approved"}
    page.wait_for_selector("section.loan[data-status='Approved']")
    assert page.inner_text("#loan-status") == words["loans.status.Approved"]
    driver.disburse(loan_id, quote["net_paid_out"], f"journey-payout-{locale}".encode())
    page.wait_for_selector("section.loan[data-status='Active']")
    phone.wait_screen("loan")
    loan, due = me.loan(loan_id), me.due(loan_id)
    assert loan["status"] == "Active" and loan_status(stack, loan_id) == LoanStatus.ACTIVE
    assert page.inner_text("#loan-status") == words["loans.status.Active"]
    assert (amount_of(phone, "#next-amount"), amount_of(phone, "#payoff")) == (due["owed_at_next_due"], due["payoff"])
    assert page.inner_text("#next-amount") == money(due["owed_at_next_due"])
    assert int(page.get_attribute("#next-due", "data-due-at")) == due["next_due_at"] == loan["schedule"][0]["due_at"]
    payout = page.eval_on_selector_all("#loan-payments li", "ns => ns.map(n => [n.dataset.kind, Number(n.dataset.amount)])")
    assert payout == [["disbursement", quote["net_paid_out"]]]
    step("loan-paid-out", scan=True)

    # Three days before the first due date, the risk monitor's reminder is texted.
    driver.advance(loan["schedule"][0]["due_at"] - driver.now - 3 * DAY + HOUR)
    assert context.wait_indexed(w3.eth.block_number)
    monitor = RiskMonitor(context.sessions, stack.book, SmsQueue(stack.book.address), reminder_days=3)
    assert monitor.run_once().reminders == 1
    reminder = texted(app, address, f"【LoanLedger】您的借款（编号{loan_id}）第1期应还")

    # Each installment on its due date through the rail's checkout (in English: the first, then the payoff).
    schedule = loan["schedule"]
    for number, row in enumerate(schedule, start=1):
        if finish == "payoff" and number > 1:
            break
        driver.advance(row["due_at"] - driver.now + HOUR)  # due today, within the grace period
        _open_loan(phone, loan_id)
        due = me.due(loan_id)
        assert due["total"] == row["principal"] + row["interest"] and due["late_fee"] == due["penalty"] == 0
        assert amount_of(phone, "#due-now") == due["total"]
        page.click("#action-pay")
        phone.wait_screen("pay")
        assert money(due["total"]) in page.inner_text("#pay-due")
        if number == 1:
            step("pay", scan=True)
        page.click("#pay-checkout")
        through_checkout(phone, rail, cny(due["total"]), "pay", PASSCODE)
        [_] = confirm(loan_id)
        page.wait_for_selector("#pay-status[data-state='applied']", timeout=30_000)
        after = me.loan(loan_id)
        assert after["paid_installments"] == number and after["late_fee_paid"] == after["penalty_paid"] == 0
        applied = page.inner_text("#pay-applied")
        assert money(after["principal_repaid"]) in applied and money(after["interest_paid"]) in applied
        assert words[f"pay.status.{after['status']}"] in applied
        if number == 1:
            step("pay-applied")

    if finish == "payoff":
        _open_loan(phone, loan_id)
        page.click("#action-payoff")
        phone.wait_screen("payoff")
        payoff = me.due(loan_id)["payoff"]
        assert page.inner_text("#payoff-amount") == money(payoff)
        step("payoff", scan=True)
        page.click("#payoff-checkout")
        through_checkout(phone, rail, cny(payoff), "payoff", PASSCODE)
        [_] = confirm(loan_id)
        page.wait_for_selector("#pay-status[data-state='applied']", timeout=30_000)

    # Repaid: the last payment's answer, the loan's page, the list, the chain.
    assert page.inner_text("#pay-status .pay-headline") == words["pay.applied_repaid"]
    closed = me.loan(loan_id)
    assert closed["status"] == "Repaid" and closed["credit_balance"] == 0
    assert closed["principal_repaid"] == 120_000 and loan_status(stack, loan_id) == LoanStatus.REPAID
    step("repaid")
    _open_loan(phone, loan_id)
    assert page.inner_text("#loan-status") == words["loans.status.Repaid"]
    assert page.query_selector("#loan-actions") is None  # nothing left to do on it
    paid = {key: amount_of(phone, selector) for selector, key in (
        ("#paid-principal", "principal_repaid"), ("#paid-interest", "interest_paid"))}
    assert paid == {key: closed[key] for key in paid}
    kinds = page.eval_on_selector_all("#loan-payments li", "ns => ns.map(n => n.dataset.kind)")
    assert kinds == ["disbursement"] + ["repayment"] * (3 if finish == "installments" else 2)
    step("loan-repaid", scan=True)
    _tab(phone, "loans")
    assert page.get_attribute(f"li[data-loan='{loan_id}']", "data-status") == "Repaid"
    assert words["loans.status.Repaid"] in page.inner_text(f"li[data-loan='{loan_id}']")

    # The notices: what was texted, as the API lists it for the borrower in the app's language.
    _tab(phone, "notices")
    mine = me._request("GET", "/v1/me/notices", params={"language": locale})["notices"]
    # texted: the SMS provider took it ("accepted"; "sent" once a provider reports delivery)
    assert [n["kind"] for n in mine] == ["reminder"] and mine[0]["delivery"] in ("accepted", "sent")
    assert page.inner_text("#notice-list .pay-notice-text") == mine[0]["text"]
    assert words["pay.notice.reminder"] in page.inner_text("#notice-list .pay-notice-kind")
    assert words[f"pay.delivery.{mine[0]['delivery']}"] in page.inner_text("#notice-list .pay-notice")
    if locale == "zh-CN":
        assert mine[0]["text"] == reminder["text"]
    step("notices", scan=True)
    clean(phone, rail)
