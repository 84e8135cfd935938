"""RSA signing keys published as a JWKS, with rotation that keeps retired keys published for a window."""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class SigningKey:
    private_key: rsa.RSAPrivateKey
    kid: str

    @classmethod
    def generate(cls) -> SigningKey:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        der = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # kid = base64url(sha256(DER of the public key)), as AKS and `azwi jwks` compute it.
        return cls(private_key=private_key, kid=b64url(hashlib.sha256(der).digest()))

    def jwk(self) -> dict[str, Any]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "use": "sig",
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
        }

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid, **(headers or {})})


@dataclass
class KeySet:
    """The current key signs; retired keys stay in the JWKS until their window ends."""

    current: SigningKey = field(default_factory=SigningKey.generate)
    retired: list[tuple[SigningKey, float]] = field(default_factory=list)

    def rotate(self, keep_old_for_seconds: float = 24 * 3600) -> SigningKey:
        self.retired.append((self.current, time.time() + keep_old_for_seconds))
        self.current = SigningKey.generate()
        return self.current

    def published(self) -> list[SigningKey]:
        now = time.time()
        self.retired = [(key, until) for key, until in self.retired if until > now]
        return [self.current, *(key for key, _ in self.retired)]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.jwk() for key in self.published()]}

    def find(self, kid: str) -> SigningKey | None:
        return next((key for key in self.published() if key.kid == kid), None)
