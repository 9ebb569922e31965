"""The dashboard's browser in tests: a headless Debian Chromium (/usr/bin/chromium, driven by Playwright; nothing
downloads a browser) and a tab that records what the page did, with a test wallet whose keys stay in Python.

A plain module (imported as `dashboard_browser`, as api_outcomes is), not a test file: every browser test shares it.
Import `chromium` into a test module to use it as a fixture.
"""

from __future__ import annotations

import pytest
from phone import chromium_browser, inject_wallet

TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def chromium():
    """A headless Debian Chromium (phone.chromium_browser: it skips, or fails under LOANLEDGER_REQUIRE_BROWSER,
    when there is none)."""
    with chromium_browser() as browser:
        yield browser


class Tab:
    """A fresh browser context and page that records console errors, page errors and every URL requested."""

    def __init__(self, browser, base_url: str):
        self.base_url = base_url
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def open(self, path: str = "/dashboard") -> None:
        response = self.page.goto(self.base_url + path)
        assert response.status == 200
        self.wait_ready("signin")

    def wait_ready(self, view: str) -> None:
        self.page.wait_for_selector(f"body[data-view='{view}'][data-state='ready']")

    def use_wallet(self, account) -> None:
        """Gives the page a browser wallet holding `account`: an EIP-1193 provider (window.ethereum, defined
        before the page's script runs) whose personal_sign and eth_signTypedData_v4 call back into Python, which
        signs with the account's key (EIP-191 and EIP-712, as a wallet does; what it signed with EIP-712 is kept
        in `typed_signed`). Call before `open()`."""
        self.typed_signed: list[dict] = []
        inject_wallet(self.page, account, self.typed_signed)

    def wallet_login(self, account) -> None:
        """Opens the page and signs in as `account` the way a person does: the wallet button, the server's
        SIWE message signed by the wallet, the real /v1/auth/login."""
        self.use_wallet(account)
        self.open()
        self.page.click("#wallet-login")

    def assert_clean(self) -> None:
        assert self.errors == []
        foreign = [url for url in self.requests if not url.startswith(self.base_url + "/") and url != "data:,"]
        assert foreign == [], "the page fetched something from outside the API"

    def close(self) -> None:
        self.context.close()



def table_rows(page, selector: str, *attributes: str) -> list[tuple[str, ...]]:
    """The `attributes` of each element `selector` matches, in page order."""
    return [tuple(row.get_attribute(a) for a in attributes) for row in page.query_selector_all(selector)]
