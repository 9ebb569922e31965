"""The borrower app's wallet in a real phone-sized Chromium against the API on a real port: the first run (a wallet
made in the browser, its backup downloaded and confirmed), restore from a backup file or a pasted one, a keystore
moving both ways between the app and the CLI / eth-account, the phone's own injected wallet (EIP-1193), settings
(sign out, forget), the shell opening offline from the service worker's cache, and the install manifest."""

from __future__ import annotations

import json

import httpx
from eth_account import Account
from typer.testing import CliRunner

from api.routes.app import FILES, SHELL
from api.web_assets import libraries
from ledger.cli import app as cli
from phone import inject_wallet

PASSCODE = "correct horse 7"


def _both_languages(phone, screen: str) -> None:
    """Screenshots wallet-<screen>-zh-CN and -en of the screen shown, each scanned by axe; back in Chinese after."""
    for locale in ("zh-CN", "en"):
        assert phone.page.get_attribute("html", "lang") == locale
        phone.page.evaluate("window.scrollTo(0, 0)")  # the sticky header where a borrower sees it
        phone.screenshot(f"wallet-{screen}-{locale}")
        assert phone.accessibility_violations() == [], (screen, locale)
        assert phone.missing_messages() == []
        phone.page.click("#language")
        phone.page.wait_for_selector(f"html[lang='{'en' if locale == 'zh-CN' else 'zh-CN'}']")
        phone.wait_screen(screen)


def _refusal(phone, code: str) -> str:
    """The error the screen shows: in plain words (a catalogue sentence, not the key), the code beside it."""
    alert = phone.page.wait_for_selector(f"[role=alert]:has(.code:text-matches('{code}$'))")
    words = alert.inner_text()
    assert f"error.{code}" not in words and "⟦" not in words and len(words.split("\n")[0]) > 8
    return words


def test_first_run_backs_up_and_the_backup_restores_on_a_second_phone(api, phone_for):
    phone = phone_for()
    phone.open()
    phone.wait_screen("welcome")
    _both_languages(phone, "welcome")
    phone.page.fill("#create-form input[name=passcode]", PASSCODE)
    phone.page.fill("#create-form input[name=passcode-again]", PASSCODE + "x")
    phone.page.click("#create-wallet")
    _refusal(phone, "passcodes_differ")
    assert "loanledger.app.keystore" not in phone.local_storage()
    phone.page.fill("#create-form input[name=passcode-again]", PASSCODE)
    phone.page.click("#create-wallet")
    # Right after creation, before anything else: the backup, with the warning and the way to wallet recovery.
    phone.wait_screen("backup")
    address = phone.page.inner_text("#wallet-address")
    warning = phone.page.inner_text("#backup-warning")
    assert "密码" in warning and "实名认证" in warning
    assert phone.page.get_attribute("#go-recovery", "href") == "#/kyc-recovery"
    _both_languages(phone, "backup")
    phone.page.click("#backup-saved")  # not downloaded yet: the app says so rather than going on
    _refusal(phone, "backup_not_downloaded")
    with phone.page.expect_download() as download:
        phone.page.click("#backup-download")
    assert download.value.suggested_filename == f"loanledger-wallet-{address[2:10].lower()}.json"
    backup = json.loads(open(download.value.path()).read())
    # The downloaded backup is the standard keystore: eth-account (the CLI's library) opens it with the passcode.
    assert Account.from_key(Account.decrypt(backup, PASSCODE)).address == address
    assert phone.page.inner_text("#backup-status")
    phone.page.click("#backup-saved")
    phone.wait_screen("unlock")
    phone.page.click("#sign-in")
    phone.wait_screen("home")
    assert phone.page.inner_text("#my-address") == address
    # Settings, from the bottom nav: the address, the backup as confirmed, the forget step with its warning.
    phone.page.click("#tabs a[href='#/settings']")
    phone.wait_screen("settings")
    assert phone.page.inner_text("#settings-address") == address
    assert phone.page.is_visible("#backup-again") and phone.page.inner_text("#settings-backup").startswith("已于")
    _both_languages(phone, "settings")
    phone.page.click("#forget")
    assert phone.page.is_visible("#forget-card #backup-warning") and phone.page.is_hidden("#forget")
    phone.page.evaluate("window.scrollTo(0, 0)")
    phone.screenshot("wallet-settings-forget-zh-CN")
    assert phone.accessibility_violations() == []
    phone.page.click("#forget-cancel")
    assert phone.page.is_hidden("#forget-card") and phone.page.is_visible("#forget")
    assert phone.local_storage().get("loanledger.app.keystore")
    phone.page.click("#forget")
    phone.page.click("#forget-confirm")
    phone.wait_screen("welcome")
    assert not any(key.startswith("loanledger.app.keystore") for key in phone.local_storage())
    assert phone.page.evaluate("sessionStorage.getItem('loanledger.app.session')") is None
    phone.assert_clean()

    # A second phone (in English): the backup pasted, refused while it is not a keystore or the passcode is wrong.
    second = phone_for(locale="en")
    second.open("restore")
    second.wait_screen("restore")
    second.page.click("#language")
    second.page.wait_for_selector("html[lang='en']")
    second.wait_screen("restore")
    second.page.fill("textarea[name=keystore-text]", json.dumps({"address": address, "hello": "world"}))
    second.page.fill("#restore-form input[name=passcode]", PASSCODE)
    second.page.click("#restore-wallet")
    assert "not a wallet backup" in _refusal(second, "not_keystore")
    second.page.fill("textarea[name=keystore-text]", json.dumps(backup))
    second.page.fill("#restore-form input[name=passcode]", "not the passcode")
    second.page.click("#restore-wallet")
    _refusal(second, "wrong_passcode")
    assert "loanledger.app.keystore" not in second.local_storage()
    second.page.fill("#restore-form input[name=passcode]", PASSCODE)
    second.page.click("#restore-wallet")
    second.wait_screen("home")
    assert second.page.inner_text("#my-address") == address
    assert second.page.inner_text("h1") == "My account"
    second.assert_clean()


