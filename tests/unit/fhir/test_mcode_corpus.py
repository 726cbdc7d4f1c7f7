"""The mCODE STU4 examples (hl7.fhir.us.mcode 4.0.0, HL7 International; tests/fixtures/mcode-stu4),
read as a hospital would send them: FHIR this project did not write.

Assembly, with the minimum added: every example resource (Bundles and the Group aside) becomes an
entry of one collection Bundle with `fullUrl` `http://hl7.org/fhir/us/mcode/<Type>/<id>` (the
IG's example base; FHIR R4 requires a fullUrl in a collection), and is split by patient as
`$assess` does. The IG's own patient Bundle (Bundle-mcode-patient-bundle-jenny-m) is read as it is.
One variant adds a single ICI administration to Eve Anyperson (below) and says so.

What a clinician expects, and why (docs/fhir/mcode.md):
- None of the seven example patients received a PD-1/PD-L1 inhibitor (the medications are
  cyclophosphamide, doxorubicin, paclitaxel, anastrozole, cisplatin, gefitinib, idarubicin,
  vincristine, prednisone): the service, whose criteria (iRECIST) are for immune-checkpoint
  therapy, must assess none of them and say `no-ici-start` for each.
- The two TumorSize examples are pathology measurements (a specimen; a gross examination of a
  specimen as method): RECIST 1.1 measures on imaging (Eisenhauer 2009, section 3.2), so each is
  excluded with `pathology-measurement-not-recist`, never taken for a scan.
- The mCODE RadiotherapyVolume BodyStructures are where radiation was given, not tumours: each is
  `not-a-lesion` (information), never a lesion without identifier.
- The mCODE Tumor BodyStructure ("Tumor 1234") is a lesion named by its identifier.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from service.adapters.fhir.inbound import bundle_patients, patient_input
from service.application.ports import PatientInput
from service.domain.engine import assess

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "mcode-stu4"
EXAMPLE_BASE = "http://hl7.org/fhir/us/mcode/"
PATIENTS = (
    "cancer-patient-jenny-m",
    "cancer-patient-john-anyperson",
    "cancer-patient-eve-anyperson",
    "cancer-patient-brian-l",
    "cancer-patient-adam-everyman",
    "gx-cancer-patient-adam-anyperson",
    "cancer-patient-lucy-child",
)


def _examples() -> Iterator[dict[str, Any]]:
    for path in sorted((CORPUS / "example").glob("*.json")):
        resource = orjson.loads(path.read_bytes())
        if resource["resourceType"] not in ("Bundle", "Group"):
            yield resource


def corpus_bundle() -> dict[str, Any]:
    entries = [
        {"fullUrl": f"{EXAMPLE_BASE}{r['resourceType']}/{r['id']}", "resource": r} for r in _examples()
    ]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _read(bundle: dict[str, Any]) -> dict[str, PatientInput]:
    found = bundle_patients(bundle)
    assert found.issues == []  # every reference the mapping reads resolves inside the corpus
    return {pid: patient_input(pid, resources) for pid, resources in found.groups.items()}


@pytest.fixture(scope="module")
def corpus() -> dict[str, PatientInput]:
    return _read(corpus_bundle())


def _codes(patient: PatientInput) -> list[tuple[str, str | None]]:
    return [(i.code, i.ref) for i in patient.issues]


def test_the_licence_note_stays_beside_the_examples() -> None:
    manifest = orjson.loads((CORPUS / "package.json").read_bytes())
    assert (manifest["name"], manifest["version"], manifest["license"]) == (
        "hl7.fhir.us.mcode",
        "4.0.0",
        "CC0-1.0",
    )
    assert "CC0-1.0" in (CORPUS / "NOTICE.md").read_text()


def test_every_example_patient_is_found_and_none_is_assessed_without_an_ici(
    corpus: dict[str, PatientInput],
) -> None:
    assert sorted(corpus) == sorted(PATIENTS)
    for patient_id, patient in corpus.items():
        assert patient.timeline is None
        assert ("no-ici-start", f"Patient/{patient_id}") in _codes(patient)


def test_jenny_m_pathology_tumour_size_is_not_a_recist_measurement(corpus: dict[str, PatientInput]) -> None:
    assert _codes(corpus["cancer-patient-jenny-m"]) == [
        ("not-a-lesion", "BodyStructure/jenny-m-chest-wall-lymph-nodes-treatment-volume"),
        ("not-a-lesion", "BodyStructure/jenny-m-chest-wall-treatment-volume"),
        ("pathology-measurement-not-recist", "Observation/tumor-size-jenny-m"),
        ("no-ici-start", "Patient/cancer-patient-jenny-m"),
    ]
    pathology = corpus["cancer-patient-jenny-m"].issues[2]
    assert "measured on a specimen" in pathology.message


def test_eve_anyperson_gross_examination_is_pathology(corpus: dict[str, PatientInput]) -> None:
    assert _codes(corpus["cancer-patient-eve-anyperson"]) == [
        ("pathology-measurement-not-recist", "Observation/tumor-size-pathology"),
        ("no-ici-start", "Patient/cancer-patient-eve-anyperson"),
    ]
    assert "gross examination" in corpus["cancer-patient-eve-anyperson"].issues[0].message


def test_john_anyperson_radiotherapy_volume_is_no_lesion(corpus: dict[str, PatientInput]) -> None:
    assert _codes(corpus["cancer-patient-john-anyperson"]) == [
        ("not-a-lesion", "BodyStructure/john-anyperson-treatment-volume"),
        ("no-ici-start", "Patient/cancer-patient-john-anyperson"),
    ]


@pytest.mark.parametrize(
    "patient_id",
    [
        "cancer-patient-brian-l",
        "cancer-patient-adam-everyman",
        "gx-cancer-patient-adam-anyperson",
        "cancer-patient-lucy-child",
    ],
)
def test_the_other_patients_only_lack_an_ici(corpus: dict[str, PatientInput], patient_id: str) -> None:
    assert _codes(corpus[patient_id]) == [("no-ici-start", f"Patient/{patient_id}")]


def test_the_igs_own_patient_bundle_reads_like_its_examples(corpus: dict[str, PatientInput]) -> None:
    bundle = orjson.loads((CORPUS / "example" / "Bundle-mcode-patient-bundle-jenny-m.json").read_bytes())
    found = _read(bundle)
    assert sorted(found) == ["cancer-patient-jenny-m"]
    assert ("pathology-measurement-not-recist", "Observation/tumor-size-jenny-m") in _codes(
        found["cancer-patient-jenny-m"]
    )
    assert ("no-ici-start", "Patient/cancer-patient-jenny-m") in _codes(found["cancer-patient-jenny-m"])


def test_eve_with_an_ici_has_her_tumour_as_a_lesion_and_no_imaging_baseline() -> None:
    """Added: one pembrolizumab administration (ATC L01FF02) on 2019-05-15, after her pathology.

    Then she is on an ICI, her mCODE Tumor (identifier "Tumor 1234", left breast) is a lesion, her
    only tumour size is still pathology, and with no imaging there is no RECIST baseline: NE, not
    assessed on lesion data.
    """
    bundle = corpus_bundle()
    administration = {
        "resourceType": "MedicationAdministration",
        "id": "added-pembrolizumab-eve",
        "status": "completed",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.whocc.no/atc", "code": "L01FF02", "display": "pembrolizumab"}]
        },
        "subject": {"reference": "Patient/cancer-patient-eve-anyperson"},
        "effectiveDateTime": "2019-05-15",
    }
    bundle["entry"].append(
        {
            "fullUrl": f"{EXAMPLE_BASE}MedicationAdministration/added-pembrolizumab-eve",
            "resource": copy.deepcopy(administration),
        }
    )
    eve = _read(bundle)["cancer-patient-eve-anyperson"]
    assert eve.timeline is not None
    assert eve.timeline.treatment_start == date(2019, 5, 15)
    assert [(lesion.lesion_id, lesion.organ) for lesion in eve.timeline.lesions] == [
        ("Tumor 1234", "80248007")
    ]
    assert eve.timeline.scans == ()
    assert _codes(eve) == [("pathology-measurement-not-recist", "Observation/tumor-size-pathology")]
    assessment = assess(eve.timeline, as_of=date(2019, 12, 31))
    assert assessment.baseline_date is None
    assert "no-baseline" in {i.code for i in assessment.issues}
