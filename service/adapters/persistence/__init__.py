"""Persistence adapter: SQLAlchemy 2 + Alembic on SQLite (default) or PostgreSQL (psycopg 3).

Typical wiring (bootstrap)::

    migrate(settings.database_url)                      # alembic upgrade head, idempotent
    engine = make_engine(settings.database_url)
    store = SqlAssessmentStore(engine, patient_key_salt=salt)     # AssessmentStore port
    outbox = SqlAlertOutbox(engine, patient_key_salt=salt)
    audit = SqlAuditLog(engine)
    ...
    engine.dispose()                                    # on shutdown
"""

from service.adapters.persistence.audit import AuditEntry, AuditLogRepository, SqlAuditLog
from service.adapters.persistence.database import (
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    migrate,
    migrate_engine,
    normalise_url,
)
from service.adapters.persistence.keys import check_fhir_id, patient_key
from service.adapters.persistence.outbox import (
    AlertOutboxRepository,
    OutboxAlert,
    SqlAlertOutbox,
    UnknownAlertError,
    alert_dedup_key,
)
from service.adapters.persistence.store import (
    AssessmentRepository,
    RunRecord,
    SqlAssessmentStore,
    StoredAssessment,
    UnknownRunError,
)
from service.adapters.persistence.summary import assessment_document, fingerprint, input_fingerprint
from service.adapters.persistence.tables import AlertStatus, RunStatus, RunTrigger

__all__ = [
    "AlertOutboxRepository",
    "AlertStatus",
    "AssessmentRepository",
    "AuditEntry",
    "AuditLogRepository",
    "OutboxAlert",
    "RunRecord",
    "RunStatus",
    "RunTrigger",
    "SqlAlertOutbox",
    "SqlAssessmentStore",
    "SqlAuditLog",
    "StoredAssessment",
    "UnknownAlertError",
    "UnknownRunError",
    "alert_dedup_key",
    "assessment_document",
    "check_fhir_id",
    "current_revision",
    "downgrade",
    "fingerprint",
    "head_revision",
    "input_fingerprint",
    "make_engine",
    "migrate",
    "migrate_engine",
    "normalise_url",
    "patient_key",
]
