"""Bearer JWTs for the API tests (clinical API and research portal), signed by test keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def public_pem(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    """The PEM (SubjectPublicKeyInfo) of a test key's public half, as the service is configured."""
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def signed_jwt(
    key: Any,
    algorithm: str,
    *,
    subject: str,
    issuer: str,
    audience: str,
    scope: str,
    expires_in: timedelta,
) -> str:
    """An access token with `sub`, `iss`, `aud`, `exp` (now + `expires_in`) and `scope`."""
    claims = {
        "sub": subject,
        "iss": issuer,
        "aud": audience,
        "exp": datetime.now(UTC) + expires_in,
        "scope": scope,
    }
    encoded: str = jwt.encode(claims, key, algorithm=algorithm)
    return encoded
