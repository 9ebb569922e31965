"""The rail stand-in's hosted checkout: the page a payment provider shows a payer before taking their money.

The merchant (the borrower app) sends the payer to `GET /checkout?loan=&amount=&currency=&return=<url>`; the page
shows what will be paid, to whom, and where the payer goes back to, with a Pay button. Paying posts the form to
`POST /checkout`, which places the same order as `POST /v1/collections` with the Idempotency-Key the page was drawn
with (a double tap or a resubmitted form pays once), then sends the payer back to the return URL with
`rail_status=paid&rail_reference=<the collection's reference>` added to its query (its fragment kept, so a
single-page app gets its route back). Cancelling returns with `rail_status=cancelled` and moves nothing.

The money is credited to the loan only when the rail's signed webhook reaches the oracle, as for any collection:
the return to the merchant proves nothing by itself. The return URL is the merchant's to choose and check (the API
hands out checkout links only with its own app's address); the stand-in accepts http(s) URLs only and shows the
destination's host on the page.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

# The page runs no script and loads nothing; the form posts to this rail only, which then redirects to the return
# address (a form's redirect is held to form-action too: its origin is named).
def page_headers(back: str) -> dict[str, str]:
    parts = urlsplit(back)
    return {"content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
                                       f"base-uri 'none'; form-action 'self' {parts.scheme}://{parts.netloc}",
            "referrer-policy": "no-referrer", "cache-control": "no-store"}


STYLE = ("body{font-family:system-ui,sans-serif;max-width:420px;margin:0 auto;padding:16px;color:#1a1d21}"
         "h1{font-size:1.3rem}.amount{font-size:2rem;font-weight:700;margin:8px 0}"
         "button,a.cancel{display:block;width:100%;min-height:48px;margin-top:12px;border-radius:24px;font:inherit;"
         "font-weight:600;text-align:center;line-height:48px;text-decoration:none}"
         "button{background:#1b6e32;color:#fff;border:0}a.cancel{border:1px solid #4a5360;color:#1a1d21}"
         "dl{display:grid;grid-template-columns:auto 1fr;gap:4px 12px}dt{color:#4a5360}dd{margin:0}")


def decimal(minor: int, currency: str) -> str:
    """Minor units as the page shows them ("1,234.56 CNY"), by integer arithmetic."""
    whole, cents = divmod(minor, 100)
    return f"{whole:,}.{cents:02d} {currency}"


def return_url(base: str, **added: str) -> str:
    """`base` with `added` in its query, its fragment kept."""
    parts = urlsplit(base)
    query = "&".join(q for q in (parts.query, urlencode(added)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _checked_return(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2000 \
            or any(c in parts.netloc for c in " ;'\"") or any(ord(c) < 0x21 for c in url):
        raise HTTPException(status_code=422, detail="return must be an absolute http(s) URL")
    return url


def checkout_router(collect: Callable[[int, int, str, str], dict]) -> APIRouter:
    """`collect(loan_id, amount, currency, idempotency_key)`: the collection order (what `POST /v1/collections`
    does), answering the payment it made."""
    router = APIRouter()

    @router.get("/checkout", response_class=HTMLResponse)
    def page(loan: int = Query(ge=1), amount: int = Query(ge=1, lt=2**96),
             currency: str = Query("CNY", pattern=r"^[A-Z]{3}$"), return_: str = Query(alias="return")):
        back = _checked_return(return_)
        key = f"checkout-{secrets.token_hex(12)}"
        fields = {"loan": loan, "amount": amount, "currency": currency, "return": back, "key": key}
        hidden = "".join(f'<input type="hidden" name="{name}" value="{html.escape(str(value))}">'
                         for name, value in fields.items())
        cancel = html.escape(return_url(back, rail_status="cancelled"))
        body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>MockPay checkout</title>
<style>{STYLE}</style></head><body><main>
<h1>MockPay checkout (rail stand-in)</h1>
<p>Pay LoanLedger for loan {loan}</p><p class="amount" id="checkout-amount">{decimal(amount, currency)}</p>
<dl><dt>Pay to</dt><dd>LoanLedger</dd><dt>Reference</dt><dd>loan {loan}</dd>
<dt>Then back to</dt><dd id="checkout-return">{html.escape(urlsplit(back).netloc)}</dd></dl>
<form method="post" action="/checkout">{hidden}<button type="submit" id="rail-pay">Pay</button></form>
<a class="cancel" id="rail-cancel" href="{cancel}">Cancel</a>
</main></body></html>"""
        return HTMLResponse(body, headers=page_headers(back))

    @router.post("/checkout", response_class=RedirectResponse, status_code=303)
    async def pay(request: Request):
        form = {name: values[0] for name, values in parse_qs((await request.body()).decode()).items()}
        try:
            loan, amount = int(form["loan"]), int(form["amount"])
            currency, back, key = form.get("currency", "CNY"), _checked_return(form["return"]), form["key"]
        except (KeyError, ValueError):
            raise HTTPException(status_code=422, detail="the checkout form is incomplete") from None
        if loan < 1 or not 1 <= amount < 2**96 or not key.startswith("checkout-") or len(key) > 64 \
                or len(currency) != 3 or not currency.isascii() or not currency.isupper():
            raise HTTPException(status_code=422, detail="the checkout form is not one this rail drew")
        payment = collect(loan, amount, currency, key)
        return RedirectResponse(return_url(back, rail_status="paid", rail_reference=payment["reference"]),
                                status_code=303, headers={"cache-control": "no-store"})

    return router
