"""The borrower app's real-name verification (issue 18, over issue 17's KYC life) in a real phone-sized Chromium
against the real API, anvil, the oracle's registration worker (`registrar`) and the bank's card desk: a new
borrower verifies in the app alone (codes read off the development SMS outbox, as the borrower reads their phone),
is registered, scored and sees score and limit with their age; a refused field, a duplicate and a wrong code are
shown in plain words and change nothing; expiring, then expired, and renewed in the app; the phone change (a step-up code to the current number, the new number's code) in
English; a lost wallet recovered on a new one, waiting for an operator while the old wallet owes money."""

from __future__ import annotations

import phone as phone_module
import step_up_codes
from app_steps import check, expected_refusals, goto, submit_identity
from eth_account import Account

from api.services.kyc import standing
from ledger.kyc_status import KycStatus
from ledger.samples import sample_identity

PASSCODE = "kyc passcode 7"
DAY = 86_400
ZH, EN = phone_module.messages("zh-CN"), phone_module.messages("en")


def status_of(context, account) -> KycStatus:
    return standing(context, account.address).status


def shown(phone, status: str) -> None:
    """Until the kyc screen shows `status` (it polls by itself while the oracle registers)."""
    phone.page.wait_for_selector(f"#kyc-status[data-status='{status}']")


def refused(phone, code: str, words: str, status: int = 422) -> None:
    """The API's refusal `code` shown in plain words (with the code for support); the one refused request the
    browser logged for it is expected."""
    alert = phone.page.wait_for_selector("[role=alert]")
    assert words in alert.inner_text() and code in phone.page.inner_text("[role=alert] .code")
    expected_refusals(phone, status, 1)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_every_kyc_status_has_its_words():
    statuses = {status.value for status in KycStatus}
    for prefix in ("kyc.status.", "kyc.explain.", "kyc.home."):
        assert statuses <= {key.removeprefix(prefix) for key in ZH if key.startswith(prefix)}, prefix


