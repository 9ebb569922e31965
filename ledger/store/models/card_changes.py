"""A registered borrower's bank-card change waiting for the bank's code (issue 17).

The new card is held sealed by the vault (as a KYC application is) until the bank confirms the code it texted to the
card's reserved phone; only then does the vault's record change. One pending change per wallet: a new start replaces
it. Kept apart from `kyc_applications`, whose rows are the verification states `GET /v1/kyc` shows: a card change in
progress leaves the borrower registered, with the old card bound, until it is confirmed.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.base import Base


class CardChange(Base):
    __tablename__ = "card_changes"

    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)  # the record with the new card, sealed by the vault
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
