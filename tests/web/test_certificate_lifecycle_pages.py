"""A certificate's life on the pages: status, dates and history on the case page and the
certificate page, the public verification in plain words per status, the form that asks for
a suspension decision, and retrying a failed job from the case page.

Every state is made by real engine calls (certify, request a suspension, decide it)."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from sqlalchemy import select

from engine.accounts import issue_api_token
from engine.incidents import record_incident
from engine.lifecycle import expire_certificates
from engine.models import Case, Certificate, Incident, Scheme
from tests.engine.helpers import do, person_id, renew_commitments
from tests.engine.test_appeals_complaints import lodge_complaint
from tests.engine.test_certificate_lifecycle import certify
from tests.web.test_auth import csrf_token, login
from web import create_app

DECISION_DAY = datetime(2026, 4, 11, 9, 0)
REQUEST_REASONS = "Two inspection reports signed without a site visit (complaint 2026-17)"
DECISION_REASONS = "The holder signed reports for inspections he did not attend"
REDUCED_SCOPE = "Visual inspection of fusion welds (ISO 5817 level D only)"


@pytest.fixture
def app(engine):
    return create_app({"ENGINE": engine, "TESTING": True, "VERIFY_RATE_LIMIT": 10_000})


@pytest.fixture
def client(app):
    return app.test_client()


def text(response) -> str:
    return response.get_data(as_text=True)


def post(client, url: str, data: dict[str, str] | None = None):
    return client.post(url, data={**(data or {}), "csrf_token": csrf_token(client, "/models")})


def switch_user(client, username: str) -> None:
    post(client, "/logout")
    login(client, username)


def decided(engine, clock, action: str, **overrides) -> tuple[Certificate, int]:
    """Alice certified in CWI, then (40 days later) a suspension decision taken with
    `action`; the certificate as it was issued and the suspension case's id."""
    issued = certify(engine)
    clock.set(DECISION_DAY)
    renew_commitments(engine)
    case_id = engine.request_suspension(issued.number, "manager", REQUEST_REASONS)
    do(
        engine,
        case_id,
        "decide_suspension",
        "decider",
        suspension_action=action,
        suspension_reasons=DECISION_REASONS,
        **overrides,
    )
    return issued, case_id


def certificate_row(engine, number: str) -> Certificate:
    with engine.sessions() as session:
        return session.scalars(select(Certificate).where(Certificate.number == number)).one()


def cases_about(engine, certificate_id: int, process_id: str) -> list[Case]:
    with engine.sessions() as session:
        return list(
            session.scalars(
                select(Case).where(
                    Case.certificate_id == certificate_id, Case.process_id == process_id
                )
            )
        )


# -- the case page -----------------------------------------------------------------------------


def test_case_page_shows_the_certificate_status_dates_and_history(client, engine, clock):
    issued, suspension = decided(engine, clock, "suspend")
    login(client, "manager")
    html = text(client.get(f"/cases/{suspension}"))
    assert issued.number in html
    assert f'href="/certificates/{issued.number}"' in html
    assert 'class="certificate cert-suspended"' in html
    assert 'cert-status status-suspended">suspended<' in html
    for expected in (
        "02 Mar 2026 – 02 Mar 2029",  # valid
        "Next surveillance</dt><dd>02 Mar 2027",
        "Recertification opens</dt><dd>02 Dec 2028",
        "History of certificate",
        "11 Apr 2026",  # the decision
        "Suspended",  # the event
        DECISION_REASONS,
        "Dana Decider",  # who decided
        "certification granted",  # the issue, first line of the history
    ):
        assert expected in html, expected
    # The status change reads from -> to, and each line links its case.
    row = re.search(r'<tr class="event-suspended">.*?</tr>', html, re.S).group(0)
    assert "status-active" in row and "→" in row and "status-suspended" in row
    assert f'href="/cases/{suspension}">case #{suspension}</a>' in row
    issued_row = re.search(r'<tr class="event-issued">.*?</tr>', html, re.S).group(0)
    assert f'href="/cases/{issued.case_id}"' in issued_row
    assert "system" in issued_row  # issued by the system in the decision case

    # The case that issued the certificate shows the same history.
    issuing = text(client.get(f"/cases/{issued.case_id}"))
    assert DECISION_REASONS in issuing and 'class="certificate cert-suspended"' in issuing


