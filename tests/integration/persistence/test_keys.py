"""Patient keys and FHIR id checks at the persistence boundary."""

from __future__ import annotations

import pytest

from service.adapters.persistence.keys import check_fhir_id, patient_key


def test_patient_key_is_hmac_sha256_cut_to_16_hex_characters() -> None:
    # RFC 4231 test case 2: HMAC-SHA256(key="Jefe", data="what do ya want for nothing?")
    # = 5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843.
    assert patient_key("what do ya want for nothing?", "Jefe") == "5bdcc146bf60754e"


def test_patient_key_depends_on_the_salt() -> None:
    assert patient_key("p1", "salt-a") != patient_key("p1", "salt-b")


@pytest.mark.parametrize("fhir_id", ["p1", "A-9.z", "x" * 64])
def test_valid_fhir_ids_pass(fhir_id: str) -> None:
    # FHIR R4 datatype `id`: [A-Za-z0-9\-\.]{1,64}.
    assert check_fhir_id(fhir_id) == fhir_id


@pytest.mark.parametrize("fhir_id", ["", "x" * 65, "Patient/p1", "p 1", "p_1"])
def test_invalid_fhir_ids_are_refused_without_echoing_them(fhir_id: str) -> None:
    with pytest.raises(ValueError, match="FHIR logical id") as caught:
        check_fhir_id(fhir_id)
    assert fhir_id not in str(caught.value) or fhir_id == ""
