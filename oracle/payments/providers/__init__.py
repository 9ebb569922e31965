"""Payment provider adapters, one module per kind; `KINDS` names them as the settings do."""

from __future__ import annotations

from oracle.payments.providers.hmac_json import HmacJsonProvider
from oracle.payments.providers.standin import StandinProvider

KINDS = {StandinProvider.kind: StandinProvider, HmacJsonProvider.kind: HmacJsonProvider}

__all__ = ["KINDS", "HmacJsonProvider", "StandinProvider"]
