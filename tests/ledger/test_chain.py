"""ChainClient against a real anvil: zero-fee sends, decoded reverts, nonces under concurrency, batching."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from eth_account import Account
from web3 import Web3

from ledger.chain import (ChainClient, NodeUnavailable, ReceiptTimeout, SignerNotConfigured, connect, load_account,
                          save_keystore)
from ledger.config import Settings
from ledger.errors import ContractRevert

COMMITMENT = b"\x22" * 32


def _borrower(i: int) -> str:
    return Web3.to_checksum_address(i.to_bytes(20, "big"))


@pytest.fixture
def client(w3, stack, keys):
    return ChainClient(w3, keys["operator"], stack.errors, receipt_timeout=20)


def _register(stack, i: int, expiry: int):
    return stack.registry.functions.registerBorrower(_borrower(i), COMMITMENT, expiry)


def _expiry(w3) -> int:
    return w3.eth.get_block("latest").timestamp + 365 * 86_400


def test_transact_signs_locally_at_zero_gas_price(w3, stack, client):
    receipt = client.transact(_register(stack, 1, _expiry(w3)))
    assert receipt["status"] == 1 and receipt["effectiveGasPrice"] == 0
    assert receipt["from"] == client.address
    assert stack.registry.functions.isEligible(_borrower(1)).call()


def test_revert_at_estimation_is_decoded_and_spends_no_nonce(w3, stack, client):
    before = w3.eth.get_transaction_count(client.address)
    client.transact(_register(stack, 7, _expiry(w3)))
    with pytest.raises(ContractRevert) as caught:
        client.transact(_register(stack, 7, _expiry(w3)))
    assert caught.value.name == "RegistryAlreadyRegistered"
    assert caught.value.arguments == {"borrower": _borrower(7)}
    # The refused send took no nonce: the next one follows straight on.
    client.transact(_register(stack, 8, _expiry(w3)))
    assert w3.eth.get_transaction_count(client.address) == before + 2


def test_a_role_error_from_openzeppelin_is_named(w3, stack, keys):
    stranger = ChainClient(w3, keys["eve"], stack.errors)
    with pytest.raises(ContractRevert) as caught:
        stranger.transact(_register(stack, 9, _expiry(w3)))
    assert caught.value.name == "AccessControlUnauthorizedAccount"
    assert caught.value.arguments["account"] == keys["eve"].address


def test_a_mined_revert_is_decoded_from_a_replay(w3, stack, client):
    client.transact(_register(stack, 3, _expiry(w3)))
    # An explicit gas limit skips estimation, so the transaction is mined and fails on-chain.
    with pytest.raises(ContractRevert) as caught:
        client.transact(_register(stack, 3, _expiry(w3)), gas=200_000)
    assert caught.value.name == "RegistryAlreadyRegistered"


def test_eight_threads_two_hundred_each_from_one_signer(w3, stack, client):
    start_nonce = w3.eth.get_transaction_count(client.address)
    expiry = _expiry(w3)
    gas = 120_000  # fixed: the point is the nonce manager, not 1,600 estimations

    def worker(t: int) -> list[int]:
        return [client.transact(_register(stack, 1000 + t * 200 + i, expiry), gas=gas)["blockNumber"]
                for i in range(200)]

    with ThreadPoolExecutor(8) as pool:
        blocks = [b for chunk in pool.map(worker, range(8)) for b in chunk]
    assert len(blocks) == 1600
    end_nonce = w3.eth.get_transaction_count(client.address)
    assert end_nonce - start_nonce == 1600  # every nonce used once: no gaps, none refused
    nonces = sorted(w3.eth.get_transaction(tx)["nonce"] for b in set(blocks) for tx in w3.eth.get_block(b)["transactions"]
                    if w3.eth.get_transaction(tx)["from"] == client.address)
    assert nonces == list(range(start_nonce, end_nonce))
    assert all(stack.registry.functions.isEligible(_borrower(1000 + i)).call() for i in range(0, 1600, 97))


def test_transact_many_submits_one_batch_and_returns_every_receipt(w3, stack, client):
    expiry = _expiry(w3)
    receipts = client.transact_many([_register(stack, 5000 + i, expiry) for i in range(50)])
    assert [r["status"] for r in receipts] == [1] * 50
    assert all(stack.registry.functions.isEligible(_borrower(5000 + i)).call() for i in range(50))


def test_transact_many_refuses_the_whole_batch_if_one_would_revert(w3, stack, client):
    expiry = _expiry(w3)
    client.transact(_register(stack, 6000, expiry))
    before = w3.eth.get_transaction_count(client.address)
    with pytest.raises(ContractRevert):
        client.transact_many([_register(stack, 6001, expiry), _register(stack, 6000, expiry)])
    assert w3.eth.get_transaction_count(client.address) == before
    assert not stack.registry.functions.isEligible(_borrower(6001)).call()


def test_receipt_timeout_then_the_transaction_still_lands(w3, stack, client):
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        tx_hash = client.submit(_register(stack, 4, _expiry(w3)))
        with pytest.raises(ReceiptTimeout) as caught:
            client.wait(tx_hash, timeout=0.3)
        assert caught.value.tx_hash == tx_hash
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    w3.provider.make_request("evm_mine", [])
    assert client.wait(tx_hash)["status"] == 1


def test_node_down_is_a_clear_error(stack, keys):
    with pytest.raises(NodeUnavailable, match="127.0.0.1:9"):
        connect("http://127.0.0.1:9", timeout=0.5)
    dead = Web3(Web3.HTTPProvider("http://127.0.0.1:9", request_kwargs={"timeout": 0.5}))
    client = ChainClient(dead, keys["operator"], stack.errors)
    with pytest.raises(NodeUnavailable):
        client.transact(stack.registry.functions.registerBorrower(_borrower(1), COMMITMENT, 2**39))


def test_load_account_from_env_and_from_an_encrypted_keystore(tmp_path):
    settings = Settings(home=tmp_path)
    account = Account.create()
    assert load_account(settings, "oracle", {"LOANLEDGER_ORACLE_KEY": account.key.hex()}).address == account.address
    with pytest.raises(SignerNotConfigured, match="LOANLEDGER_ORACLE_KEY"):
        load_account(settings, "oracle", {})
    path = save_keystore(account, settings.keystore_path / "oracle.json", "correct horse")
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert b"correct horse" not in path.read_bytes() and account.key.hex()[2:] not in path.read_text()
    with pytest.raises(SignerNotConfigured, match="PASSPHRASE"):
        load_account(settings, "oracle", {})
    with pytest.raises(SignerNotConfigured, match="cannot unlock"):
        load_account(settings, "oracle", {"LOANLEDGER_ORACLE_PASSPHRASE": "wrong"})
    unlocked = load_account(settings, "oracle", {"LOANLEDGER_KEYSTORE_PASSPHRASE": "correct horse"})
    assert unlocked.address == account.address


def test_another_sender_on_the_same_account_is_caught_up_with(w3, stack, client, keys):
    expiry = _expiry(w3)
    client.transact(_register(stack, 7000, expiry))
    # Another process sends from the same key: the client's cached nonce is now too low.
    stack.registry.functions.registerBorrower(_borrower(7001), COMMITMENT, expiry).transact({"from": client.address})
    assert client.transact(_register(stack, 7002, expiry))["status"] == 1
    assert all(stack.registry.functions.isEligible(_borrower(i)).call() for i in (7000, 7001, 7002))


def test_submit_many_pipelines_batches_and_every_one_lands_in_nonce_order(w3, stack, client):
    expiry = _expiry(w3)
    start_nonce = w3.eth.get_transaction_count(client.address)
    hashes = client.submit_many([_register(stack, 8000 + i, expiry) for i in range(250)], gas=120_000,
                                batch_size=60)
    receipts = client.wait_many(hashes)
    assert len(receipts) == 250 and all(r["status"] == 1 for r in receipts)
    assert [w3.eth.get_transaction(h)["nonce"] for h in hashes] == list(range(start_nonce, start_nonce + 250))
    events = stack.registry.events.BorrowerRegistered().process_receipt(receipts[-1])
    assert events[0]["args"]["borrower"] == _borrower(8249)  # formatted receipts decode like web3's own
