"""Money going back, end to end: the rail stand-in's signed refund and reversal webhooks over HTTP to the oracle's
intake, the outbox worker on the real chain. A chargeback re-opens what its repayment paid, once however often
it is delivered; a reversed overpayment takes its credit away; a returned payout puts the loan back to Approved;
a credit refund closes the credit; a suspense refund stays off the book."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from ledger.book import LoanStatus, read_loan
from ledger.chain import ChainClient
from ledger.indexer import Indexer
from ledger.store import open_store
from oracle.intake import WEBHOOK_PATH, payment_webhooks
from oracle.outbox import Outbox, OutboxWorker
from oracle.payments.inbound import Confirmation, payment_ref
from oracle.payments.provider import ProviderApi
from oracle.payments.providers import StandinProvider
from oracle.payments.rail import PaymentRail, create_app
from oracle.payments.reconcile import reconcile
from oracle.payments.signatures import RsaScheme
from oracle.payments.webhook import WebhookVerifier

PROVIDER = "mockpay"
KEY = RsaScheme.generate()


class RailAndOracle:
    """A rail stand-in whose webhooks go to the oracle's intake (both served over HTTP), and the outbox worker."""

    def __init__(self, rail_url: str, outbox: Outbox, worker: OutboxWorker, driver):
        self.url, self.outbox, self.worker, self.driver = rail_url, outbox, worker, driver

    def post(self, path: str, **body) -> dict:
        answer = httpx.post(f"{self.url}{path}", json=body or None, timeout=10)
        assert answer.status_code in (200, 201), answer.text
        return answer.json()

    def collect(self, loan_id: int, amount: int) -> str:
        return self.post("/v1/collections", loan_id=loan_id, amount=amount, paid_at=self.driver.now)["reference"]

    def settled(self, *references: str) -> dict[str, tuple[str, str | None]]:
        """Waits for each reference's webhook to be stored, drains, returns {reference: (status, outcome)}."""
        deadline = time.monotonic() + 20
        while not set(references) <= {i.reference for i in self.outbox.items()}:
            assert time.monotonic() < deadline, f"webhooks of {references} never arrived"
            time.sleep(0.05)
        for _ in range(4):
            self.worker.drain_once()
            if not self.outbox.items("pending"):
                break
        return {i.reference: (i.status, i.outcome) for i in self.outbox.items() if i.reference in references}


@pytest.fixture
def flow(serve_app, tmp_path, w3, stack, keys, driver):
    sessions = open_store(f"sqlite:///{tmp_path / 'oracle.db'}")
    outbox = Outbox(sessions)
    chain_time = lambda: driver.now
    verifier = WebhookVerifier({PROVIDER: RsaScheme.from_pem(KEY.public_pem())}, clock=chain_time)
    intake = FastAPI()
    intake.include_router(payment_webhooks(verifier, outbox))
    worker = OutboxWorker(outbox, ChainClient(w3, keys["oracle"], stack.errors), stack.book,
                          from_block=stack.manifest.start_block)
    with serve_app(intake) as oracle_url:
        rail = PaymentRail(PROVIDER, KEY, webhook_url=f"{oracle_url}{WEBHOOK_PATH}", clock=chain_time)
        with serve_app(create_app(rail)) as rail_url:
            yield RailAndOracle(rail_url, outbox, worker, driver)
    sessions.kw["bind"].dispose()


def progress(stack, loan_id: int) -> dict:
    names = ("paid_installments", "accrued_at", "principal_repaid", "interest_paid", "late_fee_paid", "penalty_paid",
             "late_fee_unpaid", "penalty_unpaid", "credit_balance", "recovered")
    return dict(zip(names, stack.book.functions.progressOf(loan_id).call(), strict=True))


