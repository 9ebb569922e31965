"""Sign-In with Ethereum (EIP-4361, the `siwe` library) -> a short-lived JWT; roles read from the chain.

The token carries only the address: roles are looked up on every request (cached a few seconds), so
a role revoked on-chain stops working within seconds, not when the token expires.

Roles: `admin` and `operator` (and `pauser`) from the contracts' AccessControl; `auditor` from the
list the admin manages (plus the `auditors` setting); `borrower` for an address the registry holds
(eligible or not: a revoked borrower still sees their own loans); `applicant` for anyone else signed in.
An auditor is neither borrower nor applicant: auditors read everything and change nothing.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
import requests
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from siwe import SiweMessage
from sqlalchemy import update
from web3 import Web3

from api.errors import ApiError
from ledger.chain import NodeUnavailable
from ledger.store.models.api import Auditor, AuthNonce

NONCE_SECONDS = 300
ROLE_CACHE_SECONDS = 5.0
ROLE_REFRESH_AHEAD_SECONDS = 4.0  # a busy address is resolved again in the background after this
ALL_ROLES = ("admin", "operator", "pauser", "auditor", "borrower", "applicant")
STAFF = ("admin", "operator")

_SIWE_OPENING = re.compile(r"\S{1,255} wants you to sign in with your Ethereum account:\n0x[0-9a-fA-F]{40}\n")
_bearer = HTTPBearer(auto_error=False, description="The token from POST /v1/auth/login")


@dataclass(frozen=True)
class Principal:
    address: str
    roles: frozenset[str]

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


def issue_nonce(context) -> AuthNonce:
    now = int(time.time())
    row = AuthNonce(nonce=secrets.token_hex(16), issued_at=now, expires_at=now + NONCE_SECONDS, used_by=None)
    with context.sessions.begin() as session:
        session.add(row)
    return row


def login(context, message: str, signature: str) -> tuple[str, int, str]:
    """Checks a signed SIWE message and spends its nonce; returns (token, expires_at, address)."""
    # siwe's grammar parser takes seconds on a few kilobytes of junk: anything that does not even open like
    # an EIP-4361 message is refused before it is parsed, so unsigned requests cannot tie up a worker.
    if not _SIWE_OPENING.match(message):
        raise ApiError(400, "invalid_siwe_message", "not an EIP-4361 message: it must open with "
                                                    "'<domain> wants you to sign in with your Ethereum account:'")
    try:
        parsed = SiweMessage.from_message(message=message)
    except Exception as exc:  # noqa: BLE001 - the library raises several parse errors
        raise ApiError(400, "invalid_siwe_message", f"not an EIP-4361 message: {exc}") from None
    if parsed.chain_id != context.w3.eth.chain_id:
        raise ApiError(401, "wrong_chain", f"the message is for chain {parsed.chain_id}, this ledger is "
                                           f"chain {context.w3.eth.chain_id}")
    try:
        parsed.verify(signature, domain=context.settings.siwe_domain, nonce=parsed.nonce)
    except Exception as exc:  # noqa: BLE001 - VerificationError subclasses and signature decoding errors
        raise ApiError(401, "invalid_signature", f"sign-in refused: {type(exc).__name__}") from None
    address = Web3.to_checksum_address(parsed.address)
    now = int(time.time())
    with context.sessions.begin() as session:
        spent = session.execute(update(AuthNonce).where(
            AuthNonce.nonce == parsed.nonce, AuthNonce.used_by.is_(None), AuthNonce.expires_at >= now,
        ).values(used_by=address)).rowcount
    if spent != 1:
        raise ApiError(401, "invalid_nonce", "the nonce is unknown, expired or already used: ask for a new one")
    token, expires_at = issue_token(context, address)
    return token, expires_at, address


def issue_token(context, address: str, **extra_claims) -> tuple[str, int]:
    """A signed token for `address` (roles are not in it: they are read from the chain per request)."""
    now = int(time.time())
    expires_at = now + context.settings.token_minutes * 60
    claims = {"sub": address, "iat": now, "exp": expires_at, "jti": secrets.token_hex(8), **extra_claims}
    return jwt.encode(claims, context.jwt_secret, algorithm="HS256"), expires_at


def siwe_message(domain: str, uri: str, address: str, chain_id: int, nonce: str) -> str:
    """The message a client signs (the SDK builds it this way)."""
    issued = datetime.now(UTC)
    return SiweMessage(domain=domain, address=Web3.to_checksum_address(address), uri=uri, version="1",
                       chain_id=chain_id, nonce=nonce, statement="Sign in to LoanLedger.",
                       issued_at=issued.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       expiration_time=(issued + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")).prepare_message()


class RoleResolver:
    def __init__(self, context):
        self.context = context
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._generation = 0  # moved by forget(): a resolution begun before it is not kept
        self._refreshing: set[str] = set()
        self._refreshes: set = set()  # the background refresh tasks (referenced until done)
        # address -> (when, error name) of its last resolution the node did not answer: requests that queued
        # behind it take that answer instead of each waiting out the node's timeout in turn (a hung node:
        # 503 for all of them, fast).
        self._failures: dict[str, tuple[float, str]] = {}

    def roles(self, address: str) -> frozenset[str]:
        cached = self.cached(address)
        if cached is not None:
            return cached
        # One resolution per address at a time: requests arriving together when the entry expires wait
        # for it (and take its answer) instead of each reading the chain.
        with self._locks_lock:
            lock = self._locks.setdefault(address, threading.Lock())
        asked = time.monotonic()
        with lock:
            cached = self.cached(address)
            if cached is not None:
                return cached
            failure = self._failures.get(address)
            if failure is not None and failure[0] >= asked:
                raise NodeUnavailable(f"the node did not answer ({failure[1]}) while this request waited for "
                                      "the caller's roles; retry later")
            try:
                return self._resolve_and_keep(address)
            except Exception as exc:
                if _node_error(exc):
                    self._failures[address] = (time.monotonic(), type(exc).__name__)
                raise

    def cached(self, address: str) -> frozenset[str] | None:
        """The roles if resolved less than ROLE_CACHE_SECONDS ago, without blocking; else None."""
        cached = self._cache.get(address)
        if cached and time.monotonic() - cached[0] < ROLE_CACHE_SECONDS:
            return cached[1]
        return None

    def refresh_ahead(self, address: str) -> None:
        """Resolves `address` again in the thread pool when its entry nears expiry, so requests keep using
        the entry (still within ROLE_CACHE_SECONDS) instead of all waiting for the chain when it expires."""
        cached = self._cache.get(address)
        if (cached is None or time.monotonic() - cached[0] < ROLE_REFRESH_AHEAD_SECONDS
                or address in self._refreshing):
            return
        self._refreshing.add(address)

        def refresh() -> None:
            try:
                self._resolve_and_keep(address)
            except Exception:  # noqa: BLE001 - the entry then expires and the next request resolves (or fails)
                pass
            finally:
                self._refreshing.discard(address)

        task = asyncio.get_running_loop().create_task(run_in_threadpool(refresh))
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    def forget(self, address: str | None = None) -> None:
        self._generation += 1
        self._cache.clear() if address is None else self._cache.pop(address, None)

    def _resolve_and_keep(self, address: str) -> frozenset[str]:
        generation = self._generation
        roles = self._resolve(address)
        if generation == self._generation:
            self._cache[address] = (time.monotonic(), roles)
        self._failures.pop(address, None)
        return roles

    def _resolve(self, address: str) -> frozenset[str]:
        b = self.context.bindings
        book, registry = b.book.functions, b.registry.functions
        w3 = self.context.w3
        four_eyes = b.four_eyes.functions
        with w3.batch_requests() as batch:  # one round trip for the reads
            batch.add(book.hasRole(b"\0" * 32, address))
            batch.add(book.hasRole(Web3.keccak(text="OPERATOR_ROLE"), address))
            batch.add(book.hasRole(Web3.keccak(text="PAUSER_ROLE"), address))
            batch.add(registry.borrowerOf(address))
            # FourEyes' own admins and operators (a second operator may hold no role elsewhere): they propose and
            # confirm, so they see and sign the decisions awaiting them.
            batch.add(four_eyes.hasRole(b"\0" * 32, address))
            batch.add(four_eyes.hasRole(Web3.keccak(text="OPERATOR_ROLE"), address))
            is_admin, is_operator, is_pauser, record, four_eyes_admin, four_eyes_operator = batch.execute()
        is_admin, is_operator = is_admin or four_eyes_admin, is_operator or four_eyes_operator
        roles = set()
        if is_admin:
            roles.add("admin")
        if is_operator:
            roles.add("operator")
        if is_pauser:
            roles.add("pauser")
        if self._is_auditor(address):
            roles.add("auditor")
        registered = record[2] != 0  # registeredAt
        if "auditor" not in roles:  # auditors change nothing: not even their own KYC or a loan application
            roles.add("borrower" if registered else "applicant")
        return frozenset(roles)

    def _is_auditor(self, address: str) -> bool:
        listed = {a.strip().lower() for a in self.context.settings.auditors.split(",") if a.strip()}
        if address.lower() in listed:
            return True
        with self.context.sessions() as session:
            return session.get(Auditor, address) is not None


# Tokens already verified: (secret, token) -> (address, exp). A token's signature, `iat` and `nbf` checks
# cannot turn false later, so only its expiry is checked again: what PyJWT would answer, without
# re-verifying the HMAC and re-parsing the claims on every request.
_verified: dict[tuple[bytes, str], tuple[str, int]] = {}
_VERIFIED_MAX = 10_000


def decode_token(context, token: str) -> str:
    known = _verified.get((context.jwt_secret, token))
    if known is not None:
        address, expires_at = known
        if expires_at <= time.time():  # PyJWT's rule (no leeway): expired at `exp` itself
            raise ApiError(401, "token_expired", "the sign-in token expired: sign in again")
        return address
    try:
        claims = jwt.decode(token, context.jwt_secret, algorithms=["HS256"], options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError:
        raise ApiError(401, "token_expired", "the sign-in token expired: sign in again") from None
    except jwt.PyJWTError:
        raise ApiError(401, "invalid_token", "the sign-in token is not valid") from None
    if len(_verified) >= _VERIFIED_MAX:
        _verified.clear()
    _verified[(context.jwt_secret, token)] = (claims["sub"], int(claims["exp"]))
    return claims["sub"]


async def principal(request: Request,
                    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
    # async: a principal whose roles are cached costs no hop to the thread pool; resolving them (chain
    # and store reads) still runs there.
    if credentials is None:
        raise ApiError(401, "unauthenticated", "sign in first: POST /v1/auth/nonce, then /v1/auth/login")
    context = request.app.state.context
    address = decode_token(context, credentials.credentials)
    resolver = request.app.state.roles
    roles = resolver.cached(address)
    if roles is None:
        roles = await run_in_threadpool(resolver.roles, address)
    else:
        resolver.refresh_ahead(address)
    return Principal(address, roles)


def _node_error(exc: Exception) -> bool:
    """The node did not answer (as api/errors.py maps to 503 node_unavailable), not a refusal or a bug."""
    return isinstance(exc, NodeUnavailable | ConnectionError | TimeoutError | requests.exceptions.RequestException)


def require(*roles: str):
    """A dependency admitting a principal holding any of `roles`."""
    unknown = set(roles) - set(ALL_ROLES)
    if unknown:
        raise ValueError(f"unknown roles {unknown}")

    async def _check(request: Request,
                     credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
        # principal() called, not depended on: one level fewer for FastAPI to solve on every request
        who = await principal(request, credentials)
        if not who.has(*roles):
            raise ApiError(403, "forbidden", f"this needs one of the roles: {', '.join(roles)}")
        return who

    _check.roles = roles  # read by the route-role matrix test
    return _check
