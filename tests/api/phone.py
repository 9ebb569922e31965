"""The borrower app in a real headless Chromium emulating a phone (Debian's /usr/bin/chromium, driven by Playwright;
nothing downloads a browser): a 390x844 screen, touch, a phone's user agent, the phone's locale and time zone.

`chromium_browser()` launches it (skips without the browser, fails instead under LOANLEDGER_REQUIRE_BROWSER);
`Phone` is one phone: its own storage (so its own wallet), the console and page errors it logged, every URL it
requested, screenshots under var/app/, and an axe-core scan (npm `axe-core`, read from node_modules and evaluated
in the page, so nothing is fetched) of the screen shown.
"""

from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from pathlib import Path

import pytest
from eth_account import Account

from ledger.manifest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
MESSAGES = ROOT / "api" / "static" / "app" / "messages"
# The catalogues' areas as the app loads them (core/i18n.js), in its order: a later one's key would win.
AREAS = tuple(json.loads(re.search(r"AREAS = (\[[^\]]*\])", (MESSAGES.parent / "core" / "i18n.js").read_text()).group(1)))
SCREENSHOTS = ROOT / "var" / "app"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
TIMEOUT_MS = 20_000
PHONE_AGENT = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/131.0.0.0 Mobile Safari/537.36")


def catalogue_files(locale: str) -> dict[str, dict[str, str]]:
    """{area: its catalogue} in `locale`, as the app loads them."""
    return {area: json.loads((MESSAGES / f"{area}.{locale}.json").read_text(encoding="utf-8")) for area in AREAS}


def messages(locale: str) -> dict[str, str]:
    """Every string the app shows in `locale`: the areas' catalogues merged, as core/i18n.js merges them."""
    return {key: text for catalogue in catalogue_files(locale).values() for key, text in catalogue.items()}


