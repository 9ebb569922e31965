"""Credit data sources: the local data set, and the same records over HTTP from the stand-in."""

from __future__ import annotations

import pytest

from oracle.bureau import BureauError, BureauUnavailable, HttpBureau, LocalBureau, SubjectNotFound
from oracle.bureau.standin import create_app
from oracle.scoring import load_scorecard

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


@pytest.fixture(scope="module")
def bureau() -> LocalBureau:
    return LocalBureau()


def test_the_data_set_is_served_without_its_outcome(bureau):
    assert len(bureau.applicants) == 1000
    assert all("creditability" not in a for a in bureau.applicants)
    first = bureau.applicants[0]
    assert (first["duration_in_month"], first["credit_amount"], first["purpose"]) == (6, 1169, "radio/television")


def test_each_subject_gets_a_stable_record_that_the_scorecard_can_score(bureau):
    report = bureau.report(ALICE)
    assert report.attributes == bureau.report(ALICE.lower()).attributes
    assert report.source == "local:german-credit"
    assert 100 < load_scorecard().score(report.attributes).score < 900
    scores = {load_scorecard().score(bureau.report(f"0x{i:040x}").attributes).score for i in range(40)}
    assert len(scores) > 10  # different subjects, different applicants


def test_a_subject_can_be_pinned_to_an_applicant(bureau):
    bureau.assign(ALICE, 1)
    assert bureau.report(ALICE).attributes == bureau.applicants[1]
    with pytest.raises(IndexError):
        bureau.assign(ALICE, 1000)
    with pytest.raises(SubjectNotFound):
        bureau.report("  ")


def test_http_client_against_the_stand_in(bureau, serve_app):
    with serve_app(create_app(bureau, api_key="k-123")) as url:
        client = HttpBureau(url, "k-123")
        assert client.report(ALICE).attributes == bureau.report(ALICE).attributes
        with pytest.raises(BureauError) as refused:
            HttpBureau(url, "wrong").report(ALICE)
        assert "API key" in str(refused.value)
        with pytest.raises(SubjectNotFound):
            client.report("%20")


def test_a_bureau_that_is_down_is_unavailable_not_a_crash(unused_port):
    with pytest.raises(BureauUnavailable) as down:
        HttpBureau(f"http://127.0.0.1:{unused_port}", "k", timeout=1).report(ALICE)
    assert "did not answer" in str(down.value)
