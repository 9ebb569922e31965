"""Issue 14, defect 6: an application whose API process died mid-request is answered from the chain on retry.

In-process, the crash is reproduced in the store and on the chain as it leaves them: a claim owned by a
process that no longer exists, holding the hash of the transaction it signed (mined, or never sent). Then
against real processes: the API is killed between relaying an application and storing its answer (the
`api_fault` hook exits on the spot, as SIGKILL would), and a new API process answers the retry. The retry
with the same Idempotency-Key must answer the loan that transaction made, or run again, and never make a
second loan.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import step_up_codes
from eth_account import Account
from fastapi.encoders import jsonable_encoder

from api.client import ApiError, LoanLedgerClient
from api.schemas import ApplyIn, CancelIn
from ledger import typed_data
from ledger.encoding import to_0x_hex
from ledger.node import free_port
from ledger.store.models.api import IdempotencyRecord

DEAD_OWNER = "{host}|999999999|0|deadbeef0000"  # this host, a pid no process has


def signed_body(api, account, application: dict) -> dict:
    _, context = api
    book = context.bindings.book
    deadline = context.chain_time() + 3600
    nonce = book.functions.nonces(account.address).call()
    signed = {"product_version": 1, **application}
    message = typed_data.loan_application(
        chain_id=context.w3.eth.chain_id, book=book.address, borrower=account.address,
        product_id=signed["product_id"], product_version=signed["product_version"], principal=signed["principal"],
        installments=signed["installments"], nonce=nonce, deadline=deadline)
    return {**signed, "deadline": deadline, "signature": to_0x_hex(typed_data.sign(account.key, message))}


def crashed_claim(api, borrower: str, key: str, body: dict, tx_hash: str | None, owner: str | None = None,
                  route: str = "POST /v1/loans", schema=ApplyIn) -> None:
    """The row a request leaves when its process is killed after recording its transaction."""
    from api import idempotency
    _, context = api
    digest = hashlib.sha256(json.dumps(jsonable_encoder(schema.model_validate(body).model_dump()),
                                       sort_keys=True).encode()).hexdigest()
    with context.sessions.begin() as session:
        session.add(IdempotencyRecord(principal=borrower, key=key, route=route, request_hash=digest,
                                      status_code=None, response=None, created_at=int(time.time()),
                                      owner=owner or DEAD_OWNER.format(host=idempotency._HOST), tx_hash=tx_hash))


def loans_of(stack, borrower: str) -> int:
    return len(stack.book.events.LoanRequested().get_logs(from_block=0, argument_filters={"borrower": borrower}))


@pytest.fixture
def alice(api, keys, driver, client_for, kyc):
    client = client_for(keys["alice"])
    kyc(client, 1)
    client.login()
    driver.score(keys["alice"])
    return client


def relay(api, body: dict, borrower: str) -> str:
    """Sends the signed request as the crashed API process did; returns the mined transaction's hash."""
    _, context = api
    application = (body["product_id"], body["product_version"], body["principal"], body["installments"])
    receipt = context.signer("relayer").transact(context.bindings.book.functions.requestLoan(
        application, borrower, body["deadline"], bytes.fromhex(body["signature"][2:])))
    return to_0x_hex(receipt["transactionHash"])


def test_a_retry_after_a_crash_once_the_loan_was_mined_answers_that_loan(api, stack, keys, alice, application):
    borrower = keys["alice"].address
    body = signed_body(api, keys["alice"], application)
    tx_hash = relay(api, body, borrower)
    crashed_claim(api, borrower, "key-1", body, tx_hash)
    assert loans_of(stack, borrower) == 1

    code = step_up_codes.apply_code(api[0], alice, body)
    answer = alice._request("POST", "/v1/loans", idempotency_key="key-1", json_body=body, raw=True, step_up_code=code)

    assert answer.status_code == 201, answer.text
    loan = answer.json()
    assert loan["tx_hash"] == tx_hash and loan["status"] == "Requested"
    assert loans_of(stack, borrower) == 1
    again = alice._request("POST", "/v1/loans", idempotency_key="key-1", json_body=body, raw=True, step_up_code=code)
    assert (again.status_code, again.json()) == (201, loan)  # stored: a replay now
    assert again.headers["idempotent-replayed"] == "true"


