"""The demo's own research-portal issuer: a throw-away key pair and a token for the researcher role.

A hospital's portal gets its tokens from its authorisation server; the demo has none, so it signs
one itself, configures the service to trust that key, and prints the token. The key lives only
in this process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

DEMO_ISSUER = "https://demo.oncoresponse.invalid/portal"


@dataclass(frozen=True, slots=True)
class DemoPortalIssuer:
    public_key_pem: str
    issuer: str
    token: str


def demo_portal_issuer(
    *, audience: str, scope: str, valid_for: timedelta = timedelta(hours=12)
) -> DemoPortalIssuer:
    """A fresh EC P-256 key and an ES256 token (`sub` demo-researcher) for the portal's audience."""
    key = ec.generate_private_key(ec.SECP256R1())
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    claims = {
        "sub": "demo-researcher",
        "iss": DEMO_ISSUER,
        "aud": audience,
        "scope": scope,
        "exp": datetime.now(UTC) + valid_for,
    }
    return DemoPortalIssuer(public_pem, DEMO_ISSUER, jwt.encode(claims, key, algorithm="ES256"))
