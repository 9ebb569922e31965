"""`loanledger oracle run` as a process, fed by `loanledger rail`: payout and collection credited on-chain,
`/healthz`, a clean stop on SIGTERM; and the configuration errors it ends with one clear line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from ledger import manifest as manifests
from ledger.book import LoanStatus
from ledger.cli import app
from ledger.node import free_port
from oracle.payments.webhook import payment_ref

LOANLEDGER = str(Path(sys.executable).with_name("loanledger"))


@pytest.fixture
def env(w3, stack, keys, tmp_path) -> dict[str, str]:
    return {**os.environ, "LOANLEDGER_HOME": str(tmp_path / "home"),
            "LOANLEDGER_NODE_URL": w3.provider.endpoint_uri,
            "LOANLEDGER_MANIFEST": str(manifests.save(stack.manifest, tmp_path / "local.json")),
            "LOANLEDGER_DB_URL": f"sqlite:///{tmp_path / 'oracle.db'}",
            "LOANLEDGER_ORACLE_KEY": keys["oracle"].key.hex()}  # the score signers are processes of their own


def wait_for(condition, timeout: float, what: str, process: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"exited ({process.returncode}) while waiting for {what}: "
                                 f"{log.read_text()[-3000:] if log else ''}")
        try:
            result = condition()
            if result:
                return result
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {log.read_text()[-3000:] if log else ''}"
        time.sleep(0.05)


def spawn(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen([LOANLEDGER, *args], env=env, stdout=out, stderr=subprocess.STDOUT)


def test_oracle_run_credits_the_rails_webhooks_and_stops_cleanly(w3, stack, driver, keys, env, tmp_path):
    driver.register(keys["alice"])
    driver.score(keys["alice"])
    loan_id = driver.request(keys["alice"])
    driver.approve(loan_id)

    rail_port, oracle_port = free_port(), free_port()
    rail_url, oracle_url = f"http://127.0.0.1:{rail_port}", f"http://127.0.0.1:{oracle_port}"
    rail_log, oracle_log = tmp_path / "rail.log", tmp_path / "oracle.log"
    rail = spawn(env, rail_log, "rail", "--port", str(rail_port), "--log-level", "warning",
                 "--webhook-url", f"{oracle_url}/v1/webhooks/payments")
    oracle = None
    try:
        wait_for(lambda: httpx.get(f"{rail_url}/healthz").status_code == 200, 20, "the rail", rail, rail_log)
        assert (tmp_path / "home/keys/rail.pem").exists()  # the oracle trusts this key by default
        oracle = spawn(env, oracle_log, "oracle", "run", "--port", str(oracle_port), "--interval", "0.1")
        health = wait_for(lambda: httpx.get(f"{oracle_url}/healthz"), 20, "the oracle", oracle, oracle_log)
        assert health.status_code == 200, health.text
        body = health.json()
        assert (body["status"], body["store"], body["tasks"], body["webhooks"]) == (
            "ok", "ok", {"outbox": True, "registrations": True, "anchor": True, "reconciliation": True, "risk": True,
                         "collections": True, "scores": True}, ["mockpay"])

        payout = httpx.post(f"{rail_url}/v1/payouts", json={"loan_id": loan_id, "amount": 120_000,
                                                             "paid_at": driver.now}).json()
        wait_for(lambda: stack.book.functions.loanOf(loan_id).call()[2] == LoanStatus.ACTIVE, 20, "the payout",
                 oracle, oracle_log)
        collection = httpx.post(f"{rail_url}/v1/collections", json={"loan_id": loan_id, "amount": 5_000,
                                                                     "paid_at": driver.now}).json()
        ref = payment_ref("mockpay", collection["reference"])
        wait_for(lambda: stack.book.functions.isPaymentReferenceUsed(ref).call(), 20, "the collection",
                 oracle, oracle_log)
        assert stack.book.functions.isPaymentReferenceUsed(payment_ref("mockpay", payout["reference"])).call()
        # The rail delivers again (providers do): acknowledged, not credited twice.
        again = httpx.post(f"{rail_url}/v1/payments/{collection['reference']}/redeliver").json()
        assert again["acknowledged"] is True
        wait_for(lambda: httpx.get(f"{oracle_url}/healthz").json()["outbox"] == {"done": 2}, 10, "the outbox",
                 oracle, oracle_log)
        progress = stack.book.functions.progressOf(loan_id).call()
        assert sum(progress[2:6]) == 5_000

        oracle.send_signal(signal.SIGTERM)
        assert oracle.wait(timeout=30) == 0, oracle_log.read_text()[-3000:]
        assert "oracle stopped" in oracle_log.read_text()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{oracle_url}/healthz")
    finally:
        for process in (oracle, rail):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=15)


def test_oracle_run_registers_completed_kycs_and_anchors_the_action_log_with_its_key(w3, stack, driver, keys, env,
                                                                                      tmp_path):
    """What the API no longer sends (it holds no key with a role): the KYC registration the API recorded, and the
    action log's anchor, go on-chain from the oracle process, in the oracle's name."""
    from ledger.action_log import ActionLog
    from ledger.store import open_store
    from ledger.store.models.registrations import RegistrationIntent

    sessions = open_store(env["LOANLEDGER_DB_URL"])
    bob = keys["bob"].address
    with sessions.begin() as session:
        session.add(RegistrationIntent(borrower=bob, commitment="0x" + "cd" * 32, kyc_expires_at=driver.now + 86_400,
                                       idempotency_key="kyc:req-bob", status="pending", attempts=0, next_attempt_at=0,
                                       created_at=1, updated_at=1))
    log = ActionLog(sessions)
    for n in range(3):
        log.append(bob, "kyc.verify", f"req-{n}", {})
    oracle_log = tmp_path / "oracle.log"
    oracle = spawn({**env, "LOANLEDGER_ANCHOR_INTERVAL": "0.2"}, oracle_log, "oracle", "run", "--no-webhooks",
                   "--no-risk", "--no-scores", "--no-reconcile", "--interval", "0.1")
    try:
        wait_for(lambda: stack.registry.functions.isEligible(bob).call(), 30, "the registration", oracle, oracle_log)
        wait_for(lambda: stack.anchor.functions.anchorCount().call() == 1, 30, "the anchor", oracle, oracle_log)
        (registered,) = stack.registry.events.BorrowerRegistered().get_logs(from_block=0, argument_filters={
            "borrower": bob})
        assert registered.args.actor == keys["oracle"].address
        (anchored,) = stack.anchor.events.ActionLogAnchored().get_logs(from_block=0)
        assert (anchored.args.actor, anchored.args.entries) == (keys["oracle"].address, 3)
        with sessions() as session:
            assert session.get(RegistrationIntent, bob).status == "done"
        oracle.send_signal(signal.SIGTERM)
        assert oracle.wait(timeout=30) == 0, oracle_log.read_text()[-3000:]
    finally:
        if oracle.poll() is None:
            oracle.kill()
            oracle.wait(timeout=15)
        sessions.kw["bind"].dispose()


runner = CliRunner()


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_without_an_oracle_key_it_says_how_to_configure_one(env):
    env = {k: v for k, v in env.items() if k != "LOANLEDGER_ORACLE_KEY"}
    result = runner.invoke(app, ["oracle", "run", "--provider", "x=hmac:SOME_SECRET"],
                           env={**env, "SOME_SECRET": "s"})
    assert result.exit_code == 1
    assert "set LOANLEDGER_ORACLE_KEY" in one_line(result.output)


@pytest.mark.parametrize(("provider", "message"), [
    ([], "no payment provider is configured"),
    (["--provider", "mockpay=rsa:/nonexistent.pem"], "no key file at /nonexistent.pem"),
    (["--provider", "hmacpay=hmac:UNSET_SECRET_VAR"], "UNSET_SECRET_VAR is not set"),
    (["--provider", "mockpay"], "is not NAME=rsa:PEM_FILE or NAME=hmac:ENV_VAR"),
])
def test_bad_provider_configuration_is_one_clear_line(env, provider, message):
    result = runner.invoke(app, ["oracle", "run", *provider], env=env)
    assert result.exit_code == 1
    assert message in one_line(result.output)


def test_a_bad_fault_spec_is_refused(env):
    result = runner.invoke(app, ["oracle", "run", "--no-webhooks"], env={**env, "LOANLEDGER_OUTBOX_FAULT": "later"})
    assert result.exit_code == 1
    assert "LOANLEDGER_OUTBOX_FAULT must be one of" in one_line(result.output)


def test_loanledger_bureau_serves_records_to_holders_of_its_key(tmp_path):
    env = {**os.environ, "LOANLEDGER_HOME": str(tmp_path / "home")}
    env.pop("LOANLEDGER_BUREAU_API_KEY", None)
    port, log = free_port(), tmp_path / "bureau.log"
    bureau = spawn(env, log, "bureau", "--port", str(port), "--log-level", "warning")
    url = f"http://127.0.0.1:{port}"
    try:
        health = wait_for(lambda: httpx.get(f"{url}/healthz"), 20, "the bureau", bureau, log)
        assert health.json()["applicants"] == 1000
        key_file = tmp_path / "home/keys/bureau-api-key"
        assert key_file.stat().st_mode & 0o777 == 0o600  # made once, for the oracle on this machine to read
        key = key_file.read_text().strip()
        report = httpx.get(f"{url}/v1/reports/0xabc", headers={"Authorization": f"Bearer {key}"})
        assert report.status_code == 200 and report.json()["attributes"]
        assert httpx.get(f"{url}/v1/reports/0xabc", headers={"Authorization": "Bearer guess"}).status_code == 401
    finally:
        bureau.send_signal(signal.SIGTERM)
        bureau.wait(timeout=15)