def test_holder_sees_the_history_on_her_case_page_without_staff_names(client, engine, clock):
    issued, suspension = decided(engine, clock, "suspend")
    login(client, "alice")
    html = text(client.get(f"/cases/{suspension}"))
    assert DECISION_REASONS in html
    assert "status-suspended" in html
    assert "Dana Decider" not in html
    assert "Incidents" not in html


def test_scope_reduction_shows_the_old_and_new_scope_in_the_history(client, engine, clock):
    issued, suspension = decided(engine, clock, "reduce_scope", reduced_scope=REDUCED_SCOPE)
    login(client, "manager")
    html = text(client.get(f"/cases/{suspension}"))
    assert "status-reduced" in html and "reduced scope" in html
    row = re.search(r'<tr class="event-scope_reduced">.*?</tr>', html, re.S).group(0)
    assert "scope was: Visual and documentary inspection" in row
    assert f"scope now: {REDUCED_SCOPE}" in row


# -- the certificate page --------------------------------------------------------------------


def test_certificate_page_shows_history_and_cases_to_staff(client, engine, clock):
    issued, suspension = decided(engine, clock, "suspend")
    login(client, "clerk")
    response = client.get(f"/certificates/{issued.number}")
    assert response.status_code == 200
    html = text(response)
    assert 'class="cert-sheet cert-suspended"' in html  # the printable certificate stays
    records = html[html.index('<div class="no-print cert-records">') :]
    for expected in (
        "This certificate is suspended since 11 April 2026",
        "History of certificate",
        DECISION_REASONS,
        "Dana Decider",
        "Cases about this certificate",
        "suspension",
        "(issued the certificate)",
    ):
        assert expected in records, expected
    # The clerk started nothing here and did only the completeness check of the application:
    # the suspension case is listed but not linked, the application case is.
    assert f"case #{suspension}</td>" in records
    assert f'href="/cases/{issued.case_id}"' in records
    # A suspension decision is open already: no second request form.
    assert "Request a suspension decision" in records
    assert "already open" in records
    assert 'name="reasons"' not in records


def test_holder_sees_the_history_but_not_the_staff_parts(client, engine, clock):
    issued, suspension = decided(engine, clock, "suspend")
    login(client, "alice")
    html = text(client.get(f"/certificates/{issued.number}"))
    records = html[html.index('<div class="no-print cert-records">') :]
    assert DECISION_REASONS in records
    assert f'href="/portal/cases/{suspension}"' in records  # her own case, in the portal
    assert "Dana Decider" not in records
    assert "Cases about this certificate" not in records
    assert "Request a suspension decision" not in records
    assert 'name="reasons"' not in records


def test_the_records_below_the_certificate_are_not_printed(client):
    css = text(client.get("/static/portal.css"))
    print_rules = css[css.index("@media print") :]
    assert ".no-print" in print_rules and "display: none" in print_rules


# -- who sees a certificate in full ------------------------------------------------------------
# As for a person's record (engine.people.may_see_person): the holder, oversight roles and
# staff on one of the holder's cases; anyone else is told the certificate does not exist.
# The public record stays public at /verify and GET /api/v1/certificates/<number>.

UNRELATED_STAFF = ["owner", "panel", "complaints"]  # no step on any of alice's cases


@pytest.mark.parametrize("username", ["alice", "quality", "manager", "admin"])
def test_the_holder_and_oversight_roles_see_the_certificate_that_unrelated_staff_do_not(
    client, engine, clock, username
):
    issued, _suspension = decided(engine, clock, "suspend")
    login(client, username)
    page = client.get(f"/certificates/{issued.number}")
    assert page.status_code == 200
    assert DECISION_REASONS in text(page)
    switch_user(client, "owner")
    assert client.get(f"/certificates/{issued.number}").status_code == 404


