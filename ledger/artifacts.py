"""Compile the contracts with solc-js (through the bridge) and return their ABIs and bytecode.

The ABIs used anywhere in Python come from here: never written by hand.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import solcx

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / "contracts"
SOLC_VERSION = "0.8.37"
CACHE = ROOT / "build" / "artifacts.json"


def _sources() -> dict[str, dict]:
    return {str(p.relative_to(ROOT)): {"urls": [str(p.relative_to(ROOT))]} for p in sorted(CONTRACTS.rglob("*.sol"))}


# 10,000 runs would save under 1,000 gas a repayment and bring LoanBook within 1 KiB of the size limit.
SETTINGS = {"optimizer": {"enabled": True, "runs": 200}, "viaIR": True, "evmVersion": "cancun"}


# A contract that runs another's code on its own storage for every call it does not implement (its fallback
# delegates): its address answers both, so its ABI is both. LoanBook creates its extension itself.
DELEGATED = {"LoanBook": "LoanBookExtension"}


def with_extension(abi: list[dict], extension_abi: list[dict]) -> list[dict]:
    """`abi` plus the extension's functions it does not have itself (events and errors are shared already)."""
    def signature(item: dict) -> str:
        return f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
    own = {signature(i) for i in abi if i["type"] == "function"}
    return abi + [i for i in extension_abi if i["type"] == "function" and signature(i) not in own]


def source_hash() -> str:
    """Hash of every contract source and the compiler settings: what the artifacts cache is keyed by."""
    digest = hashlib.sha256(json.dumps(SETTINGS, sort_keys=True).encode())
    for path in sorted(CONTRACTS.rglob("*.sol")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def standard_input(outputs: tuple[str, ...] = ("abi", "evm.bytecode.object"), ast: bool = False) -> dict:
    """The compiler's standard-JSON input for every contract: one definition for us and for Slither."""
    return {
        "language": "Solidity",
        "sources": _sources(),
        "settings": {
            **SETTINGS,
            "remappings": ["@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/"],
            "outputSelection": {"*": {"*": list(outputs), **({"": ["ast"]} if ast else {})}},
        },
    }


def compile_contracts() -> dict[str, dict]:
    """{contract name: {"abi": [...], "bytecode": "0x..."}}, cached by source hash."""
    wanted = source_hash()
    if CACHE.exists():
        cached = json.loads(CACHE.read_text())
        if cached.get("source_hash") == wanted:
            return cached["contracts"]
    os.environ.setdefault("SOLCX_BINARY_PATH", str(ROOT / ".venv" / "solcx"))
    output = solcx.compile_standard(standard_input(), solc_version=SOLC_VERSION, allow_paths=[str(ROOT)], base_path=str(ROOT))
    contracts = {
        name: {"abi": c["abi"], "bytecode": "0x" + c["evm"]["bytecode"]["object"]}
        for path, units in output["contracts"].items()
        if path.startswith("contracts/")
        for name, c in units.items()
        if c["evm"]["bytecode"]["object"]
    }
    for name, extension in DELEGATED.items():
        contracts[name]["abi"] = with_extension(contracts[name]["abi"], contracts[extension]["abi"])
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    # Atomic replace: parallel test runs may compile at the same time.
    tmp = CACHE.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"source_hash": wanted, "compiler": SOLC_VERSION, "contracts": contracts}))
    os.replace(tmp, CACHE)
    return contracts


if __name__ == "__main__":
    # `python -m ledger.artifacts FILE`: writes the standard-JSON input (Slither reads it).
    import sys

    everything = ("abi", "metadata", "devdoc", "userdoc", "evm.bytecode", "evm.deployedBytecode")
    Path(sys.argv[1]).write_text(json.dumps(standard_input(everything, ast=True), indent=1))
