"""`resource_change`: one search entry -> its version, patient and the server's timestamp.

FHIR R4 Resource.meta: `versionId` changes with every version, `lastUpdated` is an instant with a
time zone; the watermark of pings is kept on it (docs/fhir/subscriptions.md).
"""

from __future__ import annotations

from datetime import UTC, datetime

from service.adapters.fhir.changes import resource_change


def test_a_versioned_observation_names_its_version_patient_and_instant() -> None:
    change = resource_change(
        {
            "resourceType": "Observation",
            "id": "o1",
            "meta": {"versionId": "3", "lastUpdated": "2026-12-08T03:31:19.123Z"},
            "subject": {"reference": "Patient/p1"},
        }
    )
    assert change.version_key == "Observation/o1/_history/3"
    assert change.patient_id == "p1"
    assert change.last_updated == datetime(2026, 12, 8, 3, 31, 19, 123000, tzinfo=UTC)


def test_a_patient_is_its_own_patient() -> None:
    change = resource_change({"resourceType": "Patient", "id": "p2", "meta": {"versionId": "1"}})
    assert (change.version_key, change.patient_id, change.last_updated) == (
        "Patient/p2/_history/1",
        "p2",
        None,
    )


def test_without_version_the_instant_tells_versions_apart() -> None:
    first = resource_change(
        {"resourceType": "ImagingStudy", "id": "s", "meta": {"lastUpdated": "2026-12-08T03:00:00Z"}}
    )
    second = resource_change(
        {"resourceType": "ImagingStudy", "id": "s", "meta": {"lastUpdated": "2026-12-08T03:00:01Z"}}
    )
    assert first.version_key != second.version_key


def test_an_instant_without_time_zone_or_unreadable_is_no_timestamp() -> None:
    # FHIR instants carry a zone; without one the server's clock cannot be compared with ours.
    for text in ("2026-12-08T03:00:00", "yesterday"):
        change = resource_change({"resourceType": "Observation", "id": "o", "meta": {"lastUpdated": text}})
        assert change.last_updated is None
