"""Settings for every LoanLedger process: environment first, then a TOML file, then embedded defaults.

The defaults are the single-machine stack `make demo` runs: a local anvil on 127.0.0.1:8545 whose state
lives in the data directory, SQLite in the data directory, keys in the data directory. Pointing at an
external node or PostgreSQL is a configuration change only (LOANLEDGER_NODE_URL, LOANLEDGER_DB_URL).

Sources, highest first (pydantic-settings):
- keyword arguments, when `Settings(...)` is built directly (tests);
- the environment: `LOANLEDGER_<FIELD>` (upper-case field name); an empty variable counts as unset;
- the config file: $LOANLEDGER_CONFIG, else <home>/loanledger.toml, where <home> is LOANLEDGER_HOME or
  its default; keys are the lower-case field names (e.g. `node_url = "http://10.0.0.5:8545"`), and a key
  that names no setting is refused;
- the defaults below.

`load_settings()` reads the process environment; `load_settings(env)` reads `env` instead of it, never
both (the supervisor and the tests build settings for a child process that way). Secrets are `SecretStr`
(repr and logs show asterisks). Secrets whose variable name is not fixed (a signer's
`LOANLEDGER_<NAME>_KEY`, an HMAC provider's variable) are read from the same environment the settings
were loaded from: `Settings.signer_secrets(name)` and `Settings.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)
from pydantic_settings.sources.utils import parse_env_vars

from ledger.manifest import ROOT

ENV_PREFIX = "LOANLEDGER_"
CONFIG_ENV = f"{ENV_PREFIX}CONFIG"  # the config file's path; an environment variable only
CONFIG_FILE_NAME = "loanledger.toml"

# The environment a `load_settings(env)` call reads instead of os.environ, for the duration of that call:
# pydantic-settings builds its sources in a classmethod, which has no other way to receive it.
_explicit_environ: ContextVar[Mapping[str, str] | None] = ContextVar("loanledger_environ", default=None)


def _environ() -> Mapping[str, str]:
    explicit = _explicit_environ.get()
    return dict(os.environ) if explicit is None else explicit


class _Environment(EnvSettingsSource):
    """`LOANLEDGER_*` variables from a given mapping (os.environ or an explicit env), never both."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        self._mapping = environ  # read by _load_env_vars, which the parent's __init__ calls
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._mapping, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


class _ConfigFile(TomlConfigSettingsSource):
    """The TOML config file (absent: no values); a key that names no setting is an error naming the file."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path):
        super().__init__(settings_cls, toml_file=path)
        unknown = set(self.toml_data) - set(settings_cls.model_fields)
        if unknown:
            raise SettingsError(f"unknown setting(s) in {path}: {', '.join(sorted(unknown))}")


def config_file(environ: Mapping[str, str], home: Path | str | None = None) -> Path:
    """$LOANLEDGER_CONFIG, else <home>/loanledger.toml (home: given, else LOANLEDGER_HOME, else the default)."""
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    if home is None:
        home = environ.get(f"{ENV_PREFIX}HOME") or Settings.model_fields["home"].default
    return Path(home) / CONFIG_FILE_NAME


class SignerSecrets(BaseModel):
    """What unlocks the signer called NAME, from the environment only (never the config file).

    `LOANLEDGER_<NAME>_KEY`: a hex private key (development). Otherwise the keystore <keystore dir>/<name>.json
    is unlocked with `LOANLEDGER_<NAME>_PASSPHRASE`, else the shared `LOANLEDGER_KEYSTORE_PASSPHRASE`, else
    the file named by `LOANLEDGER_<NAME>_PASSPHRASE_FILE`.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    key: SecretStr | None = None
    passphrase: SecretStr | None = None
    passphrase_file: Path | None = None

    @classmethod
    def from_environ(cls, name: str, environ: Mapping[str, str]) -> SignerSecrets:
        prefix = f"{ENV_PREFIX}{name.upper()}_"

        def value(variable: str) -> str | None:
            return environ.get(variable) or None  # empty means unset, as for every setting

        return cls(name=name, key=value(f"{prefix}KEY"),
                   passphrase=value(f"{prefix}PASSPHRASE") or value(f"{ENV_PREFIX}KEYSTORE_PASSPHRASE"),
                   passphrase_file=value(f"{prefix}PASSPHRASE_FILE"))

    def variable(self, suffix: str) -> str:
        """The environment variable of this signer's `suffix` (KEY, PASSPHRASE, PASSPHRASE_FILE), for messages."""
        return f"{ENV_PREFIX}{self.name.upper()}_{suffix}"