def test_a_new_borrower_verifies_in_the_app_alone_and_sees_score_and_limit(api, phone_for, registrar, driver, stack,
                                                                          client_for, kyc):
    app, context = api
    someone = sample_identity(75)
    kyc(client_for(Account.create()), 75)  # another person, verified on another wallet
    account, person = Account.create(), sample_identity(71)
    phone = phone_for()
    phone.seed_wallet(account, PASSCODE)
    phone.sign_in(PASSCODE, "home")
    page = phone.page
    page.wait_for_selector("#home-next[data-status='none']")
    assert page.inner_text("#home-kyc-summary") == ZH["kyc.home.none"]
    check(phone, "kyc-home-zh-CN")
    page.click("#home-next-link")
    shown(phone, "none")
    assert page.inner_text("#kyc-status h2") == ZH["kyc.status.none"]
    check(phone, "kyc-status-zh-CN")
    page.click("#kyc-next-submit")
    page.wait_for_selector("#kyc-form")
    check(phone, "kyc-submit-zh-CN")

    # A mistyped ID number (its check digit no longer matches) is the API's refusal, in plain words.
    mistyped = person["id_number"][:-1] + ("0" if person["id_number"][-1] != "0" else "1")
    page.fill("input[name=name]", person["name"])
    page.fill("input[name=id_number]", mistyped)
    page.fill("input[name=phone]", person["phone"])
    page.fill("input[name=bank_card]", person["bank_card"])
    page.click("#kyc-form-submit")
    refused(phone, "invalid_id_number", ZH["error.invalid_id_number"])
    assert status_of(context, account) is KycStatus.NONE and app.state.sms.messages(person["phone"]) == []
    # Another person's ID number (verified on their wallet) is refused as a duplicate: one person, one borrower.
    page.fill("input[name=id_number]", someone["id_number"])
    page.click("#kyc-form-submit")
    refused(phone, "duplicate_id_number", ZH["error.duplicate_id_number"], 409)
    assert status_of(context, account) is KycStatus.NONE and app.state.sms.messages(person["phone"]) == []
    # The bank refuses the card with another phone than the one reserved for it, and the app says which reason.
    other_phone = sample_identity(76)["phone"]
    page.fill("input[name=id_number]", person["id_number"])
    page.fill("input[name=phone]", other_phone)
    page.click("#kyc-form-submit")
    refused(phone, "card_not_verified", ZH["error.card_not_verified"])
    assert page.inner_text("#kyc-card-reason") == ZH["kyc.card_reason.card_phone_mismatch"]
    assert status_of(context, account) is KycStatus.NONE and app.state.sms.messages(other_phone) == []
    page.fill("input[name=phone]", person["phone"])
    # Typed as a phone's full-width keyboard gives it: the API reads the same number.
    page.fill("input[name=id_number]", person["id_number"].translate({ord(d): ord(d) + 0xFEE0 for d in "0123456789"}))
    page.click("#kyc-form-submit")
    page.wait_for_selector("#kyc-verify-form")
    assert status_of(context, account) is KycStatus.SUBMITTED
    check(phone, "kyc-verify-zh-CN")

    # Wrong codes: refused in plain words, nothing confirmed.
    sms = app.state.sms
    phone_code, card_code = sms.last_code(person["phone"], "phone"), sms.last_code(person["phone"], "card")
    page.fill("input[name=phone_code]", wrong(phone_code))
    page.fill("input[name=card_code]", wrong(card_code))
    page.click("#kyc-verify-submit")
    refused(phone, "otp_wrong", ZH["error.otp_wrong"])
    assert status_of(context, account) is KycStatus.SUBMITTED and not context.vault.has_record(account.address)
    # The phone's code right, the bank's wrong: the phone is confirmed, the card's code still awaited.
    page.fill("input[name=phone_code]", phone_code)
    page.fill("input[name=card_code]", wrong(card_code))
    page.click("#kyc-verify-submit")
    refused(phone, "otp_wrong", ZH["error.otp_wrong"])
    assert status_of(context, account) is KycStatus.PHONE_VERIFIED
    page.click("#kyc-back")
    shown(phone, "phone_verified")
    assert page.inner_text("#kyc-status h2") == ZH["kyc.status.phone_verified"]
    page.click("#kyc-next-verify")
    page.wait_for_selector("#kyc-phone-done")  # not asked again
    assert page.query_selector("input[name=phone_code]") is None
    page.fill("input[name=card_code]", card_code)
    page.click("#kyc-verify-submit")
    shown(phone, "registering")
    assert page.inner_text("#kyc-wait") == ZH["kyc.wait.registering"]
    check(phone, "kyc-registering-zh-CN")

    # The oracle registers it; the screen, polling, moves on by itself.
    assert registrar().registered == 1
    shown(phone, "registered")
    expiry = stack.registry.functions.borrowerOf(account.address).call()[1]
    assert standing(context, account.address).kyc_expires_at == expiry
    assert page.inner_text("#kyc-expires") not in ("", "—")
    assert [b.get_attribute("id") for b in page.query_selector_all("#kyc-next button")] == [
        "kyc-next-apply", "kyc-next-change_phone"]
    check(phone, "kyc-registered-zh-CN")

    driver.score(account, score=700, limit=1_000_000)
    page.click("#kyc-next-apply")
    page.wait_for_selector("#credit-score")
    assert page.inner_text("#credit-score") == "700"
    assert "10,000.00" in page.inner_text("#credit-limit") and "10,000.00" in page.inner_text("#credit-available")
    assert "0.00" in page.inner_text("#credit-outstanding") and page.inner_text("#credit-age")
    assert page.get_attribute("#credit-card", "data-fresh") == "true"
    check(phone, "kyc-credit-zh-CN")

    page.click("nav a[href='#/home']")
    page.wait_for_selector("#home-next[data-status='registered']")
    assert "10,000.00" in page.inner_text("#home-available")
    assert page.get_attribute("#home-next-link", "href") == "#/credit"
    phone.assert_clean()


