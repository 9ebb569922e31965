"""The FastAPI service: borrowers (wallet-backed), auditors (read and verify), operators (act)."""