def test_a_retry_after_a_crash_before_the_send_runs_the_application_once(api, stack, keys, alice, application):
    borrower = keys["alice"].address
    body = signed_body(api, keys["alice"], application)
    crashed_claim(api, borrower, "key-2", body, "0x" + "ab" * 32)  # signed, never seen by the node

    loan = alice._request("POST", "/v1/loans", idempotency_key="key-2", json_body=body,
                           step_up_code=step_up_codes.apply_code(api[0], alice, body))

    assert loan["status"] == "Requested" and loan["tx_hash"] != "0x" + "ab" * 32
    assert loans_of(stack, borrower) == 1


def test_a_claim_whose_owner_is_alive_is_still_in_progress(api, stack, keys, alice, application):
    from api import idempotency
    borrower = keys["alice"].address
    body = signed_body(api, keys["alice"], application)
    crashed_claim(api, borrower, "key-3", body, None, owner=idempotency._process() + "|live")
    with pytest.raises(ApiError) as refused:
        alice._request("POST", "/v1/loans", idempotency_key="key-3", json_body=body,
                           step_up_code=step_up_codes.apply_code(api[0], alice, body))
    assert (refused.value.status, refused.value.code) == (409, "idempotency_in_progress")
    assert loans_of(stack, borrower) == 0


def test_the_same_signed_request_under_a_new_key_names_the_first_loan(api, stack, keys, alice, application):
    borrower = keys["alice"].address
    body = signed_body(api, keys["alice"], application)
    first = alice._request("POST", "/v1/loans", idempotency_key="key-a", json_body=body,
                           step_up_code=step_up_codes.apply_code(api[0], alice, body))
    with pytest.raises(ApiError) as refused:
        alice._request("POST", "/v1/loans", idempotency_key="key-b", json_body=body,
                           step_up_code=step_up_codes.apply_code(api[0], alice, body))
    assert (refused.value.status, refused.value.code) == (409, "loan_request_replayed")
    assert f"loan {first['loan_id']}" in refused.value.message
    assert loans_of(stack, borrower) == 1


def test_a_retry_after_a_crash_once_the_cancellation_was_mined_answers_it(api, stack, keys, alice, application):
    _, context = api
    borrower = keys["alice"].address
    body = signed_body(api, keys["alice"], application)
    loan_id = alice._request("POST", "/v1/loans", idempotency_key="apply-1", json_body=body,
                             step_up_code=step_up_codes.apply_code(api[0], alice, body))["loan_id"]
    book = context.bindings.book
    deadline = context.chain_time() + 3600
    message = typed_data.cancel_loan(chain_id=context.w3.eth.chain_id, book=book.address, loan_id=loan_id,
                                     nonce=book.functions.nonces(borrower).call(), deadline=deadline)
    body = {"deadline": deadline, "signature": to_0x_hex(typed_data.sign(keys["alice"].key, message))}
    receipt = context.signer("relayer").transact(book.functions.cancelWithSignature(
        loan_id, deadline, bytes.fromhex(body["signature"][2:])))
    route = f"POST /v1/loans/{loan_id}/cancel"
    crashed_claim(api, borrower, "cancel-1", body, to_0x_hex(receipt["transactionHash"]), route=route,
                  schema=CancelIn)

    answer = alice._request("POST", f"/v1/loans/{loan_id}/cancel", idempotency_key="cancel-1", json_body=body)

    assert answer["tx_hash"] == to_0x_hex(receipt["transactionHash"])
    assert stack.book.functions.loanOf(loan_id).call()[2] == 4  # Cancelled, once


# ------------------------------------------------------------------ against real processes

LOANLEDGER = str(Path(sys.executable).with_name("loanledger"))


def served_env(w3, keys, tmp_path: Path, **extra: str) -> dict[str, str]:
    """A served API's environment: its own store and data directory; the chain, the manifest (saved by the `api`
    fixture) and the operator's key shared; a fresh relayer key."""
    return {**os.environ, "LOANLEDGER_HOME": str(tmp_path / "served"),
            "LOANLEDGER_NODE_URL": w3.provider.endpoint_uri, "LOANLEDGER_MANIFEST": str(tmp_path / "manifest.json"),
            "LOANLEDGER_DB_URL": f"sqlite:///{tmp_path / 'served.db'}",
            "LOANLEDGER_KEK": base64.b64encode(os.urandom(32)).decode(), "LOANLEDGER_INDEX_WAIT": "0.5",
            "LOANLEDGER_ANCHOR_INTERVAL": "0", "LOANLEDGER_RELAYER_KEY": Account.create().key.hex(),
            "LOANLEDGER_OPERATOR_KEY": keys["operator"].key.hex(),
            "LOANLEDGER_JWT_SECRET": "crash-test-secret-of-32-bytes!!!",
            # Its own store holds no vault record for Alice (the in-process API verified her), so no phone to text
            # a step-up code to: applying goes without one here (it warns at start); tests/api/test_step_up.py
            # tests the codes.
            "LOANLEDGER_STEP_UP_ACTIONS": "phone_change,card_change,debit_mandate,reschedule_request,"
                                          "reschedule_accept", **extra}