@pytest.mark.parametrize("username", UNRELATED_STAFF)
def test_staff_without_a_part_in_the_holders_cases_are_told_the_certificate_does_not_exist(
    client, engine, clock, username
):
    issued, _suspension = decided(engine, clock, "suspend")
    login(client, username)
    response = client.get(f"/certificates/{issued.number}")
    assert response.status_code == 404
    html = text(response)
    assert DECISION_REASONS not in html and "Alice Applicant" not in html
    assert client.get("/certificates/CWI-2026-999999").status_code == 404  # no difference


def test_another_certified_person_is_told_the_certificate_does_not_exist(client, engine):
    issued = certify(engine)
    certify(engine, "chen", "DPO")
    login(client, "chen")
    assert client.get(f"/certificates/{issued.number}").status_code == 404


def test_a_complaints_officer_sees_the_certificate_once_a_complaint_of_the_holder_is_theirs(
    client, engine, clock
):
    issued, _suspension = decided(engine, clock, "suspend")
    login(client, "complaints")
    assert client.get(f"/certificates/{issued.number}").status_code == 404
    lodge_complaint(engine, issued.case_id)  # alice complains: a step for complaints officers
    page = client.get(f"/certificates/{issued.number}")
    assert page.status_code == 200
    assert DECISION_REASONS in text(page)


def test_staff_who_may_not_see_the_certificate_cannot_ask_for_a_suspension_decision(client, engine):
    issued = certify(engine)
    url = f"/certificates/{issued.number}/suspension-request"
    login(client, "complaints")  # may ask for suspensions, but has no part in alice's cases
    assert post(client, url, {"reasons": REQUEST_REASONS}).status_code == 404
    assert cases_about(engine, issued.id, "suspension") == []
    lodge_complaint(engine, issued.case_id)
    assert post(client, url, {"reasons": REQUEST_REASONS}).status_code == 303
    assert len(cases_about(engine, issued.id, "suspension")) == 1


def test_the_api_gives_unrelated_staff_only_the_public_record_and_not_the_holder(
    client, engine, clock
):
    issued, _suspension = decided(engine, clock, "suspend")
    with engine.unit_of_work() as uow:
        token = issue_api_token(uow, "owner", "tests")
    headers = {"Authorization": f"Bearer {token}"}
    record = client.get(f"/api/v1/certificates/{issued.number}", headers=headers)
    assert record.status_code == 200
    assert set(record.json) == {
        "number",
        "holder",
        "scheme",
        "scope",
        "status",
        "issued_on",
        "effective_on",
        "expires_on",
    }
    assert DECISION_REASONS not in record.get_data(as_text=True)
    holder = client.get(f"/api/v1/persons/{person_id(engine, 'alice')}", headers=headers)
    assert holder.status_code == 404


# -- public verification ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "overrides", "sentences"),
    [
        (
            "suspend",
            {},
            [
                "Not valid: this certificate is suspended",
                "This certificate is suspended since 2026-04-11",
            ],
        ),
        (
            "withdraw",
            {},
            [
                "Not valid: this certificate has been withdrawn",
                "This certificate was withdrawn on 2026-04-11",
            ],
        ),
        (
            "reduce_scope",
            {"reduced_scope": REDUCED_SCOPE},
            [
                "Valid for a reduced scope only",
                "The scope of this certificate was reduced on 2026-04-11",
                f'It is valid only for this scope: <strong class="reduced-scope">{REDUCED_SCOPE}',
            ],
        ),
    ],
)
def test_verification_says_plainly_what_a_decision_did(
    client, engine, clock, action, overrides, sentences
):
    issued, _suspension = decided(engine, clock, action, **overrides)
    response = client.get(f"/verify?number={issued.number}")
    assert response.status_code == 200
    html = text(response)
    for sentence in sentences:
        assert sentence in html, sentence
    # Only name, scheme, scope, status and dates: never the reasons, nor the old scope.
    assert REQUEST_REASONS not in html and DECISION_REASONS not in html
    if action == "reduce_scope":
        with engine.sessions() as session:
            original = session.scalars(select(Scheme.scope).where(Scheme.code == "CWI")).first()
        assert original not in html
    assert "alice@example.org" not in html


