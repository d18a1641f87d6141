"""`certrail simulate`: complete application cases through the engine's own API.

Form data is generated from each task's JSON Schema (so it passes the same validation real
users face), with the choices that lead to a certificate. Each role's step is done by a
different staff member than the case's other steps where the staff allows it.
"""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from . import Engine
from .errors import ValidationError
from .models import Certificate, HumanTask, User, UserRole

# Choices that take a case to a granted certificate.
HAPPY_PATH: dict[str, dict[str, Any]] = {
    "completeness_check": {"application_complete": True},
    "eligibility_review": {"eligibility_outcome": "eligible"},
    "written_score": {"written_score": 85},
    "practical_score": {"practical_score": 80},
    "file_review": {"file_review_recommendation": "grant"},
    "certification_decision": {"certification_decision": "grant"},
    "surveillance_declaration": {
        "surveillance_continued_practice": True,
        "complaints_received": False,
    },
    "surveillance_review": {"surveillance_outcome": "satisfactory"},
    "recertification_evidence": {
        "recertification_continued_practice": True,
        "reexamination_requested": False,
    },
    "recertification_review": {
        "requirements_met": True,
        "recertification_recommendation": "renew",
    },
    "recertification_decision": {"recertification_decision": "renew"},
    "suspension_decision": {"suspension_action": "suspend"},
    "reinstatement_decision": {"reinstatement_decision": "reinstate"},
}


def valid_form_data(
    schema: dict[str, Any], overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Values for every property of `schema` that satisfy its constraints."""
    data = {name: _value(prop, name) for name, prop in schema.get("properties", {}).items()}
    data.update(overrides or {})
    return data


def _value(prop: dict[str, Any], name: str) -> Any:
    if "const" in prop:
        return prop["const"]
    if "enum" in prop:
        return prop["enum"][0]
    kind = prop.get("type")
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        low = prop.get("minimum", 0)
        high = prop.get("maximum", low + 10)
        return max(low, min(high, low + 1))
    if kind == "array":
        return [_value(prop.get("items", {"type": "string"}), name)]
    if prop.get("format") == "date":
        return "2026-12-01"
    if prop.get("format") == "email":
        return "candidate@example.org"
    text = f"Simulated {name.replace('_', ' ')} entry for the case record."
    low = prop.get("minLength", 0)
    high = prop.get("maxLength", 2000)
    text = text.ljust(low, ".")
    return text[:high]


@dataclass
class SimulationResult:
    cases_completed: int = 0
    tasks_completed: int = 0
    certificates_issued: int = 0
    seconds: float = 0.0
    cases: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tasks_per_second(self) -> float:
        return self.tasks_completed / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "cases_completed": self.cases_completed,
            "tasks_completed": self.tasks_completed,
            "certificates_issued": self.certificates_issued,
            "seconds": round(self.seconds, 3),
            "tasks_per_second": round(self.tasks_per_second, 1),
            "cases": self.cases,
        }


class StaffRoster:
    """Hands out staff per role, avoiding people who already acted on the case."""

    def __init__(self, engine: Engine):
        with engine.sessions() as session:
            rows = session.execute(
                select(UserRole.role, User.username)
                .join(User, User.id == UserRole.user_id)
                .where(User.active.is_(True), User.person_id.is_(None))
                .order_by(User.username)
            ).all()
        self._by_role: dict[str, list[str]] = {}
        for role, username in rows:
            self._by_role.setdefault(role, []).append(username)
        self._turns = {role: itertools.cycle(names) for role, names in self._by_role.items()}

    def pick(self, role: str, busy: set[str]) -> str:
        names = self._by_role.get(role)
        if not names:
            raise LookupError(f"no active staff member holds the {role} role")
        for _ in range(len(names)):
            name = next(self._turns[role])
            if name not in busy:
                return name
        return next(self._turns[role])


def simulate(
    engine: Engine,
    cases: int,
    scheme_code: str = "CWI",
    stop_at: str | None = None,
) -> SimulationResult:
    roster = StaffRoster(engine)
    result = SimulationResult()
    started = time.perf_counter()
    run_tag = uuid.uuid4().hex[:8]
    for n in range(cases):
        applicant = engine.register_applicant(
            "Simulated", f"Candidate {n + 1}", f"sim-{run_tag}-{n + 1}@simulation.invalid", None
        )
        case = engine.start_case(
            "application",
            actor=applicant.username,
            person_id=applicant.person_id,
            scheme_code=scheme_code,
        )
        performers: dict[str, str] = {}
        completed, stopped = _drive_case(
            engine, roster, case.case_id, applicant.username, performers, stop_at
        )
        result.tasks_completed += completed
        number = _certificate_number(engine, case.case_id)
        if number:
            result.certificates_issued += 1
        if not stopped and engine.case(case.case_id).status == "completed":
            result.cases_completed += 1
        result.cases.append(
            {"case_id": case.case_id, "certificate_number": number, "performers": performers}
        )
    result.seconds = time.perf_counter() - started
    return result


def _drive_case(
    engine: Engine,
    roster: StaffRoster,
    case_id: int,
    applicant: str,
    performers: dict[str, str],
    stop_at: str | None,
) -> tuple[int, bool]:
    completed = 0
    by_role: dict[str, str] = {"applicant": applicant}
    while True:
        ready = engine.ready_tasks(case_id)
        if not ready:
            return completed, False
        if stop_at and any(t.task_spec_id == stop_at for t in ready):
            return completed, True
        for task in ready:
            if task.candidates:
                username = task.candidates[0]
            elif task.role in by_role:
                username = by_role[task.role]
            else:
                username = roster.pick(task.role, set(by_role.values()))
            by_role.setdefault(task.role, username)
            engine.complete(task.id, username, _form_data(engine, task, roster, by_role))
            performers[task.task_spec_id] = username
            completed += 1


def _form_data(
    engine: Engine, task: HumanTask, roster: StaffRoster, by_role: dict[str, str]
) -> dict[str, Any]:
    if not task.form:
        return {}
    overrides = dict(HAPPY_PATH.get(task.form, {}))
    if task.form == "examiner_assignment":
        examiner = roster.pick("examiner", set(by_role.values()))
        by_role["examiner"] = examiner
        overrides["examiner"] = examiner
    form = engine.task_form(task)
    if form is None:
        raise ValidationError(f"form '{task.form}' does not exist")
    return valid_form_data(form.schema, overrides)


def _certificate_number(engine: Engine, case_id: int) -> str | None:
    with engine.sessions() as session:
        return session.scalar(select(Certificate.number).where(Certificate.case_id == case_id))