def test_a_cli_wallet_restores_from_its_file_signs_in_and_signs_out(api, phone_for, served, tmp_path):
    env = {"LOANLEDGER_WALLET_DIR": str(tmp_path / "wallets"), "LOANLEDGER_WALLET_PASSPHRASE": PASSCODE,
           "LOANLEDGER_API_URL": served, "LOANLEDGER_HOME": str(tmp_path)}
    runner = CliRunner()
    made = runner.invoke(cli, ["wallet", "new", "--wallet", "mine"], env=env, catch_exceptions=False)
    assert made.exit_code == 0, made.output
    address = runner.invoke(cli, ["wallet", "address", "--wallet", "mine"], env=env).output.strip()
    keystore = tmp_path / "wallets" / "mine.json"
    not_a_wallet = tmp_path / "notes.json"
    not_a_wallet.write_text('{"shopping": ["rice", "tea"]}')

    phone = phone_for()
    phone.open("restore")
    phone.wait_screen("restore")
    _both_languages(phone, "restore")
    phone.page.fill("#restore-form input[name=passcode]", PASSCODE)
    phone.page.click("#restore-wallet")
    _refusal(phone, "no_keystore_given")
    phone.page.set_input_files("input[name=keystore-file]", str(not_a_wallet))
    phone.page.click("#restore-wallet")
    _refusal(phone, "not_keystore")
    phone.page.set_input_files("input[name=keystore-file]", str(keystore))  # the CLI's file, as it keeps it
    phone.page.click("#restore-wallet")
    phone.wait_screen("home")
    assert phone.page.inner_text("#my-address") == address
    assert json.loads(phone.local_storage()["loanledger.app.keystore"]) == json.loads(keystore.read_text())

    # Signing out locks the wallet: the passcode is asked again, then the borrower is back where they were.
    phone.page.click("#tabs a[href='#/settings']")
    phone.wait_screen("settings")
    assert phone.page.inner_text("#settings-address") == address
    phone.page.click("#sign-out")
    phone.wait_screen("unlock")
    assert phone.page.evaluate("sessionStorage.getItem('loanledger.app.session')") is None
    assert phone.page.inner_text("#wallet-address") == address
    assert phone.page.is_visible("input[name=passcode]")
    _both_languages(phone, "unlock")
    phone.page.fill("input[name=passcode]", PASSCODE)
    phone.page.click("#sign-in")
    phone.wait_screen("settings")
    assert phone.page.inner_text("#settings-address") == address
    phone.assert_clean()


