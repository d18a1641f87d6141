"""The accreditation evidence pack: one ZIP of CSV files for a period, with a README index.

What an assessor asks for (ISO/IEC 17024 §9.8, §9.9, §10): the impartiality report, the
appeals and complaints logs, internal audit reports, the corrective action log, management
review minutes, model version history with approvals, exam item analysis summaries, records
disposals and feedback. Every section has its file; a section with nothing in the period
says "none in this period" in its file and in the README.

Records of the quality processes are read from their cases (by process id) and the data
submitted in their steps, so the pack needs no knowledge of their forms. The item analysis
table is read only where it exists.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData, Table, inspect, or_, select
from sqlalchemy.orm import Session

from .errors import ValidationError
from .feedback import feedback_summary
from .impartiality.report import impartiality_report
from .models import Case, CaseLink, HumanTask, ModelVersion, Scheme, User
from .retention import disposals_between

if TYPE_CHECKING:
    from . import Engine

NONE_IN_PERIOD = "none in this period"
ITEM_ANALYSIS_TABLE = "item_analyses"


@dataclass
class Section:
    filename: str
    title: str
    columns: list[str]
    rows: list[dict[str, Any]]

    def csv_bytes(self) -> bytes:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns, extrasaction="ignore")
        writer.writeheader()
        if not self.rows:
            writer.writerow({self.columns[0]: NONE_IN_PERIOD})
        for row in self.rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
        return out.getvalue().encode("utf-8")


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return "" if value is None else value


def period_bounds(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    """[from 00:00, the day after `to` 00:00): both dates included."""
    if date_to < date_from:
        raise ValidationError(
            "the period ends before it starts", {"to": ["must be on or after the start date"]}
        )
    return datetime.combine(date_from, time()), datetime.combine(date_to + timedelta(1), time())


def build_pack(engine: Engine, date_from: date, date_to: date) -> bytes:
    start, end = period_bounds(date_from, date_to)
    with engine.sessions() as session:
        sections = build_sections(session, start, end)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as pack:
        pack.writestr("README.txt", _readme(sections, date_from, date_to, engine.clock.now()))
        for section in sections:
            pack.writestr(section.filename, section.csv_bytes())
    return buffer.getvalue()


def build_sections(session: Session, start: datetime, end: datetime) -> list[Section]:
    return [
        _impartiality(session, start, end),
        _appeals(session, start, end),
        _complaints(session, start, end),
        _process_steps(
            session, start, end, "internal_audits.csv", "Internal audit reports", "internal_audit"
        ),
        _corrective_actions(session, start, end),
        _process_steps(
            session,
            start,
            end,
            "management_reviews.csv",
            "Management review minutes",
            "management_review",
        ),
        _model_versions(session, start, end),
        _item_analyses(session, start, end),
        _disposals(session, start, end),
        _feedback(session, start, end),
    ]


def _readme(sections: list[Section], date_from: date, date_to: date, now: datetime) -> str:
    lines = [
        "Certrail accreditation evidence pack",
        f"Period: {date_from.isoformat()} to {date_to.isoformat()} (both days included)",
        f"Produced: {now.isoformat(timespec='seconds')}",
        "",
        "Files (CSV, UTF-8, one header row):",
    ]
    for section in sections:
        count = f"{len(section.rows)} row(s)" if section.rows else NONE_IN_PERIOD
        lines.append(f"  {section.filename:<28} {section.title}: {count}")
    lines += [
        "",
        "Cases are listed when they were open during the period (started before its end and",
        "not ended before its start). Dates and times are UTC.",
    ]
    return "\n".join(lines) + "\n"


# -- the sections ---------------------------------------------------------------------------------


def _impartiality(session: Session, start: datetime, end: datetime) -> Section:
    rows = [line.as_row() for line in impartiality_report(session, start, end)]
    columns = ["at", "kind", "actor", "case_id", "task_id", "rules", "detail"]
    return Section("impartiality_report.csv", "Impartiality report", columns, rows)


def _cases_open_in(session: Session, process_id: str, start: datetime, end: datetime) -> list[Case]:
    return list(
        session.scalars(
            select(Case)
            .where(
                Case.process_id == process_id,
                Case.started_at < end,
                or_(Case.ended_at.is_(None), Case.ended_at >= start),
            )
            .order_by(Case.started_at, Case.id)
        )
    )


def _submitted(session: Session, case_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Per case, the data of its completed steps merged in completion order (a step done
    again overrides the earlier answers)."""
    merged: dict[int, dict[str, Any]] = {}
    ids = list(case_ids)
    if not ids:
        return merged
    for case_id, data in session.execute(
        select(HumanTask.case_id, HumanTask.submitted_data)
        .where(HumanTask.case_id.in_(ids), HumanTask.status == "completed")
        .order_by(HumanTask.completed_at, HumanTask.id)
    ):
        merged.setdefault(case_id, {}).update(data or {})
    return merged