def test_expiring_then_expired_verification_is_renewed_in_the_app(api, phone_for, client_for, kyc, driver, registrar,
                                                                   stack):
    app, context = api
    account, person = Account.create(), sample_identity(74)
    kyc(client_for(account), 74)
    first_expiry = stack.registry.functions.borrowerOf(account.address).call()[1]
    driver.advance(first_expiry - driver.now - 20 * DAY)
    phone = phone_for()
    phone.seed_wallet(account, PASSCODE)
    phone.sign_in(PASSCODE, "home")
    page = phone.page
    page.wait_for_selector("#home-next[data-status='expiring']")
    assert page.inner_text("#home-kyc-summary") == ZH["kyc.home.expiring"]
    page.click("#home-renew-link")
    shown(phone, "expiring")
    assert page.query_selector("#kyc-next button").get_attribute("id") == "kyc-next-renew"
    check(phone, "kyc-expiring-zh-CN")

    driver.advance(21 * DAY)
    page.click("nav a[href='#/home']")  # a reload would lock the wallet (its key is in memory only)
    page.wait_for_selector("#home-next[data-status='expired']")
    page.click("nav a[href='#/kyc']")
    shown(phone, "expired")
    assert page.inner_text("#kyc-explain") == ZH["kyc.explain.expired"]
    assert [b.get_attribute("id") for b in page.query_selector_all("#kyc-next button")] == ["kyc-next-renew"]
    check(phone, "kyc-expired-zh-CN")
    page.click("#kyc-next-renew")
    page.wait_for_selector("#kyc-form")
    assert page.inner_text("h1") == ZH["kyc.submit.renew_title"]
    submit_identity(phone, app, person)
    assert registrar().updated == 1  # updateBorrower: a new expiry on-chain
    shown(phone, "registered")
    new_expiry = stack.registry.functions.borrowerOf(account.address).call()[1]
    assert new_expiry > first_expiry and standing(context, account.address).kyc_expires_at == new_expiry
    phone.assert_clean()


def test_the_phone_change_in_english_needs_the_current_numbers_code_then_the_new_ones(api, phone_for, client_for,
                                                                                       kyc):
    app, context = api
    account = Account.create()
    kyc(client_for(account), 72)
    old_phone, new_phone = sample_identity(72)["phone"], sample_identity(73)["phone"]
    phone = phone_for(locale="en")
    phone.seed_wallet(account, PASSCODE)
    phone.sign_in(PASSCODE, "kyc")
    page = phone.page
    page.click("#language")
    page.wait_for_selector("html[lang='en']")
    page.locator("#kyc-status h2", has_text=EN["kyc.status.registered"]).wait_for()  # redrawn in English
    assert page.inner_text("h1") == EN["kyc.title"] and page.inner_text("#kyc-status h2") == EN["kyc.status.registered"]
    check(phone, "kyc-status-en")

    page.click("#kyc-next-change_phone")
    page.wait_for_selector("#kyc-phone-form")
    check(phone, "kyc-phone-en")
    page.fill("input[name=new_phone]", new_phone)
    page.click("#kyc-phone-ask")
    page.wait_for_selector("#kyc-phone-confirm:not([hidden])")
    assert old_phone[-4:] in page.inner_text("#kyc-phone-sent")  # the code went to the current number
    code = step_up_codes.read_code(app, account.address)
    page.fill("input[name=step_up_code]", wrong(code))
    page.click("#kyc-phone-submit")
    refused(phone, "step_up_wrong", EN["error.step_up_wrong"])
    assert status_of(context, account) is KycStatus.REGISTERED
    assert context.vault.get(account.address).phone.endswith(old_phone)
    page.fill("input[name=step_up_code]", code)
    page.click("#kyc-phone-submit")
    page.wait_for_selector("#kyc-verify-phone-form")
    assert page.inner_text("#kyc-not-verified") == EN["kyc.explain.reverification_needed"]
    assert status_of(context, account) is KycStatus.REVERIFICATION_NEEDED
    check(phone, "kyc-verify-phone-en")

    # "Not verified" after the change: the status says so, with the way forward as its button; home says it too.
    page.click("#kyc-back")
    shown(phone, "reverification_needed")
    assert page.inner_text("#kyc-status h2") == EN["kyc.status.reverification_needed"]
    assert page.query_selector("#kyc-next button").get_attribute("id") == "kyc-next-verify_phone"
    assert new_phone[-4:] in page.inner_text("#kyc-status")  # the record shows the number being confirmed
    check(phone, "kyc-reverify-en")
    page.click("nav a[href='#/home']")
    page.wait_for_selector("#home-next[data-status='reverification_needed']")
    assert page.inner_text("#home-kyc-summary") == EN["kyc.home.reverification_needed"]
    page.click("#home-next-link")
    page.click("#kyc-next-verify_phone")
    page.wait_for_selector("#kyc-verify-phone-form")
    page.fill("input[name=phone_change_code]", app.state.sms.last_code(new_phone, "phone_change"))
    page.click("#kyc-verify-phone-submit")
    shown(phone, "registered")
    assert new_phone[-4:] in page.inner_text("#kyc-status")
    assert status_of(context, account) is KycStatus.REGISTERED
    assert context.vault.get(account.address).phone.endswith(new_phone)
    phone.assert_clean()


