"""The borrower app's loans area in a real phone-sized Chromium against the real stack: products in plain words, a
quote whose table and chart are the API's (so the loan book's) numbers, an application read in words, authorised
by a step-up code read off the phone and signed by the app's wallet over the typed data the API answers, then the
loan's page as its status moves (the automatic policy approves, the payout lands) and after a repayment."""

from __future__ import annotations

import json
import step_up_codes
from app_steps import amount_of, check, expected_refusals, yuan

PASSCODE = "correct horse 7"


def _rows(phone, selector: str) -> list[tuple[int, ...]]:
    return [tuple(row) for row in phone.page.eval_on_selector_all(selector, """nodes => nodes.map(n => [
        Number(n.dataset.number), Number(n.dataset.dueAt ?? -1), Number(n.dataset.principal),
        Number(n.dataset.interest)])""")]


def test_a_borrower_quotes_applies_and_follows_the_loan_to_its_first_repayment(
        api, borrower, operator, publish, policy, driver, keys, w3, stack, phone_for):
    app, context = api
    product_id = publish(name="小额周转", annual_rate_bps=1_200, service_fee_bps=100)
    operator.set_auto_approve(True)
    phone = phone_for()
    phone.seed_wallet(keys["alice"], PASSCODE)
    phone.sign_in(PASSCODE, "loans")
    assert phone.page.inner_text("#no-loans") == "您还没有借款。"

    # The products, in plain words.
    phone.page.click("#tabs a[href='#/products']")
    phone.wait_screen("products")
    card = phone.page.inner_text(f"article[data-product='{product_id}']")
    for words in ("小额周转", "可借 ¥10.00 至 ¥100,000.00", "分 3 至 12 期还款，每 30 天一期", "年利率 12.00%",
                  "服务费为借款金额的 1.00%", "3 天宽限期", "5.00% 的滞纳金", "年利率 12.00% 计收罚息"):
        assert words in card, words
    check(phone, "loans-products-zh-CN")

    # A refusal in plain words, its code beside it: an amount the product does not lend.
    phone.page.click(f"#quote-{product_id}")
    phone.wait_screen("quote")
    phone.page.fill("#quote-amount", "200000")
    phone.page.select_option("#quote-installments", "3")
    phone.page.click("#quote-submit")
    refusal = phone.page.wait_for_selector("#quote-refused [role=alert]")
    assert "超出了该产品的可借范围" in refusal.inner_text()
    assert "product_catalog_principal_out_of_range" in phone.page.inner_text("#quote-refused .code")

    # The quote: table, chart and totals are the API's, number for number.
    phone.page.fill("#quote-amount", "1,200")
    phone.page.click("#quote-submit")
    phone.page.wait_for_selector("#quote-result")
    quote = borrower.quote(product_id, 120_000, 3)
    expected = [(r["number"], r["due_at"], r["principal"], r["interest"]) for r in quote["schedule"]]
    assert _rows(phone, "#quote-schedule tbody tr") == expected
    assert _rows(phone, "#schedule-chart g.bar") == [(n, -1, p, i) for n, _, p, i in expected]
    first = phone.page.inner_text("#quote-schedule tbody tr:first-child")
    assert yuan(expected[0][2]) in first and yuan(expected[0][3]) in first and "第 30 天" in first
    for selector, key in (("#quote-principal", "principal"), ("#quote-fee", "service_fee"),
                          ("#quote-paid-out", "net_paid_out"), ("#quote-interest", "total_interest"),
                          ("#quote-cost", "total_cost"), ("#quote-repaid", "total_repaid")):
        assert amount_of(phone, selector) == quote[key], key
        assert phone.page.inner_text(selector) == yuan(quote[key]), key
    check(phone, "loans-quote-zh-CN")

    # Apply: the application in words, the typed data one tap away, a code off the phone, the wallet's signature.
    phone.page.click("#quote-apply")
    phone.wait_screen("apply")
    amounts = [r["principal"] + r["interest"] for r in quote["schedule"]]
    each = f"每 30 天还 {yuan(min(amounts))}" if min(amounts) == max(amounts) else \
        f"每 30 天还 {yuan(min(amounts))} 至 {yuan(max(amounts))}"
    assert phone.page.inner_text("#apply-summary") == \
        f"借款 ¥1,200.00，分 3 期，{each}，总成本 {yuan(quote['total_cost'])}。"
    assert yuan(quote["net_paid_out"]) in phone.page.inner_text("#apply-money")
    phone.page.click("#apply-raw summary")
    raw = json.loads(phone.page.inner_text("#apply-raw code"))
    assert raw["primaryType"] == "LoanApplication" and "EIP712Domain" in raw["types"]
    assert raw["domain"]["verifyingContract"] == stack.book.address
    assert {k: raw["message"][k] for k in ("borrower", "productId", "productVersion", "principal", "installments",
                                            "nonce")} == {
        "borrower": keys["alice"].address, "productId": product_id, "productVersion": 1, "principal": 120_000,
        "installments": 3, "nonce": stack.book.functions.nonces(keys["alice"].address).call()}
    check(phone, "loans-apply-zh-CN")

    phone.page.click("#send-code")
    phone.page.wait_for_selector("#code-sent:has-text('验证码已发送至')")
    code = step_up_codes.read_code(app, keys["alice"].address)
    phone.page.fill("#step-up-code", "000000" if code != "000000" else "111111")
    phone.page.click("#sign-apply")
    wrong = phone.page.wait_for_selector("#apply-problem [role=alert]")
    assert "验证码不正确" in wrong.inner_text() and "step_up_wrong" in wrong.inner_text()
    assert stack.book.functions.loanCount().call() == 0  # refused before anything was relayed
    phone.page.fill("#step-up-code", code)
    phone.page.click("#sign-apply")
    status = phone.page.wait_for_selector("#apply-status")
    assert status.get_attribute("data-status") == "Requested"
    loan_id = int(status.get_attribute("data-loan"))
    assert status.inner_text() == f"借款 #{loan_id}：已申请，等待审批"
    (made,) = borrower.loans()
    assert (made["id"], made["status"], made["principal"], made["service_fee"]) == (loan_id, "Requested", 120_000,
                                                                                    1_200)

    # The loan's page follows its status: the policy approves, the payout lands.
    phone.page.click("#follow-loan")
    phone.wait_screen("loan")
    assert phone.page.inner_text("#loan-status") == "已申请，等待审批"
    assert policy().decided == {loan_id: "approved"}
    phone.page.wait_for_selector("section.loan[data-status='Approved']")
    assert phone.page.inner_text("#loan-status") == "已批准，正在放款"
    driver.disburse(loan_id, quote["net_paid_out"], b"app-payout")
    phone.page.wait_for_selector("section.loan[data-status='Active']")
    phone.wait_screen("loan")
    due, loan = borrower.due(loan_id), borrower.loan(loan_id)
    assert int(phone.page.get_attribute("#next-due", "data-due-at")) == due["next_due_at"]
    assert amount_of(phone, "#next-amount") == due["owed_at_next_due"]
    assert phone.page.inner_text("#next-amount") == yuan(due["owed_at_next_due"])
    assert (amount_of(phone, "#due-now"), amount_of(phone, "#payoff")) == (due["total"], due["payoff"])
    assert _rows(phone, "#loan-schedule tbody tr") == [
        (r["number"], r["due_at"], r["principal"], r["interest"]) for r in loan["schedule"]]
    assert phone.page.inner_text("#paid-none") == "还没有还款。"
    assert "3 天宽限期" in phone.page.inner_text("#loan-late")
    links = phone.page.eval_on_selector_all("#loan-actions a", "as => as.map(a => a.getAttribute('href'))")
    assert links == [f"#/{route}?loan={loan_id}" for route in ("pay", "debit", "payoff", "hardship")]
    check(phone, "loans-loan-zh-CN")

    # A repayment: what was paid and where it went, as the loan book allocated it.
    driver.advance(10 * 86_400)  # ten days of interest accrue before the payment
    driver.repay(loan_id, 30_000, b"app-repayment")
    assert context.wait_indexed(w3.eth.block_number)
    phone.page.click("#tabs a[href='#/loans']")
    phone.wait_screen("loans")
    assert phone.page.get_attribute(f"li[data-loan='{loan_id}']", "data-status") == "Active"
    assert "已放款，还款中" in phone.page.inner_text(f"li[data-loan='{loan_id}']")
    check(phone, "loans-loans-zh-CN")
    phone.page.click(f"#loan-{loan_id}")
    phone.wait_screen("loan")
    loan = borrower.loan(loan_id)
    paid = {key: amount_of(phone, selector) for selector, key in (
        ("#paid-principal", "principal_repaid"), ("#paid-interest", "interest_paid"),
        ("#paid-late-fee", "late_fee_paid"), ("#paid-penalty", "penalty_paid"))}
    assert paid == {key: loan[key] for key in paid} and sum(paid.values()) == 30_000
    assert paid["interest_paid"] > 0 and paid["principal_repaid"] > 0
    assert phone.page.inner_text("#paid-principal") == yuan(loan["principal_repaid"])
    # Each payment as the chain recorded it: the payout, then the repayment and where it went.
    payments = phone.page.eval_on_selector_all("#loan-payments li", """nodes => nodes.map(n => [n.dataset.kind,
        Number(n.dataset.amount), Number(n.dataset.principal), Number(n.dataset.interest)])""")
    assert payments == [["disbursement", quote["net_paid_out"], 0, 0],
                        ["repayment", 30_000, loan["principal_repaid"], loan["interest_paid"]]]
    repayment = phone.page.inner_text("#loan-payments li[data-kind='repayment']")
    assert "您还款 ¥300.00" in repayment and f"利息 {yuan(loan['interest_paid'])}" in repayment
    assert amount_of(phone, "#next-amount") == borrower.due(loan_id)["owed_at_next_due"]
    # The browser logs each refused request; the two refusals above (the amount, the wrong code) are expected.
    expected_refusals(phone, 422, 2)
    phone.assert_clean()