def _links(session: Session, case_ids: list[int], kind: str) -> dict[int, int]:
    if not case_ids:
        return {}
    return dict(
        session.execute(
            select(CaseLink.from_case_id, CaseLink.to_case_id).where(
                CaseLink.from_case_id.in_(case_ids), CaseLink.kind == kind
            )
        ).all()
    )


def _scheme_codes(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Scheme.id, Scheme.code)).all())


def _case_row(case: Case, schemes: dict[int, str]) -> dict[str, Any]:
    return {
        "case_id": case.id,
        "scheme": schemes.get(case.scheme_id, "") if case.scheme_id else "",
        "person_id": case.person_id,
        "status": case.status,
        "received_at": case.started_at,
        "closed_at": case.ended_at,
    }


def _appeals(session: Session, start: datetime, end: datetime) -> Section:
    cases = _cases_open_in(session, "appeal", start, end)
    ids = [c.id for c in cases]
    data, appealed = _submitted(session, ids), _links(session, ids, "appeals")
    schemes = _scheme_codes(session)
    rows = []
    for case in cases:
        answers = data.get(case.id, {})
        rows.append(
            {
                **_case_row(case, schemes),
                "appealed_case_id": appealed.get(case.id),
                "valid": answers.get("appeal_valid"),
                "outcome": answers.get("appeal_outcome", ""),
                "rationale": answers.get("appeal_rationale", ""),
            }
        )
    columns = ["case_id", "scheme", "person_id", "status", "received_at", "closed_at"]
    columns += ["appealed_case_id", "valid", "outcome", "rationale"]
    return Section("appeals_log.csv", "Appeals log", columns, rows)


def _complaints(session: Session, start: datetime, end: datetime) -> Section:
    cases = _cases_open_in(session, "complaint", start, end)
    ids = [c.id for c in cases]
    data, subject = _submitted(session, ids), _links(session, ids, "concerns")
    schemes = _scheme_codes(session)
    rows = []
    for case in cases:
        answers = data.get(case.id, {})
        rows.append(
            {
                **_case_row(case, schemes),
                "concerns_case_id": subject.get(case.id),
                "relevant": answers.get("complaint_relevant"),
                "response_approved": answers.get("complaint_response_approved"),
                "corrective_action_needed": answers.get("corrective_action_needed"),
                "outcome": answers.get("complaint_closure_outcome", ""),
                "summary": answers.get("complaint_closure_summary", ""),
            }
        )
    columns = ["case_id", "scheme", "person_id", "status", "received_at", "closed_at"]
    columns += [
        "concerns_case_id",
        "relevant",
        "response_approved",
        "corrective_action_needed",
        "outcome",
        "summary",
    ]
    return Section("complaints_log.csv", "Complaints log", columns, rows)


STEP_COLUMNS = [
    "case_id",
    "case_status",
    "started_at",
    "ended_at",
    "step",
    "step_name",
    "completed_by",
    "completed_at",
    "record",
]


def _step_rows(session: Session, cases: list[Case], only_steps: set[str] | None = None):
    """One row per completed step of each case, with the data it recorded (a case with no
    completed step yet gets one row of its own)."""
    users = dict(session.execute(select(User.id, User.username)).all())
    by_case = {c.id: c for c in cases}
    steps: dict[int, list[HumanTask]] = {c.id: [] for c in cases}
    if cases:
        for task in session.scalars(
            select(HumanTask)
            .where(HumanTask.case_id.in_(list(by_case)), HumanTask.status == "completed")
            .order_by(HumanTask.completed_at, HumanTask.id)
        ):
            if only_steps is None or task.task_spec_id in only_steps:
                steps[task.case_id].append(task)
    rows = []
    for case in cases:
        base = {
            "case_id": case.id,
            "case_status": case.status,
            "started_at": case.started_at,
            "ended_at": case.ended_at,
        }
        if not steps[case.id] and only_steps is None:
            rows.append(base)
        for task in steps[case.id]:
            rows.append(
                {
                    **base,
                    "step": task.task_spec_id,
                    "step_name": task.name,
                    "completed_by": users.get(task.completed_by_id, ""),
                    "completed_at": task.completed_at,
                    "record": task.submitted_data or {},
                }
            )
    return rows


def _process_steps(
    session: Session, start: datetime, end: datetime, filename: str, title: str, process_id: str
) -> Section:
    rows = _step_rows(session, _cases_open_in(session, process_id, start, end))
    return Section(filename, title, STEP_COLUMNS, rows)