def test_a_lost_wallet_is_recovered_on_a_new_one_and_waits_for_an_operator_while_the_old_one_owes(
        api, phone_for, borrower, application, driver, keys, operator, registrar, stack):
    app, context = api
    # Alice (sample identity 11) has a loan of 120,000 paid out: a recovery above the review threshold.
    driver.score(keys["alice"], limit=200_000, report_id=2)
    loan_id = borrower.apply(**application)["loan_id"]
    driver.approve(loan_id)
    driver.disburse(loan_id, application["principal"], b"payout-app-recovery")
    assert context.wait_indexed(driver.w3.eth.block_number)
    person, old, new = sample_identity(11), keys["alice"].address, Account.create()

    phone = phone_for()
    phone.seed_wallet(new, PASSCODE)
    phone.sign_in(PASSCODE, "kyc")
    page = phone.page
    shown(phone, "none")
    page.click("#kyc-go-recovery")
    phone.wait_screen("kyc-recovery")
    page.wait_for_selector("#kyc-recovery-form")
    assert page.inner_text("h1") == ZH["kyc.recovery.title"]
    check(phone, "kyc-recovery-zh-CN")
    page.fill("input[name=name]", person["name"])
    page.fill("input[name=id_number]", person["id_number"])
    page.fill("input[name=phone]", person["phone"])
    page.fill("input[name=bank_card]", sample_identity(12)["bank_card"])  # not the card verified with this ID
    page.click("#kyc-recovery-form-submit")
    refused(phone, "recovery_other_person", ZH["error.recovery_other_person"], 409)
    assert status_of(context, new) is KycStatus.NONE
    page.fill("input[name=bank_card]", person["bank_card"])
    page.click("#kyc-recovery-form-submit")
    page.wait_for_selector("#kyc-verify-form")
    sms = app.state.sms
    page.fill("input[name=phone_code]", sms.last_code(person["phone"], "phone"))
    page.fill("input[name=card_code]", sms.last_code(person["phone"], "card"))
    page.click("#kyc-verify-submit")
    shown(phone, "recovery_pending")
    assert page.inner_text("#kyc-explain") == ZH["kyc.explain.recovery_pending"]
    assert page.inner_text("#kyc-wait") == ZH["kyc.wait.recovery_pending"]
    assert page.query_selector("#kyc-next-wait_for_operator") is not None
    check(phone, "kyc-recovery-pending-zh-CN")
    assert registrar().recovered == 0 and stack.registry.functions.isEligible(old).call()

    # An operator confirms; the oracle moves the identity; the screen, polling, follows.
    operator._request("POST", f"/v1/kyc/recoveries/{new.address}/confirm")
    assert registrar().recovered == 1
    shown(phone, "registered")
    assert not stack.registry.functions.isEligible(old).call()
    assert stack.registry.functions.isEligible(new.address).call()

    # The identity's loans follow it: the old wallet's loan (still its own on-chain) is listed and can be paid; what
    # needs the lost wallet's signature is not offered, and the page says why.
    goto(phone, "loans", "loans")
    assert page.get_attribute(f"#loan-list li[data-loan='{loan_id}']", "data-status") == "Active"
    page.click(f"#loan-{loan_id}")
    phone.wait_screen("loan")
    page.wait_for_selector("#loan-earlier-wallet")
    assert page.get_attribute("section.loan", "data-earlier-wallet") == "true"
    assert old[:6] in page.inner_text("#loan-earlier-wallet") and page.query_selector("#next-amount") is not None
    assert [a.get_attribute("id") for a in page.query_selector_all("#loan-actions a")] == ["action-pay",
                                                                                         "action-payoff"]
    check(phone, "loans-earlier-wallet-zh-CN")
    phone.assert_clean()