class Settings(BaseSettings):
    """Every setting, frozen. `Settings(...)` reads the process environment and the config file like any
    pydantic-settings class, its keyword arguments winning; processes call `load_settings()`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="forbid", frozen=True)

    home: Path = ROOT / "var"                # data directory: chain state, SQLite, keys, logs
    network: str = "local"                   # names the deployment manifest deployments/<network>.json
    node_url: str = "http://127.0.0.1:8545"
    node_port: int = 8545                    # port of the embedded anvil (`loanledger node start`)
    poa: bool = False                        # Besu/GoQuorum QBFT chains need web3's ExtraDataToPOAMiddleware
    db_url: str = ""                         # default: sqlite:///<home>/loanledger.db
    manifest: str = ""                       # default: deployments/<network>.json
    kek_file: str = ""                       # key-encryption keys of the PII vault; default <home>/keys/kek.json
    kek: SecretStr | None = None             # the KEKs themselves instead of the file: base64, or "1:<b64>,2:<b64>"
    keystore_dir: str = ""                   # encrypted signer keystores; default <home>/keystore
    tx_timeout: float = 30.0                 # seconds to wait for a receipt
    node_timeout: float = 3.0                # seconds one call to the node may take (a hung node: 503 fast)
    index_max_lag: int = 20                  # blocks the indexer may be behind the node's head while /readyz says ready
    index_max_silence: float = 60.0          # seconds since the indexer's last round (its heartbeat) while /readyz says ready
    # The API (api/):
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_domain: str = ""                     # the host:port clients sign in to (SIWE domain); default host:port
    jwt_secret_file: str = ""                # default <home>/keys/jwt.secret (created on first start)
    jwt_secret: SecretStr | None = None      # the sign-in token key itself instead of the file
    token_minutes: int = 15                  # lifetime of a sign-in token
    auditors: str = ""                       # comma-separated addresses admitted as auditors besides the store's list
    auto_register: bool = True               # register a borrower on-chain (by the oracle) once KYC is verified
    # Actions that need a fresh step-up code (api/stepup.py ACTIONS; comma-separated; default all); the API warns
    # at start about each one left out.
    step_up_actions: str = "apply,phone_change,card_change,debit_mandate,reschedule_request,reschedule_accept"
    kyc_expiring_days: int = Field(30, ge=0)  # GET /v1/kyc says `expiring` this many days before kycExpiresAt
    kyc_renewal_days: int = Field(30, ge=0)   # a registered borrower may renew KYC this many days before it expires
    # A wallet recovery waits for an operator when the lost wallet owes more principal than this (minor units).
    recovery_review_principal: int = Field(0, ge=0)
    sms_outbox: str = ""                     # development SMS sender's outbox; default <home>/sms-outbox.jsonl
    # The SMS provider codes and notices go through (api/sms.py; docs/operator.md "Notices"): "outbox" appends to
    # sms_outbox (development), "http" POSTs the documented JSON payload to sms_url with sms_api_key as bearer token.
    sms_provider: Literal["outbox", "http"] = "outbox"
    sms_url: str = ""
    sms_api_key: SecretStr | None = None
    sms_timeout: float = Field(5.0, gt=0)    # seconds one call to the provider may take
    sms_sender_id: str = "LoanLedger"        # the sender name the provider shows
    # The API's notice sender (api/notices/sender.py): renders the risk monitor's notices and sends them.
    notice_interval: float = 30.0            # seconds between its rounds; 0: only when asked (tests)
    notice_max_attempts: int = Field(5, ge=1)  # a notice the provider failed this often is set aside
    notice_retry_after: float = Field(60.0, ge=0)  # first retry delay in seconds; doubles per attempt, at most 1 h
    rate_limit_storage: str = "memory://"    # `limits` storage URI; redis://... when several API processes run
    # What one borrower can make the lender pay gas for (each application is relayed at the lender's cost):
    applications_per_hour: int = Field(5, ge=1)  # relayed applications per borrower in any hour (moving window)
    open_applications: int = Field(3, ge=1)      # a borrower's loans in Requested or Approved (not yet paid out)
    index_wait: float = 10.0                 # seconds a write waits for the indexer to reach its block
    auto_approve: bool = False               # initial automatic approval policy (operators switch it at run time)
    rail_url: str = "http://127.0.0.1:8700"  # the payment rail (stand-in: `loanledger rail`)
    # Payment providers by name: TOML tables [payment_providers.<name>] {kind, url, key_file, secret_env, ...},
    # or LOANLEDGER_PAYMENT_PROVIDERS as JSON; none: the stand-in at rail_url (oracle/payments/config.py).
    payment_providers: dict[str, dict[str, Any]] = {}
    payout_provider: str = ""                # which of them orders payouts; default the first with a url
    oracle_url: str = "http://127.0.0.1:8600"  # the oracle service (`loanledger oracle run`)
    bureau_url: str = "http://127.0.0.1:8800"  # the credit bureau (stand-in: `loanledger bureau`)
    anchor_interval: float = 60.0            # seconds between action-log anchors the oracle writes; 0: never
    credit_refund_interval: float = 0.0      # seconds between the automatic policy's credit refund rounds; 0: operators refund
    dev_login: bool = False                  # POST /v1/auth/dev-login, unsigned: loopback clients on chain 31337/1337 only
    # Tests only: exit the API once an application is mined, unanswered ("after_send"), or stop it (SIGSTOP, for the
    # test to SIGKILL) with the application claimed, before anything is sent ("stop_before_send").
    api_fault: Literal["", "after_send", "stop_before_send"] = ""
    # The oracle (oracle/):
    bureau_api_key: SecretStr | None = None  # the bureau's bearer key; default: one made once in <home>/keys/
    notify_secret: SecretStr | None = None   # HMAC key of the notices `oracle run --notify-webhook` posts
    outbox_fault: str = ""                   # tests only: "before_send"|"after_send"[:N] exits the worker there
    score_signers: int = Field(3, ge=0)      # score signer processes `loanledger run` starts: score_signer_1..N
    # Tests only: exit the policy process (`loanledger oracle policy`) once it approved a loan, before its payout is
    # ordered ("after_approve"), or stop it there (SIGSTOP, for the test to SIGKILL: "stop_after_approve").
    policy_fault: Literal["", "after_approve", "stop_after_approve"] = ""
    # The client commands (`loanledger wallet|login|kyc|apply|...`, on the user's machine):
    api_url: str = ""                        # the API they talk to; default http://<api_host>:<api_port>
    wallet_dir: str = ""                     # default <home>/wallets
    wallet_passphrase: SecretStr | None = None  # unlocks the wallet without a prompt (scripts)

    _environ: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _environ()
        # The file lives in the data directory, so its path depends on `home` from the sources above it.
        given = init_settings.init_kwargs if isinstance(init_settings, InitSettingsSource) else {}
        path = config_file(environ, given.get("home"))
        return init_settings, _Environment(settings_cls, environ), _ConfigFile(settings_cls, path)

    def model_post_init(self, context: Any, /) -> None:
        self._environ = dict(_environ())  # a copy: later changes to os.environ do not leak in

    @property
    def environ(self) -> Mapping[str, str]:
        """The environment these settings were read from (read-only), for variables whose names are configured."""
        return MappingProxyType(self._environ)

    def signer_secrets(self, name: str) -> SignerSecrets:
        return SignerSecrets.from_environ(name, self._environ)

    def configured_signers(self) -> list[str]:
        """The signers this configuration may hold (lower-case names, sorted): every `LOANLEDGER_<NAME>_KEY` of its
        environment that is not a setting (`bureau_api_key`), and every keystore file in the keystore directory.
        What a process could sign with: the test that the API holds no key with a role reads it."""
        names = {variable[len(ENV_PREFIX):-len("_KEY")].lower() for variable, value in self._environ.items()
                 if variable.startswith(ENV_PREFIX) and variable.endswith("_KEY") and value}
        names -= {field.removesuffix("_key") for field in type(self).model_fields if field.endswith("_key")}
        if self.keystore_path.is_dir():
            names |= {path.stem.lower() for path in self.keystore_path.glob("*.json")}
        return sorted(names)

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

    @property
    def api_base_url(self) -> str:
        return self.api_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def wallet_path(self) -> Path:
        return Path(self.wallet_dir) if self.wallet_dir else self.home / "wallets"


@contextmanager
def _reading(env: Mapping[str, str] | None) -> Iterator[None]:
    token = _explicit_environ.set(None if env is None else dict(env))
    try:
        yield
    finally:
        _explicit_environ.reset(token)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from `env` (default os.environ; an explicit env replaces it) over the config file over the defaults."""
    with _reading(env):
        return Settings()
