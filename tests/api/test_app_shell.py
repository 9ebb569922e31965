"""The borrower app's shell in a real phone-sized Chromium against the API on a real port: served at /app with a
same-origin policy, its own wallet made in the browser and kept only there (a Web3 Secret Storage keystore that
eth-account decrypts), Sign-In with Ethereum by that wallet, and both languages."""

from __future__ import annotations

import json
import re

import httpx
import phone as phone_module
import pytest
from app_steps import first_run
from eth_account import Account

from api.web_assets import libraries

PASSCODE = "correct horse 7"


def _first_run(phone) -> str:
    """Creates a wallet with PASSCODE in the app and signs in; returns the address the app shows."""
    phone.open()
    phone.wait_screen("welcome")
    return first_run(phone, PASSCODE)[0]


def test_each_message_has_one_home_and_both_languages_with_the_same_placeholders():
    zh, en = phone_module.catalogue_files("zh-CN"), phone_module.catalogue_files("en")
    homes: dict[str, str] = {}
    for area in phone_module.AREAS:
        assert set(zh[area]) == set(en[area]), area
        for key, text in zh[area].items():
            assert key not in homes, f"{key} is in both {homes.get(key)} and {area}: the last loaded would win"
            homes[key] = area
            assert set(re.findall(r"\{(\w+)\}", text)) == set(re.findall(r"\{(\w+)\}", en[area][key])), key
    assert "core" in homes.values() and "pay" in homes.values()  # the areas as core/i18n.js names them


def test_the_shell_and_its_files_are_served_with_a_same_origin_policy(api, served):
    shell = httpx.get(f"{served}/app/")
    assert shell.status_code == 200 and shell.headers["content-type"].startswith("text/html")
    policy = shell.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy and "worker-src 'self'" in policy
    assert httpx.get(f"{served}/app").status_code == 308
    for name in ("app.js", "core/wallet.js", "sw.js", "manifest.webmanifest", "messages/core.zh-CN.json"):
        assert httpx.get(f"{served}/app/{name}").status_code == 200, name
    (library,) = libraries()
    served_library = httpx.get(f"{served}/app/vendor/{library}")
    assert served_library.status_code == 200 and "immutable" in served_library.headers["cache-control"]
    # The wallet module imports exactly the installed version's name.
    assert f"../vendor/{library}" in httpx.get(f"{served}/app/core/wallet.js").text
    for outside in ("../app.py", "..%2Fapp.py", "../../ledger/config.py", "vendor/../../pyproject.toml", "nope.js"):
        assert httpx.get(f"{served}/app/{outside}").status_code == 404, outside


def test_a_wallet_made_in_the_app_signs_in_and_its_keystore_is_the_clis(api, phone_for):
    phone = phone_for()
    address = _first_run(phone)
    me = json.loads(phone.page.evaluate("sessionStorage.getItem('loanledger.app.session')"))
    assert me["address"] == address
    keystore = phone.local_storage()["loanledger.app.keystore"]
    # eth-account (the CLI's library) opens the keystore the browser made, with the passcode only.
    key = Account.decrypt(json.loads(keystore), PASSCODE)
    assert Account.from_key(key).address == address
    with pytest.raises(ValueError):
        Account.decrypt(json.loads(keystore), "not the passcode")
    # Nothing the app sent carries the key or the passcode.
    assert not [url for url in phone.requests if key.hex()[2:] in url or PASSCODE in url]
    phone.screenshot("shell-home-zh")
    assert phone.accessibility_violations() == []
    phone.assert_clean()


def test_a_wrong_passcode_is_refused_in_plain_words_and_the_right_one_signs_in(api, phone_for):
    phone = phone_for()
    address = _first_run(phone)
    phone.page.reload()  # the key is in memory only: a reload locks the wallet
    phone.page.wait_for_selector("body[data-ready='true']")
    phone.wait_screen("unlock")
    phone.page.fill("input[name=passcode]", "wrong passcode")
    phone.page.click("#sign-in")
    phone.page.wait_for_selector("[role=alert]")
    assert "error.wrong_passcode" not in phone.page.inner_text("[role=alert]")
    assert "wrong_passcode" in phone.page.inner_text("[role=alert] .code")
    phone.page.fill("input[name=passcode]", PASSCODE)
    phone.page.click("#sign-in")
    phone.wait_screen("home")
    assert phone.page.inner_text("#my-address") == address
    phone.assert_clean()


def test_the_app_speaks_chinese_first_and_english_on_request(api, phone_for):
    phone = phone_for(locale="en")
    _first_run(phone)
    assert phone.page.get_attribute("html", "lang") == "zh-CN"
    assert phone.page.inner_text("h1") == "我的账户"
    phone.page.click("#language")
    phone.page.wait_for_selector("html[lang='en']")
    phone.wait_screen("home")
    assert phone.page.inner_text("h1") == "My account"
    phone.screenshot("shell-home-en")
    phone.page.reload()  # the choice is kept on the phone
    phone.page.wait_for_selector("body[data-ready='true']")
    assert phone.page.get_attribute("html", "lang") == "en"
    phone.assert_clean()


def test_a_wallet_brought_from_elsewhere_unlocks_with_its_passcode_and_signs_in(api, phone_for, keys):
    phone = phone_for()
    phone.seed_wallet(keys["alice"], PASSCODE)
    phone.sign_in(PASSCODE)
    assert phone.page.inner_text("#my-address") == keys["alice"].address
    phone.assert_clean()
