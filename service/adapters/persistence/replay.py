"""The replay ledger of CDS Hooks bearer JWTs, shared through the database by every replica.

`first_use(issuer, jti, expires_at)` records a token and answers whether it was new: the primary
key decides, so two replicas racing on one token cannot both accept it. Rows of expired tokens are
deleted on the way (a token past its expiry is refused for that reason anyway).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from functools import partial

import anyio.to_thread
from sqlalchemy import Engine, delete, insert
from sqlalchemy.exc import IntegrityError

from service.adapters.persistence.database import utc_now
from service.adapters.persistence.tables import CdsTokenUseRow


def token_key(issuer: str, jti: str) -> str:
    """SHA-256 (hex) of issuer and jti: fixed length, and nothing of the token is stored."""
    return hashlib.sha256(f"{issuer}\n{jti}".encode()).hexdigest()


class SqlReplayLedger:
    """Used CDS tokens in `cds_token_uses` (synchronous core, async `first_use`)."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._engine = engine
        self._clock = clock

    def record(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        """True if the token was not used before (now recorded), False for a replay."""
        with self._engine.begin() as connection:
            connection.execute(delete(CdsTokenUseRow).where(CdsTokenUseRow.expires_at < self._clock()))
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    insert(CdsTokenUseRow).values(token_key=token_key(issuer, jti), expires_at=expires_at)
                )
        except IntegrityError:
            return False
        return True

    async def first_use(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        return await anyio.to_thread.run_sync(partial(self.record, issuer, jti, expires_at))
