"""The one path to the node: connecting, signing, nonces, fees, receipts, decoded reverts.

`ChainClient` signs locally with one account and is safe to share between threads: nonces are taken
and the transaction submitted under one lock, so a nonce is consumed only when the node accepted the
transaction (no gaps after a refused send), while waiting for receipts happens outside it. Reverts are
caught at gas estimation, before a nonce is spent, and come back as `ContractRevert` with the
contract's custom error name and arguments.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils.toolz import compose
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, TimeExhausted, Web3RPCError
from web3.middleware import ExtraDataToPOAMiddleware
from web3._utils.method_formatters import PYTHONIC_RESULT_FORMATTERS
from web3._utils.rpc_abi import RPC
from web3.datastructures import AttributeDict
from web3.types import TxReceipt

from ledger.config import Settings, SignerSecrets
from ledger.encoding import to_0x_hex
from ledger.errors import ContractRevert, ErrorDecoder, LoanLedgerError

_RECEIPT_FORMATTER = compose(AttributeDict.recursive, PYTHONIC_RESULT_FORMATTERS[RPC.eth_getTransactionReceipt])


class NodeUnavailable(LoanLedgerError):
    """The node did not answer (down, wrong URL, network)."""


class ReceiptTimeout(LoanLedgerError):
    """A transaction was accepted by the node but not mined in time; it may still be mined later."""

    def __init__(self, tx_hash: str, timeout: float):
        super().__init__(f"transaction {tx_hash} not mined within {timeout:.0f}s")
        self.tx_hash = tx_hash


class TransactionFailed(LoanLedgerError):
    """A mined transaction failed without a revert reason we can name (e.g. out of gas)."""

    def __init__(self, tx_hash: str, message: str):
        super().__init__(f"transaction {tx_hash} failed: {message}")
        self.tx_hash = tx_hash


class SignerNotConfigured(LoanLedgerError):
    """No key for a named signer in the environment or the keystore directory."""


def web3_for(settings: Settings | str, *, poa: bool | None = None, timeout: float | None = None) -> Web3:
    """A Web3 for the configured node, without asking it anything (services start while it is down).

    `timeout` bounds each call to the node (default the `node_timeout` setting): a node that hangs, rather
    than refusing connections, then costs a caller seconds, not the receipt wait (`tx_timeout`, which
    polls with calls of this length).
    """
    url = settings if isinstance(settings, str) else settings.node_url
    poa = (False if isinstance(settings, str) else settings.poa) if poa is None else poa
    if timeout is None:
        timeout = 10.0 if isinstance(settings, str) else settings.node_timeout
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))
    if poa:
        # QBFT/IBFT (Besu, GoQuorum) put validator data in extraData, longer than mainnet's 32 bytes.
        w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    w3.provider.cache_allowed_requests = True  # eth_chainId is asked before every estimate; it never changes
    return w3


def connect(settings: Settings | str, *, poa: bool | None = None, timeout: float | None = None) -> Web3:
    """A Web3 connected to the configured node; raises NodeUnavailable with the URL when it does not answer.

    Each call is bounded by `timeout`, default as `web3_for`'s (the `node_timeout` setting).
    """
    w3 = web3_for(settings, poa=poa, timeout=timeout)
    url = w3.provider.endpoint_uri
    if not w3.is_connected():
        raise NodeUnavailable(f"no Ethereum node answers at {url} (start one with `loanledger node start`, "
                              f"or set LOANLEDGER_NODE_URL)")
    return w3


# ---------------------------------------------------------------------------------------------- signers

def load_account(settings: Settings, name: str, env: Mapping[str, str] | None = None) -> LocalAccount:
    """The signer called `name` (operator, oracle, relayer, ...).

    Development: `LOANLEDGER_<NAME>_KEY` holds a hex private key. Production: an encrypted Web3 Secret
    Storage file `<keystore dir>/<name>.json`, unlocked with `LOANLEDGER_<NAME>_PASSPHRASE` (or the shared
    `LOANLEDGER_KEYSTORE_PASSPHRASE`), or a passphrase file named by `LOANLEDGER_<NAME>_PASSPHRASE_FILE`.
    These come from the environment the settings were read from, or from `env` when given (tests).
    """
    secrets = settings.signer_secrets(name) if env is None else SignerSecrets.from_environ(name, env)
    if secrets.key:
        return Account.from_key(secrets.key.get_secret_value())
    path = settings.keystore_path / f"{name}.json"
    if not path.exists():
        raise SignerNotConfigured(f"no signer '{name}': set {secrets.variable('KEY')} (development) or create "
                                  f"{path} (an encrypted keystore)")
    passphrase = secrets.passphrase.get_secret_value() if secrets.passphrase else None
    if passphrase is None and secrets.passphrase_file:
        passphrase = secrets.passphrase_file.read_text().rstrip("\n")
    if passphrase is None:
        raise SignerNotConfigured(f"{path} is encrypted: set {secrets.variable('PASSPHRASE')} or "
                                  f"{secrets.variable('PASSPHRASE_FILE')}")
    try:
        return Account.from_key(Account.decrypt(json.loads(path.read_text()), passphrase))
    except ValueError as exc:
        raise SignerNotConfigured(f"cannot unlock {path}: {exc}") from None


def save_keystore(account: LocalAccount, path: Path, passphrase: str) -> Path:
    """Writes `account` as an encrypted keystore file readable only by its owner."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(Account.encrypt(account.key, passphrase), fh)
    return path


