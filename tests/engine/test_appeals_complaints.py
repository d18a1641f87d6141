"""Appeals (ISO/IEC 17024 9.8) and complaints (9.9) as shipped processes: their paths, who may
start them, and the impartiality rules that reach the cases they are about (SOD-APPEAL,
SOD-COMPLAINT, and SOD-DECIDE in a decision re-opened by an upheld appeal)."""

from __future__ import annotations

import pytest
from lxml import etree
from sqlalchemy import select

from engine import ConflictError, NotFoundError, PermissionDenied, ValidationError
from engine.catalog import BPMN_DIR
from engine.forms import FormRegistry
from engine.lint import lint_files
from engine.models import Case, CaseLink, Document, User, UserRole
from tests.engine.helpers import (
    do,
    drive_to_decision,
    events,
    person_id,
    ready_spec_ids,
    ready_task,
    start_application,
    task_rows,
)
from tests.engine.test_impartiality import assert_allowed, assert_barred_everywhere

GROUNDS = "The examiner marked question 4 against an outdated version of the scheme."
COMPLAINT = "Nobody answered my e-mails about the exam date for three weeks."


def give_role(engine, role: str, *usernames: str) -> None:
    with engine.unit_of_work() as uow:
        for username in usernames:
            user = uow.session.scalars(select(User).where(User.username == username)).one()
            user.roles.append(UserRole(role=role))


def decided_case(
    engine, applicant: str = "alice", examiner: str = "examiner", decider: str = "decider"
) -> int:
    """An application taken to a granted certificate (DPO: written exam only)."""
    case_id = start_application(engine, applicant, "DPO")
    drive_to_decision(engine, case_id, applicant, examiner=examiner, has_practical=False)
    do(engine, case_id, "decide_certification", decider)
    assert engine.case(case_id).status == "completed"
    return case_id


def lodge_appeal(engine, case_id: int, applicant: str = "alice") -> int:
    started = engine.start_case(
        "appeal",
        actor=applicant,
        person_id=person_id(engine, applicant),
        data={"appeal_grounds": GROUNDS},
        links={"appeals": case_id},
    )
    assert ready_spec_ids(engine, started.case_id) == ["acknowledge_appeal"]
    return started.case_id


def links_of(engine, case_id: int) -> dict[str, int]:
    with engine.sessions() as session:
        return {
            link.kind: link.to_case_id
            for link in session.scalars(select(CaseLink).where(CaseLink.from_case_id == case_id))
        }


def notifications(engine, case_id: int) -> list[str]:
    return [e.message for e in events(engine, case_id=case_id, action="applicant_notified")]


# -- appeal ---------------------------------------------------------------------------------


def test_rejected_appeal_is_acknowledged_investigated_decided_and_notified(engine):
    decided = decided_case(engine)
    appeal = lodge_appeal(engine, decided)
    assert links_of(engine, appeal) == {"appeals": decided}
    [acknowledge] = engine.ready_tasks(appeal)
    assert acknowledge.role == "clerk"
    assert (acknowledge.due_at - acknowledge.created_at).days == 5
    assert engine.case_data(appeal)["appeal_grounds"] == GROUNDS
    do(engine, appeal, "acknowledge_appeal", "clerk")
    do(engine, appeal, "validate_appeal", "panel")
    do(engine, appeal, "investigate_appeal", "panel")
    do(
        engine,
        appeal,
        "decide_appeal",
        "panel",
        appeal_outcome="rejected",
        appeal_rationale="Question 4 was marked against the scheme version in force.",
    )
    assert engine.case(appeal).status == "completed"
    [notice] = notifications(engine, appeal)
    assert "Question 4 was marked against the scheme version in force." in notice
    assert events(engine, case_id=appeal, action="decision_reopened") == []
    with engine.sessions() as session:
        assert session.scalars(select(Case).where(Case.process_id == "decision")).all() == []


