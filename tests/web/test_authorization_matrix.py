"""The authorisation matrix: every route of the app, asked by every kind of user, answers as
the access policy says (DESIGN.md §1 roles, §6 "every page and API call is authorised: staff
see the cases their roles and assignments allow; applicants see only their own").

The policy is the table in `rows()` below, one row per route and method, written in terms
of the roles, never read back from the code under test. A route without a row fails the test
("unclassified route"), so the matrix stays complete as routes are added.

Outcomes of a cell:
    OK      allowed: a GET answers 2xx or a redirect that is not to the login page; a POST
            (sent with a valid CSRF token and no meaningful body, except where a route checks
            its input before the user's rights) may answer 4xx for the empty body, but
            never 401/403/404, a redirect to the login page or a 5xx
    DENIED  403: the user is signed in but their roles do not allow the route
    HIDDEN  404: the object exists but is not the user's to see; the app answers "not found"
            so that ids reveal nothing (cases, their tasks and documents, certificates,
            person records)
    FLASH   the route's refusal form for buttons: a 303 back to the page with an error
            message (claim, release, end a declaration)
Anonymous users get a redirect to the login page on pages (LOGIN) and 401 on the API
(UNAUTH), except on public routes. A refused cell must also leave the database as it was:
no audit event other than the record of a failed impartiality check.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from engine.accounts import issue_api_token
from engine.catalog import BPMN_DIR
from engine.demo import DEMO_PASSWORD
from engine.documents import attach_document
from engine.impartiality.register import declare_conflict
from engine.incidents import record_incident
from engine.item_analyses import item_analyses, load_demo_item_analysis
from engine.models import AuditEvent, Case, Incident, Notification, Scheme, User
from tests.engine.helpers import do, ready_task, start_application, task_row, task_rows
from tests.engine.test_certificate_lifecycle import certify
from web import create_app

# -- who asks ---------------------------------------------------------------------------------

# The kinds of user, and the demo login each signs in as (None: not signed in). `certified`
# is a person whose own certificate is issued in the fixture (chen, certified in DPO).
LOGINS = {
    "anonymous": None,
    "alice": "alice",
    "bob": "bob",
    "certified": "chen",
    "clerk": "clerk",
    "reviewer": "reviewer",
    "examiner": "examiner",
    "invigilator": "invigilator",
    "decider": "decider",
    "panel": "panel",
    "complaints": "complaints",
    "quality": "quality",
    "owner": "owner",
    "manager": "manager",
    "admin": "admin",
}
USERS = tuple(LOGINS)
APPLICANTS = frozenset({"alice", "bob", "certified"})
STAFF = frozenset(USERS) - APPLICANTS - {"anonymous"}
SIGNED_IN = STAFF | APPLICANTS
EVERYONE = SIGNED_IN | {"anonymous"}
# Oversight roles see every case (manager, admin, quality manager).
OVERSIGHT = frozenset({"quality", "manager", "admin"})
MANAGERS = frozenset({"manager", "admin"})
MODELLERS = frozenset({"owner", "quality"})
# Who may ask a decision maker to suspend a certificate.
SUSPENSION_ASKERS = frozenset({"clerk", "complaints", "decider", "quality", "manager", "admin"})
# Who may record an appeal or a complaint for someone (starters of those procedures).
LODGERS = frozenset({"clerk", "complaints", "admin"})

# The objects the routes are asked about, and who may see them.
#  case          alice's running DPO application: she submitted it, the clerk checked it,
#                the reviewer's eligibility review is ready (so clerk and reviewer hold tasks)
#  decided_case  alice's CWI application, decided: certificate issued (clerk, reviewer,
#                invigilator, examiner and decider held tasks on it)
SEES_CASE = frozenset({"alice", "clerk", "reviewer"}) | OVERSIGHT
STAFF_SEEING_CASE = SEES_CASE & STAFF
SEES_DECIDED_CASE = (
    frozenset({"alice", "clerk", "reviewer", "examiner", "invigilator", "decider"}) | OVERSIGHT
)
STAFF_SEEING_DECIDED_CASE = SEES_DECIDED_CASE & STAFF
# The reviewer's eligibility review on `case` is the reviewer's to claim and complete; the
# applicant's completed step on it (the submitted application) is alice's to read.
CLAIMERS = frozenset({"reviewer"})
# A declaration of conflict of interest the examiner made: theirs or a manager's to end.
DECLARATION_ENDERS = frozenset({"examiner"}) | MANAGERS

OK, DENIED, HIDDEN, FLASH, LOGIN, UNAUTH = "OK", "DENIED", "HIDDEN", "FLASH", "LOGIN", "UNAUTH"
REFUSALS = {DENIED, HIDDEN, FLASH, LOGIN, UNAUTH}


def policy(
    ok=frozenset(),
    *,
    hidden=frozenset(),
    flash=frozenset(),
    public: bool = False,
) -> dict[str, str]:
    """Each user's outcome: `ok` allowed, `hidden` told "not found", `flash` refused with a
    message, any other signed-in user 403; anonymous users are sent to log in (401 on the
    API) unless the route is public."""
    assert not (set(ok) & set(hidden)) and not (set(ok) & set(flash))
    cells = {}
    for user in USERS:
        if user in ok or (public and user == "anonymous"):
            cells[user] = OK
        elif user == "anonymous":
            cells[user] = LOGIN
        elif user in hidden:
            cells[user] = HIDDEN
        elif user in flash:
            cells[user] = FLASH
        else:
            cells[user] = DENIED
    return cells


@dataclass(frozen=True)
class Row:
    method: str
    endpoint: str
    # The URL, with {placeholders} filled from `build_world`'s objects.
    url: str
    expect: dict[str, str]
    # For the API: the JSON body sent (pages get only the CSRF token).
    json: dict | None = None
    # Form fields sent besides the CSRF token, where the route checks its input before the
    # user's rights (the fields only let the request reach the access check); {placeholders}
    # are filled like the URL's.
    form: dict | None = None
    # What each cell starts from (see `prepare`): the reviewer's task released or claimed,
    # a fresh incident or declaration; None: whatever the earlier cells left.
    setup: str | None = None
    # The route answers an allowed user's empty form with an error message on a redirect.
    flashes_empty_form: bool = False
    # What the row's rule is, in the policy's words (shown when a cell fails).
    why: str = ""

    def __post_init__(self):
        if self.url.startswith("/api/") and self.expect["anonymous"] == LOGIN:
            object.__setattr__(self, "expect", {**self.expect, "anonymous": UNAUTH})


def rows() -> list[Row]:
    public = policy(EVERYONE, public=True)
    signed_in = policy(SIGNED_IN)
    staff = policy(STAFF)
    applicants = policy(APPLICANTS)
    own_case = policy({"alice"}, hidden=APPLICANTS - {"alice"})
    case_viewers = policy(SEES_CASE, hidden=SIGNED_IN - SEES_CASE)
    review_task = policy(STAFF_SEEING_CASE, hidden=SIGNED_IN - STAFF_SEEING_CASE)
    applicant_task = policy(SEES_CASE, hidden=SIGNED_IN - SEES_CASE)
    # alice's record: herself, oversight roles and staff holding a step on one of her cases.
    sees_alice = SEES_CASE | SEES_DECIDED_CASE
    person = policy(sees_alice, hidden=SIGNED_IN - sees_alice)
    # Her certificate in full (history, reasons for a suspension) is as confidential as her
    # record: the same people see it, everyone else is told it does not exist.
    certificate = policy(sees_alice, hidden=SIGNED_IN - sees_alice)
    # Of those who see it, the suspension askers may ask; the others are refused.
    suspension_request = policy(SUSPENSION_ASKERS & sees_alice, hidden=SIGNED_IN - sees_alice)
    oversight = policy(OVERSIGHT)
    # The statistical review of exams (ISO/IEC 17024 9.3) belongs to the management system.
    examiners_of_exams = policy({"quality", "manager"})
    # Records retention, feedback results and the evidence pack (ISO/IEC 17024 10.2.4).
    records_keepers = policy({"quality", "manager"})
    # Who may raise a corrective action by hand (engine.corrective_actions.RAISER_ROLES).
    raisers = policy({"quality", "complaints", "manager", "admin"})
    managers = policy(MANAGERS)
    modellers = policy(MODELLERS)
    owner = policy({"owner"})
    quality = policy({"quality"})
    cases_url = "/cases/{case}"
    return [
        # -- public: login, registration, verification, health, vendor files, OpenAPI ------
        Row("GET", "auth.login", "/login", public, why="public"),
        Row("POST", "auth.login", "/login", public, why="public"),
        Row("GET", "portal.register", "/register", public, why="public"),
        Row("POST", "portal.register", "/register", public, why="public"),
        Row("GET", "registry.verify", "/verify?number={number}", public, why="public (7.2)"),
        Row("GET", "health", "/healthz", public, why="public"),
        Row(
            "GET",
            "vendor",
            "/vendor/bpmn-js/bpmn-viewer.production.min.js",
            public,
            why="public",
        ),
        Row("GET", "api.openapi", "/api/v1/openapi.json", public, why="public"),
        Row(
            "GET",
            "api.certificate",
            "/api/v1/certificates/{number}",
            public,
            why="public: only the public record, as /verify (7.2)",
        ),
        # -- signed in, whoever they are ---------------------------------------------------
        Row("GET", "home", "/", signed_in, why="signed in: sent to inbox or portal"),
        Row("POST", "auth.logout", "/logout", signed_in, why="signed in"),
        Row(
            "GET",
            "models.source",
            "/models/application/v{published}.bpmn",
            signed_in,
            why="a published model is readable by anyone signed in",
        ),
        # -- the applicant portal: people with a person record, own objects only ----------
        Row("GET", "portal.index", "/portal", applicants, why="applicants"),
        Row(
            "POST",
            "portal.apply",
            "/portal/apply",
            applicants,
            flashes_empty_form=True,
            why="applicants",
        ),
        Row("GET", "portal.complaint", "/portal/complaint", applicants, why="applicants"),
        Row("POST", "portal.complaint", "/portal/complaint", applicants, why="applicants"),
        Row("GET", "portal.case", "/portal/cases/{case}", own_case, why="own case only"),
        Row(
            "POST",
            "portal.upload_document",
            "/portal/cases/{case}/documents",
            own_case,
            why="own case only",
        ),
        Row("GET", "portal.appeal", "/portal/cases/{case}/appeal", own_case, why="own case"),
        Row("POST", "portal.appeal", "/portal/cases/{case}/appeal", own_case, why="own case"),
        Row(
            "GET",
            "portal.certificate",
            "/certificates/{number}",
            certificate,
            why="as alice's record: herself, oversight roles, staff on one of her cases",
        ),
        Row(
            "POST",
            "portal.request_suspension",
            "/certificates/{number}/suspension-request",
            suspension_request,
            why="suspension askers who see the certificate; others who see it 403, the rest 404",
        ),
        # -- staff: inbox, cases, impartiality declarations, the model library ---------------
        Row("GET", "inbox.index", "/inbox", staff, why="staff"),
        Row("GET", "cases.index", "/cases", staff, why="staff (lists only visible cases)"),
        Row("GET", "cases.export", "/cases.csv", staff, why="staff (exports visible cases)"),
        Row("GET", "cases.detail", cases_url, case_viewers, why="who may see the case"),
        Row(
            "GET",
            "cases.document",
            "/documents/{document}",
            case_viewers,
            why="who may see the document's case",
        ),
        Row(
            "POST",
            "cases.lodge",
            "/cases/{decided_case}/appeal",
            policy(
                LODGERS & STAFF_SEEING_DECIDED_CASE,
                hidden=STAFF - STAFF_SEEING_DECIDED_CASE,
            ),
            form={"text": "The examiner did not consider my practical test results at all."},
            why="staff who see the case and may start appeals",
        ),
        Row(
            "POST",
            "cases.retry_incident",
            cases_url + "/incidents/{incident}/retry",
            policy(MANAGERS, hidden=STAFF - STAFF_SEEING_CASE),
            setup="open_incident",
            why="managers and admins, on a case they see",
        ),
        Row(
            "GET",
            "inbox.task",
            "/tasks/{review_task}",
            review_task,
            why="staff who see the case; applicants only their own steps",
        ),
        Row(
            "POST",
            "inbox.task",
            "/tasks/{review_task}",
            policy(
                CLAIMERS,
                hidden=SIGNED_IN - STAFF_SEEING_CASE,
            ),
            setup="released",
            why="the task's role; other staff who see it 403, the rest 404",
        ),
        Row(
            "GET",
            "inbox.task",
            "/tasks/{applicant_task}",
            applicant_task,
            why="the applicant's own step: the applicant and staff who see the case",
        ),
        Row(
            "POST",
            "inbox.task",
            "/tasks/{applicant_task}",
            applicant_task,
            why="as GET (the step is done: 409 for whoever may see it)",
        ),
        Row(
            "POST",
            "inbox.claim",
            "/tasks/{review_task}/claim",
            policy(
                CLAIMERS,
                hidden=STAFF - STAFF_SEEING_CASE,
                flash=STAFF_SEEING_CASE - CLAIMERS,
            ),
            setup="released",
            why="the task's role; other staff who see it are refused with a message",
        ),
        Row(
            "POST",
            "inbox.unclaim",
            "/tasks/{review_task}/unclaim",
            policy(
                CLAIMERS | MANAGERS,
                hidden=STAFF - STAFF_SEEING_CASE,
                flash=STAFF_SEEING_CASE - CLAIMERS - MANAGERS,
            ),
            setup="claimed",
            why="the assignee, managers and admins",
        ),
        Row(
            "GET",
            "impartiality.declarations",
            "/impartiality/declarations",
            staff,
            why="staff: own declarations",
        ),
        Row("POST", "impartiality.declare", "/impartiality/declarations", staff, why="staff"),
        Row("POST", "impartiality.sign", "/impartiality/commitment", staff, why="staff"),
        Row(
            "POST",
            "impartiality.end",
            "/impartiality/declarations/{declaration}/end",
            policy(DECLARATION_ENDERS, flash=STAFF - DECLARATION_ENDERS),
            setup="new_declaration",
            why="the declaring staff member, managers and admins",
        ),
        Row("GET", "models.index", "/models", staff, why="staff"),
        Row("GET", "models.history", "/models/application", staff, why="staff"),
        Row("GET", "models.version", "/models/application/v{published}", staff, why="staff"),
        Row(
            "GET",
            "models.diff",
            "/models/decision/diff?from=1&to=2",
            staff,
            why="staff",
        ),
        # -- managers and oversight: dashboard, impartiality register, tasks and report -----
        Row("GET", "dashboard.index", "/dashboard", oversight, why="oversight roles"),
        Row("GET", "quality.items", "/quality/items", examiners_of_exams, why="quality, manager"),
        Row(
            "POST",
            "quality.upload_items",
            "/quality/items",
            examiners_of_exams,
            why="quality, manager",
        ),
        Row(
            "GET",
            "quality.item_analysis",
            "/quality/items/{item_analysis}",
            examiners_of_exams,
            why="quality, manager",
        ),
        Row(
            "GET",
            "quality.item_analysis_csv",
            "/quality/items/{item_analysis}.csv",
            examiners_of_exams,
            why="quality, manager",
        ),
        Row("GET", "quality.analytics", "/analytics", oversight, why="oversight roles"),
        Row(
            "GET",
            "quality.new_corrective_action",
            "/quality/corrective-actions/new",
            raisers,
            why="quality, complaints officer, manager, admin (10.2.7)",
        ),
        Row(
            "POST",
            "quality.raise_corrective_action",
            "/quality/corrective-actions/new",
            raisers,
            why="quality, complaints officer, manager, admin; an empty form: 400 naming the field",
        ),
        Row(
            "GET",
            "records.feedback",
            "/feedback/{feedback_token}",
            public,
            why="anyone holding the link",
        ),
        Row(
            "POST",
            "records.give_feedback",
            "/feedback/{feedback_token}",
            public,
            why="anyone holding the link",
        ),
        Row(
            "GET",
            "records.feedback_summary_page",
            "/records/feedback",
            records_keepers,
            why="quality, manager",
        ),
        Row(
            "GET",
            "records.retention",
            "/records/retention",
            records_keepers,
            why="quality, manager",
        ),
        Row(
            "POST",
            "records.propose",
            "/records/retention/propose",
            records_keepers,
            why="quality, manager",
        ),
        Row(
            "POST",
            "records.approve",
            "/records/retention/999999/approve",
            policy(flash={"quality", "manager"}),
            why="quality, manager (not the proposer); an unknown proposal: refused with a message",
        ),
        Row(
            "POST",
            "records.withdraw",
            "/records/retention/999999/withdraw",
            policy(flash={"quality", "manager"}),
            form={"reason": "the records are still needed"},
            why="quality, manager (the proposer too); an unknown proposal: refused with a message",
        ),
        Row(
            "POST",
            "records.hold",
            "/records/retention/hold",
            records_keepers,
            why="quality, manager",
        ),
        Row(
            "POST",
            "records.set_period",
            "/records/retention/period",
            policy({"quality"}, flash={"manager"}),
            form={"scheme_id": "{scheme}", "months": "60"},
            why="records roles reach the page; of them only the quality manager edits schemes "
            "(the manager is refused with a message)",
        ),
        Row(
            "GET",
            "records.evidence_pack",
            "/records/evidence-pack",
            records_keepers,
            why="quality, manager",
        ),
        Row(
            "GET",
            "records.evidence_pack_zip",
            "/records/evidence-pack.zip?from=2026-01-01&to=2026-12-31",
            records_keepers,
            why="quality, manager",
        ),
        Row(
            "GET",
            "quality.analytics_csv",
            "/analytics/cases.csv",
            oversight,
            why="oversight roles",
        ),
        Row("GET", "dashboard.export", "/dashboard.csv", oversight, why="oversight roles"),
        Row(
            "POST",
            "dashboard.assign",
            "/dashboard/tasks/{review_task}/assign",
            managers,
            why="managers and admins",
        ),
        Row(
            "POST",
            "dashboard.retry_incident",
            "/dashboard/incidents/{incident}/retry",
            managers,
            setup="open_incident",
            why="managers and admins",
        ),
        Row(
            "GET",
            "impartiality.register",
            "/impartiality/register",
            oversight,
            why="oversight roles",
        ),
        Row(
            "POST",
            "impartiality.record",
            "/impartiality/register",
            managers,
            why="managers and admins",
        ),
        Row("GET", "impartiality.tasks", "/impartiality/tasks", oversight, why="oversight"),
        Row(
            "POST",
            "impartiality.assign",
            "/impartiality/tasks/{review_task}/assign",
            managers,
            flashes_empty_form=True,
            why="managers and admins",
        ),
        Row("GET", "impartiality.report", "/impartiality/report", oversight, why="oversight"),
        Row(
            "GET",
            "impartiality.report_csv",
            "/impartiality/report.csv",
            oversight,
            why="oversight",
        ),
        # -- process owners and quality managers: editing and document control --------------
        Row("GET", "models.edit", "/models/application/edit", modellers, why="modellers"),
        Row("POST", "models.validate", "/models/validate", modellers, why="modellers"),
        Row(
            "GET",
            "models.form_editor",
            "/models/application/forms/application",
            modellers,
            why="modellers read forms",
        ),
        Row(
            "POST",
            "models.form_editor",
            "/models/application/forms/application",
            owner,
            why="process owners edit forms",
        ),
        Row("POST", "models.form_preview", "/models/forms/preview", modellers, why="modellers"),
        Row("POST", "models.save_draft", "/models/application/draft", owner, why="owners"),
        Row("POST", "models.upload", "/models/upload", owner, why="process owners"),
        Row(
            "POST",
            "models.submit",
            "/models/versions/{retired_version}/submit",
            owner,
            why="process owners submit",
        ),
        Row(
            "POST",
            "models.approve",
            "/models/versions/{retired_version}/approve",
            quality,
            why="quality managers approve",
        ),
        Row(
            "POST",
            "models.return_to_draft",
            "/models/versions/{retired_version}/return",
            quality,
            why="quality managers return",
        ),
        Row(
            "POST",
            "models.publish",
            "/models/versions/{retired_version}/publish",
            quality,
            why="quality managers publish",
        ),
        Row(
            "POST",
            "models.retire",
            "/models/versions/{retired_version}/retire",
            quality,
            why="quality managers retire",
        ),
        Row("GET", "models.migrate", "/models/application/migrate", quality, why="quality"),
        Row("POST", "models.migrate", "/models/application/migrate", quality, why="quality"),
        # -- the API: a bearer token, then the same rules as the pages ----------------------
        Row("GET", "api.schemes", "/api/v1/schemes", signed_in, why="any token"),
        Row("GET", "api.tasks", "/api/v1/tasks", signed_in, why="any token: own inbox"),
        Row("GET", "api.cases", "/api/v1/cases", signed_in, why="any token: visible cases"),
        Row(
            "POST",
            "api.start_case",
            "/api/v1/cases",
            policy(LODGERS | APPLICANTS),
            json={"process": "appeal"},
            why="appeals: their starters, and applicants for themselves",
        ),
        Row("GET", "api.case", "/api/v1/cases/{case}", case_viewers, why="who sees the case"),
        Row(
            "GET",
            "api.case_history",
            "/api/v1/cases/{case}/history",
            case_viewers,
            why="who sees the case",
        ),
        Row(
            "GET",
            "api.task",
            "/api/v1/tasks/{review_task}",
            review_task,
            why="as the task page",
        ),
        Row(
            "POST",
            "api.claim",
            "/api/v1/tasks/{review_task}/claim",
            policy(
                CLAIMERS,
                hidden=SIGNED_IN - STAFF_SEEING_CASE,
            ),
            setup="released",
            json={},
            why="the task's role; others who see it 403, the rest 404",
        ),
        Row(
            "POST",
            "api.unclaim",
            "/api/v1/tasks/{review_task}/unclaim",
            policy(
                CLAIMERS | MANAGERS,
                hidden=SIGNED_IN - STAFF_SEEING_CASE,
            ),
            setup="claimed",
            json={},
            why="the assignee, managers and admins",
        ),
        Row(
            "POST",
            "api.complete",
            "/api/v1/tasks/{review_task}/complete",
            policy(
                CLAIMERS,
                hidden=SIGNED_IN - STAFF_SEEING_CASE,
            ),
            setup="released",
            json={"data": {}},
            why="the task's role",
        ),
        Row(
            "GET",
            "api.person",
            "/api/v1/persons/{person}",
            person,
            why="the person, oversight roles and staff on one of their cases",
        ),
    ]


# -- the objects the routes are asked about ---------------------------------------------------


def build_world(engine) -> dict[str, object]:
    """Real objects for every URL parameter, made through the engine."""
    decision_xml = (BPMN_DIR / "decision.bpmn").read_text()
    changed = decision_xml.replace(
        'name="Review certification file"', 'name="Review the certification file"'
    )
    assert changed != decision_xml
    saved = engine.save_model_draft("owner", changed, change_summary="clearer step name")
    engine.submit_model_for_review(saved.version.id, "owner")
    engine.approve_model_version(saved.version.id, "quality")
    engine.publish_model_version(saved.version.id, "quality")
    [retired] = [v for v in engine.model_history("decision") if v.version == 1]
    assert retired.status == "retired"

    certificate = certify(engine, "alice", "CWI")
    certify(engine, "chen", "DPO")
    case_id = start_application(engine, "alice", "DPO")
    do(engine, case_id, "submit_application", "alice")
    do(engine, case_id, "check_completeness", "clerk")
    review = ready_task(engine, case_id, "review_eligibility")
    [applicant_task] = task_rows(engine, case_id, "submit_application")
    assert applicant_task.status == "completed" and applicant_task.role == "applicant"
    with engine.unit_of_work() as uow:
        case = uow.session.get(Case, case_id)
        alice = uow.session.scalars(select(User).where(User.username == "alice")).one()
        assert case.person_id == alice.person_id
        document = attach_document(
            uow, case, alice, "cv.pdf", "application/pdf", b"%PDF-1.4\n%%EOF\n"
        )
        examiner = uow.session.scalars(select(User).where(User.username == "examiner")).one()
        bob = uow.session.scalars(select(User).where(User.username == "bob")).one()
        declaration = declare_conflict(
            uow, examiner, examiner, bob.person_id, "trained", date(2026, 1, 1)
        )
        incident = record_incident(
            uow, "send_notifications", RuntimeError("mail server refused"), case_id=case_id
        )
        uow.session.flush()
        ids = {
            "document": document.id,
            "declaration": declaration.id,
            "incident": incident.id,
            "person": alice.person_id,
            "bob_person": bob.person_id,
        }
    published = next(
        v.version for v in engine.model_history("application") if v.status == "published"
    )
    load_demo_item_analysis(engine)
    with engine.sessions() as session:
        invitation = session.scalars(
            select(Notification.body).where(Notification.body.contains("/feedback/"))
        ).first()
    feedback_token = re.search(r"/feedback/([\w-]+)", invitation).group(1)
    with engine.sessions() as session:
        [(analysis, _uploader, _scheme)] = item_analyses(session)
        scheme = session.scalars(select(Scheme.id).where(Scheme.code == "DPO")).one()
    return {
        "item_analysis": analysis.id,
        "feedback_token": feedback_token,
        "case": case_id,
        "decided_case": certificate.case_id,
        "number": certificate.number,
        "review_task": review.id,
        "applicant_task": applicant_task.id,
        "published": published,
        "retired_version": retired.id,
        "scheme": scheme,
        **ids,
    }


# -- asking -----------------------------------------------------------------------------------


def csrf_token(client) -> str:
    html = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


class Asker:
    """One signed-in test client (and API token) for one kind of user, reused for every route."""

    def __init__(self, app, engine, user: str):
        self.user = user
        self.client = app.test_client()
        login = LOGINS[user]
        self.bearer = None
        if login is not None:
            response = self.client.post(
                "/login",
                data={
                    "username": login,
                    "password": DEMO_PASSWORD,
                    "csrf_token": csrf_token(self.client),
                },
            )
            assert response.status_code == 302, f"{login} could not log in"
            with engine.unit_of_work() as uow:
                self.bearer = issue_api_token(uow, login, "authorisation matrix")
        self.csrf = csrf_token(self.client)

    def ask(self, row: Row, url: str, bearer: bool = True, form: dict | None = None):
        response = self._send(row, url, bearer, form or {})
        # Read streamed bodies (CSV exports) to the end, so their transactions are closed.
        response.get_data()
        response.close()
        return response

    def _send(self, row: Row, url: str, bearer: bool, form: dict):
        if url.startswith("/api/"):
            headers = {"Authorization": f"Bearer {self.bearer}"} if bearer and self.bearer else {}
            if row.method == "GET":
                return self.client.get(url, headers=headers)
            return self.client.post(url, json=row.json, headers=headers)
        if row.method == "GET":
            return self.client.get(url)
        return self.client.post(url, data={**form, "csrf_token": self.csrf})

    def take_error_flashes(self) -> list[str]:
        with self.client.session_transaction() as session:
            flashes = session.pop("_flashes", [])
        return [message for category, message in flashes if category == "error"]


def to_login(response) -> bool:
    return response.status_code in (301, 302, 303) and urlsplit(
        response.headers.get("Location", "")
    ).path.endswith("/login")


def outcome(row: Row, response, error_flashes: list[str]) -> str:
    """The observed outcome of one cell, in the table's words (or the status if none fits)."""
    status = response.status_code
    if status >= 500:
        return f"server error {status}"
    if to_login(response):
        return LOGIN
    if status == 401:
        return UNAUTH
    if status == 403:
        return DENIED
    if status == 404:
        return HIDDEN
    if status in (302, 303) and error_flashes and not row.flashes_empty_form:
        return FLASH
    if row.method == "GET" and status >= 400:
        return f"{status} on a GET"
    return OK


