"""Pseudonymous patient keys for logs, metrics and audit records.

Logs never carry patient identifiers (docs/architecture.md): a patient appears only as
`patient_key`, an HMAC-SHA256 of the FHIR logical id under a configured salt, cut to
16 hex characters. The salt is a secret (`ONCORESPONSE_PATIENT_KEY_SALT`), so keys
cannot be reversed by hashing candidate ids.
"""

from __future__ import annotations

import hashlib
import hmac


def patient_key(patient_id: str, salt: str) -> str:
    return hmac.new(salt.encode(), patient_id.encode(), hashlib.sha256).hexdigest()[:16]