def spawn(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        process = subprocess.Popen([LOANLEDGER, "api", "--port", str(port)], env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"the API did not start: {log.read_text()[-3000:]}")


def test_an_api_killed_after_relaying_an_application_answers_the_loan_on_retry(api, w3, stack, keys, driver,
                                                                                 client_for, kyc, application,
                                                                                 tmp_path):
    kyc(client_for(keys["alice"]), 1)  # registered on-chain by the oracle's worker (the kyc fixture)
    driver.score(keys["alice"])
    borrower = keys["alice"].address
    body = signed_body(api, keys["alice"], application)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = served_env(w3, keys, tmp_path)
    log = tmp_path / "api.log"
    processes = []
    try:
        dying = spawn({**env, "LOANLEDGER_API_FAULT": "after_send"}, port, log)
        processes.append(dying)
        client = LoanLedgerClient(url, keys["alice"])
        client.login()
        with pytest.raises(httpx.HTTPError):  # the process dies with the request open
            client._request("POST", "/v1/loans", idempotency_key="crash-1", json_body=body)
        assert dying.wait(timeout=30) == 70, log.read_text()[-3000:]
        assert loans_of(stack, borrower) == 1  # mined before the crash; no answer was stored

        processes.append(spawn(env, port, log))
        retry = client._request("POST", "/v1/loans", idempotency_key="crash-1", json_body=body, raw=True)
        assert retry.status_code == 201, retry.text
        (made,) = stack.book.events.LoanRequested().get_logs(from_block=0, argument_filters={"borrower": borrower})
        assert retry.json()["loan_id"] == made["args"]["loanId"]
        assert retry.json()["tx_hash"] == "0x" + made["transactionHash"].hex().removeprefix("0x")
        assert loans_of(stack, borrower) == 1
        again = client._request("POST", "/v1/loans", idempotency_key="crash-1", json_body=body, raw=True)
        assert (again.status_code, again.json()) == (201, retry.json())
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] == "T"


def test_an_api_killed_before_relaying_leaves_no_open_application_behind(api, w3, stack, keys, driver, client_for,
                                                                          kyc, application, tmp_path):
    """SIGKILL between the open-applications claim and the relay: the dead claim made no loan, so it holds no slot
    of the borrower's open applications (limit 1 here); its own retry then runs and meets the limit like any other."""
    kyc(client_for(keys["alice"]), 1)
    driver.score(keys["alice"])
    borrower = keys["alice"].address
    first = signed_body(api, keys["alice"], application)
    port = free_port()
    env = served_env(w3, keys, tmp_path, LOANLEDGER_OPEN_APPLICATIONS="1")
    log = tmp_path / "api.log"
    processes = []
    try:
        stopping = spawn({**env, "LOANLEDGER_API_FAULT": "stop_before_send"}, port, log)
        processes.append(stopping)
        client = LoanLedgerClient(f"http://127.0.0.1:{port}", keys["alice"])
        client.login()
        hung = threading.Thread(target=lambda: _swallow(lambda: client._request(
            "POST", "/v1/loans", idempotency_key="killed", json_body=first)), daemon=True)
        hung.start()
        deadline = time.monotonic() + 30
        while not _stopped(stopping.pid):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        os.kill(stopping.pid, signal.SIGKILL)  # claimed, nothing sent
        assert stopping.wait(timeout=30) == -signal.SIGKILL
        hung.join(30)
        assert loans_of(stack, borrower) == 0

        processes.append(spawn(env, port, log))
        second = client._request("POST", "/v1/loans", idempotency_key="after", json_body=first, raw=True)
        assert second.status_code == 201, second.text  # the dead claim holds no slot
        with pytest.raises(ApiError) as retry:  # taken over, it meets the limit like any other application
            client._request("POST", "/v1/loans", idempotency_key="killed", json_body=first)
        assert (retry.value.status, retry.value.code) == (429, "too_many_open_applications")
        assert loans_of(stack, borrower) == 1
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


def _swallow(call) -> None:
    try:
        call()
    except (httpx.HTTPError, ApiError):
        pass
