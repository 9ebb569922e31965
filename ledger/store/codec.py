"""ABI values <-> JSON: how decoded event arguments and view results are stored and compared.

Integers stay integers (JSON has no size limit and both backends keep them exact), bytes and
hashes become 0x-hex, addresses checksummed strings, structs objects keyed by component name.
The same function normalises a stored event and a fresh log, so comparing them is plain `==`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eth_utils import to_checksum_address

from ledger.encoding import to_0x_hex


def to_json(value: Any, param: dict) -> Any:
    """`value` as decoded by web3 for the ABI parameter `param`, as a JSON-able value."""
    kind: str = param["type"]
    if kind.endswith("]"):
        inner = {**param, "type": kind[: kind.rindex("[")]}
        return [to_json(v, inner) for v in value]
    if kind == "tuple":
        components = param["components"]
        if isinstance(value, Mapping):
            return {c["name"]: to_json(value[c["name"]], c) for c in components}
        return {c["name"]: to_json(v, c) for c, v in zip(components, value, strict=True)}
    if kind == "address":
        return to_checksum_address(value)
    if kind.startswith("bytes"):
        return to_0x_hex(value)
    if kind == "bool":
        return bool(value)
    if kind.startswith(("uint", "int")):
        return int(value)
    return value  # string


def args_to_json(args: dict, inputs: list[dict]) -> dict[str, Any]:
    """Decoded event arguments (web3's AttributeDict) as a JSON object, in ABI order."""
    return {p["name"]: to_json(args[p["name"]], p) for p in inputs}

