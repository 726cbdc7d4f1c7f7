"""The demo: a real FHIR server, a synthetic cohort, the whole path."""
