"""CDS Hooks 2.0 "Trusting CDS Clients": iss allow-list, aud = service URL, exp/iat/jti, no none/HMAC."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from service.adapters.alerts.cds_hooks import CdsAuthRejected, CdsJwtVerifier

ISSUER = "https://ehr.example.org"
AUD = "https://cds.example.org/cds-services/atypical-response"
EC_KEY = ec.generate_private_key(ec.SECP384R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: Any) -> str:
    return str(
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def jwks(key: Any, kid: str) -> str:
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "use": "sig", "alg": "ES384"})
    return json.dumps({"keys": [jwk]})


def token(key: Any = EC_KEY, alg: str = "ES384", kid: str = "ehr-1", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUD, "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
    body.update(claims)
    return jwt.encode(
        {k: v for k, v in body.items() if v is not None}, key, algorithm=alg, headers={"kid": kid}
    )


@pytest.fixture
def verifier() -> CdsJwtVerifier:
    return CdsJwtVerifier({ISSUER: jwks(EC_KEY, "ehr-1"), "https://other-ehr.example.org": pem(RSA_KEY)})


async def test_an_es384_token_from_a_trusted_ehr_passes_spec_example_shape(verifier: CdsJwtVerifier) -> None:
    claims = await verifier.verify(f"Bearer {token()}", audience=AUD)
    assert claims["iss"] == ISSUER


async def test_aud_may_be_an_array_containing_the_service_url(verifier: CdsJwtVerifier) -> None:
    await verifier.verify(f"Bearer {token(aud=[AUD])}", audience=AUD)


async def test_a_pem_configured_issuer_with_rs384_passes(verifier: CdsJwtVerifier) -> None:
    signed = token(RSA_KEY, "RS384", iss="https://other-ehr.example.org")
    await verifier.verify(f"Bearer {signed}", audience=AUD)


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "Bearer JWT is required"),
        ("Basic dXNlcjpwYXNz", "Bearer JWT is required"),
        ("Bearer not-a-jwt", "not a JWT"),
    ],
)
async def test_unsigned_requests_are_rejected(
    verifier: CdsJwtVerifier, authorization: str | None, reason: str
) -> None:
    with pytest.raises(CdsAuthRejected, match=reason):
        await verifier.verify(authorization, audience=AUD)


async def test_wrong_audience_is_rejected(verifier: CdsJwtVerifier) -> None:
    with pytest.raises(CdsAuthRejected, match="audience"):
        await verifier.verify(
            f"Bearer {token(aud='https://cds.example.org/cds-services/other')}", audience=AUD
        )


async def test_expired_token_is_rejected(verifier: CdsJwtVerifier) -> None:
    now = int(time.time())
    with pytest.raises(CdsAuthRejected, match="expired"):
        await verifier.verify(f"Bearer {token(iat=now - 600, exp=now - 120)}", audience=AUD)


async def test_alg_none_is_rejected_spec_shall_not(verifier: CdsJwtVerifier) -> None:
    unsigned = token(None, "none")
    with pytest.raises(CdsAuthRejected, match="'none'"):
        await verifier.verify(f"Bearer {unsigned}", audience=AUD)


async def test_hmac_is_rejected_spec_no_symmetric_algorithms(verifier: CdsJwtVerifier) -> None:
    shared = token("a-shared-secret-of-enough-length-32b", "HS256")
    with pytest.raises(CdsAuthRejected, match="'HS256'"):
        await verifier.verify(f"Bearer {shared}", audience=AUD)


async def test_untrusted_issuer_and_foreign_key_are_rejected(verifier: CdsJwtVerifier) -> None:
    with pytest.raises(CdsAuthRejected, match="issuer is not trusted"):
        await verifier.verify(f"Bearer {token(iss='https://evil.example.org')}", audience=AUD)
    impostor = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(CdsAuthRejected, match="rejected"):
        await verifier.verify(f"Bearer {token(impostor)}", audience=AUD)


async def test_missing_jti_and_replayed_jti_are_rejected(verifier: CdsJwtVerifier) -> None:
    with pytest.raises(CdsAuthRejected, match="MissingRequiredClaimError"):
        await verifier.verify(f"Bearer {token(jti=None)}", audience=AUD)
    once = token()
    await verifier.verify(f"Bearer {once}", audience=AUD)
    with pytest.raises(CdsAuthRejected, match="replay"):
        await verifier.verify(f"Bearer {once}", audience=AUD)


async def test_without_trusted_issuers_every_call_is_refused() -> None:
    with pytest.raises(CdsAuthRejected, match="no trusted"):
        await CdsJwtVerifier({}).verify(f"Bearer {token()}", audience=AUD)
