"""How bytes are written as text everywhere in LoanLedger: lower-case 0x-hex.

Transaction and block hashes, payment references, commitments, raw transactions and selectors all go
through `to_0x_hex`, whatever web3 handed over (HexBytes, bytes or an already-hex string).
"""

from __future__ import annotations


def to_0x_hex(value: bytes | bytearray | memoryview | str) -> str:
    """`value` as lower-case 0x-hex; a str is taken to be hex already (with or without its 0x)."""
    if isinstance(value, str):
        return "0x" + value.lower().removeprefix("0x")
    return "0x" + bytes(value).hex()
