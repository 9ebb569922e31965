"""Webhook signatures as the large mobile-payment providers make them.

The signed message is the provider's timestamp, a one-time nonce and the raw body, each followed by a
newline (the WeChat Pay API v3 layout): signing the raw bytes means no canonicalisation can differ
between the two sides, and the timestamp and nonce make a captured webhook useless outside its window.
Two schemes: RSA-SHA256 (PKCS#1 v1.5, the provider signs with its private key and we hold its public key)
and HMAC-SHA256 (a shared secret, for rails that offer only that). Signatures travel base64-encoded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ledger.errors import LoanLedgerError

RSA_SHA256 = "RSA-SHA256"
HMAC_SHA256 = "HMAC-SHA256"

HEADER_PROVIDER = "X-Rail-Provider"
HEADER_TIMESTAMP = "X-Rail-Timestamp"
HEADER_NONCE = "X-Rail-Nonce"
HEADER_SIGNATURE = "X-Rail-Signature"
HEADER_SCHEME = "X-Rail-Signature-Type"


class SignatureMismatch(LoanLedgerError):
    """The signature does not verify with the provider's key."""


def signed_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


class Scheme(Protocol):
    name: str

    def sign(self, message: bytes) -> str: ...

    def verify(self, message: bytes, signature: str) -> None: ...


@dataclass(frozen=True)
class RsaScheme:
    """RSA-SHA256. A verifier needs only the public key; a signer (the rail) needs the private key too."""

    public_key: rsa.RSAPublicKey
    private_key: rsa.RSAPrivateKey | None = None
    name: str = RSA_SHA256

    @classmethod
    def generate(cls) -> RsaScheme:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(public_key=key.public_key(), private_key=key)

    @classmethod
    def from_pem(cls, pem: bytes) -> RsaScheme:
        """A private key PEM gives a signer; a public key PEM a verifier."""
        if b"PRIVATE KEY" in pem:
            key = serialization.load_pem_private_key(pem, password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError("not an RSA private key")
            return cls(public_key=key.public_key(), private_key=key)
        public = serialization.load_pem_public_key(pem)
        if not isinstance(public, rsa.RSAPublicKey):
            raise ValueError("not an RSA public key")
        return cls(public_key=public)

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def private_pem(self) -> bytes:
        if self.private_key is None:
            raise ValueError("this scheme holds only a public key")
        return self.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption())

    def sign(self, message: bytes) -> str:
        if self.private_key is None:
            raise ValueError("signing needs the private key")
        return base64.b64encode(self.private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()

    def verify(self, message: bytes, signature: str) -> None:
        try:
            self.public_key.verify(base64.b64decode(signature, validate=True), message, padding.PKCS1v15(),
                                   hashes.SHA256())
        except (InvalidSignature, ValueError) as exc:
            raise SignatureMismatch("the RSA-SHA256 signature does not verify") from exc


@dataclass(frozen=True)
class HmacScheme:
    secret: bytes
    name: str = HMAC_SHA256

    def sign(self, message: bytes) -> str:
        return base64.b64encode(hmac.new(self.secret, message, hashlib.sha256).digest()).decode()

    def verify(self, message: bytes, signature: str) -> None:
        if not hmac.compare_digest(self.sign(message), signature):
            raise SignatureMismatch("the HMAC-SHA256 signature does not verify")


def signature_headers(provider: str, scheme: Scheme, body: bytes, *, timestamp: int, nonce: str) -> dict[str, str]:
    """The headers a rail sends with a webhook body."""
    return {HEADER_PROVIDER: provider, HEADER_TIMESTAMP: str(timestamp), HEADER_NONCE: nonce,
            HEADER_SCHEME: scheme.name,
            HEADER_SIGNATURE: scheme.sign(signed_message(str(timestamp), nonce, body))}