# ---------------------------------------------------------------------------------------------- fees

@dataclass(frozen=True)
class Fees:
    """Fee fields for a transaction: legacy gasPrice (zero on a permissioned chain) or EIP-1559."""

    gas_price: int | None = None
    max_fee: int | None = None
    priority_fee: int | None = None

    def fields(self) -> dict[str, int]:
        if self.gas_price is not None:
            return {"gasPrice": self.gas_price}
        return {"maxFeePerGas": self.max_fee, "maxPriorityFeePerGas": self.priority_fee}


def node_fees(w3: Web3) -> Fees:
    """What the node asks: zero-fee chains (Besu free gas, anvil --base-fee 0) get a legacy price of 0."""
    base_fee = w3.eth.get_block("latest").get("baseFeePerGas")
    if base_fee == 0:
        # eth_gasPrice still suggests a tip here (anvil says 1 gwei), but nothing needs paying: a
        # permissioned chain's accounts hold no ether.
        return Fees(gas_price=0)
    if base_fee is None:  # no London fork (a QBFT network with free gas): the node's price, usually 0
        return Fees(gas_price=w3.eth.gas_price)
    try:
        tip = w3.eth.max_priority_fee
    except (Web3RPCError, ValueError):
        tip = 10**9
    return Fees(max_fee=2 * base_fee + tip, priority_fee=tip)


# ---------------------------------------------------------------------------------------------- client

