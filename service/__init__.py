"""oncoresponse: tumour response under immune checkpoint inhibitors, over HL7 FHIR."""

__version__ = "0.1.0"
