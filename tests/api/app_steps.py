"""Steps the borrower app's browser tests share: a borrower's taps on a `phone.Phone` (first run, real-name
verification, a quote and an application, a payment through the rail's checkout), the checks each screen gets (a
screenshot, an axe scan, no missing message), amounts as the app writes them, and the back office's confirmation
of what the rail collected.

A plain module (imported as `app_steps`, as phone and step_up_codes are), not conftest.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

import httpx
import step_up_codes
from eth_account import Account

from ledger.chain import ChainClient
from oracle.outbox import Outbox, OutboxWorker
from oracle.payments.webhook import Confirmation, payment_ref

PROVIDER = "mockpay"  # the `rail` fixture's provider


# ------------------------------------------------------------------------------------------------ amounts

def yuan(minor: int, locale: str = "zh-CN") -> str:
    """An amount as the app shows it (Intl's CNY): ¥1,200.00 in Chinese, CN¥1,200.00 in English."""
    return f"{'¥' if locale == 'zh-CN' else 'CN¥'}{Decimal(minor) / 100:,.2f}"


def cny(minor: int) -> str:
    """An amount as the rail's checkout page shows it."""
    return f"{minor // 100:,}.{minor % 100:02d} CNY"


def amount_of(phone, selector: str) -> int:
    """The int minor units a screen keeps beside an amount it shows (`data-amount`)."""
    return int(phone.page.get_attribute(selector, "data-amount"))


# ------------------------------------------------------------------------------------------------ moving around

def goto(phone, route: str, screen: str) -> None:
    phone.page.evaluate("hash => { location.hash = hash; }", f"#/{route}")
    phone.wait_screen(screen)


def leave_and_come_back(phone, route: str, screen: str) -> None:
    """Draws the screen afresh (a hash the app is already on would not)."""
    goto(phone, "home", "home")
    goto(phone, route, screen)


def check(phone, name: str) -> None:
    """Screenshot var/app/<name>.png of the screen from its top, an axe scan and no missing message."""
    phone.page.evaluate("window.scrollTo(0, 0)")
    phone.screenshot(name)
    assert phone.accessibility_violations() == [], name
    assert phone.missing_messages() == [], name


def switch_language(phone, locale: str, screen: str) -> None:
    """Taps #language until the app speaks `locale`; the screen is drawn again in it."""
    if phone.page.get_attribute("html", "lang") != locale:
        phone.page.click("#language")
        phone.page.wait_for_selector(f"html[lang='{locale}']")
        phone.wait_screen(screen)


def clean(phone, rail=None) -> None:
    """phone.assert_clean(); the rail's checkout is the rail's page by design: its requests are the only ones
    outside the API."""
    if rail is not None:
        phone.requests[:] = [url for url in phone.requests if not url.startswith(rail.url + "/")]
    phone.assert_clean()


def expected_refusals(phone, status: int, count: int) -> None:
    """The browser logs each refused request as a console error: exactly `count` of HTTP `status` are expected
    (a refusal the test provoked), and taken off the phone's log."""
    logged = f"the server responded with a status of {status}"
    assert len([error for error in phone.errors if logged in error]) == count, phone.errors
    phone.errors[:] = [error for error in phone.errors if logged not in error]


# ------------------------------------------------------------------------------------------------ borrower steps

def first_run(phone, passcode: str) -> tuple[str, dict]:
    """On the welcome screen: a new wallet under `passcode`, its backup downloaded and confirmed, then signed in
    (the wallet is open in memory: the sign-in asks no passcode). Returns (address, the backup keystore)."""
    phone.page.fill("#create-form input[name=passcode]", passcode)
    phone.page.fill("#create-form input[name=passcode-again]", passcode)
    phone.page.click("#create-wallet")
    phone.wait_screen("backup")
    address = phone.page.inner_text("#wallet-address")
    with phone.page.expect_download() as download:
        phone.page.click("#backup-download")
    backup = json.loads(Path(download.value.path()).read_text())
    assert Account.from_key(Account.decrypt(backup, passcode)).address == address
    phone.page.click("#backup-saved")
    phone.wait_screen("unlock")
    phone.page.click("#sign-in")
    phone.wait_screen("home")
    assert phone.page.inner_text("#my-address") == address
    return address, backup


def submit_identity(phone, app, person: dict) -> None:
    """On the kyc form: name, ID number, phone and bank card typed, then the phone's code and the bank's card code
    read off the development SMS outbox; the screen then shows the registration under way."""
    for name in ("name", "id_number", "phone", "bank_card"):
        phone.page.fill(f"input[name={name}]", person[name])
    phone.page.click("#kyc-form-submit")
    phone.page.wait_for_selector("#kyc-verify-form")
    sms = app.state.sms
    phone.page.fill("input[name=phone_code]", sms.last_code(person["phone"], "phone"))
    phone.page.fill("input[name=card_code]", sms.last_code(person["phone"], "card"))
    phone.page.click("#kyc-verify-submit")
    phone.page.wait_for_selector("#kyc-status[data-status='registering']")


def ask_quote(phone, amount: str, installments: int) -> None:
    """On a product's quote screen: the amount as typed and the number of installments; until the quote shows."""
    phone.page.fill("#quote-amount", amount)
    phone.page.select_option("#quote-installments", str(installments))
    phone.page.click("#quote-submit")
    phone.page.wait_for_selector("#quote-result")


def sign_application(phone, app, address: str) -> int:
    """On the apply screen: a step-up code texted and read off the phone, the wallet's signature; the new loan's
    id as the screen shows it."""
    phone.page.click("#send-code")
    phone.page.wait_for_selector("#code-sent:not(:empty)")
    phone.page.fill("#step-up-code", step_up_codes.read_code(app, address))
    phone.page.click("#sign-apply")
    return int(phone.page.wait_for_selector("#apply-status").get_attribute("data-loan"))


def through_checkout(phone, rail, amount_text: str, screen: str, passcode: str) -> None:
    """On the rail's own page: what it will take is what the app showed; Pay; back in the app, unlock (the key is
    in memory only) and the screen shows the payment received, being recorded."""
    phone.page.wait_for_url(f"{rail.url}/checkout?**")
    assert phone.page.inner_text("#checkout-amount") == amount_text
    phone.page.click("#rail-pay")
    phone.page.wait_for_selector("body[data-ready='true']")
    assert "rail_status=paid" in phone.page.url
    phone.wait_screen("unlock")
    phone.page.fill("input[name=passcode]", passcode)
    phone.page.click("#sign-in")
    phone.wait_screen(screen)
    phone.page.wait_for_selector("#pay-status[data-state='recording']")
    assert "rail_status" not in phone.page.url  # the rail's answer is read once, then dropped from the address


# ------------------------------------------------------------------------------------------------ back office

def rail_confirmer(context, w3, stack, keys, rail, driver, clock):
    """`confirm(loan_id)`: the rail's collections for the loan not confirmed yet, stored as the oracle's webhook
    intake stores them and sent on-chain by the outbox worker; waits for the indexer. Returns the references."""
    outbox = Outbox(context.sessions, clock=clock)
    worker = OutboxWorker(outbox, ChainClient(w3, keys["oracle"], stack.errors), stack.book)
    done: set[str] = set()

    def _confirm(loan_id: int) -> list[str]:
        paid = httpx.get(f"{rail.url}/v1/payments", params={"loan_id": loan_id, "direction": "collection"},
                         timeout=10).json()
        fresh = [p for p in paid if p["reference"] not in done]
        for p in fresh:
            outbox.put(Confirmation(kind="repayment", loan_id=loan_id, reference=p["reference"],
                                    payment_ref=payment_ref(PROVIDER, p["reference"]), amount=p["amount"],
                                    currency=p["currency"], paid_at=driver.now, provider=PROVIDER,
                                    event_id=f"evt-{p['reference']}"))
            done.add(p["reference"])
        assert worker.drain_once().credited == len(fresh)
        assert context.wait_indexed(w3.eth.block_number)
        return [p["reference"] for p in fresh]
    return _confirm


def texted(app, address: str, starting: str, timeout: float = 30.0) -> dict:
    """The one text to the borrower's phone starting with `starting`, once a notice sender sent it: the API's
    sender is run here, and the served app runs its own loop too (whichever takes it first texts it, once)."""
    deadline = time.monotonic() + timeout
    while True:
        app.state.notices.run_once()
        sent = [m for m in app.state.sms.messages(step_up_codes.phone_of(app, address)) if m["text"].startswith(starting)]
        if sent or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    [message] = sent
    return message
