"""Pushing scores and limits on-chain: one EIP-712 report per batch, signed by a quorum of score signers.

The report id is the replay guard: the contract accepts only ids above its `lastReportId`, so the next
id is read from the chain each time instead of being remembered here (two oracle processes, or one
restarted, can never reuse an id; the loser of a race gets OracleStaleReport and simply retries).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from ledger import typed_data
from ledger.encoding import to_0x_hex
from ledger.errors import ContractRevert

MAX_SCORE = 2**16 - 1
MAX_LIMIT = 2**96 - 1
MAX_BATCH = 200  # bounded so a report always fits a block


@dataclass(frozen=True)
class ScoreUpdate:
    borrower: str
    score: int
    credit_limit: int  # minor units

    def as_tuple(self) -> tuple[str, int, int]:
        if not 0 <= self.score <= MAX_SCORE or not 0 <= self.credit_limit <= MAX_LIMIT:
            raise ValueError(f"score {self.score} or limit {self.credit_limit} out of the contract's range")
        return self.borrower, self.score, self.credit_limit


@dataclass(frozen=True)
class PushedReport:
    report_id: int
    count: int
    tx_hash: str
    block_number: int
    gas_used: int
    borrowers: tuple[str, ...] = ()  # in report order


class ScorePusher:
    def __init__(self, credit_oracle: Contract, transact: Callable[[Any], Any], signers: Sequence[LocalAccount],
                 model_version: int):
        if not signers:
            raise ValueError("at least one score signer is needed")
        self.contract, self.transact, self.model_version = credit_oracle, transact, model_version
        # The contract wants distinct signers in ascending address order.
        self.signers = sorted(signers, key=lambda s: int(s.address, 16))

    def push(self, updates: Sequence[ScoreUpdate], *, attempts: int = 3) -> list[PushedReport]:
        """Pushes `updates` in reports of at most MAX_BATCH entries; returns one record per report."""
        pushed = []
        for start in range(0, len(updates), MAX_BATCH):
            pushed.append(self._push_one([u.as_tuple() for u in updates[start:start + MAX_BATCH]], attempts))
        return pushed

    def _push_one(self, entries: list[tuple[str, int, int]], attempts: int) -> PushedReport:
        w3 = self.contract.w3
        for attempt in range(attempts):
            report_id = self.contract.functions.lastReportId().call() + 1
            message = typed_data.score_report(chain_id=w3.eth.chain_id, oracle=self.contract.address,
                                              report_id=report_id, model_version=self.model_version,
                                              updates=entries)
            signatures = [typed_data.sign(signer.key, message) for signer in self.signers]
            try:
                receipt = self.transact(self.contract.functions.pushScores(
                    report_id, self.model_version, entries, signatures))
            except ContractRevert as exc:
                if exc.name == "OracleStaleReport" and attempt + 1 < attempts:
                    continue  # another pusher took this id first
                raise
            return PushedReport(report_id=report_id, count=len(entries),
                                tx_hash=to_0x_hex(receipt["transactionHash"]),
                                block_number=receipt["blockNumber"], gas_used=receipt["gasUsed"],
                                borrowers=tuple(entry[0] for entry in entries))
        raise AssertionError("unreachable")
