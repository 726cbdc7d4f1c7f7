"""Patient identity at the persistence boundary: pseudonymous keys and FHIR id checks.

`patient_key` (HMAC-SHA256 of the FHIR logical id under `ONCORESPONSE_PATIENT_KEY_SALT`, hex,
first 16 characters; docs/architecture.md) is implemented once, in `service.application.privacy`,
and re-exported here for adapters.

Decision (what the database keys on): rows are keyed by `fhir_patient_id`, the server-assigned
logical id, which is needed to find a patient again (alerts, statistics) and is not a direct
identifier such as an MRN; `patient_key` is stored beside it and is the only patient reference
that logs may carry. Changing the salt changes every key but no database identity.
"""

from __future__ import annotations

import re

from service.application.privacy import patient_key

__all__ = ["check_fhir_id", "patient_key"]

# FHIR R4 `id` datatype: 1-64 characters from [A-Za-z0-9-.].
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def check_fhir_id(fhir_id: str) -> str:
    """Return `fhir_id` if it is a valid FHIR logical id, else raise ValueError (without echoing it)."""
    if not _FHIR_ID.fullmatch(fhir_id):
        raise ValueError("not a FHIR logical id (1-64 characters from A-Z a-z 0-9 - .)")
    return fhir_id