def test_verification_says_when_an_expired_certificate_was_valid_until(client, engine, clock):
    issued = certify(engine)
    clock.set(datetime(2029, 3, 3, 1, 0))
    assert expire_certificates(engine) >= 1
    assert certificate_row(engine, issued.number).status == "expired"
    html = text(client.get(f"/verify?number={issued.number}"))
    assert "Not valid: this certificate has expired" in html
    assert "This certificate expired: it was valid until 2029-03-02" in html
    assert "since 2029-03-03" in html


def test_verification_of_an_active_certificate_is_unchanged(client, engine):
    issued = certify(engine)
    html = text(client.get(f"/verify?number={issued.number}"))
    assert "Valid: this certificate is active" in html
    assert "until 2029-03-02" in html
    assert "since" not in html


# -- asking for a suspension decision ----------------------------------------------------------


def test_staff_ask_for_a_suspension_decision_from_the_certificate_page(client, engine, clock):
    issued = certify(engine)
    login(client, "clerk")
    page = text(client.get(f"/certificates/{issued.number}"))
    assert 'name="reasons"' in page
    assert f'action="/certificates/{issued.number}/suspension-request"' in page

    response = post(
        client, f"/certificates/{issued.number}/suspension-request", {"reasons": REQUEST_REASONS}
    )
    assert response.status_code == 303
    [case] = cases_about(engine, issued.id, "suspension")
    assert response.headers["Location"].endswith(f"/cases/{case.id}")
    followed = client.get(response.headers["Location"])
    assert followed.status_code == 200  # the requester may open the case she started
    html = text(followed)
    assert f"Case #{case.id} was opened" in html
    assert [t.task_spec_id for t in engine.ready_tasks(case.id)] == ["decide_suspension"]

    # Back on the certificate page: the open decision is linked, no second form.
    page = text(client.get(f"/certificates/{issued.number}"))
    assert "already open" in page and f'href="/cases/{case.id}"' in page
    assert 'name="reasons"' not in page


def test_a_request_without_reasons_is_400_with_the_message_next_to_the_field(client, engine):
    issued = certify(engine)
    login(client, "manager")
    response = post(client, f"/certificates/{issued.number}/suspension-request", {"reasons": "  "})
    assert response.status_code == 400
    html = text(response)
    assert 'id="reasons-error"' in html
    assert "Give the reasons for the request" in html
    assert re.search(r'<textarea id="reasons"[^>]*aria-invalid="true"', html)
    assert cases_about(engine, issued.id, "suspension") == []

    too_long = post(
        client, f"/certificates/{issued.number}/suspension-request", {"reasons": "x" * 2001}
    )
    assert too_long.status_code == 400
    assert "At most 2,000 characters" in text(too_long)


@pytest.mark.parametrize("username", ["reviewer", "examiner", "alice"])
def test_only_the_allowed_roles_may_ask_for_a_suspension_decision(client, engine, username):
    issued = certify(engine)
    login(client, username)
    if username != "alice":  # staff without the role see no form
        assert 'name="reasons"' not in text(client.get(f"/certificates/{issued.number}"))
    response = post(
        client, f"/certificates/{issued.number}/suspension-request", {"reasons": REQUEST_REASONS}
    )
    assert response.status_code == 403
    assert cases_about(engine, issued.id, "suspension") == []


def test_a_request_for_an_unknown_certificate_is_404(client, engine):
    login(client, "manager")
    response = post(
        client, "/certificates/CWI-2026-999999/suspension-request", {"reasons": REQUEST_REASONS}
    )
    assert response.status_code == 404
    too_long = post(client, f"/certificates/{'X' * 41}/suspension-request", {"reasons": "x"})
    assert too_long.status_code == 404


def test_a_second_request_while_one_is_open_is_409(client, engine):
    issued = certify(engine)
    login(client, "manager")
    url = f"/certificates/{issued.number}/suspension-request"
    assert post(client, url, {"reasons": REQUEST_REASONS}).status_code == 303
    again = post(client, url, {"reasons": "Another complaint about the same reports"})
    assert again.status_code == 409
    html = text(again)
    assert 'id="request-error"' in html and "is already open" in html
    assert len(cases_about(engine, issued.id, "suspension")) == 1


