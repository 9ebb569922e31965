"""The runtime scorecard: a base score plus the points of the bin each attribute falls in.

Plain Python over a versioned JSON file (oracle/scoring/models/scorecard-v<N>.json, written by
`loanledger oracle train`), so scoring needs no data-science dependency and every score can be
explained attribute by attribute.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.errors import LoanLedgerError

MODELS = Path(__file__).resolve().parent / "models"
CURRENT_VERSION = 1


class UnknownAttribute(LoanLedgerError, ValueError):
    """An applicant's attribute is missing or has a value no bin of the card covers."""

    def __init__(self, attribute: str, value: Any):
        self.attribute, self.value = attribute, value
        shown = "missing" if value is None else repr(value)
        super().__init__(f"{attribute}: {shown} is not covered by the scorecard")


@dataclass(frozen=True)
class ScoreBreakdown:
    score: int
    model_version: int
    points: dict[str, int] = field(default_factory=dict)  # attribute -> points it contributed


@dataclass(frozen=True)
class Scorecard:
    version: int
    base_points: int
    attributes: dict[str, list[dict[str, Any]]]

    def score(self, applicant: Mapping[str, Any]) -> ScoreBreakdown:
        points = {name: self._points(name, bins, applicant.get(name)) for name, bins in self.attributes.items()}
        return ScoreBreakdown(score=self.base_points + sum(points.values()), model_version=self.version, points=points)

    @staticmethod
    def _points(name: str, bins: list[dict[str, Any]], value: Any) -> int:
        for item in bins:
            if "categories" in item:
                if (value is None and "missing" in item["categories"]) or str(value) in item["categories"]:
                    return int(item["points"])
                continue
            if value is None or isinstance(value, bool):
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise UnknownAttribute(name, value) from None
            low, high = item["low"], item["high"]
            if (low is None or number >= low) and (high is None or number < high):
                return int(item["points"])
        raise UnknownAttribute(name, value)

    @property
    def inputs(self) -> list[str]:
        """The attributes an applicant record must carry."""
        return sorted(self.attributes)


def load_scorecard(version: int = CURRENT_VERSION, directory: Path = MODELS) -> Scorecard:
    document = json.loads((directory / f"scorecard-v{version}.json").read_text())
    if document.get("format") != "loanledger-scorecard/1":
        raise ValueError(f"scorecard-v{version}.json is not a loanledger scorecard")
    return Scorecard(version=document["version"], base_points=document["base_points"],
                     attributes=document["attributes"])