def _corrective_actions(session: Session, start: datetime, end: datetime) -> Section:
    """Corrective action cases, and the corrective action step of complaints."""
    rows = [
        {"source": "corrective_action", **row}
        for row in _step_rows(session, _cases_open_in(session, "corrective_action", start, end))
    ]
    complaints = _cases_open_in(session, "complaint", start, end)
    rows += [
        {"source": "complaint", **row}
        for row in _step_rows(session, complaints, {"record_corrective_action"})
    ]
    return Section(
        "corrective_actions.csv", "Corrective action log", ["source", *STEP_COLUMNS], rows
    )


def _model_versions(session: Session, start: datetime, end: datetime) -> Section:
    """Every model version that existed during the period, with its document-control dates."""
    users = dict(session.execute(select(User.id, User.username)).all())
    versions = session.scalars(
        select(ModelVersion)
        .where(
            ModelVersion.created_at < end,
            or_(ModelVersion.retired_at.is_(None), ModelVersion.retired_at >= start),
        )
        .order_by(ModelVersion.process_id, ModelVersion.version)
    )
    rows = [
        {
            "process": v.process_id,
            "version": v.version,
            "status": v.status,
            "author": users.get(v.author_id, "") if v.author_id else "(shipped)",
            "reviewer": users.get(v.reviewer_id, ""),
            "created_at": v.created_at,
            "submitted_at": v.submitted_at,
            "reviewed_at": v.reviewed_at,
            "approved_at": v.approved_at,
            "published_at": v.published_at,
            "published_by": users.get(v.published_by_id, ""),
            "retired_at": v.retired_at,
            "checksum": v.checksum,
            "change_summary": v.change_summary,
            "review_comment": v.review_comment,
        }
        for v in versions
    ]
    columns = list(rows[0]) if rows else ["process", "version", "status", "author", "reviewer"]
    if not rows:
        columns += ["created_at", "approved_at", "published_at", "retired_at", "checksum"]
    return Section("model_versions.csv", "Model version history with approvals", columns, rows)


def _item_analyses(session: Session, start: datetime, end: datetime) -> Section:
    """The stored item analyses of the period, where the table exists: its columns as they
    are, filtered on its first date-time column."""
    filename, title = "item_analyses.csv", "Exam item analysis summaries"
    # Inspected on the session's own connection (a second one would wait for its lock).
    bind = session.connection()
    if not inspect(bind).has_table(ITEM_ANALYSIS_TABLE):
        return Section(filename, title, ["item_analysis"], [])
    table = Table(ITEM_ANALYSIS_TABLE, MetaData(), autoload_with=bind, resolve_fks=False)
    # The summary is the scalar columns; JSON columns hold the full per-item results.
    columns = [c for c in table.columns if _python_type(c.type) not in (dict, list, object, None)]
    query = select(*columns)
    stamped = [c for c in columns if _python_type(c.type) is datetime]
    if stamped:
        query = query.where(stamped[0] >= start, stamped[0] < end).order_by(stamped[0])
    rows = [dict(row) for row in session.execute(query).mappings()]
    return Section(filename, title, [c.name for c in columns], rows)


def _python_type(sql_type: Any) -> type | None:
    try:
        return sql_type.python_type
    except NotImplementedError:
        return None


def _disposals(session: Session, start: datetime, end: datetime) -> Section:
    users = dict(session.execute(select(User.id, User.username)).all())
    rows = [
        {
            "disposal_id": d.id,
            "case_id": d.case_id,
            "proposed_by": users.get(d.proposed_by_id, ""),
            "proposed_at": d.proposed_at,
            "approved_by": users.get(d.approved_by_id, ""),
            "disposed_at": d.disposed_at,
            "documents_deleted": d.documents_deleted,
            "steps_tombstoned": d.tasks_tombstoned,
            "person_anonymised": d.person_anonymised,
            "reason": d.reason,
        }
        for d in disposals_between(session, start, end)
    ]
    columns = ["disposal_id", "case_id", "proposed_by", "proposed_at", "approved_by"]
    columns += ["disposed_at", "documents_deleted", "steps_tombstoned", "person_anonymised"]
    return Section("retention_disposals.csv", "Records disposals", [*columns, "reason"], rows)


def _feedback(session: Session, start: datetime, end: datetime) -> Section:
    rows = [summary.as_row() for summary in feedback_summary(session, start, end)]
    columns = ["scheme", "kind", "invitations", "responses", "mean_overall", "mean_clarity"]
    return Section("feedback.csv", "Feedback aggregates", [*columns, "comments"], rows)