def test_upheld_appeal_reopens_the_decision_without_the_original_examiner_and_decider(engine):
    decided = decided_case(engine, examiner="examiner_decider", decider="decider")
    appeal = lodge_appeal(engine, decided)
    do(engine, appeal, "acknowledge_appeal", "clerk")
    do(engine, appeal, "validate_appeal", "panel")
    do(engine, appeal, "investigate_appeal", "panel")
    do(engine, appeal, "decide_appeal", "panel", appeal_outcome="upheld")
    assert engine.case(appeal).status == "completed"
    reopened = engine.case_data(appeal)["reopened_decision"]
    assert reopened["reopens"] == decided
    new_case = engine.case(reopened["case_id"])
    original = engine.case(decided)
    assert (new_case.process_id, new_case.status) == ("decision", "running")
    assert (new_case.person_id, new_case.scheme_id) == (original.person_id, original.scheme_id)
    assert links_of(engine, new_case.id) == {"reopens": decided}
    [event] = events(engine, case_id=appeal, action="decision_reopened")
    assert event.after == {"appealed_case_id": decided, "decision_case_id": new_case.id}
    assert len(notifications(engine, appeal)) == 1

    do(engine, new_case.id, "review_file", "reviewer")
    task = ready_task(engine, new_case.id, "decide_certification")
    assert_barred_everywhere(engine, task, "examiner_decider", "SOD-DECIDE")
    assert_barred_everywhere(engine, task, "decider", "SOD-APPEAL")
    assert_allowed(engine, task, "decider2")
    assert engine.case(new_case.id).status == "completed"


def test_invalid_appeal_is_closed_and_the_appellant_told_why(engine):
    decided = decided_case(engine)
    appeal = lodge_appeal(engine, decided)
    do(engine, appeal, "acknowledge_appeal", "clerk")
    reasons = "The appeal was lodged 75 days after the decision; the limit is 30 days."
    do(
        engine,
        appeal,
        "validate_appeal",
        "panel",
        appeal_valid=False,
        appeal_validation_reasons=reasons,
    )
    assert engine.case(appeal).status == "completed"
    assert task_rows(engine, appeal, "investigate_appeal") == []
    [notice] = notifications(engine, appeal)
    assert "cannot be handled" in notice and reasons in notice


def test_invalid_appeal_needs_reasons(engine):
    appeal = lodge_appeal(engine, decided_case(engine))
    do(engine, appeal, "acknowledge_appeal", "clerk")
    task = ready_task(engine, appeal, "validate_appeal")
    with pytest.raises(ValidationError) as invalid:
        engine.complete(task.id, "panel", {"appeal_valid": False})
    assert "appeal_validation_reasons" in invalid.value.fields


def test_panel_member_who_decided_or_examined_the_appealed_case_cannot_handle_the_appeal(engine):
    decided = decided_case(engine, examiner="examiner_decider", decider="decider")
    give_role(engine, "appeals_panel", "decider", "examiner_decider")
    appeal = lodge_appeal(engine, decided)
    do(engine, appeal, "acknowledge_appeal", "clerk")
    validate = ready_task(engine, appeal, "validate_appeal")
    assert_barred_everywhere(engine, validate, "decider", "SOD-APPEAL")
    assert_allowed(engine, validate, "panel")
    investigate = ready_task(engine, appeal, "investigate_appeal")
    assert_barred_everywhere(engine, investigate, "decider", "SOD-APPEAL")
    assert_barred_everywhere(engine, investigate, "examiner_decider", "SOD-APPEAL")
    assert_allowed(engine, investigate, "reviewer_panel")
    decide = ready_task(engine, appeal, "decide_appeal")
    assert_barred_everywhere(engine, decide, "decider", "SOD-APPEAL")
    assert_barred_everywhere(engine, decide, "examiner_decider", "SOD-APPEAL")
    assert_allowed(engine, decide, "panel")