class ChainClient:
    """Signs and sends contract calls from one account; thread-safe."""

    def __init__(self, w3: Web3, account: LocalAccount, errors: ErrorDecoder, *, fees: Fees | None = None,
                 receipt_timeout: float = 30.0, poll_interval: float = 0.02, gas_margin: float = 1.2):
        self.w3, self.account, self.errors = w3, account, errors
        # web3's validation asks eth_chainId before every estimate and build: cached, that is two round
        # trips fewer per transaction (a node's chain id does not change under a running client).
        if hasattr(w3.provider, "cache_allowed_requests"):
            w3.provider.cache_allowed_requests = True
        self.receipt_timeout, self.poll_interval, self.gas_margin = receipt_timeout, poll_interval, gas_margin
        self._fees = fees
        self._fees_at = 0.0 if fees is None else float("inf")  # fixed fees never refresh
        self._lock = threading.Lock()
        self._nonce: int | None = None
        self._chain_id: int | None = None

    @property
    def address(self) -> str:
        return self.account.address

    # -- public ----------------------------------------------------------------------------------

    def transact(self, function: ContractFunction, *, gas: int | None = None, value: int = 0,
                 timeout: float | None = None, before_send: Callable[[str], None] | None = None) -> TxReceipt:
        """Sends `function` and waits for its receipt; raises ContractRevert, ReceiptTimeout, NodeUnavailable."""
        return self.wait(self.submit(function, gas=gas, value=value, before_send=before_send), timeout=timeout,
                         function=function)

    def submit(self, function: ContractFunction, *, gas: int | None = None, value: int = 0,
               before_send: Callable[[str], None] | None = None) -> str:
        """Signs and submits without waiting; returns the transaction hash.

        `before_send(tx_hash)` runs once the transaction is signed and before the node sees it (again for a
        re-signed retry), so a caller can record the hash durably first: after a crash it can then ask the
        node whether that transaction was mined. If it raises, nothing is sent.
        """
        tx = self._prepare(function, gas, value)
        with self._lock:
            for attempt in (1, 2):
                nonce = self._next_nonce()
                signed = self.account.sign_transaction({**tx, "nonce": nonce})
                if before_send is not None:
                    before_send(to_0x_hex(signed.hash))
                try:
                    tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
                    break
                except Exception as exc:
                    self._nonce = None  # the node's view wins from now on
                    # Someone else sent from this account (another process, a restart): resync and retry once.
                    if attempt == 1 and "nonce too low" in str(exc).lower():
                        continue
                    raise self._translate(exc) from exc
            self._nonce = nonce + 1
        return to_0x_hex(tx_hash)

    def transact_many(self, functions: Sequence[ContractFunction], *, gas: int | Sequence[int] | None = None,
                      timeout: float | None = None) -> list[TxReceipt]:
        """Signs all with consecutive nonces, submits them in one JSON-RPC batch, awaits every receipt.

        Every call is estimated first (in one batch too, each against the current state), so one that
        would revert raises before anything is sent.
        """
        return self.wait_many(self.submit_many(functions, gas=gas), timeout=timeout, functions=functions)

    def submit_many(self, functions: Sequence[ContractFunction], *, gas: int | Sequence[int] | None = None,
                    batch_size: int = 100) -> list[str]:
        """transact_many without the wait: returns the hashes, so several batches can be in flight at once.

        Sent in JSON-RPC batches of `batch_size`; while one batch is with the node the next is signed
        (the node works in its own process, so the two overlap).
        """
        if gas is None:
            txs = [self._prepare(f, 0, 0) for f in functions]
            for start in range(0, len(txs), batch_size):
                chunk = txs[start:start + batch_size]
                for tx, estimate in zip(chunk, self._estimate_batch(chunk)):
                    tx["gas"] = int(estimate * self.gas_margin)
        else:
            gases = list(gas) if isinstance(gas, Sequence) else [gas] * len(functions)
            txs = [self._prepare(f, g, 0) for f, g in zip(functions, gases)]
        hashes: list[str] = []
        with self._lock, ThreadPoolExecutor(1, thread_name_prefix="chain-send") as sender:
            first = self._next_nonce()
            in_flight = None
            try:
                for start in range(0, len(txs), batch_size):
                    raws = [to_0x_hex(self.account.sign_transaction({**tx, "nonce": first + start + i}).raw_transaction)
                            for i, tx in enumerate(txs[start:start + batch_size])]
                    if in_flight is not None:
                        hashes += in_flight.result()
                    in_flight = sender.submit(self._send_raw_batch, raws)
                if in_flight is not None:
                    hashes += in_flight.result()
            except Exception as exc:
                # Later nonces would wait forever behind a refused one; the node's count is the truth again.
                self._nonce = None
                if hashes and isinstance(exc, TransactionFailed):
                    raise TransactionFailed("(batch)", f"{exc}; the first {len(hashes)} were accepted") from exc
                raise
            self._nonce = first + len(txs)
        return hashes

    def _send_raw_batch(self, raws: list[str]) -> list[str]:
        # web3's batch_requests refuses eth_sendRawTransaction, so the provider's batch call is used.
        try:
            answers = self.w3.provider.make_batch_request([("eth_sendRawTransaction", [raw]) for raw in raws])
        except Exception as exc:
            raise self._translate(exc) from exc
        if isinstance(answers, dict):  # the whole batch refused
            raise TransactionFailed("(batch)", str(answers.get("error", answers)))
        answers = sorted(answers, key=lambda a: a["id"])
        refused = [a for a in answers if "error" in a]
        if refused:
            raise TransactionFailed("(batch)", f"{len(refused)} of {len(raws)} refused by the node, first: "
                                               f"{refused[0]['error']}")
        return [a["result"] for a in answers]

    def wait(self, tx_hash: str, *, timeout: float | None = None,
             function: ContractFunction | None = None) -> TxReceipt:
        timeout = self.receipt_timeout if timeout is None else timeout
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout,
                                                               poll_latency=self.poll_interval)
        except TimeExhausted:
            self.reset_nonce()  # if the node lost the transaction (restarted, reverted), re-read its count
            raise ReceiptTimeout(tx_hash, timeout) from None
        except Exception as exc:
            raise self._translate(exc) from exc
        return self._checked(receipt, function)

    def wait_many(self, hashes: Sequence[str], *, timeout: float | None = None,
                  functions: Sequence[ContractFunction] | None = None) -> list[TxReceipt]:
        """Receipts for `hashes`, polled in JSON-RPC batches."""
        timeout = self.receipt_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        found: dict[str, dict] = {}
        pending = list(hashes)
        while pending:
            # Raw batch: a pending transaction answers null here, where web3's batch would raise.
            answers = self._rpc(lambda: self.w3.provider.make_batch_request(
                [("eth_getTransactionReceipt", [h]) for h in pending]))
            if isinstance(answers, dict):
                raise TransactionFailed("(batch)", str(answers.get("error", answers)))
            answers = sorted(answers, key=lambda a: a["id"])
            found.update((h, a["result"]) for h, a in zip(pending, answers) if a.get("result") is not None)
            pending = [h for h in pending if h not in found]
            if pending:
                if time.monotonic() > deadline:
                    self.reset_nonce()
                    raise ReceiptTimeout(pending[0], timeout)
                time.sleep(self.poll_interval)
        # Formatted as web3 formats a receipt it fetched itself (AttributeDict, HexBytes), without asking again.
        receipts = [_RECEIPT_FORMATTER(found[h]) for h in hashes]
        fns = list(functions) if functions is not None else [None] * len(hashes)
        return [self._checked(r, f) for r, f in zip(receipts, fns)]

    def call(self, function: ContractFunction, block: int | str = "latest") -> Any:
        """A view call with the revert decoded."""
        try:
            return function.call({"from": self.address}, block_identifier=block)
        except Exception as exc:
            raise self._translate(exc) from exc

    def reset_nonce(self) -> None:
        with self._lock:
            self._nonce = None

    # -- internals -------------------------------------------------------------------------------

    def _prepare(self, function: ContractFunction, gas: int | None, value: int) -> dict[str, Any]:
        tx: dict[str, Any] = {"from": self.address, "value": value, "chainId": self.chain_id, **self.fees().fields()}
        if gas is None:
            try:
                gas = int(function.estimate_gas({"from": self.address, "value": value}) * self.gas_margin)
            except Exception as exc:
                raise self._translate(exc) from exc
        # The transaction is assembled here rather than by build_transaction: it is fully specified
        # already, and web3's validation and formatting of it cost more than signing it.
        return {**tx, "to": function.address, "data": function._encode_transaction_data(), "gas": gas, "nonce": 0}

    def _estimate_batch(self, txs: list[dict[str, Any]]) -> list[int]:
        calls = [{"from": tx["from"], "to": tx["to"], "data": tx["data"], "value": hex(tx["value"])} for tx in txs]
        answers = self._rpc(lambda: self.w3.provider.make_batch_request([("eth_estimateGas", [c]) for c in calls]))
        if isinstance(answers, dict):
            raise TransactionFailed("(batch)", str(answers.get("error", answers)))
        estimates = []
        for i, answer in enumerate(sorted(answers, key=lambda a: a["id"])):
            error = answer.get("error")
            if error is not None:
                data = error.get("data")
                decoded = self.errors.decode(data) if isinstance(data, str) and len(data) >= 10 else None
                raise decoded or TransactionFailed("(not sent)", f"call {i} of the batch: {error.get('message')}")
            estimates.append(int(answer["result"], 16))
        return estimates

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self._rpc(lambda: self.w3.eth.chain_id)
        return self._chain_id

    def fees(self) -> Fees:
        # Refreshed every few seconds, not per transaction: one round trip fewer on every send.
        if self._fees is None or time.monotonic() - self._fees_at > 5.0:
            self._fees = self._rpc(lambda: node_fees(self.w3))
            self._fees_at = time.monotonic()
        return self._fees

    def _next_nonce(self) -> int:
        if self._nonce is None:
            self._nonce = self._rpc(lambda: self.w3.eth.get_transaction_count(self.address, "pending"))
        return self._nonce

    def _rpc(self, thunk):
        try:
            return thunk()
        except Exception as exc:
            raise self._translate(exc) from exc

    def _checked(self, receipt: TxReceipt, function: ContractFunction | None) -> TxReceipt:
        if receipt["status"] == 1:
            return receipt
        tx_hash = to_0x_hex(receipt["transactionHash"])
        # The receipt has no revert data: replay the call at the block before to name the error.
        if function is not None:
            tx = self.w3.eth.get_transaction(tx_hash)
            try:
                self.w3.eth.call({"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"],
                                  "gas": tx["gas"]}, receipt["blockNumber"] - 1)
            except Exception as exc:
                translated = self._translate(exc)
                if isinstance(translated, ContractRevert):
                    raise translated from exc
        raise TransactionFailed(tx_hash, f"reverted (gas used {receipt['gasUsed']} of its limit)")

    def _translate(self, exc: Exception) -> Exception:
        if isinstance(exc, ContractRevert | NodeUnavailable | ReceiptTimeout | TransactionFailed):
            return exc
        if isinstance(exc, ContractCustomError | ContractLogicError):
            decoded = self.errors.from_exception(exc)
            if decoded is not None:
                return decoded
            return TransactionFailed("(not sent)", str(exc))
        if isinstance(exc, ConnectionError | OSError) or type(exc).__module__.startswith(("requests", "urllib3")):
            url = getattr(self.w3.provider, "endpoint_uri", "the node")
            return NodeUnavailable(f"the node at {url} did not answer: {type(exc).__name__}")
        return exc


def open_client(settings: Settings, signer: str, errors: ErrorDecoder, w3: Web3 | None = None,
                env: dict[str, str] | None = None) -> ChainClient:
    """A ChainClient for the named signer on the configured node."""
    w3 = w3 or connect(settings, timeout=settings.tx_timeout)
    return ChainClient(w3, load_account(settings, signer, env), errors, receipt_timeout=settings.tx_timeout)
