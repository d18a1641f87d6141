"""Tables, one module per aggregate."""

from .audit import AuditChainHead, AuditEvent
from .base import Base
from .cases import Case, CaseLink
from .certificates import (
    HELD_STATUSES,
    Certificate,
    CertificateSequence,
    CertificateStatusChange,
)
from .documents import Document
from .impartiality import RELATIONSHIPS, Commitment, ConflictOfInterest, TaskBar
from .operations import Incident, Notification, RateLimitWindow
from .people import OVERSIGHT_ROLES, ROLES, STAFF_ROLES, ApiToken, Person, User, UserRole
from .process_models import ModelVersion
from .quality import ItemAnalysis
from .records import FeedbackInvitation, FeedbackResponse, RecordDisposal
from .schemes import Scheme
from .tasks import HumanTask, Timer

__all__ = [
    "OVERSIGHT_ROLES",
    "ROLES",
    "STAFF_ROLES",
    "RELATIONSHIPS",
    "ApiToken",
    "Commitment",
    "ConflictOfInterest",
    "TaskBar",
    "Document",
    "FeedbackInvitation",
    "FeedbackResponse",
    "RecordDisposal",
    "AuditChainHead",
    "AuditEvent",
    "Base",
    "Case",
    "CaseLink",
    "Certificate",
    "CertificateSequence",
    "CertificateStatusChange",
    "HELD_STATUSES",
    "HumanTask",
    "Incident",
    "ItemAnalysis",
    "Notification",
    "RateLimitWindow",
    "ModelVersion",
    "Person",
    "Scheme",
    "Timer",
    "User",
    "UserRole",
]