def prepare(row: Row, engine, world: dict[str, object]) -> None:
    """Put the row's object in the state each of its cells starts from."""
    if row.setup in ("released", "claimed"):
        task = task_row(engine, world["review_task"])
        if task.assignee_id is not None and row.setup == "released":
            engine.unclaim(task.id, "manager")
        if task.assignee_id is None and row.setup == "claimed":
            engine.claim(task.id, "reviewer")
    elif row.setup == "open_incident":
        with engine.unit_of_work() as uow:
            if uow.session.get(Incident, world["incident"]).status == "open":
                return
            incident = record_incident(
                uow,
                "send_notifications",
                RuntimeError("mail server refused"),
                case_id=world["case"],
            )
            uow.session.flush()
            world["incident"] = incident.id
    elif row.setup == "new_declaration":
        with engine.unit_of_work() as uow:
            examiner = uow.session.scalars(select(User).where(User.username == "examiner")).one()
            declaration = declare_conflict(
                uow, examiner, examiner, world["bob_person"], "trained", date(2026, 1, 1)
            )
            uow.session.flush()
            world["declaration"] = declaration.id
    else:
        assert row.setup is None, row.setup


def state_events(engine) -> int:
    """Audit events that record a change (a refused impartiality check is recorded too)."""
    with engine.sessions() as session:
        return session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action != "sod_check_failed")
        )


