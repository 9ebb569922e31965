"""Sign-In with Ethereum: a nonce, a signed EIP-4361 message, a short-lived token."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from api import auth
from api.auth import Principal
from api.errors import ErrorResponse
from api.ratelimit import limit

router = APIRouter(prefix="/v1/auth", tags=["auth"])


class NonceOut(BaseModel):
    nonce: str
    domain: str = Field(description="the SIWE `domain` the message must name")
    uri: str
    chain_id: int
    expires_at: int


class LoginIn(BaseModel):
    message: str = Field(description="the EIP-4361 message, as signed", min_length=1, max_length=4000)
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$", description="65-byte personal_sign signature")

    model_config = {"json_schema_extra": {"examples": [{
        "message": "127.0.0.1:8000 wants you to sign in with your Ethereum account:\n0x...\n\nSign in to LoanLedger."
                   "\n\nURI: http://127.0.0.1:8000\nVersion: 1\nChain ID: 31337\nNonce: 5f2b...\nIssued At: ...",
        "signature": "0x" + "ab" * 65}]}}


class TokenOut(BaseModel):
    token: str
    token_type: str = "bearer"
    expires_at: int
    address: str
    roles: list[str]


class Me(BaseModel):
    address: str
    roles: list[str]


@router.post("/nonce", response_model=NonceOut, summary="A single-use nonce to sign in with",
             responses={429: {"model": ErrorResponse}})
def nonce(request: Request) -> NonceOut:
    limit(request, "auth_nonce", request.client.host if request.client else "?")
    context = request.app.state.context
    row = auth.issue_nonce(context)
    domain = context.settings.siwe_domain
    return NonceOut(nonce=row.nonce, domain=domain, uri=f"http://{domain}", chain_id=context.w3.eth.chain_id,
                    expires_at=row.expires_at)


@router.post("/login", response_model=TokenOut, summary="Exchange a signed SIWE message for a token",
             responses={400: {"model": ErrorResponse}, 401: {"model": ErrorResponse}, 429: {"model": ErrorResponse}})
def login(body: LoginIn, request: Request) -> TokenOut:
    limit(request, "auth_login", request.client.host if request.client else "?")
    context = request.app.state.context
    token, expires_at, address = auth.login(context, body.message, body.signature)
    request.app.state.roles.forget(address)
    roles = request.app.state.roles.roles(address)
    return TokenOut(token=token, expires_at=expires_at, address=address, roles=sorted(roles))


@router.get("/me", response_model=Me, summary="Who the token belongs to and the roles the chain gives them",
            responses={401: {"model": ErrorResponse}})
def me(who: Principal = Depends(auth.principal)) -> Me:
    return Me(address=who.address, roles=sorted(who.roles))
