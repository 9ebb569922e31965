"""The KYC statuses are one vocabulary (ledger/kyc_status.py): the OpenAPI schema's enum, docs/borrower.md's table
and the ways out all name exactly its members."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from ledger.kyc_status import WAYS_OUT, KycStatus

DOCS = Path(__file__).resolve().parents[2] / "docs" / "borrower.md"


def test_the_openapi_schema_gives_the_status_as_an_enum_of_the_statuses(offline_app):
    with TestClient(offline_app) as client:
        schema = client.get("/openapi.json").json()["components"]["schemas"]["KycStatus"]
    assert schema["properties"]["status"]["enum"] == [status.value for status in KycStatus]
    assert {"kyc_expires_at", "kyc_expires_at_iso", "next", "renewal_opens_at"} <= set(schema["properties"])


def test_the_borrower_docs_table_has_one_row_per_status_and_every_status_a_way_out():
    text = DOCS.read_text()
    table = text[text.index("### KYC statuses"):]
    rows = re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE)
    assert rows == [status.value for status in KycStatus]
    assert all(WAYS_OUT[status] for status in KycStatus)
