"""Train the scorecard: weight-of-evidence bins, logistic regression, points (scorecardpy + scikit-learn).

Needs the `train` extra (`pip install -e ".[train]"`). The German Credit data set (UCI Statlog, 1,000
applicants) ships inside scorecardpy, so nothing is downloaded. The output is a small JSON file of bins
and points that `oracle.scoring.scorecard` reads with no data-science dependency at all.

Attributes that a lender may not score on are dropped before training: sex and marital status, foreign
worker status and age (protected characteristics under most consumer-credit rules).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oracle.scoring.scorecard import MODELS, Scorecard

TARGET = "creditability"
EXCLUDED = ("personal_status_and_sex", "foreign_worker", "age_in_years")
# The points scale: 600 points at odds of 19 good to 1 bad, 50 points to double the odds (industry custom).
POINTS0, ODDS0, PDO = 600, 1 / 19, 50


@dataclass(frozen=True)
class TrainingResult:
    model: dict[str, Any]
    auc: float
    ks: float
    gini: float

    @property
    def metrics(self) -> dict[str, float]:
        return {"auc": round(self.auc, 4), "ks": round(self.ks, 4), "gini": round(self.gini, 4)}


def _bins_of(frame) -> list[dict[str, Any]]:
    """scorecardpy's card rows for one variable -> explicit numeric ranges or category sets."""
    bins = []
    for label, points in zip(frame["bin"], frame["points"]):
        label = str(label)
        if label.startswith("[") and label.endswith(")") and "," in label:
            low, high = label[1:-1].split(",")
            bins.append({"low": None if low == "-inf" else float(low),
                         "high": None if high == "inf" else float(high), "points": int(points)})
        else:
            bins.append({"categories": label.split("%,%"), "points": int(points)})
    return bins


def train(*, seed: int = 20261124, test_size: float = 0.3, version: int = 1) -> TrainingResult:
    """Train on a stratified split with a fixed seed and score the held-out part."""
    # scorecardpy prints progress on stdout; keep stdout for the result (`--json`).
    with contextlib.redirect_stdout(sys.stderr):
        return _train(seed=seed, test_size=test_size, version=version)


def _train(*, seed: int, test_size: float, version: int) -> TrainingResult:
    import scorecardpy as sc
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score, roc_curve
    from sklearn.model_selection import train_test_split

    warnings.filterwarnings("ignore")
    data = sc.germancredit()
    data[TARGET] = (data[TARGET] == "bad").astype(int)
    data = data.drop(columns=list(EXCLUDED))
    train_set, test_set = train_test_split(data, test_size=test_size, stratify=data[TARGET], random_state=seed)
    train_set = sc.var_filter(train_set, y=TARGET)
    # Coarse bins (each at least 10% of applicants, at most 5 per attribute) keep the card explainable.
    bins = sc.woebin(train_set, y=TARGET, count_distr_limit=0.1, bin_num_limit=5, print_info=False)
    train_woe = sc.woebin_ply(train_set, bins, print_info=False)
    features = [c for c in train_woe.columns if c != TARGET]
    model = LogisticRegression(max_iter=5000, random_state=seed).fit(train_woe[features], train_woe[TARGET])
    card = sc.scorecard(bins, model, features, points0=POINTS0, odds0=ODDS0, pdo=PDO)

    attributes = {name: _bins_of(frame) for name, frame in card.items() if name != "basepoints"}
    base = int(card["basepoints"]["points"].iloc[0])
    scorecard = Scorecard(version=version, base_points=base, attributes=attributes)
    held_out = test_set.to_dict("records")
    scores = [scorecard.score(row).score for row in held_out]
    bad = [row[TARGET] for row in held_out]
    risk = [-s for s in scores]  # a lower score means more risk
    auc = roc_auc_score(bad, risk)
    fpr, tpr, _ = roc_curve(bad, risk)
    ks = float(max(tpr - fpr))
    # The reference scores let tests prove the runtime scorer and scorecardpy agree, without pandas.
    reference = sc.scorecard_ply(test_set.head(50), card, only_total_score=True, print_step=0)["score"].tolist()
    csv = Path(sc.__file__).parent / "data" / "germancredit.csv"
    document = {
        "format": "loanledger-scorecard/1",
        "version": version,
        "base_points": base,
        "scale": {"points0": POINTS0, "odds0": ODDS0, "pdo": PDO},
        "attributes": attributes,
        "excluded": list(EXCLUDED),
        "training": {
            "data": "German Credit (UCI Statlog), scorecardpy/data/germancredit.csv",
            "data_sha256": hashlib.sha256(csv.read_bytes()).hexdigest() if csv.exists() else None,
            "seed": seed, "test_size": test_size, "held_out": len(held_out),
            "metrics": {"auc": round(auc, 4), "ks": round(ks, 4), "gini": round(2 * auc - 1, 4)},
        },
        "reference": [{"applicant": {k: _plain(v) for k, v in row.items() if k != TARGET}, "score": int(s)}
                      for row, s in zip(held_out[:50], reference)],
    }
    return TrainingResult(model=document, auc=auc, ks=ks, gini=2 * auc - 1)


def _plain(value: Any) -> Any:
    """numpy scalars -> int/float/str for JSON."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def write_model(result: TrainingResult, directory: Path = MODELS) -> Path:
    path = directory / f"scorecard-v{result.model['version']}.json"
    path.write_text(json.dumps(result.model, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    return path