def test_the_phones_own_wallet_app_signs_in_and_keeps_its_key(api, phone_for, keys):
    phone = phone_for()
    asked = inject_wallet(phone.page, keys["bob"])
    phone.open()
    phone.wait_screen("welcome")
    phone.page.click("#use-injected")  # one tap: the wallet app allows the app and signs the SIWE message
    phone.wait_screen("home")
    assert phone.page.inner_text("#my-address") == keys["bob"].address and asked == ["personal_sign"]
    stored = phone.local_storage()
    assert "loanledger.app.keystore" not in stored and stored["loanledger.app.wallet-kind"] == "injected"
    phone.page.click("#tabs a[href='#/settings']")
    phone.wait_screen("settings")
    assert phone.page.inner_text("#settings-address") == keys["bob"].address
    assert not phone.page.is_visible("#backup-again")  # the wallet app keeps (and backs up) the key
    # A reload drops the connection, not the session: the wallet app connects again without a new signature.
    phone.page.reload()
    phone.wait_screen("unlock")
    assert phone.page.inner_text("#wallet-address") == keys["bob"].address
    phone.page.click("#sign-in")
    phone.wait_screen("settings")
    assert asked == ["personal_sign"]
    phone.page.click("#sign-out")
    phone.wait_screen("unlock")
    phone.page.click("#sign-in")
    phone.wait_screen("settings")
    assert asked == ["personal_sign", "personal_sign"]
    phone.assert_clean()


def test_the_shell_is_installable_and_opens_offline_from_its_cache(api, phone_for, keys, served):
    manifest = httpx.get(f"{served}/app/manifest.webmanifest")
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    fields = manifest.json()
    assert fields["start_url"] == fields["scope"] == fields["id"] == "/app/" and fields["display"] == "standalone"
    assert fields["short_name"] and len(fields["short_name"]) <= 12 and fields["lang"] == "zh-CN"
    icons = {icon["src"]: icon for icon in fields["icons"]}
    assert {"192x192", "512x512"} <= {icon["sizes"] for icon in icons.values()}
    assert any("maskable" in icon["purpose"] for icon in icons.values())
    for src, icon in icons.items():
        answer = httpx.get(f"{served}/app/{src}")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(icon["type"]), src

    phone = phone_for()
    phone.seed_wallet(keys["alice"], PASSCODE)
    phone.open()
    phone.wait_screen("unlock")
    assert phone.page.evaluate("""async () => {  // installed (the shell cached), and in charge of this page
        await navigator.serviceWorker.ready;
        if (!navigator.serviceWorker.controller) {
            await new Promise(done => navigator.serviceWorker.addEventListener("controllerchange", done, {once: true}));
        }
        return navigator.serviceWorker.controller.scriptURL;
    }""") == f"{served}/app/sw.js"
    # Chromium's own reading of the manifest and its install criteria.
    cdp = phone.context.new_cdp_session(phone.page)
    read = cdp.send("Page.getAppManifest")
    assert read["url"] == f"{served}/app/manifest.webmanifest" and read["errors"] == []
    # A test's browser context is an incognito one, where Chromium installs nothing: that is the only objection.
    objections = {error["errorId"] for error in cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]}
    assert objections <= {"in-incognito"}
    # The shell's cache holds every file the app serves (the worker's list is honest), the signing library too.
    cached = set(phone.page.evaluate("""async () => {
        const urls = [];
        for (const name of await caches.keys()) {
            for (const request of await (await caches.open(name)).keys()) urls.push(request.url);
        }
        return urls;
    }"""))
    (library,) = libraries()
    wanted = {f"{served}/app/{name}" for name in FILES if name not in (SHELL, "sw.js")}
    wanted |= {f"{served}/app/", f"{served}/app/vendor/{library}"}
    assert wanted - cached == set()

    phone.context.set_offline(True)
    phone.page.reload()
    phone.page.wait_for_selector("body[data-ready='true']")
    phone.wait_screen("unlock")  # drawn from the cache: the network answers nothing
    # Chromium's network emulation leaves a document made while offline believing navigator.onLine; a phone's
    # network change fires the "offline" event, as saying it again here does.
    phone.context.set_offline(False)
    phone.context.set_offline(True)
    phone.page.wait_for_selector("#offline", state="visible")
    assert phone.page.is_visible("#offline") and "离线" in phone.page.inner_text("#offline")
    phone.screenshot("wallet-offline-zh-CN")
    phone.page.fill("input[name=passcode]", PASSCODE)
    phone.page.click("#sign-in")  # the wallet opens on the phone; the sign-in needs the API
    assert "网络" in _refusal(phone, "offline")
    phone.context.set_offline(False)
    phone.page.wait_for_selector("#offline", state="hidden")
    phone.page.click("#sign-in")
    phone.wait_screen("home")
    assert phone.page.inner_text("#my-address") == keys["alice"].address
    # Offline, the one thing the phone logged is the refused connection.
    assert [error for error in phone.errors if "ERR_INTERNET_DISCONNECTED" not in error] == []
    phone.errors.clear()
    phone.assert_clean()
