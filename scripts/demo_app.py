"""`make demo`'s borrower app step (issue 18): the app's URL, and one borrower's journey as it stands after the story,
seen on a phone.

The demo holds its borrowers' keys, so the borrower's wallet goes on the phone as a restored backup would (an
encrypted keystore in the app's storage); the borrower unlocks it with the passcode and signs in through the app
(SIWE), then each screen is opened and photographed: home, KYC, score and limit, the loans, the loan page, its
payments, its automatic debits, the notices; in Chinese (the app's default), then the loan and home in English.
What the phone shows is checked against what the API answers the same borrower (their address, their KYC status,
their score, their loans, the loan's status, its debits and their notices). Debian's Chromium only (nothing downloads a browser), as the
dashboard check in scripts/demo.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from eth_account import Account

CHROMIUM = Path("/usr/bin/chromium")
# The phone tests/api/phone.py emulates (kept here: scripts do not import tests), at twice the pixels rather than
# three times: long full-page shots stay sharp and quick to encode.
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True,
         "user_agent": ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                        "Chrome/131.0.0.0 Mobile Safari/537.36"),
         "locale": "zh-CN", "timezone_id": "Asia/Shanghai"}
PASSCODE = "demo passcode 2468"
KEYSTORE = "loanledger.app.keystore"  # where core/wallet.js keeps the wallet


def app_url(base: str) -> str:
    return f"{base}/app/"


class _Phone:
    def __init__(self, browser, base: str, shots: Path):
        self.base, self.shots, self.saved, self.errors = base, shots, [], []
        self.context = browser.new_context(**PHONE)
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def restore(self, account, passcode: str) -> None:
        # A light scrypt cost keeps the unlock quick; the app reads whatever cost the keystore names.
        keystore = json.dumps(Account.encrypt(account.key, passcode, kdf="scrypt", iterations=2**12))
        self.page.add_init_script(f"""if (!localStorage.getItem("{KEYSTORE}")) {{
            localStorage.setItem("{KEYSTORE}", {json.dumps(keystore)});
            localStorage.setItem("loanledger.app.wallet-kind", "keystore"); }}""")

    def wait(self, route: str) -> None:
        self.page.wait_for_selector(f"body[data-screen='{route}'] main:not([aria-busy])")

    def go(self, route: str) -> None:
        self.page.evaluate("(hash) => { location.hash = hash; }", f"#/{route}")
        self.wait(route.split("?")[0])

    def sign_in(self, passcode: str) -> None:
        self.page.goto(app_url(self.base) + "#/home")
        self.wait("unlock")
        self.page.fill("input[name=passcode]", passcode)
        self.page.click("#sign-in")
        self.wait("home")

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector).strip()

    def shot(self, screen: str, locale: str, element: str | None = None) -> None:
        path = self.shots / f"demo-{screen}-{locale}.png"
        if element:
            self.page.locator(element).screenshot(path=str(path))
        else:
            self.page.screenshot(path=str(path), full_page=True)
        self.saved.append(str(path))


def app_check(base: str, client, loan_id: int, shots: Path) -> dict:
    """Opens the app on a phone-sized headless Chromium as the borrower whose `client` (the demo's SDK client, holding
    their key) borrowed `loan_id`; screenshots under `shots`; returns the summary's `app` section."""
    url = app_url(base)
    answered = {"url": url, "url_status": httpx.get(url, timeout=30).status_code,
                "borrower": client.account.address, "loan_id": loan_id}
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {**answered, "checked": False, "reason": "playwright is not installed (pip install -e .[test])"}
    if not CHROMIUM.exists():
        return {**answered, "checked": False, "reason": f"no browser at {CHROMIUM} (apt-get install chromium)"}
    # What the API answers this borrower: the phone must show the same.
    api = {"kyc_status": client.kyc_status()["status"], "score": client.credit()["score"],
           "loans": sorted(loan["id"] for loan in client.loans()),
           "loan_status": client.loan(loan_id)["status"],
           "debits": len(client.debit_mandate(loan_id)["collections"]),
           "notices": len(client._request("GET", "/v1/me/notices", params={"limit": 20})["notices"])}
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            phone = _Phone(browser, base, shots)
            phone.restore(client.account, PASSCODE)
            phone.sign_in(PASSCODE)
            shown = {"address": phone.text("#my-address"),
                     "kyc_status": phone.page.get_attribute("#home-next", "data-status")}
            phone.shot("home", "zh-CN")
            phone.go("kyc")
            phone.shot("kyc", "zh-CN")
            phone.go("credit")
            shown["score"] = int(phone.text("#credit-score"))
            phone.shot("credit", "zh-CN")
            phone.go("loans")
            shown["loans"] = sorted(int(i) for i in phone.page.eval_on_selector_all(
                "#loan-list li[data-loan]", "items => items.map(li => li.dataset.loan)"))
            phone.shot("loans", "zh-CN")
            phone.go(f"loan?id={loan_id}")
            shown["loan_id"] = int(phone.page.get_attribute("section.loan", "data-loan"))
            shown["loan_status"] = phone.page.get_attribute("section.loan", "data-status")
            shown["payments"] = phone.page.locator("#loan-payments li").count()
            phone.shot("loan", "zh-CN")
            phone.shot("payments", "zh-CN", element="#loan-paid")
            phone.go(f"debit?loan={loan_id}")
            shown["debits"] = phone.page.locator(".pay-debits li").count()
            phone.shot("debit", "zh-CN")
            phone.go("notices")
            shown["notices"] = phone.page.locator("#notice-list li").count()
            phone.shot("notices", "zh-CN")
            # The borrower switches to English (the app tells the API, so later texts speak it too).
            phone.go(f"loan?id={loan_id}")
            phone.page.click("#language")
            phone.page.wait_for_selector("html[lang='en']")
            phone.wait("loan")
            shown["loan_status_en"] = phone.page.get_attribute("section.loan", "data-status")
            phone.shot("loan", "en")
            phone.go("home")
            shown["address_en"] = phone.text("#my-address")
            phone.shot("home", "en")
            errors = phone.errors
        finally:
            browser.close()
    same = {"address": shown["address"].lower() == shown["address_en"].lower() == client.account.address.lower(),
            "kyc_status": shown["kyc_status"] == api["kyc_status"], "score": shown["score"] == api["score"],
            "loans": shown["loans"] == api["loans"], "debits": shown["debits"] == api["debits"],
            "notices": shown["notices"] == api["notices"],
            "loan": shown["loan_id"] == loan_id and shown["loan_status"] == shown["loan_status_en"] == api["loan_status"]}
    return {**answered, "checked": True, "api": api, "shown": shown, "matches": same, "page_errors": errors,
            "screenshots": phone.saved,
            "ok": answered["url_status"] == 200 and all(same.values()) and shown["payments"] > 0 and not errors}