def test_who_may_start_an_appeal(engine):
    running = start_application(engine, "alice", "DPO")
    with pytest.raises(ConflictError, match="once a decision has been made"):
        lodge_appeal(engine, running)
    decided = decided_case(engine, "bob")
    # Another person's case reads as "not found"; an appeal must name the appealed case.
    with pytest.raises(NotFoundError, match="not yours"):
        lodge_appeal(engine, decided, "alice")
    with pytest.raises(ValidationError, match="against the decision"):
        engine.start_case("appeal", actor="bob", person_id=person_id(engine, "bob"))
    with pytest.raises(PermissionDenied):
        engine.start_case("appeal", actor="reviewer", links={"appeals": decided})
    # Staff start an appeal for the case; the appellant is the person it is about.
    started = engine.start_case("appeal", actor="clerk", links={"appeals": decided})
    assert engine.case(started.case_id).person_id == person_id(engine, "bob")
    with pytest.raises(ConflictError, match="already under appeal"):
        lodge_appeal(engine, decided, "bob")


# -- complaint ------------------------------------------------------------------------------


def lodge_complaint(engine, about: int | None, complainant: str = "alice") -> int:
    started = engine.start_case(
        "complaint",
        actor=complainant,
        person_id=person_id(engine, complainant),
        data={"complaint_text": COMPLAINT},
        links={"concerns": about} if about is not None else None,
    )
    assert ready_spec_ids(engine, started.case_id) == ["confirm_relevance"]
    return started.case_id


def test_complaint_response_is_approved_by_someone_uninvolved_then_actioned_and_closed(engine):
    subject = start_application(engine, "alice", "DPO")
    do(engine, subject, "submit_application")
    do(engine, subject, "check_completeness", "clerk")
    # The clerk worked on the subject case; the complaints officer investigates the complaint.
    give_role(engine, "quality_manager", "clerk", "complaints")
    complaint = lodge_complaint(engine, subject)
    assert links_of(engine, complaint) == {"concerns": subject}
    do(engine, complaint, "confirm_relevance", "complaints")
    acknowledge = ready_task(engine, complaint, "acknowledge_complaint")
    assert (acknowledge.due_at - acknowledge.created_at).days == 5
    do(engine, complaint, "acknowledge_complaint", "complaints")
    do(engine, complaint, "investigate_complaint", "complaints")

    approve = ready_task(engine, complaint, "approve_response")
    assert approve.role == "quality_manager"
    assert_barred_everywhere(engine, approve, "complaints", "SOD-COMPLAINT")
    assert_barred_everywhere(engine, approve, "clerk", "SOD-COMPLAINT")
    # Returned to the investigation once, then approved by the uninvolved quality manager.
    engine.complete(
        approve.id,
        "quality",
        {
            "complaint_response_approved": False,
            "complaint_response_comments": "Say when the exam date will be confirmed.",
        },
    )
    do(engine, complaint, "investigate_complaint", "complaints")
    again = ready_task(engine, complaint, "approve_response")
    assert_barred_everywhere(engine, again, "complaints", "SOD-COMPLAINT")
    assert_allowed(engine, again, "quality")

    do(engine, complaint, "record_corrective_action", "quality")
    do(engine, complaint, "close_complaint", "complaints")
    assert engine.case(complaint).status == "completed"
    [notice] = notifications(engine, complaint)
    assert "closure" in notice


def test_complaint_outside_our_activities_is_closed_with_reasons(engine):
    complaint = lodge_complaint(engine, None)
    reasons = "The complaint is about a training course; the body does not provide training."
    do(
        engine,
        complaint,
        "confirm_relevance",
        "complaints",
        complaint_relevant=False,
        complaint_relevance_reasons=reasons,
    )
    assert engine.case(complaint).status == "completed"
    assert task_rows(engine, complaint, "acknowledge_complaint") == []
    [notice] = notifications(engine, complaint)
    assert reasons in notice


def test_who_may_start_a_complaint(engine):
    theirs = start_application(engine, "bob", "DPO")
    with pytest.raises(NotFoundError, match="not yours"):
        lodge_complaint(engine, theirs, "alice")
    with pytest.raises(PermissionDenied):
        engine.start_case("complaint", actor="reviewer", links={"concerns": theirs})
    started = engine.start_case(
        "complaint",
        actor="complaints",
        data={"complaint_text": COMPLAINT},
        links={"concerns": theirs},
    )
    # A complaint may come from a third party: its complainant is never assumed.
    assert engine.case(started.case_id).person_id is None
    assert links_of(engine, started.case_id) == {"concerns": theirs}