def test_a_request_without_csrf_token_is_refused(client, engine):
    issued = certify(engine)
    login(client, "manager")
    response = client.post(
        f"/certificates/{issued.number}/suspension-request", data={"reasons": REQUEST_REASONS}
    )
    assert response.status_code == 400
    assert cases_about(engine, issued.id, "suspension") == []


def test_a_withdrawn_certificate_offers_no_request_and_refuses_one(client, engine, clock):
    issued, _suspension = decided(engine, clock, "withdraw")
    login(client, "manager")
    page = text(client.get(f"/certificates/{issued.number}"))
    assert "This certificate was withdrawn on 11 April 2026" in page
    assert 'name="reasons"' not in page
    response = post(
        client, f"/certificates/{issued.number}/suspension-request", {"reasons": REQUEST_REASONS}
    )
    assert response.status_code == 409
    assert "is withdrawn" in text(response)


# -- incidents ---------------------------------------------------------------------------------


def open_incident(engine, case_id: int, job: str = "start_due_surveillance") -> int:
    with engine.unit_of_work() as uow:
        incident = record_incident(
            uow, job, RuntimeError("the mail server did not answer"), case_id=case_id
        )
        uow.session.flush()
        return incident.id


def incident_status(engine, incident_id: int) -> str:
    with engine.sessions() as session:
        return session.get(Incident, incident_id).status


def test_managers_retry_a_failed_job_from_the_case_page(client, engine):
    issued = certify(engine)
    incident_id = open_incident(engine, issued.case_id)
    login(client, "manager")
    html = text(client.get(f"/cases/{issued.case_id}"))
    assert "Incidents" in html
    section = re.search(r'<tr id="incident-\d+">.*?</tr>', html, re.S).group(0)
    assert "start_due_surveillance" in section
    assert "RuntimeError: the mail server did not answer" in section
    assert f'action="/cases/{issued.case_id}/incidents/{incident_id}/retry"' in section

    response = post(client, f"/cases/{issued.case_id}/incidents/{incident_id}/retry")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/cases/{issued.case_id}")
    assert incident_status(engine, incident_id) == "resolved"
    html = text(client.get(f"/cases/{issued.case_id}"))
    assert f"Incident {incident_id} is resolved" in html
    assert 'id="incidents-heading"' not in html

    # A second click finds it resolved: said, nothing run.
    again = post(client, f"/cases/{issued.case_id}/incidents/{incident_id}/retry")
    assert again.status_code == 303
    assert "already resolved" in text(client.get(f"/cases/{issued.case_id}"))


def test_a_clerk_sees_the_incident_but_may_not_retry_it(client, engine):
    issued = certify(engine)
    incident_id = open_incident(engine, issued.case_id)
    login(client, "clerk")
    html = text(client.get(f"/cases/{issued.case_id}"))
    assert "the mail server did not answer" in html
    assert "/retry" not in html
    assert "A manager or an administrator can retry" in html
    response = post(client, f"/cases/{issued.case_id}/incidents/{incident_id}/retry")
    assert response.status_code == 403
    assert incident_status(engine, incident_id) == "open"


def test_retry_with_a_wrong_incident_or_case_is_404(client, engine):
    alice = certify(engine)
    bob = certify(engine, "bob", "DPO")
    incident_id = open_incident(engine, alice.case_id)
    login(client, "manager")
    assert post(client, f"/cases/{alice.case_id}/incidents/999999/retry").status_code == 404
    assert post(client, f"/cases/{bob.case_id}/incidents/{incident_id}/retry").status_code == 404
    assert post(client, f"/cases/999999/incidents/{incident_id}/retry").status_code == 404
    assert incident_status(engine, incident_id) == "open"


def test_applicants_neither_see_nor_retry_incidents(client, engine):
    issued = certify(engine)
    incident_id = open_incident(engine, issued.case_id)
    login(client, "alice")
    html = text(client.get(f"/cases/{issued.case_id}"))
    assert "the mail server did not answer" not in html
    response = post(client, f"/cases/{issued.case_id}/incidents/{incident_id}/retry")
    assert response.status_code == 403
    assert incident_status(engine, incident_id) == "open"
