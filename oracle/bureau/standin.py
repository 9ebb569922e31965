"""The bureau stand-in (`loanledger bureau`): the local data set behind the same HTTP API a bureau has."""

from __future__ import annotations

import hmac

from fastapi import FastAPI, Header, HTTPException

from oracle.bureau.source import LocalBureau, SubjectNotFound


def create_app(bureau: LocalBureau, api_key: str) -> FastAPI:
    app = FastAPI(title="LoanLedger bureau stand-in", description="Applicant records from the German Credit data.")

    @app.get("/v1/reports/{subject}")
    def report(subject: str, authorization: str = Header(default="")) -> dict:
        if not hmac.compare_digest(authorization, f"Bearer {api_key}"):
            raise HTTPException(status_code=401, detail="a valid bearer key is required")
        try:
            found = bureau.report(subject)
        except SubjectNotFound as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        return {"subject": found.subject, "attributes": found.attributes, "fetched_at": found.fetched_at}

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "applicants": len(bureau.applicants)}

    return app
