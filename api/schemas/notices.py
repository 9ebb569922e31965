"""Notice bodies: the borrower's notice language, and the operators' list of notices with their delivery status."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

_ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


class LanguageIn(BaseModel):
    language: Literal["zh-CN", "en"] = Field(description="the language notices are written in")
    time_zone: str | None = Field(None, max_length=64,
                                  description="IANA time zone the dates in notices are shown in; default "
                                              "the one already set, else Asia/Shanghai")

    model_config = {"json_schema_extra": {"examples": [{"language": "en"},
                                                       {"language": "zh-CN", "time_zone": "Asia/Shanghai"}]}}


class LanguageOut(BaseModel):
    language: Literal["zh-CN", "en"]
    time_zone: str

    model_config = {"json_schema_extra": {"examples": [{"language": "zh-CN", "time_zone": "Asia/Shanghai"}]}}


class DeliveryOut(BaseModel):
    status: Literal["pending", "sending", "accepted", "set_aside"] = Field(
        description="pending (waiting for its next attempt), sending, accepted by the SMS provider, or set aside "
                    "(an operator must act)")
    attempts: int
    next_attempt_at: int = Field(description="unix seconds of the next attempt while pending")
    provider: str | None
    provider_reference: str | None = Field(description="the provider's message id once accepted")
    language: str | None = Field(description="the language it was rendered in")
    last_error: str | None = Field(description="why the last attempt failed")
    updated_at: int

    model_config = {"from_attributes": True, "json_schema_extra": {"examples": [
        {"status": "accepted", "attempts": 2, "next_attempt_at": 1_800_000_060, "provider": "http",
         "provider_reference": "msg-81", "language": "zh-CN", "last_error": None, "updated_at": 1_800_000_065}]}}


class NoticeOut(BaseModel):
    id: int
    loan_id: int
    installment: int = Field(description="1-based; 0 when the notice concerns the whole loan")
    kind: Literal["reminder", "overdue_warning", "default_notice", "debit_scheduled", "debit_failed"]
    borrower: str
    channel: str = Field(description="sms (to the borrower's phone), webhook or log")
    status: str = Field(description="queued, sending, sent, failed (retried) or set_aside")
    due_at: int
    amount_due: int = Field(description="minor units, as the loan book computed them")
    created_at: int = Field(description="chain time the risk monitor recorded it")
    detail: str | None = Field(description="the channel's answer or last error")
    delivery: DeliveryOut | None = Field(description="the SMS delivery (channel sms only)")

    model_config = {"json_schema_extra": {"examples": [
        {"id": 7, "loan_id": 3, "installment": 1, "kind": "overdue_warning", "borrower": _ALICE, "channel": "sms",
         "status": "sent", "due_at": 1_799_740_800, "amount_due": 42_130, "created_at": 1_800_000_000,
         "detail": "http: msg-81", "delivery": DeliveryOut.model_config["json_schema_extra"]["examples"][0]}]}}


class NoticeList(BaseModel):
    notices: list[NoticeOut]

    model_config = {"json_schema_extra": {"examples": [{"notices": NoticeOut.model_config["json_schema_extra"][
        "examples"]}]}}


_MINE = {"id": 7, "loan_id": 3, "installment": 1, "kind": "reminder", "due_at": 1_799_740_800, "amount_due": 41_588,
         "created_at": 1_799_500_000, "text": "LoanLedger: installment 1 of your loan 3, CNY 415.88, is due on "
                                              "12 Jan 2027. Please repay on time.", "delivery": "accepted"}


class MyNoticeOut(BaseModel):
    id: int
    loan_id: int
    installment: int = Field(description="1-based; 0 when the notice concerns the whole loan")
    kind: Literal["reminder", "overdue_warning", "default_notice", "debit_scheduled", "debit_failed"]
    due_at: int
    amount_due: int = Field(description="minor units, as the loan book computed them")
    created_at: int = Field(description="chain time the risk monitor recorded it")
    text: str = Field(description="the notice as texted, in the language asked (else the borrower's)")
    delivery: str = Field(description="pending, sending, accepted (by the SMS provider) or set_aside; for a notice "
                                      "sent by another channel, its status (sent, failed...)")

    model_config = {"json_schema_extra": {"examples": [_MINE]}}


class MyNoticeList(BaseModel):
    language: Literal["zh-CN", "en"] = Field(description="the language the texts are in")
    notices: list[MyNoticeOut] = Field(description="newest first")
    next_cursor: str | None = Field(None, description="pass as ?cursor= for older notices; null on the last page")

    model_config = {"json_schema_extra": {"examples": [{"language": "en", "notices": [_MINE], "next_cursor": None}]}}
