"""Document control of process model versions: review and approval by someone other than
the author (SOD-4EYES, ISO/IEC 17024 10.2)."""

from __future__ import annotations

from .errors import ConflictError, NotFoundError, PermissionDenied
from .impartiality.rules import CLAUSES
from .models import ModelVersion, User
from .unit_of_work import UnitOfWork


def submit_for_review(uow: UnitOfWork, version_id: int, author: User) -> ModelVersion:
    version = _version(uow, version_id)
    if "process_owner" not in author.role_names:
        raise PermissionDenied("only a process owner may submit a model version for review")
    if version.status != "draft":
        raise ConflictError(
            f"version {version.version} of {version.process_id} is {version.status}, not a draft"
        )
    version.status = "in_review"
    uow.audit.record(
        uow.now,
        author.username,
        "model_submitted",
        f"{version.process_id} v{version.version} submitted for review",
        after={"version_id": version.id},
    )
    return version


def approve(uow: UnitOfWork, version_id: int, approver: User) -> ModelVersion:
    version = _version(uow, version_id)
    if "quality_manager" not in approver.role_names:
        raise PermissionDenied("only a quality manager may approve a model version")
    if version.author_id == approver.id:
        raise FourEyesRefusal(
            f"You wrote this version of {version.process_id}; {CLAUSES['SOD-4EYES']}.",
            approver.username,
            version.id,
        )
    if version.status != "in_review":
        raise ConflictError(
            f"version {version.version} of {version.process_id} is {version.status}, not in review"
        )
    version.status = "approved"
    uow.audit.record(
        uow.now,
        approver.username,
        "model_approved",
        f"{version.process_id} v{version.version} approved",
        after={"version_id": version.id, "rule": "SOD-4EYES", "author_id": version.author_id},
    )
    return version


class FourEyesRefusal(PermissionDenied):
    """The author tried to approve their own version."""

    def __init__(self, message: str, username: str, version_id: int):
        super().__init__(message)
        self.username = username
        self.version_id = version_id


def record_refusal(uow: UnitOfWork, refused: FourEyesRefusal) -> None:
    uow.audit.record(
        uow.now,
        refused.username,
        "sod_check_failed",
        refused.message,
        after={
            "point": "approval",
            "rules": [
                {
                    "rule": "SOD-4EYES",
                    "reason": refused.message,
                    "facts": {"version_id": refused.version_id},
                }
            ],
        },
    )


def _version(uow: UnitOfWork, version_id: int) -> ModelVersion:
    version = uow.session.get(ModelVersion, version_id)
    if version is None:
        raise NotFoundError(f"model version {version_id} does not exist")
    return version
