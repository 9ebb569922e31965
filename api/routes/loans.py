"""Borrower loan routes: apply for a product with a signed application, cancel, own loans, what is due, how to repay.

The API never signs for a borrower: it checks the borrower's EIP-712 signature (so a bad one costs
no gas) and relays it; the loan book checks it again. Reads come from the indexed read model, what is
owed now from the contract's own views at chain time.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from api import idempotency
from api.deps import (
    Auditor,
    BorrowerOrApplicant,
    ContextDep,
    LimiterDep,
    LoanReader,
    MetricsDep,
    Operator,
    RegisteredBorrower,
)
from api.errors import ApiError, ErrorResponse, error_responses
from api.observability import current_request_id
from api.schemas import (
    AmountDueOut,
    ApplyIn,
    ApplyOut,
    CancelIn,
    CreditOut,
    LoanIdPath,
    LoanList,
    LoanOut,
    RequestParams,
    TxOut,
)
from api.schemas.applications import ApplicationDraftIn, ApplicationDraftOut, CancelDraftOut
from api.schemas.audit import PaymentOut, PaymentPage
from api.schemas.checkout import RepaymentCheckout
from api.schemas.reschedules import (
    RescheduleAcceptIn,
    RescheduleAskedList,
    RescheduleRequestIn,
    RescheduleRequestOut,
    RescheduleStatusOut,
    SignedRescheduleOfferIn,
)
from api.schemas.signed import SIGNED_FIELDS
from api.services import application_limits, applications, checkout, recovery, reschedules
from api.stepup import STEP_UP_ERRORS, StepUpCode, StepUpDep
from api.views import own_loan, visible_loan
from ledger.book import LoanStatus, read_loan
from ledger.store.models.chain import Loan
from ledger.store.projection import upcoming_due_at

router = APIRouter(prefix="/v1", tags=["loans"])
ERRORS = error_responses(401, 403, 404, 409, 422, 503)
APPLY_ERRORS = {**ERRORS, 429: {"model": ErrorResponse, "description": (
    "too_many_applications: the borrower's applications this hour are at the limit (applications_per_hour); "
    "too_many_open_applications: their open applications are (open_applications): cancel one or wait for a "
    "decision. Nothing was relayed; the same Idempotency-Key may be retried")}, **STEP_UP_ERRORS}


@router.get("/loans/request-params", response_model=RequestParams, responses=ERRORS,
            summary="What a borrower needs to sign a loan request or a cancellation")
def request_params(context: ContextDep, who: BorrowerOrApplicant) -> RequestParams:
    book = context.bindings.book
    return RequestParams(chain_id=context.w3.eth.chain_id, loan_book=book.address,
                         nonce=book.functions.nonces(who.address).call(), deadline=context.chain_time() + 3600)


@router.post("/loans/application-draft", response_model=ApplicationDraftOut, responses=ERRORS,
             summary="The LoanApplication to sign for a product version, principal and installments: EIP-712 typed "
                     "data ready for eth_signTypedData_v4 (the borrower's nonce, a deadline) and the quote's numbers",
             description="Changes nothing: a wallet that cannot build typed data itself (the phone app) signs this, "
                         "then sends it to POST /v1/loans with the deadline. The catalogue's refusals come first, "
                         "named as the application's would be (product_catalog_version_changed, "
                         "product_catalog_principal_out_of_range, product_catalog_cost_above_cap...).")
def application_draft(body: ApplicationDraftIn, context: ContextDep, who: RegisteredBorrower) -> ApplicationDraftOut:
    signed = applications.Signed(body.product_id, body.product_version, body.principal, body.installments)
    return applications.draft(context, who.address, signed)


@router.post("/loans", response_model=ApplyOut, status_code=201, responses=APPLY_ERRORS,
             summary="Apply for a product version: relay the borrower's signed application (Idempotency-Key required)")
def apply(body: ApplyIn, context: ContextDep, metrics: MetricsDep, limiter: LimiterDep, step_up: StepUpDep,
          who: RegisteredBorrower, code: StepUpCode = None, idempotency_key: str | None = Header(None)):
    # The step-up code for exactly what is signed (a retry with the same key and code replays the first answer).
    # Without a key, run_once refuses (400) before anything: no code is spent on it.
    if idempotency_key:
        step_up.redeem(who.address, "apply", {"product_id": body.product_id, "principal": body.principal,
                                               "installments": body.installments}, code, idempotency_key)

    def answer(application: applications.Application):
        context.wait_indexed(application.block_number)
        return 201, ApplyOut(loan_id=application.loan_id, status=application.status, tx_hash=application.tx_hash,
                             decision=application.decision)

    def action(claim: idempotency.Claim):
        # The borrower's limits, before anything is relayed (inside the claim: a replayed answer is not counted).
        application_limits.check_open(context, who.address, claim.key)
        record_tx = application_limits.counted(context, limiter, who.address, claim.record_tx)
        signed = applications.Signed(body.product_id, body.product_version, body.principal, body.installments)
        application = applications.apply(context, who.address, signed, body.deadline,
                                         bytes.fromhex(body.signature[2:]), current_request_id(), record_tx)
        metrics.transactions.labels("request_loan").inc()
        return answer(application)

    def reconcile(tx_hash: str):  # a retry of an application whose process died: what did its transaction do?
        outcome = applications.reconcile(context, who.address, tx_hash, current_request_id())
        return answer(outcome) if isinstance(outcome, applications.Application) else outcome

    return idempotency.run_once_reconciled(context, who.address, idempotency_key, "POST /v1/loans", body.model_dump(),
                                           action, reconcile)


@router.get("/loans/{loan_id}/cancel-draft", response_model=CancelDraftOut, responses=ERRORS,
            summary="The CancelLoan to sign for one of the borrower's applications not yet paid out: EIP-712 typed "
                    "data ready for eth_signTypedData_v4 (the borrower's nonce, a deadline) and what it does in words",
            description="Changes nothing: a wallet that cannot build typed data itself (the phone app) signs this, "
                        "then sends it to POST /v1/loans/{loan_id}/cancel with the deadline. 409 "
                        "`loan_not_cancellable` once the loan is paid out (or rejected, cancelled); 409 "
                        "`loan_of_earlier_wallet` for a loan of a wallet this one was recovered from (its key signs "
                        "for it); someone else's loan is 404.")
def cancel_draft(loan_id: LoanIdPath, context: ContextDep, who: RegisteredBorrower) -> CancelDraftOut:
    with context.sessions() as session:
        row = own_loan(session, context, who.address, loan_id, "a cancellation")
        return applications.cancel_draft(context, who.address, row)


@router.post("/loans/{loan_id}/cancel", response_model=TxOut, responses=ERRORS,
             summary="Cancel before disbursement with the borrower's signature (Idempotency-Key required)",
             description="The signature is over GET /v1/loans/{loan_id}/cancel-draft's typed data. 409 "
                         "`loan_not_cancellable` once the loan is paid out, before anything is relayed.")
def cancel(loan_id: LoanIdPath, body: CancelIn, context: ContextDep, metrics: MetricsDep,
           who: RegisteredBorrower, idempotency_key: str | None = Header(None)):

    def answer(sent):
        context.wait_indexed(sent.block_number)
        return 200, TxOut.model_validate(sent)

    def action(claim: idempotency.Claim):
        with context.sessions() as session:
            own_loan(session, context, who.address, loan_id, "a cancellation")  # own loans only, else 404
        applications.refuse_unless_cancellable(context, loan_id)  # named, before anything is relayed
        sent = applications.cancel(context, who.address, loan_id, body.deadline, bytes.fromhex(body.signature[2:]),
                                   current_request_id(), claim.record_tx)
        metrics.transactions.labels("cancel_loan").inc()
        return answer(sent)

    def reconcile(tx_hash: str):  # a retry of a cancellation whose process died: what did its transaction do?
        outcome = applications.reconcile_cancel(context, who.address, loan_id, tx_hash, current_request_id())
        return answer(outcome) if isinstance(outcome, applications.Sent) else outcome

    return idempotency.run_once_reconciled(context, who.address, idempotency_key, f"POST /v1/loans/{loan_id}/cancel",
                                           body.model_dump(), action, reconcile)


@router.get("/loans", response_model=LoanList, responses=ERRORS,
            summary="The signed-in borrower's loans (auditors and operators: use /v1/audit/loans)")
def my_loans(context: ContextDep, who: LoanReader) -> LoanList:
    with context.sessions() as session:
        # The identity's loans: this wallet's and those of the wallets it was recovered from (still theirs on-chain).
        wallets = [who.address, *context.earlier_wallets.of(who.address)]
        rows = session.scalars(select(Loan).where(Loan.borrower.in_(wallets)).order_by(Loan.id)
                               .options(selectinload(Loan.schedule))).all()
        return LoanList(loans=[LoanOut.model_validate(r) for r in rows])


@router.get("/loans/{loan_id}", response_model=LoanOut, responses=ERRORS, summary="One loan with its schedule")
def one_loan(loan_id: LoanIdPath, context: ContextDep, who: LoanReader) -> LoanOut:
    with context.sessions() as session:
        return LoanOut.model_validate(visible_loan(session, who, loan_id, context))


@router.get("/loans/{loan_id}/due", response_model=AmountDueOut, responses=ERRORS,
            summary="What is owed now: principal, interest, late fee, penalty, and the payoff")
def due(loan_id: LoanIdPath, context: ContextDep, who: LoanReader) -> AmountDueOut:
    with context.sessions() as session:
        row = visible_loan(session, who, loan_id, context)
    now = context.chain_time()
    book = context.bindings.book.functions
    principal, interest, late_fee, penalty, oldest = book.amountDue(loan_id, now).call()
    active = read_loan(context.bindings.book, loan_id).status is LoanStatus.ACTIVE  # the index may be a block behind
    payoff = book.payoffAmount(loan_id, now).call() if active else 0
    total = principal + interest + late_fee + penalty
    # What the next date will ask, the book says: the read model's rows are the plan, without interest that a
    # payment ahead of schedule carried into the next installment.
    next_due_at = upcoming_due_at(row, now) if active else None
    owed_at_next_due = sum(book.amountDue(loan_id, next_due_at).call()[:4]) if next_due_at else total
    return AmountDueOut(loan_id=loan_id, as_of=now, principal=principal, interest=interest, late_fee=late_fee,
                        penalty=penalty, total=total, oldest_due_at=oldest or None, payoff=payoff,
                        next_due_at=next_due_at, owed_at_next_due=owed_at_next_due, currency=row.currency)


@router.get("/loans/{loan_id}/payments", response_model=PaymentPage, responses=ERRORS,
            summary="The loan's payments as the chain recorded them, oldest first: the payout, and each repayment with "
                    "where it went (penalty, late fee, interest, principal; credit beyond the payoff)")
def loan_payments(loan_id: LoanIdPath, context: ContextDep, who: LoanReader) -> PaymentPage:
    with context.sessions() as session:
        row = visible_loan(session, who, loan_id, context)
        return PaymentPage(payments=[PaymentOut.model_validate(payment) for payment in row.payments])


@router.get("/loans/{loan_id}/repayment-instructions", response_model=RepaymentCheckout, responses=ERRORS,
            summary="How to repay over the payment rail, and (with return_to: the app's address) the rail's hosted "
                    "checkout for what is due or the payoff",
            description="`return_to` must be this API's app (`<origin>/app/...`), else 422 `invalid_return_url`; "
                        "`pay=due` checks out what is owed now (else the next installment as the book will ask it), "
                        "`pay=payoff` the payoff. The money is credited once the rail's webhook is confirmed.")
def repayment_instructions(loan_id: LoanIdPath, context: ContextDep, who: BorrowerOrApplicant, request: Request,
                           return_to: Annotated[str | None, Query(max_length=2000)] = None,
                           pay: checkout.Purpose = "due") -> RepaymentCheckout:
    amounts = due(loan_id, context, who)
    rail = context.settings.rail_url
    base = checkout.rail_checkout_base(context.settings)
    back = checkout.checked_return(return_to, [str(request.base_url), context.settings.api_url]) \
        if return_to is not None else None
    amount = checkout.amount_for(pay, amounts)
    return RepaymentCheckout(
        loan_id=loan_id, rail_url=rail, method=f"POST {rail}/v1/collections",
        body={"loan_id": loan_id, "amount": amounts.total or amounts.payoff, "currency": amounts.currency},
        amount_due_now=amounts.total, payoff_now=amounts.payoff, currency=amounts.currency,
        note="Pay any amount up to the payoff; it is credited on-chain once the rail confirms it. "
             "Fees and penalty are paid first, then interest, then principal, oldest installment first.",
        checkout_for=pay, checkout_amount=amount,
        checkout_url=checkout.link(base, loan_id, amount, amounts.currency, back) if back and base and amount else None)


@router.get("/credit", response_model=CreditOut, responses=ERRORS,
            summary="My credit score and limit as the credit oracle holds them, and what is available")
def credit(context: ContextDep, who: BorrowerOrApplicant) -> CreditOut:
    b = context.bindings
    score, limit, updated_at, version, _ = b.oracle.functions.scoreOf(who.address).call()
    # Limits are in one currency (the book's creditLimitCurrency): exposure is counted in it, for the identity (the
    # wallets this one was recovered from count, as LoanBook.approve counts them).
    outstanding = recovery.outstanding_principal(context, who.address)
    scored = updated_at != 0
    fresh = scored and b.oracle.functions.isFresh(who.address).call()
    return CreditOut(address=who.address, score=score if scored else None, credit_limit=limit,
                     model_version=version if scored else None, updated_at=updated_at or None,
                     score_age=max(context.chain_time() - updated_at, 0) if scored else None, fresh=fresh,
                     # A stale score approves nothing (LoanBook refuses it): nothing is available on it.
                     outstanding_principal=outstanding, available=max(limit - outstanding, 0) if fresh else 0)


# ------------------------------------------------------------------ hardship reschedule (issue 17)


@router.post("/loans/{loan_id}/reschedule-requests", response_model=RescheduleRequestOut, status_code=202,
             responses={**ERRORS, **STEP_UP_ERRORS},
             summary="Ask for a hardship reschedule of an active loan (kept for the operators; an operator offers "
                     "terms, GET /v1/loans/{loan_id}/reschedule shows them)")
def request_reschedule(loan_id: LoanIdPath, body: RescheduleRequestIn, context: ContextDep, step_up: StepUpDep,
                       who: RegisteredBorrower, code: StepUpCode = None) -> RescheduleRequestOut:
    with context.sessions() as session:
        row = own_loan(session, context, who.address, loan_id, "a reschedule")  # own loans only, else 404
        if row.status != LoanStatus.ACTIVE.solidity_name:
            raise ApiError(409, "loan_not_active", f"loan {loan_id} is {row.status}: only an active loan is rescheduled")
    step_up.redeem(who.address, "reschedule_request", {"loan_id": loan_id, "installments": body.installments}, code)
    reschedules.request(context, who.address, loan_id, body.installments, body.reason, current_request_id())
    return RescheduleRequestOut(loan_id=loan_id, installments=body.installments, recorded=True)


@router.get("/loans/{loan_id}/reschedule", response_model=RescheduleStatusOut, responses=ERRORS,
            summary="The loan's reschedule offer, what its borrower signs to accept it, and every reschedule "
                    "accepted with the schedule it replaced")
def reschedule_status(loan_id: LoanIdPath, context: ContextDep, who: LoanReader) -> RescheduleStatusOut:
    with context.sessions() as session:
        row = visible_loan(session, who, loan_id, context)
        history = reschedules.history(context, session, loan_id)
        asked = reschedules.requests(session, loan_id)
    offer = reschedules.latest_offer(context, loan_id)
    mine = row.borrower.lower() == who.address.lower()
    to_sign = reschedules.acceptance_to_sign(context, row.borrower, loan_id, offer) \
        if mine and offer is not None and offer["open"] else None
    return RescheduleStatusOut(loan_id=loan_id, offer=offer, to_sign=to_sign, requests=asked, reschedules=history)


@router.post("/loans/{loan_id}/reschedule/accept", response_model=TxOut, responses={**ERRORS, **STEP_UP_ERRORS},
             summary="Accept the loan's open reschedule offer with the borrower's RescheduleAcceptance signature "
                     "(Idempotency-Key required)")
def accept_reschedule(loan_id: LoanIdPath, body: RescheduleAcceptIn, context: ContextDep, metrics: MetricsDep,
                      step_up: StepUpDep, who: RegisteredBorrower, code: StepUpCode = None,
                      idempotency_key: str | None = Header(None)):
    if idempotency_key:  # without one, run_once refuses (400) before anything
        with context.sessions() as session:  # someone else's loan is not found, before any code is asked for
            own_loan(session, context, who.address, loan_id, "accepting a reschedule")
        step_up.redeem(who.address, "reschedule_accept", {"loan_id": loan_id}, code, idempotency_key)

    def action():
        with context.sessions() as session:
            own_loan(session, context, who.address, loan_id, "accepting a reschedule")  # own loans only, else 404
        sent = reschedules.accept(context, who.address, loan_id, body.deadline, bytes.fromhex(body.signature[2:]),
                                  current_request_id())
        metrics.transactions.labels("accept_reschedule").inc()
        context.wait_indexed(sent.block_number)
        return 200, TxOut.model_validate(sent)

    return idempotency.run_once(context, who.address, idempotency_key, f"POST /v1/loans/{loan_id}/reschedule/accept",
                                body.model_dump(), action)


@router.post("/operator/loans/{loan_id}/reschedule-offer", response_model=TxOut, responses=ERRORS,
             summary="Offer a hardship reschedule (signed `loan.reschedule_offer`): the loan book checks it against "
                     "the product's longest term and the cost cap")
def offer_reschedule(loan_id: LoanIdPath, body: SignedRescheduleOfferIn, context: ContextDep, metrics: MetricsDep,
                     who: Operator, idempotency_key: str | None = Header(None)):

    def action():
        sent = reschedules.offer(context, loan_id, body.installments, body.expires_at, who.address, body.signed(),
                                 current_request_id())
        metrics.transactions.labels("offer_reschedule").inc()
        context.wait_indexed(sent.block_number)
        return 200, TxOut.model_validate(sent)

    return idempotency.run_once(context, who.address, idempotency_key,
                                f"POST /v1/operator/loans/{loan_id}/reschedule-offer",
                                body.model_dump(exclude=SIGNED_FIELDS), action)


@router.get("/operator/reschedule-requests", response_model=RescheduleAskedList, responses=ERRORS,
            summary="Borrowers' hardship reschedule requests, oldest first (operators, admins and auditors)")
def reschedule_requests(context: ContextDep, _: Auditor) -> RescheduleAskedList:
    with context.sessions() as session:
        return RescheduleAskedList(requests=reschedules.requests(session))
