"""What the annual management review considers (ISO/IEC 17024 10.2.5), gathered from the
records: internal audit results, appeals and complaints, the impartiality report, overdue
work, corrective actions and feedback.

`management_review_inputs` returns plain JSON (numbers, strings, lists, dicts): the system
operation `gather_management_review_inputs` stores it in the review case, so the minutes
keep the figures as they stood on the day of the review.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .certificates import add_months
from .dashboard import StepFilters, step_counts
from .impartiality.report import impartiality_report
from .models import AuditEvent, Case, CaseLink, HumanTask, Scheme

OPEN = ("running", "errored")
REVIEW_PROCESS = "management_review"
REVIEW_INTERVAL_MONTHS = 12
# How each kind of case says it found for the complainant or appellant.
UPHELD_WHEN: dict[str, tuple[str, str, Any]] = {
    "appeal": ("decide_appeal", "appeal_outcome", "upheld"),
    "complaint": ("investigate_complaint", "complaint_substantiated", True),
}


def review_period_start(session: Session, review: Case) -> datetime:
    """The review covers the time since the previous review started, or a year."""
    previous = session.scalar(
        select(func.max(Case.started_at)).where(
            Case.process_id == REVIEW_PROCESS,
            Case.id != review.id,
            Case.started_at < review.started_at,
        )
    )
    if previous is not None:
        return previous
    return datetime.combine(add_months(review.started_at.date(), -REVIEW_INTERVAL_MONTHS), time.min)


def management_review_inputs(session: Session, start: datetime, now: datetime) -> dict[str, Any]:
    """The inputs for the period from `start` up to and including `now`."""
    end = now + timedelta(microseconds=1)  # every part counts up to an exclusive end
    return {
        "period": {"from": start.isoformat(), "to": now.isoformat()},
        "internal_audits": internal_audit_results(session, start, end),
        "appeals": appeal_or_complaint_statistics(session, "appeal", start, end),
        "complaints": appeal_or_complaint_statistics(session, "complaint", start, end),
        "impartiality": impartiality_summary(session, start, end),
        "overdue": overdue_statistics(session, start, end, now),
        "corrective_actions": corrective_action_status(session, start, end),
        "feedback": feedback_summary(session, start, end),
    }


# -- the parts --------------------------------------------------------------------------------


def _completed_steps(
    session: Session, spec_id: str, start: datetime, end: datetime, process: str | None = None
) -> list[tuple[int, dict[str, Any]]]:
    """(case id, submitted data) of every `spec_id` step completed in the period."""
    query = select(HumanTask.case_id, HumanTask.submitted_data).where(
        HumanTask.task_spec_id == spec_id,
        HumanTask.status == "completed",
        HumanTask.completed_at >= start,
        HumanTask.completed_at < end,
    )
    if process is not None:
        query = query.where(HumanTask.case_process_id == process)
    return [(case_id, data or {}) for case_id, data in session.execute(query)]


def _counts(session: Session, process: str, start: datetime, end: datetime) -> dict[str, int]:
    def count(*criteria: Any) -> int:
        return session.scalar(
            select(func.count()).select_from(Case).where(Case.process_id == process, *criteria)
        )

    return {
        "started": count(Case.started_at >= start, Case.started_at < end),
        "closed": count(Case.status == "completed", Case.ended_at >= start, Case.ended_at < end),
        "open": count(Case.status.in_(OPEN)),
    }


def internal_audit_results(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    """Audits started, closed and open; their findings; nonconformities still open (their
    corrective action not closed)."""
    findings = Counter(
        data.get("finding_type")
        for _case, data in _completed_steps(session, "record_audit_finding", start, end)
    )
    plans = dict(_completed_steps(session, "plan_audit", start, end, "internal_audit"))
    conclusions = dict(_completed_steps(session, "report_audit", start, end, "internal_audit"))
    audited = [
        {
            "case_id": case_id,
            "audited_process": data.get("audited_process"),
            "period": [data.get("audit_period_from"), data.get("audit_period_to")],
            "conclusion": conclusions.get(case_id, {}).get("audit_conclusion"),
        }
        for case_id, data in sorted(plans.items())
    ]
    return {
        **_counts(session, "internal_audit", start, end),
        "nonconformities": findings.get("nonconformity", 0),
        "observations": findings.get("observation", 0),
        "open_nonconformities": _open_audit_nonconformities(session),
        "audits": audited,
    }


def _open_audit_nonconformities(session: Session) -> int:
    """Corrective actions raised from an internal audit and not closed yet."""
    audits = select(Case.id).where(Case.process_id == "internal_audit")
    return session.scalar(
        select(func.count(func.distinct(Case.id)))
        .select_from(Case)
        .join(CaseLink, CaseLink.from_case_id == Case.id)
        .where(
            Case.process_id == "corrective_action",
            Case.status.in_(OPEN),
            CaseLink.kind == "raised_from",
            CaseLink.to_case_id.in_(audits),
        )
    )


def appeal_or_complaint_statistics(
    session: Session, process: str, start: datetime, end: datetime
) -> dict[str, Any]:
    """Received, closed, open and upheld (an appeal upheld, a complaint substantiated),
    in total and per scheme."""
    spec_id, field, upheld_value = UPHELD_WHEN[process]
    upheld_cases = {
        case_id
        for case_id, data in _completed_steps(session, spec_id, start, end, process)
        if data.get(field) == upheld_value
    }
    codes = dict(session.execute(select(Scheme.id, Scheme.code)).all())
    by_scheme: dict[str, dict[str, int]] = {}

    def tally(scheme_id: int | None, key: str) -> None:
        row = by_scheme.setdefault(
            codes.get(scheme_id, "no scheme"), {"received": 0, "upheld": 0, "open": 0}
        )
        row[key] += 1

    received = session.execute(
        select(Case.id, Case.scheme_id).where(
            Case.process_id == process, Case.started_at >= start, Case.started_at < end
        )
    ).all()
    for _case_id, scheme_id in received:
        tally(scheme_id, "received")
    for _case_id, scheme_id in session.execute(
        select(Case.id, Case.scheme_id).where(Case.process_id == process, Case.status.in_(OPEN))
    ):
        tally(scheme_id, "open")
    if upheld_cases:
        for _case_id, scheme_id in session.execute(
            select(Case.id, Case.scheme_id).where(Case.id.in_(upheld_cases))
        ):
            tally(scheme_id, "upheld")
    return {
        **_counts(session, process, start, end),
        "received": len(received),
        "upheld": len(upheld_cases),
        "by_scheme": dict(sorted(by_scheme.items())),
    }


def impartiality_summary(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    """The impartiality report of the period, counted: blocked checks per rule, conflict
    declarations, commitments, tasks nobody eligible could take."""
    lines = impartiality_report(session, start, end)
    kinds = Counter(line.kind for line in lines)
    refused_rules = Counter(
        rule for line in lines if line.kind == "impartiality check blocked" for rule in line.rules
    )
    return {
        "refused_checks": kinds.get("impartiality check blocked", 0),
        "refused_by_rule": dict(sorted(refused_rules.items())),
        "conflicts_declared": kinds.get("conflict of interest declared", 0),
        "conflicts_ended": kinds.get("conflict of interest ended", 0),
        "commitments_signed": kinds.get("commitment signed", 0),
        "no_eligible_assignee": kinds.get("no eligible assignee", 0),
        "named_assignee_refused": kinds.get("named assignee refused", 0),
    }


def overdue_statistics(
    session: Session, start: datetime, end: datetime, now: datetime
) -> dict[str, Any]:
    """Open steps overdue now (per process, unassigned), and steps completed late in the
    period."""
    counts = step_counts(session, now, StepFilters(window="overdue"))
    late = session.scalar(
        select(func.count())
        .select_from(HumanTask)
        .where(
            HumanTask.status == "completed",
            HumanTask.completed_at >= start,
            HumanTask.completed_at < end,
            HumanTask.completed_at > HumanTask.due_at,
        )
    )
    return {
        "open_overdue": counts.overdue,
        "open_overdue_by_process": {t.key: t.overdue for t in counts.by_process if t.overdue},
        "open_overdue_unassigned": counts.unassigned_overdue(),
        "completed_late": late,
    }


def corrective_action_status(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    """Corrective actions open, closed in the period and overdue (the planned due date has
    passed without the implementation recorded, or an open step is past its due date);
    those raised in the period per source."""
    raised = Counter(
        (event.after or {}).get("source")
        for event in session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "corrective_action_raised",
                AuditEvent.at >= start,
                AuditEvent.at < end,
            )
        )
    )
    open_ids = list(
        session.scalars(
            select(Case.id).where(Case.process_id == "corrective_action", Case.status.in_(OPEN))
        )
    )
    overdue = _overdue_corrective_actions(session, open_ids, end)
    return {
        **_counts(session, "corrective_action", start, end),
        "overdue": len(overdue),
        "overdue_case_ids": sorted(overdue),
        "raised_by_source": dict(sorted((k or "unknown", v) for k, v in raised.items())),
    }


def _overdue_corrective_actions(session: Session, case_ids: list[int], now: datetime) -> set[int]:
    if not case_ids:
        return set()
    steps = session.execute(
        select(
            HumanTask.case_id,
            HumanTask.task_spec_id,
            HumanTask.status,
            HumanTask.due_at,
            HumanTask.submitted_data,
        )
        .where(HumanTask.case_id.in_(case_ids))
        .order_by(HumanTask.id)
    ).all()
    overdue: set[int] = set()
    planned_due: dict[int, date | None] = {}
    for case_id, spec_id, status, due_at, data in steps:
        if status == "ready" and due_at is not None and due_at < now:
            overdue.add(case_id)
        if status != "completed":
            continue
        if spec_id == "plan_corrective_action":
            try:
                planned_due[case_id] = date.fromisoformat(str((data or {}).get("action_due_on")))
            except ValueError:
                planned_due[case_id] = None
        elif spec_id == "record_implementation":
            planned_due[case_id] = None
    overdue |= {case_id for case_id, due in planned_due.items() if due and due < now.date()}
    return overdue


def feedback_summary(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    """Feedback invited and received in the period (engine.feedback), over all schemes."""
    from .feedback import feedback_summary as per_scheme

    groups = per_scheme(session, start, end)
    responses = sum(g.responses for g in groups)
    summary: dict[str, Any] = {
        "collected": True,
        "invitations": sum(g.invitations for g in groups),
        "received": responses,
        "average_rating": (
            round(sum(g.overall_total for g in groups) / responses, 2) if responses else None
        ),
        "by_scheme": {
            f"{g.scheme_code or '-'} {g.kind}": {
                "invitations": g.invitations,
                "responses": g.responses,
                "mean_overall": g.mean_overall,
            }
            for g in groups
        },
    }
    if not responses:
        summary["note"] = "no feedback received in the period"
    return summary
