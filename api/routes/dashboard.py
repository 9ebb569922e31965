"""The dashboard: one static page for auditors and operators, and its development sign-in.

`GET /dashboard` serves api/static/dashboard.html; its script and style sheet come from
`/dashboard/static/<name>` (a fixed list: nothing else under api/ can be read through it), and so does
the one library the script imports: `ethers` from npm (pinned in package.json, installed by `make
setup`), its single-file ES module build served from node_modules as it ships, no build step. Its name
carries the installed version, so browsers may keep it a year and still fetch a new one on upgrade.
The page signs the Sign-In with Ethereum message the nonce route writes (`api.auth.siwe_message`), and
calls the same /v1/audit/* routes (and the suspense list, /v1/operator/suspense) as any client with the
token, so what it shows is exactly what the token's roles allow; it changes nothing (its suspense page
shows the CLI command that resolves each open item). Its Content-Security-Policy admits scripts, styles and
fetches from this origin only: the page loads nothing from the internet, and runs no inline script.

`POST /v1/auth/dev-login` issues a token for any address without a signature, for demos and the
browser test. It answers 404 (as if it did not exist) unless the `dev_login` setting is on AND the
client and the Host it asked for are loopback: the Host check stops a web page that rebinds its own
DNS name to 127.0.0.1 from using it through the operator's browser, and a reverse proxy on the same
machine passes neither (uvicorn takes the client from its X-Forwarded-For, and the Host is the public
name). The token names an address, not roles: roles are read from the chain and the auditor list as
for any token, so a dev-login as a borrower sees a borrower's data only.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from importlib import resources
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.auth import issue_token
from api.errors import not_found
from api.routes.auth import TokenOut
from api.views import checksum_address
from ledger.manifest import ROOT

log = logging.getLogger("loanledger.api")
router = APIRouter()

PAGE = "dashboard.html"
ASSETS = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",  # a new version of the page is picked up at once
}
LOOPBACK_NAMES = {"localhost"}
ETHERS = ROOT / "node_modules" / "ethers"
LIBRARY_CACHE = "public, max-age=31536000, immutable"  # the name changes with the version


def _static(name: str) -> bytes:
    return resources.files("api").joinpath("static", name).read_bytes()


def _libraries() -> dict[str, Path]:
    """{served name: file} for the installed ethers; empty when node_modules lacks it: the server still starts,
    the page's script fails to load (its import answers 404) until `make setup` installs it."""
    try:
        version = json.loads((ETHERS / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return {}
    return {f"ethers-{version}.min.js": ETHERS / "dist" / "ethers.min.js"}


@router.get("/dashboard", include_in_schema=False)
def page() -> Response:
    return Response(_static(PAGE), media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


@router.get("/dashboard/static/{name}", include_in_schema=False)
def asset(name: Annotated[str, PathParam(max_length=64)]) -> Response:
    if name in ASSETS:
        return Response(_static(name), media_type=ASSETS[name], headers=SECURITY_HEADERS)
    library = _libraries().get(name)
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


def _dev_login_allowed(request: Request) -> None:
    """404 unless the setting is on and both the client and the Host header are loopback. A dependency, so
    it answers before the body is validated: a refused caller learns nothing about the route."""
    settings = request.app.state.context.settings
    client = request.client.host if request.client else None
    requested_host = request.url.hostname  # from the Host header
    if not (settings.dev_login and _is_loopback(client) and _is_loopback(requested_host)):
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
