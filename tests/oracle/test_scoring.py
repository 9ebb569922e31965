"""The scorecard: reproducible from its training script, agreeing with scorecardpy, and explainable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from oracle.scoring import UnknownAttribute, load_scorecard
from oracle.scoring.limits import RepaymentHistory, credit_limit
from oracle.scoring.scorecard import MODELS

COMMITTED = json.loads((MODELS / "scorecard-v1.json").read_text())
LOANLEDGER = Path(sys.executable).with_name("loanledger")


@pytest.fixture(scope="module")
def retrained(tmp_path_factory) -> tuple[dict, dict]:
    """`loanledger oracle train --json` run for real, into a temporary folder."""
    out = tmp_path_factory.mktemp("model")
    done = subprocess.run([str(LOANLEDGER), "oracle", "train", "--json", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout), json.loads((out / "scorecard-v1.json").read_text())


def test_training_reaches_the_published_range_and_prints_json(retrained):
    metrics, _ = retrained
    assert set(metrics) == {"auc", "ks", "gini"}
    assert 0.77 <= metrics["auc"] <= 0.85
    assert metrics["gini"] == pytest.approx(2 * metrics["auc"] - 1, abs=1e-3)
    assert 0.3 <= metrics["ks"] <= 0.7


def test_committed_model_is_what_the_training_script_produces(retrained):
    _, model = retrained
    assert model["attributes"] == COMMITTED["attributes"]
    assert model["base_points"] == COMMITTED["base_points"]
    assert model["training"]["metrics"] == COMMITTED["training"]["metrics"]


def test_protected_attributes_are_not_scored():
    card = load_scorecard()
    assert not {"personal_status_and_sex", "foreign_worker", "age_in_years"} & set(card.inputs)


def test_runtime_scorer_agrees_with_scorecardpy_on_the_held_out_applicants():
    card = load_scorecard()
    assert len(COMMITTED["reference"]) == 50
    for item in COMMITTED["reference"]:
        assert card.score(item["applicant"]).score == item["score"]


def test_score_is_base_plus_the_points_of_each_attribute():
    card = load_scorecard()
    applicant = COMMITTED["reference"][0]["applicant"]
    result = card.score(applicant)
    assert result.score == card.base_points + sum(result.points.values())
    assert set(result.points) == set(card.inputs)
    assert result.model_version == 1


def test_a_longer_loan_of_the_same_applicant_scores_lower():
    card = load_scorecard()
    applicant = dict(COMMITTED["reference"][0]["applicant"], duration_in_month=6)
    longer = dict(applicant, duration_in_month=48)
    assert card.score(longer).score < card.score(applicant).score


@pytest.mark.parametrize("attribute, value", [("purpose", "yacht"), ("credit_amount", None),
                                              ("duration_in_month", "twelve")])
def test_values_outside_the_card_are_refused_by_name(attribute, value):
    applicant = dict(COMMITTED["reference"][0]["applicant"], **{attribute: value})
    with pytest.raises(UnknownAttribute) as refused:
        load_scorecard().score(applicant)
    assert refused.value.attribute == attribute


# ---------------------------------------------------------------- the limit policy, numbers written out

INCOME = 800_000  # 8,000 CNY a month, in minor units


@pytest.mark.parametrize("score, limit", [
    (449, 0),                     # declined
    (450, 200_000),               # half a month's income (4,000 CNY) capped at 2,000 CNY
    (520, 500_000),               # one month (8,000) capped at 5,000 CNY
    (580, 1_000_000),             # two months (16,000) capped at 10,000 CNY
    (700, 2_000_000),             # three months (24,000) capped at 20,000 CNY
])
def test_score_bands_capped_by_income_and_band(score, limit):
    assert credit_limit(score, INCOME) == limit


def test_income_binds_below_the_cap():
    assert credit_limit(700, 300_000) == 900_000  # 3 x 3,000 CNY


def test_behaviour_moves_the_limit():
    base = credit_limit(700, 300_000)
    assert credit_limit(700, 300_000, RepaymentHistory(on_time=4)) == base * 120 // 100
    assert credit_limit(700, 300_000, RepaymentHistory(on_time=40)) == base * 150 // 100  # bonus capped at +50%
    assert credit_limit(700, 300_000, RepaymentHistory(late=2)) == base * 60 // 100
    assert credit_limit(700, 300_000, RepaymentHistory(on_time=4, late=1)) == base
    assert credit_limit(700, 300_000, RepaymentHistory(late=9)) == 0
    assert credit_limit(700, 300_000, RepaymentHistory(on_time=10, defaulted=True)) == 0


def test_the_bonus_never_lifts_a_limit_past_one_and_a_half_caps():
    assert credit_limit(700, 10**9, RepaymentHistory(on_time=40)) == 3_000_000


def test_negative_inputs_are_refused():
    with pytest.raises(ValueError):
        credit_limit(700, -1)