def test_a_chargeback_reopens_what_its_repayment_paid_exactly_once(flow, driver, stack, keys, w3):
    loan_id = driver.active_loan(keys["alice"], ref=b"payout-chargeback", report_id=1)
    before = progress(stack, loan_id)
    repaid = flow.collect(loan_id, 45_000)
    assert flow.settled(repaid) == {repaid: ("done", "credited")}
    paid = progress(stack, loan_id)
    assert paid["principal_repaid"] > 0 and paid["paid_installments"] == 1

    reversal = flow.post(f"/v1/payments/{repaid}/reverse")
    assert (reversal["payment_reference"], reversal["amount"]) == (repaid, 45_000)
    assert flow.post(f"/v1/payments/{repaid}/reverse")["reference"] == reversal["reference"]  # once per payment
    assert flow.settled(reversal["reference"]) == {reversal["reference"]: ("done", "credited")}
    after = progress(stack, loan_id)
    assert (after["principal_repaid"], after["interest_paid"], after["paid_installments"]) == (
        before["principal_repaid"], before["interest_paid"], 0)  # owed again
    assert read_loan(stack.book, loan_id).status is LoanStatus.ACTIVE

    # The rail delivers the reversal again: acknowledged as a duplicate, nothing on-chain twice.
    again = flow.post(f"/v1/payments/{reversal['reference']}/redeliver")
    assert again["acknowledged"] is True
    flow.worker.drain_once()
    (item,) = [i for i in flow.outbox.items() if i.kind == "reversal"]
    assert (item.reverses, item.payment_ref) == (repaid, "0x" + payment_ref(PROVIDER, reversal["reference"]).hex())
    reversed_events = stack.book.events.RepaymentReversed.get_logs(
        from_block=0, argument_filters={"loanId": loan_id})
    assert len(reversed_events) == 1
    assert reversed_events[0]["args"]["reversalRef"] == payment_ref(PROVIDER, reversal["reference"])
    assert progress(stack, loan_id) == after

    # Reconciliation: the collection is matched by its repayment, the reversal by the reversal on-chain.
    Indexer(w3, stack.manifest, flow.outbox.sessions).run_once()
    day = datetime.fromtimestamp(driver.now, UTC).date()
    statement = StandinProvider(PROVIDER, None, ProviderApi(PROVIDER, flow.url)).statement(day)
    rows = {row.reference: row for row in reconcile(PROVIDER, day, statement, flow.outbox.sessions).rows}
    assert (rows[repaid].category, rows[repaid].kind) == ("matched", "repayment")
    assert (rows[reversal["reference"]].category, rows[reversal["reference"]].kind,
            rows[reversal["reference"]].direction) == ("matched", "reversal", "reversal")


def test_a_reversed_overpayment_takes_its_credit_away(flow, driver, stack, keys):
    loan_id = driver.active_loan(keys["bob"], ref=b"payout-overpaid", report_id=1)
    payoff = driver.payoff(loan_id)
    overpaid = flow.collect(loan_id, payoff + 5_000)
    assert flow.settled(overpaid) == {overpaid: ("done", "credited")}
    assert read_loan(stack.book, loan_id).status is LoanStatus.OVERPAID
    assert progress(stack, loan_id)["credit_balance"] == 5_000

    reversal = flow.post(f"/v1/payments/{overpaid}/reverse")
    assert flow.settled(reversal["reference"]) == {reversal["reference"]: ("done", "credited")}
    assert progress(stack, loan_id)["credit_balance"] == 0
    assert progress(stack, loan_id)["principal_repaid"] == 0
    assert read_loan(stack.book, loan_id).status is LoanStatus.ACTIVE


def test_a_returned_payout_puts_the_loan_back_to_approved(flow, driver, stack, keys):
    loan_id = driver.approved_loan(keys["carol"], report_id=1)
    principal = read_loan(stack.book, loan_id).terms.principal
    payout = flow.post("/v1/payouts", loan_id=loan_id, amount=principal, paid_at=driver.now)["reference"]
    assert flow.settled(payout) == {payout: ("done", "credited")}
    assert read_loan(stack.book, loan_id).status is LoanStatus.ACTIVE
    with pytest.raises(httpx.HTTPStatusError):  # a payout is returned, not reversed
        httpx.post(f"{flow.url}/v1/payments/{payout}/reverse", timeout=10).raise_for_status()

    returned = flow.post(f"/v1/payments/{payout}/return")
    assert flow.settled(returned["reference"]) == {returned["reference"]: ("done", "credited")}
    assert read_loan(stack.book, loan_id).status is LoanStatus.APPROVED
    (event,) = stack.book.events.DisbursementReversed.get_logs(from_block=0, argument_filters={"loanId": loan_id})
    assert event["args"]["paymentRef"] == payment_ref(PROVIDER, payout)


