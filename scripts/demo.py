"""`make demo`: the whole system started as real processes, then a lending scenario driven over HTTP.

Every run starts from a fresh data directory (var/demo): the previous demo's chain and store are
removed first, so running it twice gives the same story. Borrowers, operators and the auditor act
through the SDK as the users would; only the clock is moved, with anvil's evm_increaseTime, because a
loan's life takes months. The summary is printed and written to var/demo-summary.json; the exit code
is 0 only when every auditor check passes and every loan ended where the story says.

A borrower's life beyond repaying (issue 17: an automatic debit declined then collected, a hardship reschedule, a
lost wallet recovered, a KYC renewal, the notices and their delivery) is told by scripts/demo_borrower_life.py; the
borrower app's URL, and one borrower's journey on a phone (issue 18), by scripts/demo_app.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.client import LoanLedgerClient  # noqa: E402
from api.sms import DevOutbox  # noqa: E402
from ledger.chain import save_keystore  # noqa: E402
from ledger.config import load_settings  # noqa: E402
from ledger.node import DEV_SECOND_OPERATOR, LocalNode, dev_account  # noqa: E402
from ledger.samples import sample_identity  # noqa: E402
from ledger.supervisor import LOANLEDGER, local_stack  # noqa: E402
from scripts.demo_app import app_check, app_url  # noqa: E402
from scripts.demo_borrower_life import Life  # noqa: E402

DAY = 86_400
BORROWERS = 20
MIN_PRINCIPAL = 10_000  # 100 CNY: the smallest loan offered
# The lender's two products, published by the operator before anyone applies; both within the contracts' default
# all-in cost cap (24% a year, fees included): three installments 30 days apart, and twelve monthly ones on the
# payout's day of the month with interest on each month's actual days.
THREE_MONTH = {"name": "3-month", "currency": "CNY", "min_principal": MIN_PRINCIPAL, "max_principal": 10_000_000,
               "min_installments": 3, "max_installments": 3, "frequency": "FixedInterval", "interval": 30 * DAY,
               "annual_rate_bps": 2400, "amortization": "Annuity", "grace_period": 3 * DAY, "late_fee_bps": 500,
               "penalty_rate_bps": 1200, "default_after": 90 * DAY, "service_fee_bps": 0,
               "early_repayment": "ReduceInstallments", "auto_approve": True, "auto_approve_max_principal": 10_000_000}
# A 1% service fee, deducted from the payout; an operator decides every application.
# Up to 18 installments: room for a hardship reschedule, which the book allows within the product's longest term.
TWELVE_MONTH = {**THREE_MONTH, "name": "12-month", "min_installments": 12, "max_installments": 18,
                "frequency": "Monthly", "day_count": "Actual365Fixed", "interval": 0, "annual_rate_bps": 1800, "service_fee_bps": 100, "early_repayment": "ReduceInstallmentAmount",
                "auto_approve": False, "auto_approve_max_principal": 0}
# Borrowers with a part in the story, by index; the late payer, the defaulter and the prepayer are the
# first three whose applications the policy approves (the bureau's records decide who that is); the last borrower
# offered credit takes the 12-month product, which an operator approves by hand.
OVER_LIMIT, STALE = 18, 19
OVERPAID_BY = 5_000  # 50 CNY more than the payoff: the loan closes, the rest is the borrower's credit until refunded
WRONG_CURRENCY = ("USD", 1_000)  # a payment in money the loan is not in: held in suspense, refunded
MISTYPED_OFFSET = 1_000  # a loan id past every loan the demo made: no such loan


class DemoSettings(BaseSettings):
    """Where the demo puts its ledger and its summary: LOANLEDGER_DEMO_HOME, LOANLEDGER_DEMO_SUMMARY (tests)."""

    model_config = SettingsConfigDict(env_prefix="LOANLEDGER_DEMO_", env_ignore_empty=True, frozen=True)

    home: Path = ROOT / "var" / "demo"
    summary: Path = ROOT / "var" / "demo-summary.json"


DEMO = DemoSettings()
SUMMARY = DEMO.summary

console = Console()


class DemoFailed(Exception):
    pass


def wait_for(what: str, check, timeout: float = 90.0, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise DemoFailed(f"timed out waiting for {what}")


class Scenario:
    def __init__(self, settings, progress: Progress, env: dict[str, str]):
        self.settings, self.progress, self.env = settings, progress, env
        self.base = f"http://{settings.api_host}:{settings.api_port}"
        self.node_url = settings.node_url
        self.sms = DevOutbox(settings.sms_outbox_path)
        self.borrowers: list[LoanLedgerClient] = []
        self.loans: dict[int, int] = {}          # borrower index -> loan id
        self.decisions: dict[int, str] = {}
        self.declined: list[int] = []           # scored too low to be offered any credit
        self.rail = httpx.Client(base_url=settings.rail_url, timeout=30)

    # -- helpers ---------------------------------------------------------------------------------

    def rpc(self, method: str, params: list):
        answer = httpx.post(self.node_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).json()
        if "error" in answer:
            raise DemoFailed(f"{method}: {answer['error']}")
        return answer["result"]

    def chain_time(self) -> int:
        return int(self.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)

    def advance(self, days: float) -> None:
        """Moves chain time (development only: the loans' months pass in seconds)."""
        self.rpc("evm_increaseTime", [int(days * DAY)])
        self.rpc("evm_mine", [])

    def advance_to(self, day: float) -> None:
        """Moves chain time to `day` days after the payouts (never back: a step that moved it further stays)."""
        self.advance(max(0.0, (self.day0 + day * DAY - self.chain_time()) / DAY))

    def until(self, what: str, check, timeout: float = 120.0):
        return wait_for(what, check, timeout=timeout)

    def staff(self, index: int) -> LoanLedgerClient:
        client = LoanLedgerClient(self.base, dev_account(index))
        client.login()
        return client

    def pay(self, index: int, amount: int, loan_id: int | None = None, currency: str = "CNY") -> str:
        """The borrower pays over the rail; its signed webhook reaches the oracle, which confirms on-chain.

        `loan_id` is what the borrower typed (their own loan unless given); answers the rail's reference."""
        loan_id = self.loans[index] if loan_id is None else loan_id
        response = self.rail.post("/v1/collections", json={"loan_id": loan_id, "amount": amount,
                                                           "currency": currency, "paid_at": self.chain_time()})
        response.raise_for_status()
        return response.json()["reference"]

    def suspense_item(self, reference: str, state: str) -> dict:
        """Waits until the operator's suspense list shows the payment with this rail reference in `state`."""
        def found():
            return next((item for item in self.operator.suspense()
                         if item["reference"] == reference and item["state"] == state), None)
        return wait_for(f"suspense item {reference} {state}", found, timeout=120)

    def loan(self, index: int) -> dict:
        return self.borrowers[index].loan(self.loans[index])

    def wait_paid(self, indexes: list[int], installments: int, what: str) -> None:
        def paid(loan: dict) -> bool:
            return loan["paid_installments"] >= installments or loan["status"] == "Repaid"

        def done():
            return all(paid(self.loan(i)) for i in indexes)
        wait_for(what, done, timeout=120)

    def policy_decision(self, index: int) -> str:
        """What the automatic policy (its own process, shortly after the application) decided: approved, or
        rejected:<the loan book's reason>, read from the loan's LoanRejected event."""
        loan_id = self.loans[index]
        status = self.borrowers[index].wait_for_decision(loan_id, timeout=60)["status"]
        if status in ("Approved", "Active"):  # Active: the payout was quicker than this read
            return "approved"
        if status != "Rejected":
            return status.lower()
        events = self.operator.audit(f"loans/{loan_id}")["events"]
        reason = next(e["args"]["reason"] for e in events if e["name"] == "LoanRejected")
        return "rejected:" + bytes.fromhex(reason.removeprefix("0x")).rstrip(b"\0").decode()

    def installment_amount(self, index: int) -> int:
        """What the next installment asks on its date, as the loan book says (paid a few days early, the interest
        not yet accrued prepays principal), or the payoff when that is less (the last one, paid before its due
        date, owes interest only to date: paying the scheduled amount would be refused as too much)."""
        due = self.borrowers[index].due(self.loans[index])
        return min(due["owed_at_next_due"], due["payoff"])

    # -- phases ----------------------------------------------------------------------------------

    def two_operators(self, what: str, proposed: dict) -> dict:
        """The second operator confirms what the operator proposed (each signs with their own key); recorded
        for the summary with both names, as FourEyes' events give them."""
        confirmed = self.second_operator.confirm(proposed["proposal_id"])
        self.four_eyes.append({"what": what, "summary": confirmed["summary"], "proposer": confirmed["proposer"],
                               "confirmer": confirmed["confirmer"], "proposal_id": confirmed["proposal_id"]})
        return confirmed

    def publish(self, product: dict) -> int:
        proposed = self.operator.create_product(product)
        created = self.two_operators(f"publish product {product['name']}", proposed)
        return created["result"]["ProductCreated"]["productId"]

    def staff_sign_in(self) -> None:
        self.admin, self.operator = self.staff(0), self.staff(1)
        self.second_operator = self.staff(DEV_SECOND_OPERATOR)  # confirms what the operator proposes (FourEyes)
        self.four_eyes: list[dict] = []
        self.auditor_account = dev_account(6)
        self.admin.add_auditor(self.auditor_account.address)
        self.three_month = self.publish(THREE_MONTH)
        self.twelve_month = self.publish(TWELVE_MONTH)
        self.operator.set_auto_approve(True)

    def onboard(self, task) -> None:
        wallets = self.settings.home / "wallets"
        for i in range(BORROWERS):
            # Derived from a fixed phrase, so every run tells the same story (the bureau's records follow
            # the address); a real borrower's key is random and never leaves their phone.
            account = Account.from_key(keccak(text=f"loanledger demo wallet {i}"))
            save_keystore(account, wallets / f"borrower-{i:02d}.json", "demo passphrase")
            person = sample_identity(100 + i)
            # Applying (and any other protected request) texts a step-up code to the borrower's phone; the demo reads
            # it off the SMS outbox, as the borrower reads their phone, and sends it with the request.
            client = LoanLedgerClient(self.base, account, step_up_codes=lambda _action, _params, p=person["phone"]:
                                      self.sms.last_code(p, "step_up"))
            client.login()
            client.kyc_submit(**person)
            status = client.kyc_verify(self.sms.last_code(person["phone"], "phone"),
                                       self.sms.last_code(person["phone"], "card"))
            if status["status"] not in ("registering", "registered"):  # the oracle registers it on-chain
                raise DemoFailed(f"borrower {i} not registered: {status}")
            wait_for(f"borrower {i} registered", lambda c=client: c.kyc_status()["status"] == "registered")
            self.borrowers.append(client)
            self.progress.advance(task)

    def scores(self, task) -> None:
        for client in self.borrowers:
            wait_for(f"a score for {client.account.address}", lambda c=client: c.credit()["score"] is not None)
            self.progress.advance(task)
        self.limits = [client.credit()["credit_limit"] for client in self.borrowers]

    def apply(self, task) -> None:
        offered = [i for i in range(BORROWERS) if i not in (OVER_LIMIT, STALE) and self.limits[i] >= MIN_PRINCIPAL]
        self.long_term = offered[-1]  # applies for the 12-month product
        for i, client in enumerate(self.borrowers):
            if i == STALE:
                continue
            limit = self.limits[i]
            if i != OVER_LIMIT and limit < MIN_PRINCIPAL:
                self.declined.append(i)  # the app shows no credit on offer: this borrower does not apply
                self.progress.advance(task)
                continue
            principal = limit + 100_000 if i == OVER_LIMIT else min(limit, 300_000) // 1000 * 1000
            if i == self.long_term:
                answer = client.apply(self.twelve_month, principal, 12)
            else:
                answer = client.apply(self.three_month, principal, 3)
            self.loans[i], self.decisions[i] = answer["loan_id"], answer["decision"] or "requested"
            if i != self.long_term:  # the automatic policy's process decides the 3-month applications
                self.decisions[i] = self.policy_decision(i)
            self.progress.advance(task)
        if self.decisions[self.long_term] != "requested":
            raise DemoFailed(f"the 12-month application was decided automatically: {self.decisions[self.long_term]}")
        self.operator.approve(self.loans[self.long_term])  # the product leaves it to an operator; the payout follows
        approved = [i for i, d in self.decisions.items() if d == "approved"]
        wait_for("payouts confirmed on-chain", lambda: all(self.loan(i)["status"] == "Active"
                                                           for i in approved + [self.long_term]), timeout=120)
        if len(approved) < 4:
            raise DemoFailed(f"only {len(approved)} applications were approved; the story needs four")
        self.active = approved
        self.late, self.defaulter, self.prepayer = approved[:3]
        self.day0 = self.chain_time()
        self.life = Life(self)
        self.life.sign_mandate(approved[3])  # the first on-time payer's installment is debited automatically

    def first_installments(self) -> None:
        self.advance_to(27)  # three days before the first due date
        self.pay(self.prepayer, self.borrowers[self.prepayer].due(self.loans[self.prepayer])["payoff"])
        on_time = [i for i in self.active if i not in (self.late, self.defaulter, self.prepayer)]
        by_hand = [i for i in on_time if i != self.life.debited]  # the mandate's is debited on its due date
        for i in by_hand + [self.long_term]:
            self.pay(i, self.installment_amount(i))
        self.wait_paid(by_hand + [self.long_term], 1, "first installments credited")
        wait_for("the prepayment", lambda: self.loan(self.prepayer)["status"] == "Repaid")
        self.on_time = on_time

    def stale_application(self) -> None:
        self.advance_to(31)  # day 31: the last borrower's score, pushed on day 0, is older than 30 days
        answer = self.borrowers[STALE].apply(self.three_month, 50_000, 3)
        self.loans[STALE] = answer["loan_id"]
        self.decisions[STALE] = self.policy_decision(STALE)

    def late_payment(self) -> None:
        self.advance_to(40)  # day 40: ten days late, past the 3-day grace: late fee and penalty
        due = self.borrowers[self.late].due(self.loans[self.late])
        self.late_charges = {"late_fee": due["late_fee"], "penalty": due["penalty"]}
        if not (due["late_fee"] > 0 and due["penalty"] > 0):
            raise DemoFailed(f"the late installment carries no late fee or penalty: {due}")
        self.pay(self.late, due["total"])
        self.wait_paid([self.late], 1, "the late installment")

    def second_installments_and_suspense(self) -> None:
        """Day 57: the second installments. One borrower pays more than the payoff (the book closes the loan
        Overpaid and holds the rest as their credit; the operator refunds it over the rail, and the refund's
        confirmation closes the loan Repaid); one pays in the wrong currency (held in suspense, refunded);
        one types a loan id that does not exist (held in suspense, applied to the loan it was meant for)."""
        self.advance_to(57)
        self.overpayer, self.mistyper, self.foreign_payer = self.late, self.on_time[0], self.on_time[-1]
        payers = [i for i in self.on_time + [self.late] if i != self.overpayer]
        over_loan = self.loans[self.overpayer]
        payoff = self.borrowers[self.overpayer].due(over_loan)["payoff"]
        self.pay(self.overpayer, payoff + OVERPAID_BY)  # more than the loan owes: closed, the rest held as credit
        mistyped_loan = max(self.loans.values()) + MISTYPED_OFFSET
        mistyped_ref = self.pay(self.mistyper, self.installment_amount(self.mistyper), loan_id=mistyped_loan)
        currency, amount = WRONG_CURRENCY
        foreign_ref = self.pay(self.foreign_payer, amount, currency=currency)
        for i in payers + [self.long_term]:
            if i != self.mistyper:
                self.pay(i, self.installment_amount(i))
        overpaid = wait_for("the overpaid loan closed with credit", lambda: (
            loan := self.operator.loan(over_loan))["status"] == "Overpaid" and loan["credit_balance"] > 0 and loan,
            timeout=120)
        credit = overpaid["credit_balance"]
        self.operator.refund_credit(over_loan)
        repaid = wait_for("the credit refund confirmed on-chain", lambda: (
            loan := self.operator.loan(over_loan))["status"] == "Repaid" and loan, timeout=120)
        (refund,) = wait_for("the credit refund order settled", lambda: [
            o for o in self.operator.credit_refunds(over_loan) if o["state"] == "settled"], timeout=60)
        foreign = self.suspense_item(foreign_ref, "open")
        self.operator.refund_suspense(foreign["id"])
        refunded = self.suspense_item(foreign_ref, "refunded")
        mistyped = self.suspense_item(mistyped_ref, "open")
        self.operator.apply_suspense(mistyped["id"], self.loans[self.mistyper])
        applied = self.suspense_item(mistyped_ref, "applied")
        self.wait_paid(payers + [self.long_term], 2, "installment 2 (the mistyped one applied to its loan)")
        self.credit = {"loan_id": over_loan, "payoff": payoff, "paid": payoff + OVERPAID_BY, "credit": credit,
                       "refunded": refund["amount"], "refund_reference": refund["refund_reference"],
                       "status_after": repaid["status"]}
        self.suspense = {
            **self.suspense_counts(),
            "refund_amount": refunded["refund"]["amount"] if refunded.get("refund") else refunded["amount"],
            "wrong_currency": {"loan_id": foreign["loan_id"], "amount": foreign["amount"],
                               "currency": foreign["currency"], "reason": foreign["reason"]},
            "mistyped": {"sent_to": mistyped["loan_id"], "applied_to": self.loans[self.mistyper],
                         "amount": applied["amount"], "reason": mistyped["reason"]},
        }

    def suspense_counts(self) -> dict:
        """Counted from the operator's whole list, not from the story: any other refused receipt shows too."""
        states = [item["state"] for item in self.operator.suspense()]
        return {"opened": len(states), "refunded": states.count("refunded"), "applied": states.count("applied"),
                "left_open": sum(state in ("open", "refunding") for state in states)}

    def last_installments(self) -> None:
        self.advance_to(87)  # day 87
        payers = [i for i in self.on_time + [self.late] if i != self.overpayer]  # the overpayer closed early
        for i in payers + [self.long_term]:
            self.pay(i, self.installment_amount(i))
        self.wait_paid(payers + [self.long_term], 3, "installment 3")
        wait_for("every paying loan repaid", lambda: all(self.loan(i)["status"] == "Repaid" for i in self.on_time + [self.late]),
                 timeout=120)

    def default_and_write_off(self) -> None:
        self.advance_to(127)  # day 127: more than 90 days past the first due date
        wait_for("the risk monitor's default declaration", lambda: self.loan(self.defaulter)["status"] == "Defaulted",
                 timeout=60)
        # Two operators write a loan off: the operator proposes it, the second operator confirms it.
        self.two_operators("write off the defaulted loan", self.operator.write_off(self.loans[self.defaulter]))
        wait_for("the write-off", lambda: self.loan(self.defaulter)["status"] == "WrittenOff")

    def borrower_life(self) -> None:
        """Day 31: the 12-month borrower's hardship reschedule, the defaulter's lost wallet recovered, the prepayer's
        KYC renewed."""
        self.life.reschedule(self.long_term)
        self.life.recover_wallet(self.defaulter)
        self.life.renew_kyc(self.prepayer)

    def audit(self) -> dict:
        auditor = LoanLedgerClient(self.base, self.auditor_account)
        auditor.login()
        # The oracle anchors the log every few seconds here; the demo anchors now too (with the oracle's key, as
        # `loanledger log anchor` does), so the check covers everything done above.
        subprocess.run([LOANLEDGER, "log", "anchor"], env=self.env,
                       capture_output=True, check=True)
        self.report = auditor.portfolio()
        self.suspense.update(self.suspense_counts())  # the end of the story: nothing refused later left open
        checks = {
            "index_vs_chain": auditor.verify("index"),
            "recomputed_state": auditor.verify("state"),
            "identity": auditor.verify("identity", address=self.borrowers[0].account.address),
            "action_log": auditor.verify("log"),
        }
        self.checks = checks
        return {name: bool(result.get("ok")) for name, result in checks.items()}


CHROMIUM = Path("/usr/bin/chromium")


# The auditor's browser wallet: an EIP-1193 provider whose personal_sign the demo answers with the auditor's key.
WALLET = """window.ethereum = {request: async ({method, params}) => {
    if (method === "eth_requestAccounts" || method === "eth_accounts") return [ADDRESS];
    if (method === "personal_sign") return await window.demoWalletPersonalSign(params[0]);
    throw new Error("unsupported " + method);
}};"""


def dashboard_check(base: str, auditor: LocalAccount, loans: int, loan_id: int) -> dict:
    """The auditor's dashboard in headless Chromium (Debian's; nothing is downloaded), signed in with a wallet
    (Sign-In with Ethereum, as a person does: the stack runs without the development login): every loan
    listed, a click opens a loan's timeline and its verification; screenshots beside the summary."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"checked": False, "reason": "playwright is not installed (pip install -e .[test])"}
    if not CHROMIUM.exists():
        return {"checked": False, "reason": f"no browser at {CHROMIUM} (apt-get install chromium)"}
    shots = SUMMARY.parent
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            page.expose_function("demoWalletPersonalSign", lambda data: auditor.sign_message(
                encode_defunct(hexstr=data)).signature.to_0x_hex())
            page.add_init_script(WALLET.replace("ADDRESS", json.dumps(auditor.address.lower())))
            page.goto(f"{base}/dashboard")
            page.wait_for_selector("body[data-view='signin'][data-state='ready']")
            page.click("#wallet-login")
            page.wait_for_selector("body[data-view='portfolio'][data-state='ready']")
            shown = len(page.query_selector_all("#loans-table tbody tr"))
            page.screenshot(path=str(shots / "demo-dashboard.png"), full_page=True)
            page.click(f"#loans-table tbody tr[data-loan-id='{loan_id}'] td:nth-child(3)")
            page.wait_for_selector("body[data-view='loan'][data-state='ready']")
            events = len(page.query_selector_all("#timeline tbody tr"))
            page.wait_for_selector("#loan-verify[data-ok]")
            verified = page.get_attribute("#loan-verify", "data-ok") == "true"
            page.screenshot(path=str(shots / "demo-dashboard-loan.png"), full_page=True)
        finally:
            browser.close()
    return {"checked": True, "loans_shown": shown, "loans": loans, "timeline_events": events,
            "loan_verified": verified, "ok": shown == loans and events > 0 and verified,
            "screenshots": [str(shots / "demo-dashboard.png"), str(shots / "demo-dashboard-loan.png")]}


def gas_used(node_url: str, from_block: int) -> int:
    client = httpx.Client(timeout=30)
    head = int(client.post(node_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []})
               .json()["result"], 16)
    total = 0
    for start in range(from_block, head + 1, 100):
        batch = [{"jsonrpc": "2.0", "id": n, "method": "eth_getBlockByNumber", "params": [hex(n), False]}
                 for n in range(start, min(start + 100, head + 1))]
        total += sum(int(block["result"]["gasUsed"], 16) for block in client.post(node_url, json=batch).json())
    return total


def score_quorum(settings) -> dict:
    """Read from the chain: every accepted score report and whose signatures carried it (the quorum at work)."""
    from eth_account import Account as Signers

    from ledger.chain import web3_for
    from ledger.contracts import bind
    from ledger.manifest import load

    manifest = load(settings.manifest_path)
    oracle = bind(web3_for(settings), manifest).oracle
    threshold, used, at_threshold = oracle.functions.signerThreshold().call(), set(), True
    accepted = oracle.events.ScoreReportAccepted().get_logs(from_block=manifest.start_block, to_block="latest")
    for event in accepted:
        _, args = oracle.decode_function_input(oracle.w3.eth.get_transaction(event.transactionHash)["input"])
        digest = bytes(oracle.functions.reportDigest(args["reportId"], args["modelVersion"], args["updates"]).call(
            block_identifier=event.blockNumber - 1))
        signers = [Signers._recover_hash(digest, signature=s) for s in args["signatures"]]
        at_threshold = at_threshold and len(set(signers)) == len(signers) >= threshold
        used.update(signers)
    return {"signers": len(manifest.granted("CreditOracle").get("SCORE_SIGNER_ROLE", [])), "threshold": threshold,
            "reports": len(accepted), "signers_used": len(used), "every_report_at_threshold": at_threshold}


def who_decided(settings) -> dict:
    """Read from the chain: who approved and rejected each loan (the events' `actor`), and who can still grant roles
    (DEFAULT_ADMIN_ROLE on each contract): the deployer renounced it, so only FourEyes' two admins can."""
    from ledger.chain import web3_for
    from ledger.contracts import bind
    from ledger.manifest import CONTRACT_NAMES, load

    manifest = load(settings.manifest_path)
    bindings = bind(web3_for(settings), manifest)
    book, policy = bindings.book, manifest.granted("LoanBook").get("POLICY_ROLE", [])
    decided: dict[str, int] = {}
    for event in ("LoanApproved", "LoanRejected"):
        for log in getattr(book.events, event)().get_logs(from_block=manifest.start_block, to_block="latest"):
            actor = log.args.actor
            who = "policy" if actor in policy else "four eyes" if actor == bindings.four_eyes.address else actor
            key = f"{event.removeprefix('Loan').lower()} by {who}"
            decided[key] = decided.get(key, 0) + 1
    admins = {name: [a for a in [manifest.deployer, bindings.four_eyes.address]
                     if bindings.by_name(name).functions.hasRole(bytes(32), a).call()]
              for name in CONTRACT_NAMES if name != "FourEyes"}
    return {"decisions_by_actor": decided, "deployer_is_admin_on": sorted(n for n, a in admins.items()
                                                                           if manifest.deployer in a),
            "four_eyes_is_admin_on": sorted(n for n, a in admins.items() if bindings.four_eyes.address in a)}


def main() -> int:
    started = time.monotonic()
    settings = load_settings({**os.environ, "LOANLEDGER_HOME": str(DEMO.home)})  # the demo's own data directory
    console.print(f"[bold]LoanLedger demo[/bold]: a fresh ledger in {settings.home} (the previous demo's is removed)")
    LocalNode.from_settings(settings).stop()
    shutil.rmtree(settings.home, ignore_errors=True)
    phases = [
        ("start the stack: anvil, contracts, rail, bureau, indexer, oracle, API", 1),
        (("staff sign in; two loan products proposed and confirmed by two operators; auditor admitted; "
          "automatic approval on"), 1),
        (f"{BORROWERS} borrowers: wallet, sign-in, KYC with one-time codes", BORROWERS),
        ("scores and limits pushed by the oracle", BORROWERS),
        ("signed applications by product; the policy or an operator decides; payouts over the rail", BORROWERS - 1),
        ("day 27: first installments by webhook, batched on-chain; one prepays", 1),
        ("day 30: the automatic debit declined (insufficient funds), retried a day later and collected", 1),
        ("day 31: an application on a stale score", 1),
        ("day 31: a reschedule asked (step-up code), offered, signed; a lost wallet recovered; a KYC renewed", 1),
        ("day 40: a late installment, with late fee and penalty", 1),
        ("day 57: second installments; an overpaid loan's credit refunded, a wrong-currency payment refunded "
         "from suspense, a mistyped loan id applied", 1),
        ("day 87: the last installments", 1),
        ("day 127: a default declared by the risk monitor, written off", 1),
        ("the notices the borrowers were sent, with their delivery status", 1),
        ("the auditor: portfolio report and verification", 1),
        ("the auditor's dashboard in headless Chromium", 1),
        ("the borrower app on a phone: the automatically debited borrower's journey, screenshots", 1),
    ]
    stack = None
    outcome: dict = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        tasks = [progress.add_task(name, total=total, start=False) for name, total in phases]

        began: dict[int, float] = {}
        took: dict[str, float] = {}  # seconds per phase, for the summary (what each step costs the demo)

        def phase(n: int):
            progress.start_task(tasks[n])
            began[n] = time.monotonic()
            return tasks[n]

        def done(n: int):
            progress.update(tasks[n], completed=phases[n][1])
            took[phases[n][0]] = round(time.monotonic() - began[n], 1)

        try:
            phase(0)
            # The demo's four months are short of a year's KYC: renewal is open all year here so that one is shown;
            # notices go out every two seconds (the clock moves by weeks between steps).
            env = {**os.environ, "LOANLEDGER_ANCHOR_INTERVAL": "5", "LOANLEDGER_KYC_RENEWAL_DAYS": "365",
                   "LOANLEDGER_NOTICE_INTERVAL": "2"}
            stack = local_stack(settings, say=lambda line: progress.console.print(f"  [dim]{line}[/dim]"), env=env)
            stack.start()
            start_block = 1
            done(0)
            scenario = Scenario(settings, progress, stack.service_env())
            progress.console.print(f"the borrower app: [bold]{app_url(scenario.base)}[/bold]")
            phase(1)
            scenario.staff_sign_in()
            done(1)
            scenario.onboard(phase(2))
            scenario.scores(phase(3))
            scenario.apply(phase(4))
            for n, step in ((5, scenario.first_installments), (6, lambda: scenario.life.debit_on_the_due_date()),
                            (7, scenario.stale_application), (8, scenario.borrower_life),
                            (9, scenario.late_payment), (10, scenario.second_installments_and_suspense),
                            (11, scenario.last_installments), (12, scenario.default_and_write_off),
                            (13, lambda: scenario.life.notices())):
                phase(n)
                step()
                done(n)
            phase(14)
            audit = scenario.audit()
            done(14)
            phase(15)
            dashboard = dashboard_check(scenario.base, scenario.auditor_account,
                                        sum(row["count"] for row in scenario.report["by_status"]),
                                        scenario.loans[scenario.defaulter])
            done(15)
            phase(16)
            # The borrower with the most to see: a repaid loan whose first installment was debited automatically
            # (declined, then collected), told to them by notices.
            debited = scenario.life.debited
            app = app_check(scenario.base, scenario.borrowers[debited], scenario.loans[debited], SUMMARY.parent / "app")
            done(16)
            outcome = summarize(scenario, audit, gas_used(settings.node_url, start_block), time.monotonic() - started,
                                app)
            outcome["dashboard"] = dashboard
            outcome["app"] = app
            outcome["phase_seconds"] = took
            outcome["score_quorum"] = score_quorum(settings)
            outcome["who_decided"] = who_decided(settings)
            progress.console.print(f"decided on-chain: {outcome['who_decided']['decisions_by_actor']}; the deployer "
                                   f"holds no admin role (renounced: "
                                   f"{not outcome['who_decided']['deployer_is_admin_on']})")
            if dashboard["checked"] and not dashboard["ok"]:
                outcome["ok"] = False
                progress.console.print(f"[red]the dashboard did not show the book[/red]: {dashboard}")
            elif dashboard["checked"]:
                progress.console.print(f"dashboard: {dashboard['loans_shown']} loans shown, a timeline of "
                                       f"{dashboard['timeline_events']} events, verified; screenshots "
                                       f"{', '.join(dashboard['screenshots'])}")
            else:
                progress.console.print(f"[yellow]dashboard not checked[/yellow]: {dashboard['reason']}")
            if app["checked"] and not app["ok"]:
                outcome["ok"] = False
                progress.console.print(f"[red]the app did not show the demo's borrower[/red]: {app}")
            elif app["checked"]:
                progress.console.print(f"the app ({app['url']}) as borrower {app['borrower']}, loan {app['loan_id']} "
                                       f"({app['shown']['loan_status']}): screenshots "
                                       f"{', '.join(Path(shot).name for shot in app['screenshots'])} in "
                                       f"{Path(app['screenshots'][0]).parent}")
            else:
                progress.console.print(f"[yellow]app not photographed[/yellow]: {app['reason']}")
        except Exception as exc:
            progress.console.print(f"[red]demo failed:[/red] {type(exc).__name__}: {exc}")
            progress.console.print(traceback.format_exc(limit=-4), markup=False, highlight=False)
            if stack is not None:
                progress.console.print(f"logs: {stack.logs}")
            outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            if stack is not None:
                stack.stop()
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY.write_text(json.dumps(outcome, indent=2) + "\n")
    console.print(f"summary written to {SUMMARY}")
    return 0 if outcome.get("ok") else 1


def summarize(scenario: Scenario, audit: dict, gas: int, seconds: float, app: dict) -> dict:
    report = scenario.report
    by_status = {row["status"]: row for row in report["by_status"]}
    by_state = {state: row["count"] for state, row in by_status.items() if row["count"]}
    rejected = sum(1 for d in scenario.decisions.values() if d.startswith("rejected"))
    expected = {"Repaid": len(scenario.on_time) + 2, "WrittenOff": 1, "Rejected": rejected, "Active": 1}
    long_term = scenario.loan(scenario.long_term)  # still running: 9 of its 12 installments to go
    twelve_month = {"loan_id": long_term["id"], "product_id": long_term["product_id"],
                    "installments": long_term["installments"], "principal": long_term["principal"],
                    "service_fee": long_term["service_fee"],
                    "paid_out": long_term["principal"] - long_term["service_fee"],
                    "paid_installments": long_term["paid_installments"], "status": long_term["status"]}
    products = {p["name"]: {"id": p["id"], "installments": p["max_installments"],
                            "annual_rate_bps": p["annual_rate_bps"], "service_fee_bps": p["service_fee_bps"],
                            "auto_approve": p["auto_approve"],
                            "loans": sum(1 for i in scenario.loans if scenario.loan(i)["product_id"] == p["id"])}
                for p in scenario.operator.products()}
    story_ok = (all(by_state.get(state, 0) == count for state, count in expected.items())
                and twelve_month["product_id"] == scenario.twelve_month and twelve_month["service_fee"] > 0
                and scenario.decisions[OVER_LIMIT] == "rejected:over_limit"
                and scenario.decisions[STALE] == "rejected:stale_score"
                and scenario.suspense["left_open"] == 0)
    life = scenario.life.checks()
    story_ok = story_ok and all(life.values())
    decisions = {d: list(scenario.decisions.values()).count(d) for d in set(scenario.decisions.values())}
    totals = {key: sum(row[key] for row in by_status.values())
              for key in ("principal", "principal_repaid", "interest_paid", "late_fee_paid", "penalty_paid",
                          "principal_written_off")}
    table = Table(title="LoanLedger demo: what happened")
    table.add_column("")
    table.add_column("value", justify="right")
    for state, count in sorted(by_state.items()):
        table.add_row(f"loans {state}", str(count))
    for key, value in totals.items():
        label = "principal applied for" if key == "principal" else key.replace("_", " ")
        table.add_row(f"{label} (fen)", f"{value:,}")
    table.add_row("late fee + penalty charged to the late borrower (fen)",
                  f"{scenario.late_charges['late_fee']:,} + {scenario.late_charges['penalty']:,}")
    suspense = scenario.suspense
    table.add_row("suspense: opened / refunded / applied / left open",
                  f"{suspense['opened']} / {suspense['refunded']} / {suspense['applied']} / {suspense['left_open']}")
    table.add_row("wrong-currency payment refunded (minor units)", f"{suspense['refund_amount']:,}")
    credit = scenario.credit
    table.add_row("overpayment: credit held / refunded (fen)", f"{credit['credit']:,} / {credit['refunded']:,}")
    table.add_row("decisions", ", ".join(f"{k}: {v}" for k, v in sorted(decisions.items())))
    table.add_row("offered no credit (score too low)", str(len(scenario.declined)))
    for name, product in products.items():
        table.add_row(f"product {name}: loans", str(product["loans"]))
    table.add_row("12-month loan: principal / service fee / paid out (fen)",
                  f"{twelve_month['principal']:,} / {twelve_month['service_fee']:,} / {twelve_month['paid_out']:,}")
    for decided in scenario.four_eyes:
        table.add_row(f"four eyes: {decided['what']}",
                      f"proposed by {decided['proposer'][:8]}…, confirmed by {decided['confirmer'][:8]}…")
    for label, value in scenario.life.rows():
        table.add_row(label, value)
    table.add_row("borrower app", app["url"])
    if app["checked"]:
        table.add_row(f"borrower app: screenshots of borrower {app['borrower'][:8]}…'s journey (loan {app['loan_id']})",
                      str(len(app["screenshots"])))
    table.add_row("gas used (all transactions)", f"{gas:,}")
    table.add_row("time taken", f"{seconds:.0f} s")
    for name, passed in audit.items():
        table.add_row(f"audit: {name.replace('_', ' ')}", "[green]pass[/green]" if passed else "[red]FAIL[/red]")
    console.print(table)
    if not story_ok:
        console.print(f"[red]the loans did not end as the story says[/red]: expected {expected}, got {by_state}; "
                      f"the borrowers' steps: {life}")
    return {"ok": story_ok and all(audit.values()), "loans_by_state": by_state, "audit": audit,
            "decisions": decisions, "declined_by_score": len(scenario.declined), "amounts": totals, "late_charges": scenario.late_charges,
            "suspense": scenario.suspense, "credit": scenario.credit, "products": products,
            "twelve_month_loan": twelve_month, "four_eyes": scenario.four_eyes,
            **scenario.life.summary, "borrower_life_checks": life,
            "operators": {"operator": scenario.operator.account.address,
                          "second_operator": scenario.second_operator.account.address},
            "portfolio": report, "gas_used": gas, "seconds": round(seconds, 1)}


if __name__ == "__main__":
    raise SystemExit(main())
