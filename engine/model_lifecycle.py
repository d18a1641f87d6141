"""Document control of process model versions (ISO/IEC 17024 10.2).

A version moves draft -> in review -> approved -> published -> retired. Process owners save
drafts and submit them; quality managers approve (never a version they wrote: SOD-4EYES),
return a version to draft with a comment, publish and retire. Every change names who made it
and when, and writes its audit event. Validation runs on every save (the draft is stored
with its findings) and again on submission and publication, where errors block.

Publishing never touches a running case: cases keep the version they pinned at their start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from lxml import etree
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from .catalog import review_due
from .errors import (
    ConflictError,
    Finding,
    ModelError,
    NotFoundError,
    PermissionDenied,
    ValidationError,
)
from .forms import check_version_forms
from .impartiality.rules import CLAUSES
from .models import Case, ModelVersion, User, UserRole
from .models.process_models import OPEN_STATUSES
from .notifications import notify_user
from .runtime.specs import BPMN_NS, checksum
from .runtime.xml import UnsafeXMLError, parse_untrusted_xml
from .unit_of_work import UnitOfWork
from .validation import Validation, validate_model_source

if TYPE_CHECKING:
    from . import Engine

EDITOR_ROLE = "process_owner"
APPROVER_ROLE = "quality_manager"


@dataclass
class SavedDraft:
    version: ModelVersion
    findings: list[Finding]


@dataclass
class UploadedModel:
    version: ModelVersion
    findings: list[Finding]
    import_warnings: list[Finding]  # what a Camunda file carried that Certrail cannot map


@dataclass
class ProcessModelSummary:
    """One process of the library: what runs now and what is on its way."""

    process_id: str
    name: str
    published: ModelVersion | None
    open_versions: list[ModelVersion] = field(default_factory=list)
    running_cases: int = 0

    @property
    def review_due_on(self) -> date | None:
        return self.published.review_due_on if self.published is not None else None


# -- validation ---------------------------------------------------------------------------------


def validate(
    engine: Engine,
    session: Session,
    source: bytes | str,
    forms: Mapping[str, Any] | None = None,
    filename: str = "<upload>",
) -> Validation:
    """Validate a model against the library as published now: the processes a call activity
    may call, the task ids impartiality rules may name, the forms of `forms/` plus `forms`."""
    return validate_model_source(
        source,
        engine.forms,
        known_processes=engine.catalog.published_process_ids(session),
        task_ids=engine.catalog.published_element_ids(session),
        extra_forms=dict(forms or {}),
        filename=filename,
    )


def _revalidated(engine: Engine, uow: UnitOfWork, version: ModelVersion) -> Validation:
    """Validate the version again; its errors refuse the step, each naming its element."""
    result = validate(
        engine, uow.session, version.bpmn_xml, version.forms_json, f"{version.process_id}.bpmn"
    )
    errors = result.errors
    if errors:
        fields: dict[str, list[str]] = {}
        for finding in errors:
            fields.setdefault(finding.element_id or "model", []).append(finding.message)
        listed = "; ".join(
            (f"[{f.element_id}] " if f.element_id else "") + f.message for f in errors
        )
        raise ValidationError(
            f"{_label(version)} has {len(errors)} error(s) to fix first: {listed}", fields
        )
    return result


# -- the lifecycle ------------------------------------------------------------------------------


def save_upload(
    engine: Engine, uow: UnitOfWork, author: User, source: bytes, change_summary: str | None
) -> UploadedModel:
    """An uploaded file (also from Camunda Modeler) becomes the open draft. Uploads are
    untrusted: besides what `save_draft` refuses, a file holding code that would break the
    sandbox is refused whole (except code the import already flagged as another engine's
    language, which can never run here), and nothing is stored."""
    from .camunda_import import import_bpmn
    from .lint import SANDBOX_BREACH

    imported = import_bpmn(source)
    foreign = {warning.element_id for warning in imported.warnings}
    hostile = [
        finding
        for finding in validate(engine, uow.session, imported.source).findings
        if SANDBOX_BREACH in finding.message and finding.element_id not in foreign
    ]
    if hostile:
        raise ModelError("the file holds code that breaks the sandbox rules", hostile)
    saved = save_draft(engine, uow, author, imported.source, change_summary)
    return UploadedModel(saved.version, saved.findings, imported.warnings)


def save_draft(
    engine: Engine,
    uow: UnitOfWork,
    author: User,
    source: bytes | str,
    change_summary: str | None = None,
    forms: Mapping[str, Any] | None = None,
) -> SavedDraft:
    """Store `source` as the process's open draft (a new version if it has none), with its
    findings. Unsafe or unreadable XML, or a document without one identified process, is
    refused and nothing is stored."""
    _require(author, EDITOR_ROLE, "edit process models")
    data = source.encode("utf-8") if isinstance(source, str) else bytes(source)
    process_id, name, text = _identify(data)
    forms = dict(forms or {})
    bad_forms = [f for f in check_version_forms(forms) if _is_structural(f)]
    if bad_forms:
        raise ModelError(bad_forms[0].message, bad_forms)

    session = uow.session
    draft = session.scalars(
        select(ModelVersion)
        .where(ModelVersion.process_id == process_id, ModelVersion.status == "draft")
        .order_by(ModelVersion.version.desc())
        .with_for_update()
    ).first()
    base_forms = draft.forms_json if draft is not None else _latest_forms(session, process_id)
    merged = {**(base_forms or {}), **forms}
    result = validate(engine, session, text, merged, f"{process_id}.bpmn")
    spec_json = engine.serializer.dump_spec(result.model.spec) if result.model else ""
    if draft is None:
        draft = ModelVersion(
            process_id=process_id,
            version=_next_number(session, process_id),
            status="draft",
            author_id=author.id,
            contributor_ids=[],
            created_at=uow.now,
        )
        session.add(draft)
    draft.name = name
    draft.bpmn_xml = text
    draft.spec_json = spec_json
    draft.checksum = checksum(text.encode("utf-8"))
    draft.forms_json = merged
    if change_summary is not None and change_summary.strip():
        draft.change_summary = change_summary.strip()
    _add_contributor(draft, author)
    session.flush()
    errors = len(result.errors)
    warnings = len(result.findings) - errors
    uow.audit.record(
        uow.now,
        author.username,
        "model_saved",
        f"{_label(draft)} saved as a draft ({errors} error(s), {warnings} warning(s))",
        after={
            "version_id": draft.id,
            "process_id": process_id,
            "version": draft.version,
            "checksum": draft.checksum,
            "errors": errors,
            "warnings": warnings,
            "forms": sorted(forms),
            "change_summary": draft.change_summary,
        },
    )
    return SavedDraft(draft, list(result.findings))


def submit_for_review(
    engine: Engine,
    uow: UnitOfWork,
    version_id: int,
    author: User,
    change_summary: str | None = None,
) -> ModelVersion:
    _require(author, EDITOR_ROLE, "submit a model version for review")
    version = _version(uow, version_id)
    _expect(version, "draft")
    if change_summary is not None and change_summary.strip():
        version.change_summary = change_summary.strip()
    _revalidated(engine, uow, version)
    version.status = "in_review"
    version.submitted_at = uow.now
    _add_contributor(version, author)
    uow.audit.record(
        uow.now,
        author.username,
        "model_submitted",
        f"{_label(version)} submitted for review",
        after={
            "version_id": version.id,
            "process_id": version.process_id,
            "version": version.version,
            "change_summary": version.change_summary,
        },
    )
    return version


def approve(uow: UnitOfWork, version_id: int, approver: User) -> ModelVersion:
    _require(approver, APPROVER_ROLE, "approve a model version")
    version = _version(uow, version_id)
    if approver.id in version.contributors:
        raise FourEyesRefusal(
            f"You wrote this version of {version.process_id}; {CLAUSES['SOD-4EYES']}.",
            approver.username,
            version.id,
        )
    _expect(version, "in_review")
    version.status = "approved"
    version.reviewer_id = approver.id
    version.reviewed_at = uow.now
    version.approved_at = uow.now
    uow.audit.record(
        uow.now,
        approver.username,
        "model_approved",
        f"{_label(version)} approved",
        after={
            "version_id": version.id,
            "process_id": version.process_id,
            "version": version.version,
            "rule": "SOD-4EYES",
            "author_id": version.author_id,
            "contributor_ids": sorted(version.contributors),
        },
    )
    return version


def return_to_draft(uow: UnitOfWork, version_id: int, reviewer: User, comment: str) -> ModelVersion:
    """Send a version in review (or approved, not yet published) back to its authors."""
    _require(reviewer, APPROVER_ROLE, "return a model version to draft")
    if not (comment or "").strip():
        raise ValidationError(
            "say what has to change before the version can be approved",
            {"comment": ["a comment for the authors is required"]},
        )
    version = _version(uow, version_id)
    _expect(version, "in_review", "approved")
    other = uow.session.scalars(
        select(ModelVersion).where(
            ModelVersion.process_id == version.process_id,
            ModelVersion.status == "draft",
            ModelVersion.id != version.id,
        )
    ).first()
    if other is not None:
        raise ConflictError(
            f"{_label(other)} is already an open draft; retire one of the two first"
        )
    before = version.status
    version.status = "draft"
    version.reviewer_id = reviewer.id
    version.reviewed_at = uow.now
    version.review_comment = comment.strip()
    version.approved_at = None
    uow.audit.record(
        uow.now,
        reviewer.username,
        "model_returned",
        f"{_label(version)} returned to draft: {version.review_comment}",
        before={"status": before},
        after={
            "version_id": version.id,
            "process_id": version.process_id,
            "version": version.version,
            "comment": version.review_comment,
        },
    )
    return version


def publish(
    engine: Engine,
    uow: UnitOfWork,
    version_id: int,
    publisher: User,
    review_due_on: date | None = None,
) -> ModelVersion:
    """Make an approved version the one new cases start on; the version published before it
    is retired. Running cases stay on the version they pinned."""
    _require(publisher, APPROVER_ROLE, "publish a model version")
    version = _version(uow, version_id)
    _expect(version, "approved")
    if review_due_on is not None and review_due_on <= uow.now.date():
        raise ValidationError(
            "the next periodic review must be after today",
            {"review_due_on": [f"{review_due_on.isoformat()} is not after today"]},
        )
    current = uow.session.scalars(
        select(ModelVersion)
        .where(ModelVersion.process_id == version.process_id, ModelVersion.status == "published")
        .with_for_update()
    ).all()
    newer = [v for v in current if v.version > version.version]
    if newer:
        raise ConflictError(
            f"{_label(newer[0])} is newer and already published; "
            f"return {_label(version)} to draft or retire it"
        )
    result = _revalidated(engine, uow, version)
    assert result.model is not None  # no errors: it parsed
    version.spec_json = engine.serializer.dump_spec(result.model.spec)
    version.checksum = checksum(version.bpmn_xml.encode("utf-8"))
    for previous in current:
        _retire(uow, previous, publisher, f"superseded by v{version.version}")
    version.status = "published"
    version.published_at = uow.now
    version.published_by_id = publisher.id
    version.review_due_on = review_due_on or review_due(uow.now)
    version.review_reminded_on = None
    uow.audit.record(
        uow.now,
        publisher.username,
        "model_published",
        f"{_label(version)} published; new cases start on it",
        after={
            "version_id": version.id,
            "process_id": version.process_id,
            "version": version.version,
            "checksum": version.checksum,
            "review_due_on": version.review_due_on.isoformat(),
            "retired_version": current[0].version if current else None,
        },
    )
    return version


def retire(uow: UnitOfWork, version_id: int, manager: User) -> ModelVersion:
    """Withdraw a version. A retired published version starts no new case; cases running on
    it continue on it."""
    _require(manager, APPROVER_ROLE, "retire a model version")
    version = _version(uow, version_id)
    if version.status == "retired":
        raise ConflictError(f"{_label(version)} is already retired")
    if version.status != "published":
        _expect(version, *OPEN_STATUSES)
    _retire(uow, version, manager, "retired")
    return version


def _retire(uow: UnitOfWork, version: ModelVersion, manager: User, why: str) -> None:
    before = version.status
    version.status = "retired"
    version.retired_at = uow.now
    uow.audit.record(
        uow.now,
        manager.username,
        "model_retired",
        f"{_label(version)} {why}",
        before={"status": before},
        after={
            "version_id": version.id,
            "process_id": version.process_id,
            "version": version.version,
        },
    )


# -- SOD-4EYES ----------------------------------------------------------------------------------


class FourEyesRefusal(PermissionDenied):
    """Someone who wrote a version tried to approve it."""

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


# -- the library ----------------------------------------------------------------------------------


def library(session: Session) -> list[ProcessModelSummary]:
    """One summary per process, by process id."""
    summaries: dict[str, ProcessModelSummary] = {}
    for version in session.scalars(
        select(ModelVersion).order_by(ModelVersion.process_id, ModelVersion.version.desc())
    ):
        summary = summaries.get(version.process_id)
        if summary is None:
            summary = summaries[version.process_id] = ProcessModelSummary(
                version.process_id, version.name, None
            )
        if version.status == "published" and summary.published is None:
            summary.published = version
            summary.name = version.name
        elif version.status in OPEN_STATUSES:
            summary.open_versions.append(version)
    counts = session.execute(
        select(Case.process_id, func.count())
        .where(Case.status.in_(("running", "errored")))
        .group_by(Case.process_id)
    )
    for process_id, count in counts:
        if process_id in summaries:
            summaries[process_id].running_cases = count
    return list(summaries.values())


def history(session: Session, process_id: str) -> list[ModelVersion]:
    versions = list(
        session.scalars(
            select(ModelVersion)
            .where(ModelVersion.process_id == process_id)
            .order_by(ModelVersion.version.desc())
        )
    )
    if not versions:
        raise NotFoundError(f"process '{process_id}' has no versions")
    return versions


# -- helpers ------------------------------------------------------------------------------------


def _identify(data: bytes) -> tuple[str, str, str]:
    """The process id and name of a BPMN document and its text, or ModelError."""

    def refuse(message: str) -> ModelError:
        return ModelError(message, [Finding("error", "<upload>", None, message)])

    try:
        tree = parse_untrusted_xml(data)
    except UnsafeXMLError as exc:
        raise refuse(str(exc)) from None
    root = tree.getroot()
    if root.tag != f"{{{BPMN_NS}}}definitions":
        raise refuse("not a BPMN 2.0 document: the root element must be bpmn:definitions")
    processes = root.findall(f"{{{BPMN_NS}}}process")
    if len(processes) != 1:
        raise refuse(f"a model must hold exactly one bpmn:process, found {len(processes)}")
    process = processes[0]
    process_id = (process.get("id") or "").strip()
    if not process_id:
        raise refuse("the bpmn:process has no id")
    if len(process_id) > 100:
        raise refuse(f"the process id is {len(process_id)} characters long; the limit is 100")
    name = (process.get("name") or "").strip() or process_id
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = etree.tostring(tree, encoding="unicode")
    return process_id, name[:200], text


def _is_structural(finding: Finding) -> bool:
    """A form entry that is not a schema at all (a bad name, not an object): not storable."""
    return finding.message.startswith(("a form name", "a form schema must be a JSON object"))


def _latest_forms(session: Session, process_id: str) -> dict[str, Any]:
    """The forms a new draft starts with: those of the published version, else the latest."""
    versions = list(
        session.scalars(
            select(ModelVersion)
            .where(ModelVersion.process_id == process_id)
            .order_by(ModelVersion.version.desc())
        )
    )
    published = [v for v in versions if v.status == "published"]
    base = published[0] if published else (versions[0] if versions else None)
    return dict(base.forms_json or {}) if base is not None else {}


def _next_number(session: Session, process_id: str) -> int:
    highest = session.scalar(
        select(func.max(ModelVersion.version)).where(ModelVersion.process_id == process_id)
    )
    return (highest or 0) + 1


def _add_contributor(version: ModelVersion, user: User) -> None:
    if user.id not in (version.contributor_ids or []):
        version.contributor_ids = [*(version.contributor_ids or []), user.id]


def _require(user: User, role: str, what: str) -> None:
    if role not in user.role_names:
        who = "process owner" if role == EDITOR_ROLE else "quality manager"
        raise PermissionDenied(f"only a {who} may {what}")


def _expect(version: ModelVersion, *statuses: str) -> None:
    if version.status not in statuses:
        wanted = " or ".join(s.replace("_", " ") for s in statuses)
        raise ConflictError(
            f"{_label(version)} is {version.status.replace('_', ' ')}, not {wanted}"
        )


def _label(version: ModelVersion) -> str:
    return f"{version.process_id} v{version.version}"


def _version(uow: UnitOfWork, version_id: int) -> ModelVersion:
    version = uow.session.get(ModelVersion, version_id, with_for_update=True)
    if version is None:
        raise NotFoundError(f"model version {version_id} does not exist")
    return version


# -- periodic review --------------------------------------------------------------------------


def remind_model_reviews(engine: Engine, limit: int = 100) -> int:
    """Tell process owners and quality managers once about each published version whose
    periodic review is due (on PostgreSQL the versions are claimed with SKIP LOCKED, so with
    any number of workers each due date is reminded of once)."""
    with engine.unit_of_work() as uow:
        today = uow.now.date()
        query = (
            select(ModelVersion)
            .where(
                ModelVersion.status == "published",
                ModelVersion.review_due_on <= today,
                or_(
                    ModelVersion.review_reminded_on.is_(None),
                    ModelVersion.review_reminded_on < ModelVersion.review_due_on,
                ),
            )
            .order_by(ModelVersion.review_due_on, ModelVersion.id)
            .limit(limit)
        )
        if engine.db.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        due = list(uow.session.scalars(query))
        if not due:
            return 0
        recipients = list(
            uow.session.scalars(
                select(User)
                .join(UserRole, UserRole.user_id == User.id)
                .where(UserRole.role.in_((EDITOR_ROLE, APPROVER_ROLE)))
                .distinct()
                .order_by(User.id)
            )
        )
        for version in due:
            assert version.review_due_on is not None
            version.review_reminded_on = version.review_due_on
            subject = f"Periodic review due: {version.name} ({_label(version)})"
            body = (
                f"The published version {version.version} of the process '{version.name}' "
                f"({version.process_id}) was due for its periodic review on "
                f"{version.review_due_on:%d %b %Y}. Review it, and publish a revised version "
                f"or confirm it by publishing it again.\n{engine.settings.base_url}/models"
            )
            for user in recipients:
                notify_user(uow.session, uow.now, user, "model_review_due", subject, body)
            uow.audit.record(
                uow.now,
                "scheduler",
                "model_review_due",
                f"{_label(version)} is due for its periodic review "
                f"(since {version.review_due_on.isoformat()})",
                after={
                    "version_id": version.id,
                    "process_id": version.process_id,
                    "version": version.version,
                    "review_due_on": version.review_due_on.isoformat(),
                    "notified": [u.username for u in recipients if u.active],
                },
            )
        return len(due)