def test_a_credit_refund_closes_the_credit_and_a_suspense_refund_stays_off_the_book(flow, driver, stack, keys, w3):
    loan_id = driver.active_loan(keys["dave"], ref=b"payout-refund", report_id=1)
    overpaid = flow.collect(loan_id, driver.payoff(loan_id) + 3_000)
    assert flow.settled(overpaid) == {overpaid: ("done", "credited")}

    refund = flow.post("/v1/refunds", loan_id=loan_id, payment_reference=overpaid, amount=3_000, purpose="credit")
    assert flow.settled(refund["reference"]) == {refund["reference"]: ("done", "credited")}
    assert progress(stack, loan_id)["credit_balance"] == 0
    assert read_loan(stack.book, loan_id).status is LoanStatus.REPAID

    stray = flow.collect(loan_id, 700)  # paid to a repaid loan: refused, held in suspense
    flow.settled(stray)
    block = w3.eth.block_number
    returned = flow.post("/v1/refunds", loan_id=loan_id, payment_reference=stray, amount=700)  # purpose: suspense
    assert flow.settled(returned["reference"]) == {returned["reference"]: ("done", "off_book")}
    assert w3.eth.block_number == block  # nothing sent
    (item,) = [i for i in flow.outbox.items() if i.reference == returned["reference"]]
    assert (item.kind, item.reverses, item.amount) == ("suspense_refund", stray, 700)


def test_a_reversal_of_a_payment_never_credited_waits_then_is_rejected_and_shown(flow, driver, stack, keys):
    loan_id = driver.active_loan(keys["eve"], ref=b"payout-never", report_id=1)
    reference = "COL-NEVER-CREDITED"
    flow.outbox.put(Confirmation(kind="reversal", loan_id=loan_id, reference="REV-1",
                                 payment_ref=payment_ref(PROVIDER, "REV-1"), amount=1_000, currency="CNY",
                                 paid_at=driver.now, provider=PROVIDER, event_id="evt-rev-1", reverses=reference))
    report = flow.worker.drain_once()
    (item,) = flow.outbox.items()
    assert (report.retried, item.status, item.last_error) == (1, "pending", f"{reference} is not credited on-chain")
    with flow.outbox.sessions.begin() as session:  # its attempts used up
        session.get(type(item), item.id).attempts, session.get(type(item), item.id).next_attempt_at = 7, 0
    report = flow.worker.drain_once()
    (item,) = flow.outbox.items()
    assert (report.rejected, item.status, item.outcome) == (1, "rejected", "ReversedPaymentNotOnChain")
    assert flow.outbox.counts() == {"rejected": 1}


def test_a_return_the_book_refuses_is_rejected_and_shown_never_held_in_suspense(flow, driver, stack, keys):
    from ledger.store.models.suspense import SuspenseItem

    loan_id = driver.approved_loan(keys["alice"], report_id=1)
    principal = read_loan(stack.book, loan_id).terms.principal
    payout = flow.post("/v1/payouts", loan_id=loan_id, amount=principal, paid_at=driver.now)["reference"]
    repaid = flow.collect(loan_id, 10_000)
    assert flow.settled(payout, repaid) == {payout: ("done", "credited"), repaid: ("done", "credited")}

    returned = flow.post(f"/v1/payments/{payout}/return")  # the bank sends the payout back after a repayment
    assert flow.settled(returned["reference"]) == {returned["reference"]: ("rejected", "LoanBookDisbursementInUse")}
    assert read_loan(stack.book, loan_id).status is LoanStatus.ACTIVE  # the book shows it as it was
    assert flow.outbox.counts() == {"done": 2, "rejected": 1}  # /healthz's attention counts it
    with flow.outbox.sessions() as session:  # money out is not a received payment to refund
        assert session.query(SuspenseItem).count() == 0


def test_a_reversed_recovery_takes_the_recovered_money_back(flow, driver, stack, keys, w3):
    def send(fn) -> None:
        assert w3.eth.wait_for_transaction_receipt(fn.transact({"from": keys["operator"].address})).status == 1

    loan_id = driver.active_loan(keys["bob"], ref=b"payout-written-off", report_id=1)
    driver.advance(121 * 86_400)
    send(stack.book.functions.declareDefault(loan_id))
    driver.write_off(loan_id)
    recovered = flow.collect(loan_id, 5_000)
    assert flow.settled(recovered) == {recovered: ("done", "credited")}
    assert progress(stack, loan_id)["recovered"] == 5_000

    reversal = flow.post(f"/v1/payments/{recovered}/reverse")
    assert flow.settled(reversal["reference"]) == {reversal["reference"]: ("done", "credited")}
    assert progress(stack, loan_id)["recovered"] == 0
    assert read_loan(stack.book, loan_id).status is LoanStatus.WRITTEN_OFF
