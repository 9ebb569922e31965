"""Reconciliation for the API: the providers' settlement statements for a day against the ledger, on request.

A thin adapter over oracle.payments.reconcile.reconcile_day, what `loanledger rail reconcile` runs: the
statements are asked of the configured providers at the time of the request (nothing is persisted: the
oracle's scheduled run keeps only its figures, for its gauge), against the store the indexer fills.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from api.errors import ApiError
from oracle.payments.config import ProviderConfigError, load_providers
from oracle.payments.provider import ProviderError
from oracle.payments.reconcile import CSV_COLUMNS, Reconciliation, reconcile_day


class StatementUnavailable(ApiError):
    def __init__(self, error: str):
        super().__init__(503, "rail_unavailable", f"{error[:300]}; retry later")


@dataclass(frozen=True)
class Reports:
    day: date
    reports: list[Reconciliation]
    skipped: dict[str, str]  # provider: why (its adapter reads no statements)


def yesterday() -> date:
    """The day the oracle's scheduled run reconciles: the previous UTC day."""
    return datetime.now(UTC).date() - timedelta(days=1)


def as_csv(found: Reports) -> str:
    """Every report's rows under one header (the provider is a column), as `loanledger rail reconcile --csv`."""
    return ",".join(CSV_COLUMNS) + "\n" + "".join(r.as_csv().split("\n", 1)[1] for r in found.reports)


def reconcile(context, day: date, provider: str | None = None) -> Reports:
    """Every configured provider's statement for `day` (or only `provider`'s), reconciled against the ledger."""
    try:
        providers = load_providers(context.settings, context.env or context.settings.environ, webhooks=False)
    except ProviderConfigError as exc:
        raise ApiError(503, "provider_misconfigured", str(exc)) from None
    if provider is not None:
        if provider not in providers:
            raise ApiError(404, "not_found", f"no payment provider named {provider!r} is configured")
        providers = {provider: providers[provider]}
    try:
        reports, skipped = reconcile_day(providers, day, context.sessions)
    except ProviderError as exc:
        raise StatementUnavailable(str(exc)) from None
    return Reports(day, reports, skipped)
