"""Exceptions of the Python side, one root; reverts decoded into the contract's named custom errors."""

from __future__ import annotations

from typing import Any

from eth_abi import decode
from eth_utils import to_checksum_address
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types

from ledger.encoding import to_0x_hex


class LoanLedgerError(Exception):
    """Root of every error this package raises on purpose."""


class ContractRevert(LoanLedgerError):
    """A call or transaction reverted with one of the contracts' custom errors.

    `name` is the Solidity error name (e.g. "LoanBookStaleScore"), `arguments` its decoded arguments
    by parameter name (not `args`: Exception owns that attribute and resets it).
    """

    def __init__(self, name: str, arguments: dict[str, Any], selector: str):
        shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
        super().__init__(f"{name}({shown})")
        self.name, self.arguments, self.selector = name, arguments, selector


class ErrorDecoder:
    """Maps 4-byte selectors to the custom errors declared in a set of ABIs."""

    def __init__(self, abis: list[list[dict]]):
        self._errors: dict[str, dict] = {}
        for abi in abis:
            for item in abi:
                if item["type"] == "error":  # an error's selector is formed as a function's
                    self._errors[to_0x_hex(function_abi_to_4byte_selector(item))] = item

    def decode(self, revert_data: str | bytes) -> ContractRevert | None:
        """The named error for raw revert data, or None when the selector is not ours."""
        data = revert_data if isinstance(revert_data, bytes) else bytes.fromhex(revert_data.removeprefix("0x"))
        selector = to_0x_hex(data[:4])
        item = self._errors.get(selector)
        if item is None:
            return None
        values = decode(get_abi_input_types(item), data[4:])
        # Addresses checksummed, as web3 returns them everywhere else.
        arguments = {i["name"]: to_checksum_address(v) if i["type"] == "address" else v
                     for i, v in zip(item["inputs"], values)}
        return ContractRevert(item["name"], arguments, selector)

    def from_exception(self, exc: Exception) -> ContractRevert | None:
        """Decode web3's ContractCustomError (or anything carrying revert data in `.data`)."""
        data = getattr(exc, "data", None)
        if isinstance(data, (str, bytes)) and len(data) >= 10:
            return self.decode(data)
        return None
