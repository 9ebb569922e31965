"""Settings for every LoanLedger process: environment first, then a TOML file, then embedded defaults.

The defaults are the single-machine stack `make demo` runs: a local anvil on 127.0.0.1:8545 whose state
lives in the data directory, SQLite in the data directory, keys in the data directory. Pointing at an
external node or PostgreSQL is a configuration change only (LOANLEDGER_NODE_URL, LOANLEDGER_DB_URL).

Config file: $LOANLEDGER_CONFIG, else <data dir>/loanledger.toml; keys are the lower-case names of
the fields below (e.g. `node_url = "http://10.0.0.5:8545"`).
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from ledger.manifest import ROOT

_ENV_PREFIX = "LOANLEDGER_"


@dataclass(frozen=True)
class Settings:
    home: Path = ROOT / "var"                # data directory: chain state, SQLite, keys, logs
    network: str = "local"                   # names the deployment manifest deployments/<network>.json
    node_url: str = "http://127.0.0.1:8545"
    node_port: int = 8545                    # port of the embedded anvil (`loanledger node start`)
    poa: bool = False                        # Besu/GoQuorum QBFT chains need web3's ExtraDataToPOAMiddleware
    db_url: str = ""                         # default: sqlite:///<home>/loanledger.db
    manifest: str = ""                       # default: deployments/<network>.json
    kek_file: str = ""                       # key-encryption keys of the PII vault; default <home>/keys/kek.json
    keystore_dir: str = ""                   # encrypted signer keystores; default <home>/keystore
    tx_timeout: float = 30.0                 # seconds to wait for a receipt
    # The API (api/):
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_domain: str = ""                     # the host:port clients sign in to (SIWE domain); default host:port
    jwt_secret_file: str = ""                # default <home>/keys/jwt.secret (created on first start)
    token_minutes: int = 15                  # lifetime of a sign-in token
    auditors: str = ""                       # comma-separated addresses admitted as auditors besides the store's list
    auto_register: bool = True               # register a borrower on-chain as soon as KYC is verified
    sms_outbox: str = ""                     # development SMS sender's outbox; default <home>/sms-outbox.jsonl
    rate_limit_storage: str = "memory://"    # `limits` storage URI; redis://... when several API processes run
    index_wait: float = 10.0                 # seconds a write waits for the indexer to reach its block
    auto_approve: bool = False               # initial automatic approval policy (operators switch it at run time)
    rail_url: str = "http://127.0.0.1:8700"  # the payment rail (stand-in: `loanledger rail`)
    # Payment providers by name: TOML tables [payment_providers.<name>] {kind, url, key_file, secret_env, ...},
    # or LOANLEDGER_PAYMENT_PROVIDERS as JSON; none: the stand-in at rail_url (oracle/payments/config.py).
    payment_providers: dict = field(default_factory=dict)
    payout_provider: str = ""                # which of them orders payouts; default the first with a url
    oracle_url: str = "http://127.0.0.1:8600"  # the oracle service (`loanledger oracle run`)
    bureau_url: str = "http://127.0.0.1:8800"  # the credit bureau (stand-in: `loanledger bureau`)
    anchor_interval: float = 60.0            # seconds between action-log anchors the API writes; 0: never
    dev_login: bool = False                  # POST /v1/auth/dev-login (dashboard, loopback clients only): never in production

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.home / 'loanledger.db'}"

    @property
    def manifest_path(self) -> Path:
        if self.manifest:
            return Path(self.manifest)
        # The local chain lives in the data directory, so its manifest does too; real networks' are committed.
        if self.network == "local":
            return self.home / "deployments" / "local.json"
        return ROOT / "deployments" / f"{self.network}.json"

    @property
    def kek_path(self) -> Path:
        return Path(self.kek_file) if self.kek_file else self.home / "keys" / "kek.json"

    @property
    def siwe_domain(self) -> str:
        return self.api_domain or f"{self.api_host}:{self.api_port}"

    @property
    def jwt_secret_path(self) -> Path:
        return Path(self.jwt_secret_file) if self.jwt_secret_file else self.home / "keys" / "jwt.secret"

    @property
    def sms_outbox_path(self) -> Path:
        return Path(self.sms_outbox) if self.sms_outbox else self.home / "sms-outbox.jsonl"

    @property
    def keystore_path(self) -> Path:
        return Path(self.keystore_dir) if self.keystore_dir else self.home / "keystore"


def _coerce(kind: type | str, value):
    kind = {"Path": Path, "str": str, "int": int, "float": float, "bool": bool}.get(kind, kind) if isinstance(kind, str) else kind
    if kind == "dict":  # a table: TOML gives a dict, the environment JSON
        return value if isinstance(value, dict) else json.loads(value)
    if kind is bool and isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return kind(value)


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Settings from `env` (default os.environ) over the config file over the defaults."""
    env = dict(os.environ if env is None else env)
    home = Path(env.get(f"{_ENV_PREFIX}HOME", Settings.home))
    config_file = Path(env.get(f"{_ENV_PREFIX}CONFIG", home / "loanledger.toml"))
    values: dict = {"home": home}
    if config_file.exists():
        values.update(tomllib.loads(config_file.read_text()))
    for f in fields(Settings):
        key = _ENV_PREFIX + f.name.upper()
        if key in env:
            values[f.name] = env[key]
    known = {f.name: f.type for f in fields(Settings)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown setting(s) in {config_file}: {', '.join(sorted(unknown))}")
    return Settings(**{k: _coerce(known[k], v) for k, v in values.items()})
