"""The demo's own token issuers: throw-away ES256 keys the demo's service is configured to trust.

A hospital's portal gets its tokens from its authorisation server and its EHR signs its CDS Hooks
calls; the demo has neither, so it signs them itself. The keys live only in this process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

DEMO_ISSUER = "https://demo.oncoresponse.invalid/portal"


@dataclass(frozen=True, slots=True)
class DemoSigner:
    """A fresh EC P-256 key: its public PEM for the service's settings, and ES256 signing."""

    key: ec.EllipticCurvePrivateKey

    @classmethod
    def fresh(cls) -> DemoSigner:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_key_pem(self) -> str:
        return (
            self.key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.key, algorithm="ES256")


@dataclass(frozen=True, slots=True)
class DemoPortalIssuer:
    public_key_pem: str
    issuer: str
    token: str


def demo_portal_issuer(
    *, audience: str, scope: str, valid_for: timedelta = timedelta(hours=12)
) -> DemoPortalIssuer:
    """A fresh key and an ES256 token (`sub` demo-researcher) for the portal's audience."""
    signer = DemoSigner.fresh()
    claims = {
        "sub": "demo-researcher",
        "iss": DEMO_ISSUER,
        "aud": audience,
        "scope": scope,
        "exp": datetime.now(UTC) + valid_for,
    }
    return DemoPortalIssuer(signer.public_key_pem, DEMO_ISSUER, signer.sign(claims))
