"""The Python client (SDK) of the LoanLedger API: imports nothing of the server, so a borrower's program
needs only httpx, eth_account, pydantic and siwe."""

from api.client.client import ApiError, DecisionDeclined, LoanLedgerClient, load_wallet

__all__ = ["ApiError", "DecisionDeclined", "LoanLedgerClient", "load_wallet"]
