"""Step-up codes in tests, read as a borrower reads them: off the phone the API texted (the development SMS outbox,
`app.state.sms`), never off an API response.

A plain module (imported as `step_up_codes`, as api_outcomes is), not conftest. `client_for` gives each SDK client
`outbox_reader(app, address)`, so a test that applies (or changes the phone, or asks for a reschedule) through the
SDK asks for its code and reads it like any borrower; a test speaking raw HTTP asks with `code_for`.
"""

from __future__ import annotations

from api.stepup import PURPOSE


def phone_of(app, address: str) -> str:
    """The borrower's own (verified) phone: the handset whose messages they read."""
    return app.state.context.vault.get(address).phone


def read_code(app, address: str) -> str:
    """The newest step-up code texted to the borrower's phone."""
    return app.state.sms.last_code(phone_of(app, address), PURPOSE)


def outbox_reader(app, address: str):
    """An SDK `step_up_codes` callback: reads the code the API just texted to `address`'s phone."""
    return lambda action, params: read_code(app, address)


def code_for(app, client, action: str, **params) -> str:
    """Asks the API (as `client`) for a step-up code for `action` with `params` and reads it off the phone."""
    client.step_up(action, **params)
    return read_code(app, client.account.address)


def apply_code(app, client, body: dict) -> str:
    """A step-up code for the application `body` (a `POST /v1/loans` body) sends."""
    return code_for(app, client, "apply", product_id=body["product_id"], principal=body["principal"],
                    installments=body["installments"])


def apply_header(app, client, body: dict) -> dict[str, str]:
    """The X-Step-Up-Code header for a raw `POST /v1/loans` of `body`."""
    return {"x-step-up-code": apply_code(app, client, body)}