@contextmanager
def chromium_browser():
    required = bool(os.environ.get("LOANLEDGER_REQUIRE_BROWSER"))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            pytest.fail("LOANLEDGER_REQUIRE_BROWSER is set but playwright is not installed (pip install -e .[test])")
        pytest.skip("playwright is not installed (pip install -e .[test])")
    if not CHROMIUM.exists():
        if required:
            pytest.fail(f"LOANLEDGER_REQUIRE_BROWSER is set but {CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"no browser at {CHROMIUM}: apt-get install chromium (Debian's) to run the app tests")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


class Phone:
    """One phone with the app. `locale` is the phone's language ("zh-CN" or "en"): the app starts in Chinese
    whatever it is (the borrower switches), but dates and numbers follow the app's choice."""

    def __init__(self, browser, base_url: str, locale: str = "zh-CN", time_zone: str = "Asia/Shanghai"):
        self.base_url = base_url
        self.context = browser.new_context(
            viewport={"width": 390, "height": 844}, device_scale_factor=3, is_mobile=True, has_touch=True,
            user_agent=PHONE_AGENT, locale=locale, timezone_id=time_zone, accept_downloads=True)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def seed_wallet(self, account, passcode: str) -> None:
        """Puts `account`'s key on this phone as the app keeps one (an encrypted keystore in its storage), as a
        restored backup would, before the app loads; the borrower still unlocks it with `passcode` in the app.
        A light scrypt cost keeps tests quick (the app reads any)."""
        keystore = json.dumps(Account.encrypt(account.key, passcode, kdf="scrypt", iterations=2**12))
        self.page.add_init_script(f"""if (!localStorage.getItem("loanledger.app.keystore")) {{
            localStorage.setItem("loanledger.app.keystore", {json.dumps(keystore)});
            localStorage.setItem("loanledger.app.wallet-kind", "keystore"); }}""")

    def sign_in(self, passcode: str, route: str = "home") -> None:
        """Opens the app at `route`, unlocks the wallet with `passcode` and signs in (SIWE) as a borrower does."""
        self.open(route)
        self.wait_screen("unlock")
        self.page.fill("input[name=passcode]", passcode)
        self.page.click("#sign-in")
        self.wait_screen(route)

    def open(self, route: str = "") -> None:
        response = self.page.goto(f"{self.base_url}/app/#/{route}")
        assert response.status == 200
        self.page.wait_for_selector("body[data-ready='true']")

    def wait_screen(self, route: str) -> None:
        """Until the app shows `route` (the router marks the body once the screen is drawn)."""
        self.page.wait_for_selector(f"body[data-screen='{route}'] main:not([aria-busy])")

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def accessibility_violations(self, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict]:
        """axe-core's violations of the given impacts on the page as shown (WCAG 2 A/AA rules)."""
        self.page.evaluate(AXE.read_text())
        result = self.page.evaluate("""async () => {
            const found = await axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21aa"]}});
            return found.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                               nodes: v.nodes.map(n => n.target.join(" "))}));
        }""")
        return [violation for violation in result if violation["impact"] in impacts]

    def missing_messages(self) -> list[str]:
        """Catalogue keys the screen shows as ⟦key⟧: a string the catalogue lacks."""
        return self.page.locator("text=/⟦[^⟧]+⟧/").all_inner_texts()

    def assert_clean(self) -> None:
        assert self.errors == []
        foreign = [url for url in self.requests if not url.startswith(self.base_url + "/") and not url.startswith(
            ("data:", "blob:"))]
        assert foreign == [], f"the app fetched something from outside the API: {foreign}"
        assert self.missing_messages() == []

    def local_storage(self) -> dict:
        return json.loads(self.page.evaluate("JSON.stringify(Object.assign({}, localStorage))"))

    def close(self) -> None:
        self.context.close()


# ------------------------------------------------------------------------------------------------ wallet helpers

def inject_wallet(page, account, typed_signed: list[dict] | None = None) -> list[str]:
    """Gives the page (a phone's, or the dashboard's tab) a wallet app's injected EIP-1193 provider (window.ethereum,
    defined before the page's script runs) holding `account`: eth_requestAccounts answers its address, personal_sign
    and eth_signTypedData_v4 call back into Python, which signs with the key as a wallet app does. Returns the list of
    methods the page asked it for signatures, in order (grows as the page signs); what it signed with EIP-712 is
    appended to `typed_signed` when given. Call before the page opens."""
    from eth_account.messages import encode_defunct, encode_typed_data

    address = account.address.lower()  # as wallet apps answer
    asked: list[str] = []

    def personal_sign(data: str, signer: str) -> str:
        assert signer.lower() == address, f"the page asked {signer} to sign, the wallet holds {address}"
        asked.append("personal_sign")
        message = encode_defunct(hexstr=data) if data.startswith("0x") else encode_defunct(text=data)
        return account.sign_message(message).signature.to_0x_hex()

    def sign_typed_data(signer: str, typed: str) -> str:
        assert signer.lower() == address, f"the page asked {signer} to sign, the wallet holds {address}"
        asked.append("eth_signTypedData_v4")
        if typed_signed is not None:
            typed_signed.append(json.loads(typed))
        return account.sign_message(encode_typed_data(full_message=json.loads(typed))).signature.to_0x_hex()

    page.expose_function("testWalletPersonalSign", personal_sign)
    page.expose_function("testWalletSignTypedData", sign_typed_data)
    page.add_init_script("""window.ethereum = {request: async ({method, params}) => {
        if (method === "eth_requestAccounts" || method === "eth_accounts") return [ADDRESS];
        if (method === "personal_sign") return await window.testWalletPersonalSign(params[0], params[1]);
        if (method === "eth_signTypedData_v4") return await window.testWalletSignTypedData(params[0], params[1]);
        throw Object.assign(new Error("unsupported " + method), {code: 4200});
    }};""".replace("ADDRESS", json.dumps(address)))
    return asked
