"""The one path to the node: connecting, signing, nonces, fees, receipts, decoded reverts.

(Being built out: see issue 3. `connect` is stable and used by the CLI and services.)
"""

from __future__ import annotations

from web3 import Web3
from web3.middleware import ExtraDataToPOAMiddleware

from ledger.config import Settings
from ledger.errors import LoanLedgerError


class NodeUnavailable(LoanLedgerError):
    """The node did not answer (down, wrong URL, network)."""


def connect(settings: Settings | str, *, poa: bool | None = None, timeout: float = 10.0) -> Web3:
    """A Web3 connected to the configured node; raises NodeUnavailable with the URL when it does not answer."""
    url = settings if isinstance(settings, str) else settings.node_url
    poa = (False if isinstance(settings, str) else settings.poa) if poa is None else poa
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))
    if poa:
        # QBFT/IBFT (Besu, GoQuorum) put validator data in extraData, longer than mainnet's 32 bytes.
        w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    if not w3.is_connected():
        raise NodeUnavailable(f"no Ethereum node answers at {url} (start one with `loanledger node start`, "
                              f"or set LOANLEDGER_NODE_URL)")
    return w3
