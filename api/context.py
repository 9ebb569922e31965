"""What every route needs, built once per process: store, vault, chain bindings, signers, services.

The node may be down when the API starts, or the contracts not yet deployed: the API still starts,
`/readyz` says what is missing, and routes that need the chain answer 503 until it is there.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker
from web3 import Web3

from api.errors import ApiError
from api.services.earlier_wallets import EarlierWallets
from ledger import manifest as manifests
from ledger.action_log import ActionLog
from ledger.chain import ChainClient, load_account, web3_for
from ledger.config import Settings
from ledger.contracts import Bindings, bind
from ledger.secret_file import read_or_create
from ledger.store import open_store
from ledger.store.models.chain import IndexerCursor
from ledger.vault import Vault, keyring_from_settings


def load_jwt_secret(settings: Settings) -> bytes:
    """The `jwt_secret` setting (LOANLEDGER_JWT_SECRET), else the secret file, created (0600) on first start."""
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else read_or_create(settings.jwt_secret_path)
    return secret.encode()


@dataclass
class Context:
    settings: Settings
    sessions: sessionmaker
    vault: Vault
    w3: Web3
    jwt_secret: bytes
    env: dict[str, str] | None = None  # signers' keys: from the settings' environment unless given (tests)
    _bindings: Bindings | None = None
    _clients: dict[str, ChainClient] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_settings(cls, settings: Settings) -> Context:
        sessions = open_store(settings.database_url)
        return cls(settings=settings, sessions=sessions, vault=Vault(sessions, keyring_from_settings(settings)),
                   w3=web3_for(settings), jwt_secret=load_jwt_secret(settings))

    @property
    def bindings(self) -> Bindings:
        """The deployed contracts; 503 until a manifest exists for this network."""
        if self._bindings is None:
            path = self.settings.manifest_path
            if not path.exists():
                raise ApiError(503, "not_deployed", f"no deployment manifest at {path}: run `loanledger deploy`")
            self._bindings = bind(self.w3, manifests.load(path))
        return self._bindings

    def signer(self, name: str) -> ChainClient:
        """The service account `name` (relayer, operator, admin, pauser), one shared client per process."""
        with self._lock:
            if name not in self._clients:
                account = load_account(self.settings, name, self.env)
                self._clients[name] = ChainClient(self.w3, account, self.bindings.errors,
                                                  receipt_timeout=self.settings.tx_timeout)
            return self._clients[name]

    @cached_property
    def action_log(self) -> ActionLog:
        return ActionLog(self.sessions)

    @cached_property
    def earlier_wallets(self) -> EarlierWallets:
        """The wallets each caller was recovered from (api/services/earlier_wallets.py), kept per process."""
        return EarlierWallets(self)

    def chain_time(self) -> int:
        return self.w3.eth.get_block("latest")["timestamp"]

    def indexed_block(self) -> int:
        with self.sessions() as session:
            cursor = session.scalar(select(IndexerCursor.block_number).order_by(IndexerCursor.block_number.desc()))
        return -1 if cursor is None else cursor

    def wait_indexed(self, block: int) -> bool:
        """Waits (at most `index_wait` s) for the indexer to store `block`, so a read after a write sees it."""
        deadline = time.monotonic() + self.settings.index_wait
        while self.indexed_block() < block:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True
