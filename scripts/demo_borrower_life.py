"""The demo's borrower-life steps (issue 17): an automatic debit declined then collected, a hardship reschedule, a
lost wallet recovered, a KYC renewal, and the notices that reached the borrowers.

Each step acts through the SDK as the borrower or operator would (codes read off the development SMS outbox, as a
borrower reads their phone) and records what the API answered and what the chain says, for the summary and for
tests/test_demo.py. `Life(scenario)` is called by scripts/demo.py at the story's days.
"""

from __future__ import annotations

from collections.abc import Mapping

from eth_account import Account
from eth_utils import keccak

from api.client import LoanLedgerClient
from ledger.samples import sample_identity

DAY = 86_400
RESCHEDULED_TO = 14  # installments after the one paid: longer than the 11 left, within the 12-month product's 18
RECOVERED_PAYMENT = 1_000  # 10 CNY on the lost wallet's loan, paid from the new phone over the rail


def installments(summary) -> int:
    """A ScheduleSummary from an event, decoded as a mapping or a tuple: its installments."""
    return summary["installments"] if isinstance(summary, Mapping) else summary[0]


class Life:
    def __init__(self, scenario):
        self.s = scenario
        self.summary: dict = {}
        from ledger.chain import web3_for
        from ledger.contracts import bind
        from ledger.manifest import load
        self.chain = bind(web3_for(scenario.settings), load(scenario.settings.manifest_path))

    def person(self, index: int) -> dict:
        return sample_identity(100 + index)  # who the demo's borrower `index` is (scripts/demo.py onboard)

    def codes(self, index: int) -> tuple[str, str]:
        """The phone's and the bank's card codes, read off the borrower's phone."""
        phone = self.person(index)["phone"]
        return self.s.sms.last_code(phone, "phone"), self.s.sms.last_code(phone, "card")

    def repayments(self, loan_id: int) -> list:
        return self.chain.book.events.RepaymentApplied().get_logs(argument_filters={"loanId": loan_id},
                                                                  from_block=self.chain.manifest.start_block)

    # -- automatic debit ---------------------------------------------------------------------------

    def sign_mandate(self, index: int) -> None:
        """Day 0: the borrower signs a debit mandate for their loan and bound card (EIP-712, with a step-up code);
        their card then runs short of funds (the rail stand-in's test order, as banks' sandboxes have)."""
        self.debited = index
        client, loan_id = self.s.borrowers[index], self.s.loans[index]
        made = client.sign_debit_mandate(loan_id, self.s.loan(index)["principal"], self.s.chain_time() + 365 * DAY)
        self.s.rail.put(f"/v1/cards/{made['card'][-4:]}/funds", json={"sufficient": False}).raise_for_status()
        self.mandate = made

    def debit_on_the_due_date(self) -> None:
        """The due date: the collection run's debit is declined (insufficient funds); the borrower tops up the card;
        the retry a day later (the documented policy) is collected and credited on-chain; the mandate is revoked."""
        index = self.debited
        client, loan_id = self.s.borrowers[index], self.s.loans[index]
        due_at = self.s.loan(index)["schedule"][0]["due_at"]
        self.s.advance((due_at - self.s.chain_time() + 60) / DAY)

        def collections(status: str):
            shown = client.debit_mandate(loan_id)["collections"]
            return shown if any(c["status"] == status for c in shown) else None
        self.s.until("the first debit declined", lambda: collections("failed"))
        self.s.rail.put(f"/v1/cards/{self.mandate['card'][-4:]}/funds", json={"sufficient": True}).raise_for_status()
        self.s.advance(1 + 60 / DAY)
        self.s.until("the retried debit collected", lambda: collections("collected"))
        shown = client.debit_mandate(loan_id)["collections"]
        client.revoke_debit_mandate(loan_id)  # the borrower pays the rest by hand, as before
        collected = next(c for c in shown if c["status"] == "collected")
        (applied,) = self.repayments(loan_id)
        loan = self.s.loan(index)
        self.summary["automatic_debit"] = {
            "loan_id": loan_id, "card": self.mandate["card"], "due_at": due_at,
            "attempts": [{k: c[k] for k in ("attempt", "status", "reason", "amount", "retry_at")}
                         for c in sorted(shown, key=lambda c: c["attempt"])],
            "collected": collected["amount"], "rail_reference": collected["reference"],
            "on_chain": {"repayment": applied.args.amount, "paid_installments": applied.args.paidInstallments,
                         "payment_ref": "0x" + applied.args.paymentRef.hex()},
            "loan_paid_installments": loan["paid_installments"],
            "mandate_revoked": client.debit_mandate(loan_id)["mandate"] is None,
        }

    # -- hardship ----------------------------------------------------------------------------------

    def reschedule(self, index: int) -> None:
        """The borrower asks for a reschedule (a step-up code texted to their phone), an operator offers longer
        terms (a signed decision), the borrower accepts by signing the offer the API shows; on-chain, the offer and
        the acceptance, whose event keeps the replaced schedule's summary."""
        client, loan_id = self.s.borrowers[index], self.s.loans[index]
        before = self.s.loan(index)
        client.request_reschedule(loan_id, RESCHEDULED_TO, "income_loss")
        asked = [r for r in self.s.operator.reschedule_requests() if r["loan_id"] == loan_id]
        self.s.operator.offer_reschedule(loan_id, RESCHEDULED_TO, self.s.chain_time() + 7 * DAY)
        client.accept_reschedule(loan_id, expect_installments=RESCHEDULED_TO)
        after = self.s.until("the new schedule indexed", lambda: (
            loan := self.s.loan(index))["installments"] != before["installments"] and loan)
        (done,) = client.reschedule(loan_id)["reschedules"]
        start = self.chain.manifest.start_block
        events = {name: [dict(e.args) for e in getattr(self.chain.book.events, name)().get_logs(
            argument_filters={"loanId": loan_id}, from_block=start)]
            for name in ("RescheduleOffered", "RescheduleAccepted")}  # the request is the API's (its action log)
        accepted = events["RescheduleAccepted"][0] if events["RescheduleAccepted"] else {}
        self.summary["reschedule"] = {
            "loan_id": loan_id, "asked": [{"installments": r["installments"], "reason": r["reason"]} for r in asked],
            "installments_before": before["installments"], "installments_after": after["installments"],
            "paid_when_rescheduled": before["paid_installments"],
            "previous": done["previous"], "current": done["current"],
            "on_chain": {name: len(found) for name, found in events.items()} | {
                "previous_installments": installments(accepted["previous"]) if accepted else None,
                "current_installments": installments(accepted["current"]) if accepted else None,
                "rebased_at": accepted.get("rebasedAt")},
        }

    # -- a lost wallet ------------------------------------------------------------------------------

    def recover_wallet(self, index: int) -> None:
        """The borrower lost their phone and its wallet: the same identity proved again on a new wallet (both codes);
        they owe on their loan, so an operator confirms before the oracle moves the identity on-chain. The old loan
        is paid into over the rail from the new phone, and its exposure counts against the new wallet."""
        old, loan_id, person = self.s.borrowers[index].account.address, self.s.loans[index], self.person(index)
        account = Account.from_key(keccak(text=f"loanledger demo wallet {index} after a lost phone"))
        new = LoanLedgerClient(self.s.base, account, step_up_codes=lambda _a, _p: self.s.sms.last_code(
            person["phone"], "step_up"))
        new.login()
        new._request("POST", "/v1/kyc/recovery", json_body=person)  # the SDK has no method for it yet
        asked = new.kyc_verify(*self.codes(index))["status"]
        held = [r for r in self.s.operator._request("GET", "/v1/kyc/recoveries") if r["borrower"] == account.address]
        self.s.operator._request("POST", f"/v1/kyc/recoveries/{account.address}/confirm")
        self.s.until("the recovered wallet registered", lambda: new.kyc_status()["status"] == "registered")
        new.login()  # signed in again: a borrower now
        before = self.s.operator.loan(loan_id)
        paid_before = sum(before[k] for k in ("principal_repaid", "interest_paid", "late_fee_paid", "penalty_paid"))
        self.s.pay(index, RECOVERED_PAYMENT)
        after = self.s.until("the payment on the lost wallet's loan", lambda: (
            loan := self.s.operator.loan(loan_id)) and sum(loan[k] for k in (
                "principal_repaid", "interest_paid", "late_fee_paid", "penalty_paid")) > paid_before and loan)
        registry = self.chain.registry.functions
        self.summary["wallet_recovery"] = {
            "old_wallet": old, "new_wallet": account.address, "loan_id": loan_id,
            "status_after_codes": asked, "held_for_operator": [(r["recovered_from"], r["outstanding_principal"])
                                                               for r in held],
            "status_after": new.kyc_status()["status"],
            "new_wallet_outstanding_principal": new.credit()["outstanding_principal"],
            "outstanding_when_held": before["principal"] - before["principal_repaid"],
            "loan_outstanding_principal": after["principal"] - after["principal_repaid"],
            "loan_status": after["status"], "loan_borrower": after["borrower"],
            "paid_after_recovery": RECOVERED_PAYMENT, "repayments_on_chain": len(self.repayments(loan_id)),
            "on_chain": {"successor_of_old": registry.successorOf(old).call(),
                         "predecessor_of_new": registry.predecessorOf(account.address).call(),
                         "old_revoked": registry.borrowerOf(old).call()[3],
                         "old_eligible": registry.isEligible(old).call(),
                         "new_eligible": registry.isEligible(account.address).call(),
                         "recovered_events": len(self.chain.registry.events.BorrowerRecovered().get_logs(
                             argument_filters={"oldBorrower": old}, from_block=self.chain.manifest.start_block))},
        }

    # -- KYC renewal -----------------------------------------------------------------------------

    def renew_kyc(self, index: int) -> None:
        """The borrower renews their KYC: the same identity, new codes, the oracle's updateBorrower, a new expiry."""
        client, address = self.s.borrowers[index], self.s.borrowers[index].account.address
        before = client.kyc_status()
        submitted = client.kyc_submit(**self.person(index))
        client.kyc_verify(*self.codes(index))
        after = self.s.until("the renewal on-chain", lambda: (
            shown := client.kyc_status())["status"] == "registered" and
            shown["kyc_expires_at"] != before["kyc_expires_at"] and shown)
        updated = self.chain.registry.events.BorrowerUpdated().get_logs(
            argument_filters={"borrower": address}, from_block=self.chain.manifest.start_block)
        self.summary["kyc_renewal"] = {
            "borrower": address, "status_before": before["status"], "renewal": submitted["renewal"],
            "expires_before": before["kyc_expires_at"], "expires_after": after["kyc_expires_at"],
            "status_after": after["status"],
            "on_chain": {"kyc_expires_at": self.chain.registry.functions.borrowerOf(address).call()[1],
                         "updated_events": len(updated)},
        }

    # -- notices ---------------------------------------------------------------------------------

    def notices(self) -> None:
        """What the borrowers were told (reminders, overdue warnings, debit notices, default notices), as the
        operators' list shows each one with its delivery status; waits until the notice sender has settled every one
        (the default notice was queued moments ago)."""
        def settled():
            statuses = [(n["kind"], (n.get("delivery") or {}).get("status")) for n in self.s.operator.notices()]
            return ("reminder", "accepted") in statuses and all(s in ("accepted", "set_aside") for _, s in statuses)
        self.s.until("the notices delivered", settled)
        listed = self.s.operator.notices()
        by_kind: dict[str, dict[str, int]] = {}
        for notice in listed:
            status = (notice.get("delivery") or {}).get("status") or notice["status"]
            by_kind.setdefault(notice["kind"], {}).setdefault(status, 0)
            by_kind[notice["kind"]][status] += 1
        sample = next(n for n in listed if n["kind"] == "reminder" and n["delivery"]["status"] == "accepted")
        debited = self.summary.get("automatic_debit", {}).get("loan_id")
        self.summary["notices"] = {
            "by_kind_and_delivery": by_kind,
            "reminder": {"loan_id": sample["loan_id"], "installment": sample["installment"],
                         "channel": sample["channel"], "status": sample["status"],
                         "delivery": {k: sample["delivery"].get(k) for k in ("status", "provider", "language")}},
            "debited_loan": sorted({n["kind"] for n in listed if n["loan_id"] == debited}),
            # The lost wallet's loan: its overdue warning and default notice reach the phone on the new wallet.
            "recovered_loan": sorted({(n["kind"], n["delivery"]["status"]) for n in listed
                                      if n["loan_id"] == self.summary.get("wallet_recovery", {}).get("loan_id")}),
        }

    # -- the story's own checks ------------------------------------------------------------------

    def checks(self) -> dict[str, bool]:
        """Whether each step ended as the story says, from what the API and the chain answered."""
        debit, moved = self.summary["automatic_debit"], self.summary["reschedule"]
        recovered, renewed = self.summary["wallet_recovery"], self.summary["kyc_renewal"]
        return {
            "debit_declined_then_collected": [a["status"] for a in debit["attempts"]] == ["failed", "collected"]
            and debit["attempts"][0]["reason"] == "insufficient_funds"
            and debit["on_chain"]["repayment"] == debit["collected"] > 0,
            "reschedule_accepted": moved["installments_after"] > moved["installments_before"]
            and moved["on_chain"]["RescheduleAccepted"] == 1,
            "wallet_recovered": recovered["on_chain"]["successor_of_old"] == recovered["new_wallet"]
            and recovered["status_after"] == "registered" and recovered["loan_status"] == "Active"
            and recovered["new_wallet_outstanding_principal"] == recovered["loan_outstanding_principal"] > 0,
            "kyc_renewed": renewed["expires_after"] > renewed["expires_before"]
            and renewed["on_chain"]["kyc_expires_at"] == renewed["expires_after"],
            "notice_delivered": self.summary["notices"]["reminder"]["delivery"]["status"] == "accepted",
        }

    def rows(self) -> list[tuple[str, str]]:
        """The summary table's rows for these steps."""
        debit, moved = self.summary["automatic_debit"], self.summary["reschedule"]
        recovered, renewed = self.summary["wallet_recovery"], self.summary["kyc_renewal"]
        return [
            ("automatic debit: attempts", ", ".join(f"{a['status']}" + (f" ({a['reason']})" if a["reason"] else "")
                                                    for a in debit["attempts"])),
            ("automatic debit: collected and credited on-chain (fen)", f"{debit['on_chain']['repayment']:,}"),
            ("reschedule: installments before / after", f"{moved['installments_before']} / "
                                                        f"{moved['installments_after']}"),
            ("reschedule: installment before / after (fen)", f"{moved['previous']['installment_amount']:,} / "
                                                             f"{moved['current']['installment_amount']:,}"),
            ("wallet recovery: exposure kept on the new wallet (fen)",
             f"{recovered['new_wallet_outstanding_principal']:,}"),
            ("KYC renewal: expiry moved by (days)", f"{(renewed['expires_after'] - renewed['expires_before']) / DAY:.0f}"),
            ("notices: kind (delivery status: count)", "; ".join(
                f"{kind} ({', '.join(f'{s}: {n}' for s, n in sorted(statuses.items()))})"
                for kind, statuses in sorted(self.summary["notices"]["by_kind_and_delivery"].items()))),
        ]