def test_the_loans_screens_in_english(api, borrower, publish, phone_for, keys):
    product_id = publish(name="Quick cash", annual_rate_bps=1_200, service_fee_bps=100)
    loan_id = borrower.apply(product_id, 120_000, 3)["loan_id"]
    phone = phone_for(locale="en")
    phone.seed_wallet(keys["alice"], PASSCODE)
    phone.sign_in(PASSCODE, "loans")
    phone.page.click("#language")
    phone.page.wait_for_selector("html[lang='en']")
    phone.wait_screen("loans")
    assert phone.page.inner_text(f"li[data-loan='{loan_id}'] .status") == "Requested: waiting for a decision"
    check(phone, "loans-loans-en")

    phone.page.click("#tabs a[href='#/products']")
    phone.wait_screen("products")
    card = phone.page.inner_text(f"article[data-product='{product_id}']")
    assert "Repay in 3 to 12 installments, one every 30 days" in card and "Interest 12.00% a year" in card
    check(phone, "loans-products-en")

    phone.page.evaluate(f"location.hash = '#/quote?product={product_id}&principal=120000&installments=3'")
    phone.page.wait_for_selector("#quote-result")
    quote = borrower.quote(product_id, 120_000, 3)
    assert amount_of(phone, "#quote-cost") == quote["total_cost"] and "Day 30" in phone.page.inner_text("#quote-schedule")
    check(phone, "loans-quote-en")

    phone.page.click("#quote-apply")
    phone.wait_screen("apply")
    assert phone.page.inner_text("#apply-summary").startswith("Borrow CN¥1,200.00 for 3 installments, repay ")
    check(phone, "loans-apply-en")

    phone.page.evaluate(f"location.hash = '#/loan?id={loan_id}'")
    phone.wait_screen("loan")
    assert phone.page.inner_text("#loan-status") == "Requested: waiting for a decision"
    check(phone, "loans-loan-en")
    phone.assert_clean()
