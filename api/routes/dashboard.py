"""The dashboard: one static page for auditors and operators, and its development sign-in.

`GET /dashboard` serves api/static/dashboard.html; its script and style sheet come from
`/dashboard/static/<name>` (a fixed list: nothing else under api/ can be read through it), and so does
the one library the script imports, ethers (api.web_assets).
The page signs the Sign-In with Ethereum message the nonce route writes (`api.auth.siwe_message`), and
calls the same /v1/audit/* routes (and the suspense list, /v1/operator/suspense) as any client with the
token, so what it shows is exactly what the token's roles allow; it changes nothing (its suspense page
shows the CLI command that resolves each open item). Its Content-Security-Policy admits scripts, styles and
fetches from this origin only: the page loads nothing from the internet, and runs no inline script.

`POST /v1/auth/dev-login` issues a token for any address without a signature, for a developer's own
machine. It is off unless LOANLEDGER_DEV_LOGIN=1 (or `loanledger run --dev-login`) turns it on: the local
stack, the demo and the browser test all sign in with a wallet. It answers 404 (as if it did not exist)
unless the `dev_login` setting is on AND the node's chain id is one reserved for development (anvil's
31337, 1337; asked once, when the node first answers) AND the client and the Host it asked for are
loopback: the Host check stops a web page that rebinds its own DNS name to 127.0.0.1 from using it
through the operator's browser, and a reverse proxy on the same machine passes neither (uvicorn takes
the client from its X-Forwarded-For, and the Host is the public name). Turned on, the API says so
loudly when it starts; turned on against any other chain, the API still starts (it must, without a
node) but logs an error and keeps the route shut. The token names an address, not roles: roles are
read from the chain and the auditor list as for any token, so a dev-login as a borrower sees a
borrower's data only.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.auth import issue_token
from api.context import Context
from api.errors import not_found
from api.routes.auth import TokenOut
from api.views import checksum_address
from api.web_assets import LIBRARY_CACHE, SECURITY_HEADERS, libraries, static_file

log = logging.getLogger("loanledger.api")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    dev_login_gate(app).announce()  # the development login, if on, says so when the API starts
    yield


router = APIRouter(lifespan=_lifespan)  # FastAPI runs an included router's lifespan inside the app's

PAGE = "dashboard.html"
ASSETS = {"dashboard.js": "text/javascript; charset=utf-8", "decisions.js": "text/javascript; charset=utf-8",
          "dashboard.css": "text/css; charset=utf-8"}
LOOPBACK_NAMES = {"localhost"}
DEVELOPMENT_CHAIN_IDS = frozenset({31337, 1337})  # anvil's and hardhat's default, and ganache's / geth --dev's


@router.get("/dashboard", include_in_schema=False)
def page() -> Response:
    return Response(static_file(PAGE), media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


@router.get("/dashboard/static/{name}", include_in_schema=False)
def asset(name: Annotated[str, PathParam(max_length=64)]) -> Response:
    if name in ASSETS:
        return Response(static_file(name), media_type=ASSETS[name], headers=SECURITY_HEADERS)
    library = libraries().get(name)
    if library is None or not library.is_file():
        raise not_found(f"dashboard file {name!r}")
    return Response(library.read_bytes(), media_type=ASSETS["dashboard.js"],
                    headers={**SECURITY_HEADERS, "cache-control": LIBRARY_CACHE})


# ---------------------------------------------------------------------------------------------- dev login


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 from a dual-stack socket
    return (mapped or address).is_loopback


class DevLoginGate:
    """Whether the development login may answer at all: the setting (read on every request, so tests may
    turn it on), and the node's chain id, asked once the setting is on and kept once the node answers."""

    def __init__(self, context: Context) -> None:
        self._context = context
        self._chain_id: int | None = None
        self._lock = threading.Lock()

    def chain_id(self) -> int | None:
        """The node's chain id; None while the node does not answer (asked again next time). Asked only while
        the setting is on: learning that the chain is not a development chain is logged as an error, once."""
        with self._lock:
            if self._chain_id is None:
                try:
                    self._chain_id = int(self._context.w3.eth.chain_id)
                except Exception as exc:  # noqa: BLE001 - any failure to reach the node leaves the login shut
                    log.debug("development login: the node's chain id is unknown (%s)", exc)
                    return None
                if self._chain_id not in DEVELOPMENT_CHAIN_IDS:
                    log.error("LOANLEDGER_DEV_LOGIN is set but chain %d is not a development chain (%s): the "
                              "development login stays OFF. Unset LOANLEDGER_DEV_LOGIN.", self._chain_id,
                              ", ".join(map(str, sorted(DEVELOPMENT_CHAIN_IDS))))
            return self._chain_id

    def is_open(self) -> bool:
        return bool(self._context.settings.dev_login) and self.chain_id() in DEVELOPMENT_CHAIN_IDS

    def announce(self) -> None:
        """At startup: a loud warning when the login is on, an error when it is on for any other chain."""
        if not self._context.settings.dev_login:
            return
        chain_id = self.chain_id()
        if chain_id is not None and chain_id not in DEVELOPMENT_CHAIN_IDS:
            return  # chain_id() has logged the error: the login stays shut
        on = f"chain {chain_id}" if chain_id is not None else "a development chain only (the node does not answer yet)"
        log.warning("!!! DEVELOPMENT LOGIN IS ON (LOANLEDGER_DEV_LOGIN): POST /v1/auth/dev-login gives a token for "
                    "ANY address, admin included, WITHOUT a signature, to loopback clients, on %s. "
                    "Never set it outside a developer's machine. !!!", on)


def dev_login_gate(app: FastAPI) -> DevLoginGate:
    """The app's gate, made on first use (the lifespan makes it at startup; a TestClient may skip the lifespan)."""
    gate = getattr(app.state, "dev_login_gate", None)
    if gate is None:
        gate = app.state.dev_login_gate = DevLoginGate(app.state.context)
    return gate


def _dev_login_allowed(request: Request) -> None:
    """404 unless the setting is on, the chain is a development chain, and both the client and the Host header
    are loopback. A dependency, so it answers before the body is validated: a refused caller learns nothing
    about the route. Loopback first: a remote caller does not even make the API ask the node."""
    client = request.client.host if request.client else None
    requested_host = request.url.hostname  # from the Host header
    if not (_is_loopback(client) and _is_loopback(requested_host) and dev_login_gate(request.app).is_open()):
        raise not_found(f"{request.method} {request.url.path}")


class DevLoginIn(BaseModel):
    address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$", description="the address to sign in as")


@router.post("/v1/auth/dev-login", response_model=TokenOut, include_in_schema=False,
             dependencies=[Depends(_dev_login_allowed)])
def dev_login(body: DevLoginIn, request: Request) -> TokenOut:
    address = checksum_address(body.address)
    # The same token a SIWE login gives, marked `dev` for anyone reading it.
    token, expires_at = issue_token(request.app.state.context, address, dev=True)
    log.warning("development login: token issued for %s to %s", address, request.client.host)
    request.app.state.roles.forget(address)
    roles = request.app.state.roles.roles(address)
    return TokenOut(token=token, expires_at=expires_at, address=address, roles=sorted(roles))
