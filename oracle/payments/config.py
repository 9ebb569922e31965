"""Payment providers from the settings: which ones exist, how to reach them, which keys verify their webhooks.

In the config file, one table per provider (the table's name is the provider's name, which scopes its
references on-chain, so it must never change once payments were credited):

    payout_provider = "mockpay"            # which provider orders payouts; default: the first with a URL

    [payment_providers.mockpay]
    kind = "standin"                       # the rail stand-in's layout (oracle.payments.providers.standin)
    url = "http://127.0.0.1:8700"          # default for "standin": the `rail_url` setting
    key_file = "/etc/loanledger/mockpay.pem"  # RSA public key; default <home>/keys/rail.pem

    [payment_providers.tradepay]
    kind = "hmac_json"                     # Standard Webhooks over a trade payload (providers.hmac_json)
    url = "https://api.tradepay.example"
    secret_env = "TRADEPAY_WEBHOOK_SECRET" # secrets are named by environment variable, never written here
    api_key_env = "TRADEPAY_API_KEY"

In the environment, the same as JSON: LOANLEDGER_PAYMENT_PROVIDERS='{"tradepay": {"kind": "hmac_json", ...}}'.
With no provider configured, the one provider is the rail stand-in "mockpay" at `rail_url`, trusting the
key the stand-in keeps in <home>/keys/rail.pem, so `make demo` needs no configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ledger.config import Settings
from ledger.errors import LoanLedgerError
from oracle.payments.inbound import first_error
from oracle.payments.provider import PaymentProvider, ProviderApi
from oracle.payments.providers import HmacJsonProvider, StandinProvider
from oracle.payments.providers.hmac_json import secret_bytes
from oracle.payments.signatures import HmacScheme, RsaScheme, Scheme

STANDIN_PROVIDER = "mockpay"  # the name the rail stand-in (`loanledger rail`) signs as
LEGACY_PROVIDERS_ENV = "LOANLEDGER_WEBHOOK_PROVIDERS"  # NAME=rsa:PEM_FILE,NAME=hmac:ENV_VAR (stand-in layout)


class ProviderConfigError(LoanLedgerError):
    """A payment provider entry that cannot be used."""


class ProviderSettings(BaseModel):
    """One `[payment_providers.<name>]` table."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["standin", "hmac_json"]
    url: str | None = Field(None, description="base URL of the provider's API for orders")
    signature: Literal["rsa", "hmac"] = Field("rsa", description="standin only: how its webhooks are signed")
    key_file: str | None = Field(None, description="RSA public key (PEM) verifying the webhooks")
    secret_env: str | None = Field(None, description="environment variable holding the webhook secret (HMAC)")
    api_key_env: str | None = Field(None, description="environment variable holding the API key for orders")
    timeout: float = Field(10.0, gt=0, description="seconds an order may take")


def rail_key_path(home: Path) -> Path:
    """Where the rail stand-in keeps its RSA key; the oracle trusts its public half by default."""
    return home / "keys" / "rail.pem"


def provider_settings(settings: Settings) -> dict[str, ProviderSettings]:
    """The configured providers by name; the rail stand-in at `rail_url` when none is."""
    configured = settings.payment_providers
    if not configured:
        return {STANDIN_PROVIDER: ProviderSettings(kind="standin", url=settings.rail_url)}
    entries = {}
    for name, table in configured.items():
        try:
            entry = ProviderSettings.model_validate(table)
        except ValidationError as exc:
            raise ProviderConfigError(f"payment provider {name}: {first_error(exc)}") from None
        if entry.kind == "standin" and entry.url is None:
            entry = entry.model_copy(update={"url": settings.rail_url})
        entries[name] = entry
    return entries