# -- the models -----------------------------------------------------------------------------

NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "dc": "http://www.omg.org/spec/DD/20100524/DC",
    "di": "http://www.omg.org/spec/DD/20100524/DI",
}
NEW_MODELS = ("appeal", "complaint", "surveillance", "recertification", "suspension")


def test_appeal_and_complaint_models_lint_clean():
    shipped = sorted(BPMN_DIR.glob("*.bpmn"))
    paths = [BPMN_DIR / f"{name}.bpmn" for name in NEW_MODELS]
    forms = FormRegistry()
    assert forms.findings == []
    assert lint_files(paths, forms, {p.stem for p in shipped}, context=shipped) == []


def test_form_field_names_are_unique_across_forms():
    forms = FormRegistry()
    seen: dict[str, str] = {}
    for name in forms.names():
        for field in forms.get(name).field_names:
            assert field not in seen, f"{field} is in both {seen[field]} and {name}"
            seen[field] = name


@pytest.mark.parametrize("name", NEW_MODELS)
def test_diagram_draws_every_element_inside_its_lane_and_joins_every_flow(name):
    root = etree.parse(str(BPMN_DIR / f"{name}.bpmn")).getroot()
    bounds = {}
    for shape in root.iterfind(".//bpmndi:BPMNShape", NS):
        b = shape.find("dc:Bounds", NS)
        bounds[shape.get("bpmnElement")] = tuple(
            float(b.get(k)) for k in ("x", "y", "width", "height")
        )
    process = root.find("bpmn:process", NS)
    for lane in process.iterfind(".//bpmn:lane", NS):
        lx, ly, lw, lh = bounds[lane.get("id")]
        for ref in lane.iterfind("bpmn:flowNodeRef", NS):
            x, y, w, h = bounds[ref.text]
            assert lx <= x and x + w <= lx + lw and ly <= y and y + h <= ly + lh, ref.text
    nodes = [
        el.get("id")
        for el in process
        if etree.QName(el).localname not in ("laneSet", "sequenceFlow")
    ]
    in_lanes = {ref.text for ref in process.iterfind(".//bpmn:flowNodeRef", NS)}
    assert set(nodes) == in_lanes
    assert set(nodes) <= set(bounds)

    def touches(point, box) -> bool:
        x, y, w, h = box
        return x - 1 <= point[0] <= x + w + 1 and y - 1 <= point[1] <= y + h + 1

    edges = {e.get("bpmnElement"): e for e in root.iterfind(".//bpmndi:BPMNEdge", NS)}
    for flow in process.iterfind("bpmn:sequenceFlow", NS):
        points = [
            (float(p.get("x")), float(p.get("y")))
            for p in edges[flow.get("id")].iterfind("di:waypoint", NS)
        ]
        assert touches(points[0], bounds[flow.get("sourceRef")]), flow.get("id")
        assert touches(points[-1], bounds[flow.get("targetRef")]), flow.get("id")
        # Orthogonal segments only.
        for (x1, y1), (x2, y2) in zip(points, points[1:], strict=False):
            assert x1 == x2 or y1 == y2, flow.get("id")


def test_applicant_documents_of_an_appeal_live_on_the_appeal(engine):
    """The portal's appeal (engine.portal.lodge_appeal) starts the real process."""
    from engine.cases import find_user
    from engine.portal import lodge_appeal as portal_appeal

    decided = decided_case(engine)
    with engine.unit_of_work() as uow:
        user = find_user(uow, "alice")
        appeal = portal_appeal(engine, uow, uow.session.get(Case, decided), user, GROUNDS)
        appeal_id = appeal.id
    assert ready_spec_ids(engine, appeal_id) == ["acknowledge_appeal"]
    with engine.sessions() as session:
        [document] = session.scalars(select(Document).where(Document.case_id == appeal_id)).all()
        assert document.content.decode() == GROUNDS
    [lodged] = events(engine, case_id=decided, action="appeal_lodged")
    assert lodged.after["appeal_case_id"] == appeal_id
