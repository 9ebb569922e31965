"""`loanledger api` (serve the API) and the client commands borrowers, operators and auditors type:
`wallet`, `login`, `kyc`, `products`, `apply`, `loans`, `due`, `operator ...` (`operator product create|change|retire`),
`admin ...`, `audit ...`. An operator's, admin's or pauser's decision is signed with their own wallet (the API shows
what it does before the wallet signs, and relays it).

Client commands talk to the API over HTTP with the SDK; the wallet is an encrypted keystore on the
user's machine (`<home>/wallets/<name>.json`), the sign-in token sits beside it, readable only by its owner.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import typer
from eth_account import Account
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from api.client import ApiError, LoanLedgerClient, load_wallet
from ledger.chain import save_keystore
from ledger.config import load_settings

console, err = Console(), Console(stderr=True)
wallet_app = typer.Typer(help="Your wallet: an encrypted key that signs your sign-ins and applications.",
                         no_args_is_help=True)
kyc_app = typer.Typer(help="Real-name verification with one-time codes.", no_args_is_help=True)
operator_app = typer.Typer(help="Operator actions (your wallet must hold the operator role): each decision is "
                                "signed with your wallet and relayed by the API.", no_args_is_help=True)
product_app = typer.Typer(help="Publish, version and retire loan products.", no_args_is_help=True)
operator_app.add_typer(product_app, name="product")
admin_app = typer.Typer(help="Admin decisions (your wallet must hold the admin role), signed with your wallet.",
                        no_args_is_help=True)
reschedule_app = typer.Typer(help="Hardship: ask for a longer schedule, see the offer, accept it by signing.",
                              no_args_is_help=True)
debit_app = typer.Typer(help="Automatic debit: let the rail debit your bound card on a loan's due dates; revoke it.",
                         no_args_is_help=True)
audit_app = typer.Typer(help="Auditor reads, reports, verification and exports.", no_args_is_help=True)

WALLET = typer.Option("default", "--wallet", "-w", help="Wallet name.")
API = typer.Option(None, "--api", help="API base URL (default http://<api_host>:<api_port>).")
JSON = typer.Option(False, "--json", help="Print JSON.")
STEP_UP_PARAMS = typer.Argument(None, help="name=value for each of the action's parameters, e.g. product_id=1 "
                                "principal=100000 installments=3")
STEP_UP_CODE = typer.Option(None, "--code", help="The step-up code texted to you for exactly this request "
                            "(`loanledger step-up`); without it one is texted now and asked for.")


def _wallet_dir() -> Path:
    return load_settings().wallet_path


def _passphrase(confirm: bool = False) -> str:
    configured = load_settings().wallet_passphrase
    return configured.get_secret_value() if configured else typer.prompt(
        "Wallet passphrase", hide_input=True, confirmation_prompt=confirm)


def _base_url(api: str | None) -> str:
    return api or load_settings().api_base_url


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


def _client(wallet: str, api: str | None, *, signed_in: bool = True) -> LoanLedgerClient:
    path = _wallet_dir() / f"{wallet}.json"
    if not path.exists():
        raise _fail(f"no wallet '{wallet}' in {path.parent}: `loanledger wallet new`")
    token_file = path.with_suffix(".token")
    token = token_file.read_text().strip() if token_file.exists() else None
    if signed_in and token is None:
        raise _fail("not signed in: `loanledger login`")
    if signed_in:
        return LoanLedgerClient(_base_url(api), None, token=token)
    try:
        account = load_wallet(path, _passphrase())
    except ValueError:
        raise _fail(f"wrong passphrase for {path}") from None
    return LoanLedgerClient(_base_url(api), account)


def _step_up(client: LoanLedgerClient, code: str | None) -> dict:
    """The protected call's `step_up_code`: the one given, else the SDK asks the API to text one and the borrower
    types it here (read off their phone)."""
    if code is None:
        client.step_up_codes = lambda action, params: typer.prompt(
            f"Step-up code texted to your phone for {action}", err=True).strip()
    return {"step_up_code": code}


def _show(prepared) -> bool:
    """What the wallet is about to sign, in words (the API's summary of the calls it prepared)."""
    err.print(f"[bold]signing:[/bold] {prepared.summary}")
    for item in prepared.requests if len(prepared.requests) > 1 else ():
        err.print(f"  - {item.summary}")
    return True


def _signer(wallet: str, api: str | None, *, quiet: bool = False) -> LoanLedgerClient:
    """A signed-in client that also holds the wallet's key: a decision is signed by the person who makes it, after
    its summary is shown (on stderr; not with --json, whose output is for a program)."""
    token = _client(wallet, api).token
    signer = _client(wallet, api, signed_in=False)
    signer.token, signer.review = token, None if quiet else _show
    return signer


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ApiError as exc:
        hint = " (sign in again: `loanledger login`)" if exc.status == 401 else ""
        raise _fail(f"{exc.code}: {exc.message}{hint}") from None
    except OSError as exc:
        raise _fail(f"the API does not answer: {exc}") from None
    except Exception as exc:
        if type(exc).__module__.startswith("httpx"):
            raise _fail(f"the API does not answer: {exc}") from None
        raise


def _print(data, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        console.print_json(json.dumps(data))


# -------------------------------------------------------------------------------------------- wallet

@wallet_app.command("new")
def wallet_new(wallet: str = WALLET) -> None:
    """Create a wallet (a new key, encrypted with your passphrase)."""
    path = _wallet_dir() / f"{wallet}.json"
    if path.exists():
        raise _fail(f"{path} exists; choose another --wallet name")
    account = Account.create()
    save_keystore(account, path, _passphrase(confirm=True))
    console.print(f"wallet '{wallet}': {account.address}  ({path})")


@wallet_app.command("import")
def wallet_import(wallet: str = WALLET, key_file: Path = typer.Option(..., "--key-file", exists=True, dir_okay=False,
                                                                       help="A file holding the hex private key.")) -> None:
    """Import an existing private key into an encrypted wallet."""
    path = _wallet_dir() / f"{wallet}.json"
    if path.exists():
        raise _fail(f"{path} exists; choose another --wallet name")
    try:
        account = Account.from_key(key_file.read_text().strip())
    except ValueError as exc:
        raise _fail(f"not a private key: {exc}") from None
    save_keystore(account, path, _passphrase(confirm=True))
    console.print(f"wallet '{wallet}': {account.address}  ({path})")


@wallet_app.command("address")
def wallet_address(wallet: str = WALLET) -> None:
    """Print the wallet's address (no passphrase needed)."""
    path = _wallet_dir() / f"{wallet}.json"
    if not path.exists():
        raise _fail(f"no wallet '{wallet}' in {path.parent}")
    typer.echo("0x" + json.loads(path.read_text())["address"].removeprefix("0x"))


# -------------------------------------------------------------------------------------------- borrower

def register(app: typer.Typer) -> None:
    app.add_typer(wallet_app, name="wallet")
    app.add_typer(kyc_app, name="kyc")
    app.add_typer(operator_app, name="operator")
    app.add_typer(admin_app, name="admin")
    app.add_typer(audit_app, name="audit")
    app.add_typer(reschedule_app, name="reschedule")
    app.add_typer(debit_app, name="debit")

    @app.command("api")
    def serve(host: str = typer.Option(None, "--host"), port: int = typer.Option(None, "--port")) -> None:
        """Serve the API (uvicorn) on the configured host and port."""
        import uvicorn

        from api.app import create_app
        from ledger.errors import LoanLedgerError
        settings = load_settings()
        try:
            app_ = create_app(settings=settings)
        except LoanLedgerError as exc:  # e.g. no vault key file yet: one line, not a traceback
            raise _fail(str(exc)) from None
        uvicorn.run(app_, host=host or settings.api_host, port=port or settings.api_port, log_level="info")

    @app.command("login")
    def login(wallet: str = WALLET, api: str = API) -> None:
        """Sign in with your wallet (Sign-In with Ethereum); the token is kept beside the wallet."""
        client = _client(wallet, api, signed_in=False)
        answer = _call(client.login)
        token_file = _wallet_dir() / f"{wallet}.token"
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(answer["token"])
        console.print(f"signed in as {answer['address']} ({', '.join(answer['roles'])})")

    @app.command("step-up")
    def step_up(
        action: str = typer.Argument(..., help="apply, phone_change, card_change, debit_mandate, reschedule_request or reschedule_accept"),
        params: list[str] = STEP_UP_PARAMS,
        wallet: str = WALLET, api: str = API,
    ) -> None:
        """Have a step-up code texted to your verified phone for one request; give it to that command as --code."""
        pairs = [p.split("=", 1) for p in params or []]
        if any(len(p) != 2 for p in pairs):
            raise _fail("parameters are name=value")
        answer = _call(_client(wallet, api).step_up, action, **{k: int(v) if v.isascii() and v.isdigit() else v
                                                                for k, v in pairs})
        console.print(f"code texted to {answer['sent_to']} for {action}; valid until {answer['expires_at']} (unix)")

    @app.command("apply")
    def apply(
        product_id: int = typer.Option(..., "--product", min=1, help="The product (`loanledger products`)."),
        principal: int = typer.Option(..., "--principal", min=1, help="Minor units (fen), within the product's range."),
        installments: int = typer.Option(..., "--installments", min=1, help="Within the product's allowed numbers."),
        version: int = typer.Option(None, "--version", min=1, help="The product version to sign (default: latest)."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Apply without asking."),
        wait: float = typer.Option(0, "--wait", min=0, help="Seconds to wait for the decision (the automatic policy "
                                   "decides shortly after, when the product lets it); 0: answer at once."),
        code: str = STEP_UP_CODE, wallet: str = WALLET, api: str = API,
    ) -> None:
        """Show what applying for a product gives (its terms, the fee, the contract's schedule), then sign and apply
        (with a step-up code texted to your phone for exactly this application)."""
        reader = _client(wallet, api)
        quote = _call(reader.quote, product_id, principal, installments, version)
        table = Table(title=f"Product {product_id} v{quote['product_version']}: {quote['annual_rate_bps'] / 100:g}% a "
                            f"year {quote['amortization']} (days after payout; minor units of {quote['currency']})")
        for column in ("#", "due day", "principal", "interest"):
            table.add_column(column, justify="right")
        for item in quote["schedule"]:
            table.add_row(str(item["number"]), f"{item['due_at'] / 86_400:g}", f"{item['principal']:,}",
                          f"{item['interest']:,}")
        console.print(table)
        console.print(f"total interest {quote['total_interest']:,}; service fee {quote['service_fee']:,}; "
                      f"paid out {quote['net_paid_out']:,}; total repaid {quote['total_repaid']:,}")
        if not yes and not typer.confirm("Sign and apply?"):
            raise typer.Exit(1)
        signer = _client(wallet, api, signed_in=False)
        signer.token = reader.token
        answer = _call(signer.apply, product_id, principal, installments, quote["product_version"],
                       **_step_up(signer, code))
        console.print(f"loan {answer['loan_id']}: {answer['status']}"
                      + (f" ({answer['decision']})" if answer.get("decision") else "") + f"  tx {answer['tx_hash']}")
        if wait and answer["status"] == "Requested":
            def decision() -> dict | None:  # a TimeoutError is an OSError, which _call takes for the API's absence
                try:
                    return signer.wait_for_decision(answer["loan_id"], wait)
                except TimeoutError:
                    return None
            decided = _call(decision)
            if decided is None:
                console.print(f"loan {answer['loan_id']}: still Requested after {wait:g}s (an operator decides it, "
                              "or the automatic policy has not yet)")
                return
            console.print(f"loan {answer['loan_id']}: {decided['status']}")

    @app.command("products")
    def products(product_id: int = typer.Argument(None, min=1, help="One product (retired ones too)."),
                 version: int = typer.Option(None, "--version", min=1, help="An older version of that product."),
                 api: str = API, as_json: bool = JSON) -> None:
        """The loan products on offer (no sign-in needed), or one product's every term."""
        client = LoanLedgerClient(_base_url(api))
        if product_id is None:
            if version is not None:
                raise _fail("--version needs a product id")
            rows = _call(client.products)
        else:
            rows = [_call(client.product, product_id, version)]
        if as_json:
            return _print(rows if product_id is None else rows[0], True)
        _product_lines(rows, "Loan products (minor units)" if product_id is None else f"Product {product_id}")

    @app.command("loans")
    def loans(wallet: str = WALLET, api: str = API, as_json: bool = JSON) -> None:
        """Your loans."""
        rows = _call(_client(wallet, api).loans)
        if as_json:
            return _print(rows, True)
        table = Table(title="Your loans (minor units)")
        for column in ("id", "status", "principal", "repaid", "next due", "days past due"):
            table.add_column(column)
        for loan in rows:
            table.add_row(str(loan["id"]), loan["status"], f"{loan['principal']:,}", f"{loan['principal_repaid']:,}",
                          str(loan["next_due_at"] or "-"), str(loan["days_past_due"]))
        console.print(table)

    @app.command("credit")
    def credit(wallet: str = WALLET, api: str = API, as_json: bool = JSON) -> None:
        """Your credit score and limit, as the credit oracle holds them."""
        _print(_call(_client(wallet, api).credit), as_json)

    @app.command("language")
    def language(language: str = typer.Argument(None, help="zh-CN or en; without it: show the current choice"),
                 time_zone: str = typer.Option(None, "--time-zone", help="IANA time zone, e.g. Asia/Shanghai"),
                 wallet: str = WALLET, api: str = API, as_json: bool = JSON) -> None:
        """The language (and time zone) of the notices LoanLedger texts you."""
        client = _client(wallet, api)
        _print(_call(client.set_language, language, time_zone) if language else _call(client.language), as_json)

    @app.command("pay")
    def pay(loan_id: int = typer.Argument(..., min=1), amount: int = typer.Option(None, "--amount", min=1,
                                                                               help="Default: what is due now."),
            wallet: str = WALLET, api: str = API) -> None:
        """Pay over the payment rail, as your payment app would (the rail's webhook gets it credited)."""
        instructions = _call(_client(wallet, api).repayment_instructions, loan_id)
        body = {**instructions["body"], **({"amount": amount} if amount else {})}
        if not body["amount"]:
            raise _fail("nothing is due now; pass --amount to pay ahead (at most the payoff, "
                        f"{instructions['payoff_now']:,})")
        try:
            response = httpx.post(f"{instructions['rail_url']}/v1/collections", json=body, timeout=30)
        except httpx.HTTPError as exc:
            raise _fail(f"the payment rail at {instructions['rail_url']} does not answer: {exc}") from None
        if response.status_code >= 300:
            raise _fail(f"the payment rail refused: {response.status_code} {response.text[:200]}")
        console.print(f"paid {body['amount']:,} {body['currency']} (rail reference {response.json()['reference']}); "
                      "it shows in `loanledger loans` once confirmed on-chain")

    @app.command("due")
    def due(loan_id: int = typer.Argument(..., min=1), wallet: str = WALLET, api: str = API,
            as_json: bool = JSON) -> None:
        """What a loan owes now, and the payoff."""
        _print(_call(_client(wallet, api).due, loan_id), as_json)


def _product_lines(rows: list[dict], title: str) -> None:
    """One product a line (soft-wrapped: a terminal's width never splits a term), every term on it."""
    console.print(f"[bold]{title}[/bold]" if rows else "no products on offer")
    for p in rows:
        every = "month" if p["frequency"] == "Monthly" else f"{p['interval'] / 86_400:g} days"
        auto = f"up to {p['auto_approve_max_principal']:,}" if p["auto_approve"] else "no"
        console.print(
            f"{p['id']} v{p['version']} {p['name']}{' (retired)' if p['retired'] else ''}: {p['currency']} "
            f"{p['min_principal']:,}-{p['max_principal']:,}, {p['min_installments']}-{p['max_installments']} "
            f"installments every {every}, {p['annual_rate_bps'] / 100:g}% a year {p['amortization']}, "
            f"service fee {p['service_fee_bps'] / 100:g}%, late fee {p['late_fee_bps'] / 100:g}%, "
            f"penalty {p['penalty_rate_bps'] / 100:g}% a year, grace {p['grace_period'] / 86_400:g} days, "
            f"default after {p['default_after'] / 86_400:g} days, early repayment {p['early_repayment']}, "
            f"auto-approval {auto}", soft_wrap=True, highlight=False, markup=False)


@kyc_app.command("submit")
def kyc_submit(name: str = typer.Option(..., "--name"), id_number: str = typer.Option(..., "--id-number"),
               phone: str = typer.Option(..., "--phone"), bank_card: str = typer.Option(..., "--bank-card"),
               wallet: str = WALLET, api: str = API) -> None:
    """Submit your identity; one-time codes go to your phone."""
    answer = _call(_client(wallet, api).kyc_submit, name, id_number, phone, bank_card)
    console.print(f"codes sent to {answer['record']['phone']}; then `loanledger kyc verify`")


@kyc_app.command("renew")
def kyc_renew(name: str = typer.Option(..., "--name"), id_number: str = typer.Option(..., "--id-number"),
              phone: str = typer.Option(..., "--phone"), bank_card: str = typer.Option(..., "--bank-card"),
              wallet: str = WALLET, api: str = API) -> None:
    """Renew your verification (within the renewal window or after expiry): the same ID number; new codes."""
    answer = _call(_client(wallet, api).kyc_renew, name, id_number, phone, bank_card)
    console.print(f"renewal {answer['status']}: codes sent to {answer['record']['phone']}; then `loanledger kyc "
                  f"verify`")


@kyc_app.command("phone")
def kyc_phone(phone: str = typer.Option(..., "--phone"), code: str = STEP_UP_CODE, wallet: str = WALLET,
              api: str = API) -> None:
    """Change your phone number (a new SIM): a step-up code to your verified phone first, then a code goes to the
    new number."""
    client = _client(wallet, api)
    answer = _call(client.change_phone, phone, **_step_up(client, code))
    console.print(f"{answer['status']}: code sent to {answer['record']['phone']}; then `loanledger kyc phone-verify`")


@kyc_app.command("phone-verify")
def kyc_phone_verify(code: str = typer.Option(..., "--code"), wallet: str = WALLET, api: str = API) -> None:
    """Confirm the code sent to the new number."""
    answer = _call(_client(wallet, api).verify_phone, code)
    console.print(f"{answer['status']}: phone {answer['record']['phone']}")


@kyc_app.command("card")
def kyc_card(bank_card: str = typer.Option(..., "--bank-card"), code: str = STEP_UP_CODE, wallet: str = WALLET,
             api: str = API) -> None:
    """Change your bank card: a step-up code to your verified phone first, then the bank texts its code to the new
    card's reserved phone (refused while automatic debit is set up on the card bound now: revoke it first)."""
    client = _client(wallet, api)
    answer = _call(client.change_card, bank_card, **_step_up(client, code))
    console.print(f"{answer['status']}: the bank texted its code to the new card's reserved phone; then "
                  "`loanledger kyc card-verify`")


@kyc_app.command("card-verify")
def kyc_card_verify(code: str = typer.Option(..., "--code"), wallet: str = WALLET, api: str = API) -> None:
    """Confirm the card change with the bank's code."""
    answer = _call(_client(wallet, api).verify_card, code)
    console.print(f"{answer['status']}: card {answer['record']['bank_card']}")


@kyc_app.command("verify")
def kyc_verify(phone_code: str = typer.Option(..., "--phone-code"), card_code: str = typer.Option(..., "--card-code"),
               wallet: str = WALLET, api: str = API) -> None:
    """Confirm the two codes."""
    answer = _call(_client(wallet, api).kyc_verify, phone_code, card_code)
    expires = f", valid until {answer['kyc_expires_at_iso']}" if answer.get("kyc_expires_at_iso") else ""
    console.print(f"{answer['status']}: commitment {answer['commitment']}{expires}")


@kyc_app.command("status")
def kyc_status(wallet: str = WALLET, api: str = API, as_json: bool = JSON) -> None:
    """Your verification status and masked record."""
    _print(_call(_client(wallet, api).kyc_status), as_json)


# -------------------------------------------------------------------------------------------- operator

@operator_app.command("approve")
def op_approve(loan_id: int = typer.Argument(..., min=1), wallet: str = WALLET, api: str = API) -> None:
    """Approve an application (the loan book rejects it with a reason if the score or limit says no)."""
    console.print(_call(_signer(wallet, api).approve, loan_id))


@operator_app.command("reject")
def op_reject(loan_id: int = typer.Argument(..., min=1), reason: str = typer.Option(..., "--reason"),
              wallet: str = WALLET, api: str = API) -> None:
    console.print(_call(_signer(wallet, api).reject, loan_id, reason))


@operator_app.command("disburse")
def op_disburse(loan_id: int = typer.Argument(..., min=1), wallet: str = WALLET, api: str = API) -> None:
    """Order the payout of an approved loan over the payment rail."""
    console.print(_call(_client(wallet, api).disburse, loan_id))


@operator_app.command("write-off")
def op_write_off(loan_id: int = typer.Argument(..., min=1), wallet: str = WALLET, api: str = API,
                 as_json: bool = JSON) -> None:
    """Propose writing off a defaulted loan: a second operator confirms it (`loanledger operator confirm ID`)."""
    _print(_call(_signer(wallet, api, quiet=as_json).write_off, loan_id), as_json)


@operator_app.command("offer-reschedule")
def op_offer_reschedule(loan_id: int = typer.Argument(..., min=1),
                        installments: int = typer.Option(..., "--installments", min=1,
                                                         help="The new schedule's installments, from the next due "
                                                              "date (more than are left; within the product's term)."),
                        days: int = typer.Option(7, "--days", min=1, help="Days the offer stays open."),
                        expires_at: int = typer.Option(None, "--expires-at", help="Unix seconds instead of --days."),
                        wallet: str = WALLET, api: str = API, as_json: bool = JSON) -> None:
    """Offer a borrower in hardship a reschedule of their loan; they accept it by signing."""
    until = expires_at or int(time.time()) + days * 86_400
    _print(_call(_signer(wallet, api, quiet=as_json).offer_reschedule, loan_id, installments, until), as_json)


@operator_app.command("reschedule-requests")
def op_reschedule_requests(wallet: str = WALLET, api: str = API, as_json: bool = JSON) -> None:
    """Borrowers' hardship reschedule requests, oldest first."""
    _print(_call(_client(wallet, api).reschedule_requests), as_json)


@reschedule_app.command("ask")
def reschedule_ask(loan_id: int = typer.Argument(..., min=1),
                   installments: int = typer.Option(0, "--installments", min=0, help="Hoped for (0: no preference)."),
                   reason: str = typer.Option("other", "--reason",
                                              help="income_loss, illness, family, disaster or other"),
                   code: str = STEP_UP_CODE, wallet: str = WALLET, api: str = API) -> None:
    """Ask for a hardship reschedule of your active loan (with a step-up code): an operator offers terms."""
    client = _client(wallet, api)
    _call(client.request_reschedule, loan_id, installments, reason, **_step_up(client, code))
    console.print(f"asked for a reschedule of loan {loan_id}; `loanledger reschedule show {loan_id}` shows the offer")


@reschedule_app.command("show")
def reschedule_show(loan_id: int = typer.Argument(..., min=1), wallet: str = WALLET, api: str = API,
                    as_json: bool = JSON) -> None:
    """The loan's reschedule offer and the reschedules accepted, each with the schedule it replaced."""
    _print(_call(_client(wallet, api).reschedule, loan_id), as_json)


@reschedule_app.command("accept")
def reschedule_accept(loan_id: int = typer.Argument(..., min=1),
                      yes: bool = typer.Option(False, "--yes", "-y", help="Accept without asking."),
                      code: str = STEP_UP_CODE, wallet: str = WALLET, api: str = API, as_json: bool = JSON) -> None:
    """Accept the loan's open offer: your wallet signs it (RescheduleAcceptance), the API relays it."""
    client = _client(wallet, api)
    offer = (_call(client.reschedule, loan_id) or {}).get("offer")
    if not offer or not offer["open"]:
        raise _fail(f"loan {loan_id} has no open reschedule offer")
    if not yes and not typer.confirm(f"Reschedule loan {loan_id} over {offer['installments']} installments from its "
                                     "next due date?"):
        raise typer.Exit(1)
    _print(_call(client.accept_reschedule, loan_id, expect_installments=offer["installments"],
                 **_step_up(client, code)), as_json)


# Maker-checker (FourEyes): what one operator proposed, a second one confirms before it expires.

@operator_app.command("proposals")
def op_proposals(wallet: str = WALLET, api: str = API, as_json: bool = JSON) -> None:
    """Proposals awaiting a second person's confirmation: what each does, who proposed it, when it expires."""
    proposals = _call(_client(wallet, api).proposals)
    if as_json:
        _print(proposals, True)
        return
    table = Table(title=f"{len(proposals)} proposal(s) awaiting confirmation")
    for column in ("id", "what", "proposer", "confirmed by", "expires"):
        table.add_column(column, overflow="fold")
    for p in proposals:
        expires = datetime.fromtimestamp(p["expires_at"], UTC).strftime("%Y-%m-%d %H:%M UTC")
        table.add_row(p["proposal_id"], p["summary"], p["proposer"], f"a second {p['role']}", expires)
    console.print(table)


@operator_app.command("confirm")
def op_confirm(proposal_id: str = typer.Argument(..., help="The proposal's id (`loanledger operator proposals`)."),
               wallet: str = WALLET, api: str = API, as_json: bool = JSON) -> None:
    """Confirm someone else's proposal with your wallet: FourEyes then makes the call (never your own proposal)."""
    _print(_call(_signer(wallet, api, quiet=as_json).confirm, proposal_id), as_json)


@operator_app.command("cancel")
def op_cancel(proposal_id: str = typer.Argument(..., help="The proposal's id."), wallet: str = WALLET,
              api: str = API, as_json: bool = JSON) -> None:
    """Cancel a proposal (yours, or any as an admin)."""
    _print(_call(_signer(wallet, api, quiet=as_json).cancel_proposal, proposal_id), as_json)


@operator_app.command("declare-default")
def op_declare_default(loan_id: int = typer.Argument(..., min=1), wallet: str = WALLET, api: str = API) -> None:
    """Declare a loan in default once it is past its threshold."""
    console.print(_call(_signer(wallet, api).declare_default, loan_id))


@operator_app.command("revoke")
def op_revoke(address: str, reason: str = typer.Option(..., "--reason"), wallet: str = WALLET,
              api: str = API) -> None:
    """Revoke a borrower: no new applications; their loans run on."""
    console.print(_call(_signer(wallet, api).revoke_borrower, address, reason))


@operator_app.command("pause")
def op_pause(wallet: str = WALLET, api: str = API, as_json: bool = JSON) -> None:
    """Pause every contract (your wallet must hold the pauser role)."""
    _print(_call(_signer(wallet, api, quiet=as_json).pause), as_json)


@operator_app.command("unpause")
def op_unpause(wallet: str = WALLET, api: str = API, as_json: bool = JSON) -> None:
    """Unpause every contract (pauser)."""
    _print(_call(_signer(wallet, api, quiet=as_json).unpause), as_json)


PRODUCT_FILE = typer.Option(..., "--file", exists=True, dir_okay=False,
                            help="The product as JSON: every term, as `POST /v1/operator/products` takes it.")


def _product_body(path: Path) -> dict:
    try:
        body = json.loads(path.read_text())
    except ValueError as exc:
        raise _fail(f"{path} is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _fail(f"{path}: expected one JSON object with the product's terms")
    return body


@product_app.command("create")
def op_product_create(file: Path = PRODUCT_FILE, wallet: str = WALLET, api: str = API, as_json: bool = JSON) -> None:
    """Propose publishing a product as version 1 (refused beyond the cost cap or the late-charge ceilings); a second
    operator confirms it."""
    _print(_call(_signer(wallet, api, quiet=as_json).create_product, _product_body(file)), as_json)


@product_app.command("change")
def op_product_change(product_id: int = typer.Argument(..., min=1), file: Path = PRODUCT_FILE, wallet: str = WALLET,
                      api: str = API, as_json: bool = JSON) -> None:
    """Propose a product's new version (loans already made keep theirs); a second operator confirms it."""
    _print(_call(_signer(wallet, api, quiet=as_json).change_product, product_id, _product_body(file)), as_json)


@product_app.command("retire")
def op_product_retire(product_id: int = typer.Argument(..., min=1), wallet: str = WALLET, api: str = API,
                      as_json: bool = JSON) -> None:
    """Propose retiring a product (no version of it can be applied for any more); a second operator confirms it."""
    _print(_call(_signer(wallet, api, quiet=as_json).retire_product, product_id), as_json)


@operator_app.command("suspense")
def op_suspense(state: str = typer.Option(None, "--state", help="open, refunding, refunded or applied"),
                wallet: str = WALLET, api: str = API, as_json: bool = JSON) -> None:
    """Received payments the loan book refused (suspense items), newest first, with their refunds."""
    items = _call(_client(wallet, api).suspense, state)
    if as_json:
        _print(items, True)
        return
    table = Table(title=f"suspense: {len(items)} item(s)" + (f" {state}" if state else ""))
    columns = ("id", "state", "reason", "provider", "reference", "loan_id", "amount", "currency", "refund")
    for column in columns:
        table.add_column(column, overflow="fold")
    for item in items:
        refund = item["refund"]
        item = {**item, "refund": "" if refund is None else f"{refund['state']} {refund['refund_reference'] or ''}"}
        table.add_row(*("" if item[c] is None else str(item[c]) for c in columns))
    console.print(table)


@operator_app.command("notices")
def op_notices(status: str = typer.Option(None, "--status", help="queued, sending, sent, failed or set_aside"),
               kind: str = typer.Option(None, "--kind", help="reminder, overdue_warning or default_notice"),
               loan_id: int = typer.Option(None, "--loan", min=1), wallet: str = WALLET, api: str = API,
               as_json: bool = JSON) -> None:
    """Notices to borrowers (reminders, overdue warnings, default notices), newest first, with their delivery."""
    notices = _call(_client(wallet, api).notices, status, kind, loan_id)
    if as_json:
        _print(notices, True)
        return
    table = Table(title=f"notices: {len(notices)}" + (f" {status}" if status else ""))
    for column in ("id", "loan", "inst.", "kind", "status", "attempts", "amount_due", "detail"):
        table.add_column(column, overflow="fold")
    for n in notices:
        delivery = n["delivery"] or {}
        table.add_row(str(n["id"]), str(n["loan_id"]), str(n["installment"]), n["kind"], n["status"],
                      str(delivery.get("attempts", "-")), f"{n['amount_due']:,}", n["detail"] or "")
    console.print(table)


@operator_app.command("refund")
def op_refund(item_id: int = typer.Argument(..., min=1), wallet: str = WALLET, api: str = API) -> None:
    """Refund a suspense item over the payment rail (once: asking again answers the same refund)."""
    console.print(_call(_client(wallet, api).refund_suspense, item_id))


@operator_app.command("apply")
def op_apply(item_id: int = typer.Argument(..., min=1), loan_id: int = typer.Option(..., "--loan", min=1),
             wallet: str = WALLET, api: str = API) -> None:
    """Apply an open suspense item to the loan it was meant for (the same rail reference, re-queued)."""
    console.print(_call(_client(wallet, api).apply_suspense, item_id, loan_id))


@operator_app.command("refund-credit")
def op_refund_credit(loan_id: int = typer.Argument(..., min=1), wallet: str = WALLET, api: str = API) -> None:
    """Pay an Overpaid loan's credit back to its borrower over the rail (once: asking again answers the same)."""
    console.print(_call(_client(wallet, api).refund_credit, loan_id))


@operator_app.command("register")
def op_register(address: str, wallet: str = WALLET, api: str = API) -> None:
    """Register a KYC-verified borrower on-chain."""
    console.print(_call(_signer(wallet, api).register_borrower, address))


@operator_app.command("policy")
def op_policy(auto_approve: bool = typer.Option(..., "--auto-approve/--manual"), wallet: str = WALLET,
              api: str = API) -> None:
    """Switch the automatic approval policy."""
    console.print(_call(_client(wallet, api).set_auto_approve, auto_approve))


@operator_app.command("add-auditor")
def op_add_auditor(address: str, wallet: str = WALLET, api: str = API) -> None:
    """Admit an auditor (admin)."""
    console.print(_call(_client(wallet, api).add_auditor, address))


# -------------------------------------------------------------------------------------------- admin

ROLE = typer.Argument(..., help="operator | oracle | pauser | admin | score_signer")
CONTRACTS = typer.Option(None, "--contract", help="Where (repeatable); default: where a contract checks the role "
                                                  "for a grant, everywhere for a revocation.")


@admin_app.command("grant")
def admin_grant(role: str = ROLE, account: str = typer.Argument(...), contracts: list[str] = CONTRACTS,
                wallet: str = WALLET, api: str = API, as_json: bool = JSON) -> None:
    """Grant a role to an account."""
    _print(_call(_signer(wallet, api, quiet=as_json).grant_role, role, account, contracts or None), as_json)


@admin_app.command("revoke")
def admin_revoke(role: str = ROLE, account: str = typer.Argument(...), contracts: list[str] = CONTRACTS,
                 wallet: str = WALLET, api: str = API, as_json: bool = JSON) -> None:
    """Revoke a role of an account."""
    _print(_call(_signer(wallet, api, quiet=as_json).revoke_role, role, account, contracts or None), as_json)


@admin_app.command("rotate-signer")
def admin_rotate_signer(old: str = typer.Option(..., "--old"), new: str = typer.Option(..., "--new"),
                        wallet: str = WALLET, api: str = API, as_json: bool = JSON) -> None:
    """Rotate the credit oracle's score signer: admit the new key, then retire the old. Where you do not hold the
    oracle's admin role (the default deploy renounces it) both are proposals: a second admin confirms each
    (`loanledger operator confirm ID`)."""
    _print(_call(_signer(wallet, api, quiet=as_json).rotate_signer, old, new), as_json)


# -------------------------------------------------------------------------------------------- auditor

@audit_app.command("report")
def audit_report(wallet: str = WALLET, api: str = API, as_json: bool = JSON) -> None:
    """The portfolio report: outstanding, portfolio at risk, delinquency buckets, outcomes."""
    _print(_call(_client(wallet, api).portfolio), as_json)


@audit_app.command("verify")
def audit_verify(check: str = typer.Argument(..., help="index | state | identity | log"),
                 address: str = typer.Option(None, "--address", help="For identity: the borrower."),
                 wallet: str = WALLET, api: str = API, as_json: bool = JSON) -> None:
    """Run one of the ledger's verifications through the API; exit 1 if it fails."""
    with Progress(SpinnerColumn(), TextColumn(f"verifying {check}..."), console=err, transient=True) as progress:
        progress.add_task(check)
        result = _call(_client(wallet, api).verify, check, address=address)
    _print(result, as_json)
    if not result.get("ok", False):
        raise typer.Exit(1)


@audit_app.command("export")
def audit_export(dataset: str = typer.Argument(..., help="loans | events | payments"),
                 fmt: str = typer.Option("csv", "--format", help="csv | json"),
                 out: Path = typer.Option(..., "--out", help="File to write."),
                 wallet: str = WALLET, api: str = API) -> None:
    """Download an export, with a progress bar."""
    client = _client(wallet, api)
    url = f"/v1/audit/export/{dataset}.{fmt}"
    with Progress(TextColumn(f"{dataset}.{fmt}"), BarColumn(), DownloadColumn(), console=err) as progress:
        task = progress.add_task("download", total=None)
        try:
            with client.http.stream("GET", url, headers={"authorization": f"Bearer {client.token}"}) as response:
                if response.status_code >= 400:
                    response.read()
                    error = response.json().get("error", {})
                    raise _fail(f"{error.get('code')}: {error.get('message')}")
                total = response.headers.get("content-length")
                progress.update(task, total=int(total) if total else None)
                with out.open("wb") as fh:
                    for chunk in response.iter_bytes():
                        fh.write(chunk)
                        progress.advance(task, len(chunk))
        except OSError as exc:
            raise _fail(f"the API does not answer: {exc}") from None
    console.print(f"written to {out}")


# -------------------------------------------------------------------------------------------- automatic debit


@debit_app.command("show")
def debit_show(loan_id: int = typer.Argument(..., min=1), wallet: str = WALLET, api: str = API,
               as_json: bool = JSON) -> None:
    """The loan's debit mandate in force (card masked), if any."""
    _print(_call(_client(wallet, api).debit_mandate, loan_id), as_json)


@debit_app.command("mandate")
def debit_mandate(loan_id: int = typer.Argument(..., min=1),
                  max_amount: int = typer.Option(..., "--max-amount", min=1,
                                                 help="The most one debit may take, in minor units (fen)."),
                  valid_days: int = typer.Option(365, "--valid-days", min=1, help="Days the mandate holds."),
                  yes: bool = typer.Option(False, "--yes", "-y", help="Sign without asking."),
                  code: str = STEP_UP_CODE, wallet: str = WALLET, api: str = API, as_json: bool = JSON) -> None:
    """Sign a debit mandate (DebitMandate) for the loan and your bound card, with a step-up code: on each due date
    the amount due is debited from the card, at most --max-amount per debit."""
    import time

    client = _signer(wallet, api, quiet=True)  # the wallet signs the mandate
    card = ((_call(client.debit_mandate, loan_id) or {}).get("sign_params") or {}).get("card")
    if not yes and not typer.confirm(f"Let the rail debit card {card} for loan {loan_id} on its due dates, at most "
                                     f"{max_amount} per debit, for {valid_days} days?"):
        raise typer.Exit(1)
    until = int(time.time()) + valid_days * 86_400
    _print(_call(client.sign_debit_mandate, loan_id, max_amount, until, **_step_up(client, code)), as_json)


@debit_app.command("revoke")
def debit_revoke(loan_id: int = typer.Argument(..., min=1), wallet: str = WALLET, api: str = API,
                 as_json: bool = JSON) -> None:
    """Revoke the loan's debit mandate (your wallet signs RevokeDebitMandate): the next due date debits nothing."""
    _print(_call(_signer(wallet, api, quiet=True).revoke_debit_mandate, loan_id), as_json)