def build_provider(name: str, entry: ProviderSettings, home: Path, env: Mapping[str, str], *,
                   webhooks: bool) -> PaymentProvider:
    """The adapter; its webhook key is read only when `webhooks` (ordering payouts needs none)."""
    api_key = _env_secret(name, entry.api_key_env, env) if entry.api_key_env else None
    api = ProviderApi(name, entry.url, api_key=api_key, timeout=entry.timeout)
    if entry.kind == "hmac_json":
        secret = secret_bytes(_env_secret(name, entry.secret_env, env)) if webhooks else None
        return HmacJsonProvider(name, secret, api)
    scheme: Scheme | None = None
    if webhooks:
        if entry.signature == "hmac":
            scheme = HmacScheme(_env_secret(name, entry.secret_env, env).encode())
        elif entry.key_file is not None:
            scheme = _rsa_public_key(name, Path(entry.key_file).expanduser())
        elif rail_key_path(home).exists():  # the stand-in's own key, once it has made one
            scheme = _rsa_public_key(name, rail_key_path(home))
    return StandinProvider(name, scheme, api)


def load_providers(settings: Settings, env: Mapping[str, str], *, webhooks: bool) -> dict[str, PaymentProvider]:
    """Every configured provider; with `webhooks`, only those that can verify a webhook."""
    providers = {name: build_provider(name, entry, settings.home, env, webhooks=webhooks)
                 for name, entry in provider_settings(settings).items()}
    return {n: p for n, p in providers.items() if p.verifies_webhooks} if webhooks else providers


def payout_provider(settings: Settings, env: Mapping[str, str]) -> PaymentProvider:
    """The provider that orders payouts: `payout_provider`, else the first configured with a URL."""
    entries = provider_settings(settings)
    name = settings.payout_provider or next((n for n, e in entries.items() if e.url), "")
    if name not in entries:
        raise ProviderConfigError(f"no payment provider named {name!r} can order payouts: configure one with a url")
    return build_provider(name, entries[name], settings.home, env, webhooks=False)


def webhook_providers(settings: Settings, env: Mapping[str, str],
                      entries: list[str] | None = None) -> dict[str, PaymentProvider]:
    """The providers whose webhooks the oracle accepts.

    `NAME=rsa:PEM_FILE` / `NAME=hmac:ENV_VAR` entries (the oracle's --provider, or LOANLEDGER_WEBHOOK_PROVIDERS
    when no `payment_providers` are configured) name stand-in-layout providers, as before the settings did.
    """
    if entries:
        return parse_provider_entries(entries, env)
    legacy = env.get(LEGACY_PROVIDERS_ENV, "")
    if not settings.payment_providers and legacy.strip():
        return parse_provider_entries([e.strip() for e in legacy.split(",") if e.strip()], env)
    return load_providers(settings, env, webhooks=True)


def parse_provider_entries(entries: list[str], env: Mapping[str, str]) -> dict[str, PaymentProvider]:
    """Stand-in-layout providers from `NAME=rsa:PEM_FILE` or `NAME=hmac:ENV_VAR` entries.

    An RSA entry reads a PEM file (public key, or the rail stand-in's private key of which only the public
    half is kept). An HMAC secret is read from the named environment variable, so it never appears in a
    command line or a process listing.
    """
    providers: dict[str, PaymentProvider] = {}
    for entry in entries:
        name, _, spec = entry.partition("=")
        kind, _, value = spec.partition(":")
        name = name.strip()
        if not name or not value or kind not in ("rsa", "hmac"):
            raise ProviderConfigError(f"provider {entry!r} is not NAME=rsa:PEM_FILE or NAME=hmac:ENV_VAR")
        scheme = (_rsa_public_key(name, Path(value).expanduser()) if kind == "rsa"
                  else HmacScheme(_env_secret(name, value, env).encode()))
        providers[name] = StandinProvider(name, scheme)
    return providers


def _rsa_public_key(name: str, path: Path) -> RsaScheme:
    if not path.is_file():
        raise ProviderConfigError(f"provider {name}: no key file at {path}")
    try:
        loaded = RsaScheme.from_pem(path.read_bytes())
    except ValueError as exc:
        raise ProviderConfigError(f"provider {name}: {path} is not an RSA key: {exc}") from None
    return RsaScheme(public_key=loaded.public_key)  # verifying needs nothing more


def _env_secret(name: str, variable: str | None, env: Mapping[str, str]) -> str:
    if not variable:
        raise ProviderConfigError(f"provider {name}: name the environment variable holding its secret")
    secret = env.get(variable)
    if not secret:
        raise ProviderConfigError(f"provider {name}: the environment variable {variable} is not set")
    return secret