def app_routes(app) -> set[tuple[str, str]]:
    return {
        (method, rule.endpoint)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods & {"GET", "POST"}
    }


# -- the tests --------------------------------------------------------------------------------


def test_every_route_of_the_app_has_a_row_in_the_matrix(tmp_path):
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'routes.sqlite'}"})
    table = {(row.method, row.endpoint) for row in rows()}
    unclassified = sorted(app_routes(app) - table)
    stale = sorted(table - app_routes(app))
    assert unclassified == [], f"unclassified route(s): add a row to ROUTES: {unclassified}"
    assert stale == [], f"rows for routes the app no longer has: {stale}"


def test_every_row_names_an_outcome_for_every_kind_of_user():
    for row in rows():
        assert set(row.expect) == set(USERS), row.endpoint
        assert set(row.expect.values()) <= {OK} | REFUSALS, row.endpoint


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_each_kind_of_user_gets_what_the_policy_allows_on_every_route(engine):
    world = build_world(engine)
    app = create_app({"ENGINE": engine, "TESTING": True, "VERIFY_RATE_LIMIT": 100_000})
    askers = {user: Asker(app, engine, user) for user in USERS}
    table = rows()
    failures: list[str] = []
    seen: Counter[str] = Counter()
    # Logging out ends the client's session: it is asked last.
    for row in sorted(table, key=lambda row: row.endpoint == "auth.logout"):
        for user in USERS:
            asker = askers[user]
            expected = row.expect[user]
            prepare(row, engine, world)
            url = row.url.format(**world)
            form = {name: value.format(**world) for name, value in (row.form or {}).items()}
            before = state_events(engine)
            response = asker.ask(row, url, form=form)
            got = outcome(row, response, asker.take_error_flashes())
            if row.endpoint == "auth.logout" and user != "anonymous" and got == LOGIN:
                # Logging out lands on the login page: allowed if it ended the session.
                got = OK if to_login(asker.client.get("/inbox")) else "still signed in"
            seen[got] += 1
            if got != expected:
                failures.append(
                    f"{row.method} {url} as {user}: expected {expected}, got {got} "
                    f"({response.status_code}); rule: {row.why}"
                )
            elif expected != OK and state_events(engine) != before:
                failures.append(f"{row.method} {url} as {user}: refused, but changed state")
            if url.startswith("/api/") and user != "anonymous" and row.expect["anonymous"] != OK:
                # A signed-in page session is no API credential.
                cookie_only = asker.ask(row, url, bearer=False)
                if cookie_only.status_code != 401:
                    failures.append(
                        f"{row.method} {url} as {user} with no token: "
                        f"{cookie_only.status_code}, expected 401"
                    )
    assert failures == [], "\n".join(failures)
    cells = len(table) * len(USERS)
    assert sum(seen.values()) == cells
    # The matrix is not vacuous: many cells of each kind.
    assert seen[OK] > cells // 5 and seen[DENIED] > cells // 5, seen
    assert seen[HIDDEN] > 50 and seen[LOGIN] > 50 and seen[UNAUTH] > 10 and seen[FLASH] > 5, seen
    print(f"\n{len(table)} routes x {len(USERS)} users = {cells} cells: {dict(seen)}")
