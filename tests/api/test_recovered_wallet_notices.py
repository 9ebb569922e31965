"""Notices for a lost wallet's loan reach its borrower after a wallet recovery (found by `make demo`): the loan stays
the old wallet's on-chain, the KYC record (the phone) moved to the new wallet, so the API's notice sender follows the
registry's successorOf to the phone verified on the new wallet instead of setting the notice aside ("no phone on
file"). Real API, real registration worker, real anvil."""

from __future__ import annotations

import json

from eth_account import Account

from ledger.samples import sample_identity
from ledger.store.models.notices import NoticeDelivery
from ledger.store.models.notifications import Notification


def queue_reminder(sessions, borrower: str, loan_id: int) -> None:
    """A reminder for `borrower`'s loan, queued as the risk monitor queues it (oracle/notify.py)."""
    facts = {"kind": "reminder", "loan_id": loan_id, "installment": 2, "borrower": borrower,
             "due_at": 1_800_000_000, "amount_due": 40_000, "currency": "CNY", "detail": {}}
    with sessions.begin() as session:
        notice = Notification(loan_id=loan_id, installment=2, borrower=borrower, kind="reminder", channel="sms",
                              status="queued", due_at=1_800_000_000, amount_due=40_000, created_at=1_799_800_000)
        session.add(notice)
        session.flush()
        session.add(NoticeDelivery(notification_id=notice.id, borrower=borrower,
                                   idempotency_key=f"notice-recovered-{loan_id}", facts=json.dumps(facts),
                                   status="pending", attempts=0, next_attempt_at=0, created_at=1_799_800_000,
                                   updated_at=1_799_800_000))


def test_a_lost_wallets_notice_goes_to_the_phone_verified_on_the_new_wallet(api, client_for, kyc, registrar, keys,
                                                                             operator):
    app, context = api
    context.settings = context.settings.model_copy(update={"recovery_review_principal": 10**12})  # no operator step
    person, old = sample_identity(16), keys["bob"].address
    kyc(client_for(keys["bob"]), 16)
    new = client_for(Account.create())
    new._request("POST", "/v1/kyc/recovery", json_body=person)
    sms = app.state.sms
    new.kyc_verify(sms.last_code(person["phone"], "phone"), sms.last_code(person["phone"], "card"))
    assert registrar().recovered == 1
    assert not context.vault.has_record(old)  # the record moved with the identity

    queue_reminder(context.sessions, old, 7)
    done = app.state.notices.run_once()
    assert (done.accepted, done.set_aside) == (1, 0)
    assert "（编号7）" in sms.messages(person["phone"])[-1]["text"]
    (listed,) = operator.notices(loan_id=7)
    assert (listed["borrower"], listed["status"], listed["delivery"]["status"]) == (old, "sent", "accepted")
