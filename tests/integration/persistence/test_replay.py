"""CDS Hooks replay protection shared through the database: a token used at one replica is refused
at every other ("Trusting CDS Clients": a `jti` may be used once), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from service.adapters.alerts.cds_hooks import CdsAuthRejected, CdsJwtVerifier
from service.adapters.persistence.replay import SqlReplayLedger, token_key
from service.adapters.persistence.tables import CdsTokenUseRow
from tests.unit.alerts.test_cds_jwt import AUD, EC_KEY, ISSUER, jwks, token

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _replica(engine: Engine) -> CdsJwtVerifier:
    verifier = CdsJwtVerifier({ISSUER: jwks(EC_KEY, "ehr-1")})
    verifier.share_replay_ledger(SqlReplayLedger(engine))
    return verifier


async def test_a_token_used_at_one_replica_is_a_replay_at_another(engine: Engine) -> None:
    first, second = _replica(engine), _replica(engine)
    once = token()
    await first.verify(f"Bearer {once}", audience=AUD)
    with pytest.raises(CdsAuthRejected, match="replay"):
        await second.verify(f"Bearer {once}", audience=AUD)
    with pytest.raises(CdsAuthRejected, match="replay"):
        await first.verify(f"Bearer {once}", audience=AUD)
    await second.verify(f"Bearer {token()}", audience=AUD)  # another token is fine anywhere


def test_ledger_keeps_a_token_until_it_expires_then_forgets_it(engine: Engine) -> None:
    now = [T0]
    ledger = SqlReplayLedger(engine, clock=lambda: now[0])
    assert ledger.record(ISSUER, "jti-1", T0 + timedelta(minutes=5)) is True
    assert ledger.record(ISSUER, "jti-1", T0 + timedelta(minutes=5)) is False
    assert ledger.record("https://other-ehr.example.org", "jti-1", T0 + timedelta(minutes=5)) is True
    now[0] = T0 + timedelta(minutes=6)  # both expired: deleted on the next use of the ledger
    assert ledger.record(ISSUER, "jti-2", T0 + timedelta(minutes=11)) is True
    with engine.connect() as connection:
        keys = connection.execute(select(CdsTokenUseRow.token_key)).scalars().all()
        assert keys == [token_key(ISSUER, "jti-2")]
        assert connection.execute(select(func.count()).select_from(CdsTokenUseRow)).scalar_one() == 1


def test_ledger_stores_a_fixed_length_hash_not_the_token_identifiers(engine: Engine) -> None:
    ledger = SqlReplayLedger(engine, clock=lambda: T0)
    ledger.record(ISSUER, "x" * 500, T0 + timedelta(minutes=5))
    with engine.connect() as connection:
        (key,) = connection.execute(select(CdsTokenUseRow.token_key)).scalars().all()
    assert len(key) == 64
    assert "x" not in key
    assert ISSUER not in key
