"""Sign-In with Ethereum: a nonce, a signed EIP-4361 message, a short-lived token."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api import auth
from api.deps import ContextDep, CurrentPrincipal, RolesDep
from api.errors import (  # ErrorResponse: the nonce route (another package)
    ErrorResponse,
    error_responses,
)
from api.ratelimit import limit

router = APIRouter(prefix="/v1/auth", tags=["auth"])


# The example borrower (anvil's account 5) signing in on the local stack: the message NonceOut's example
# serves is the one LoginIn's example signs.
EXAMPLE_ADDRESS = "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc"
EXAMPLE_NONCE = "5f2b8c0e9a3d4b7c8e1f2a3b4c5d6e7f"
EXAMPLE_MESSAGE = ("127.0.0.1:8000 wants you to sign in with your Ethereum account:\n"
                   f"{EXAMPLE_ADDRESS}\n\nSign in to LoanLedger.\n\n"
                   f"URI: http://127.0.0.1:8000\nVersion: 1\nChain ID: 31337\nNonce: {EXAMPLE_NONCE}\n"
                   "Issued At: 2026-01-01T00:00:00Z\nExpiration Time: 2026-01-01T00:05:00Z")


class NonceIn(BaseModel):
    address: str | None = Field(None, pattern=r"^0x[0-9a-fA-F]{40}$",
                                description="the address that will sign (any case): the answer then carries "
                                            "the exact message to sign")

    model_config = {"frozen": True, "json_schema_extra": {"examples": [{"address": EXAMPLE_ADDRESS.lower()}]}}


NO_ADDRESS = NonceIn()  # no body at all, as the SDK asks


class NonceOut(BaseModel):
    nonce: str = Field(description="single use; put it in the message's `Nonce:` line")
    domain: str = Field(description="the SIWE `domain` the message must name")
    uri: str
    chain_id: int = Field(description="the chain the message must name (`Chain ID:`)")
    expires_at: int = Field(description="unix seconds; sign in before then")
    message: str | None = Field(None, description="when the request named an address: the EIP-4361 message to sign "
                                                  "as it is (personal_sign), then send to POST /v1/auth/login; it "
                                                  "expires five minutes after it was issued")

    model_config = {"json_schema_extra": {"examples": [{
        "nonce": EXAMPLE_NONCE, "domain": "127.0.0.1:8000", "uri": "http://127.0.0.1:8000",
        "chain_id": 31337, "expires_at": 1767225900, "message": EXAMPLE_MESSAGE}]}}


class LoginIn(BaseModel):
    message: str = Field(description="the EIP-4361 message, as signed", min_length=1, max_length=4000)
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$", description="65-byte personal_sign signature")

    # Signed (personal_sign) by anvil's account 5 over this very message; its nonce is NonceOut's example.
    model_config = {"json_schema_extra": {"examples": [{
        "message": EXAMPLE_MESSAGE,
        "signature": ("0x480b5bebdb994ecf69b77d476c7b10b2fa67a0eab145ebe776747dc77ec26963"
                      "01a8486b309180f689190640e26a5fa673bd08c6d6268487b75b5a84896dd3411c")}]}}


class TokenOut(BaseModel):
    token: str = Field(description="send as `Authorization: Bearer <token>`")
    token_type: str = "bearer"
    expires_at: int = Field(description="unix seconds; sign in again after")
    address: str
    roles: list[str] = Field(description="admin, operator, pauser, auditor, borrower or applicant (read from the "
                                         "chain on every request: this list is informative)")

    model_config = {"json_schema_extra": {"examples": [{
        "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIweDk5NjU1MDdEMWE1NWJjQzI2OTVDNThiYTE2RkIzN2Q4"
                 "MTlCMEE0ZGMiLCJpYXQiOjE3NjcyMjU2MDAsImV4cCI6MTc2NzIyNjUwMCwianRpIjoiOWMxZTVhN2IzZDJmNGU2MCJ9."
                 "SkxS_IixcbLJhfIx2s8TcwzjxFcJ5cByAPOrUGP2FZ8",
        "token_type": "bearer", "expires_at": 1767226500, "address": "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
        "roles": ["borrower"]}]}}


class Me(BaseModel):
    address: str
    roles: list[str]

    model_config = {"json_schema_extra": {"examples": [{
        "address": "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc", "roles": ["borrower"]}]}}


@router.post("/nonce", response_model=NonceOut, summary="A single-use nonce to sign in with",
             responses={429: {"model": ErrorResponse}})
def nonce(request: Request, body: NonceIn = NO_ADDRESS) -> NonceOut:
    """Name the address that will sign and the answer carries the EIP-4361 message itself, ready to sign as it
    is: the client builds nothing (the dashboard does so). Without an address: the fields to build it from."""
    limit(request, "auth_nonce", request.client.host if request.client else "?")
    context = request.app.state.context
    row = auth.issue_nonce(context)
    domain = context.settings.siwe_domain
    uri, chain_id = f"http://{domain}", context.w3.eth.chain_id
    message = auth.siwe_message(domain, uri, body.address, chain_id, row.nonce) if body.address else None
    return NonceOut(nonce=row.nonce, domain=domain, uri=uri, chain_id=chain_id, expires_at=row.expires_at,
                    message=message)


@router.post("/login", response_model=TokenOut, summary="Exchange a signed SIWE message for a token",
             responses=error_responses(400, 401, 429))
def login(body: LoginIn, request: Request, context: ContextDep, roles: RolesDep) -> TokenOut:
    limit(request, "auth_login", request.client.host if request.client else "?")
    token, expires_at, address = auth.login(context, body.message, body.signature)
    roles.forget(address)
    context.earlier_wallets.forget(address)  # a recovery may have just completed: its old loans show at once
    return TokenOut(token=token, expires_at=expires_at, address=address, roles=sorted(roles.roles(address)))


@router.get("/me", response_model=Me, summary="Who the token belongs to and the roles the chain gives them",
            responses=error_responses(401))
def me(who: CurrentPrincipal) -> Me:
    return Me(address=who.address, roles=sorted(who.roles))
