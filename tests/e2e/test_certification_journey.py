"""The whole certification journey in a real browser, through the pages people use.

An applicant registers and applies for DPO (written exam only) in the portal and submits the
application form on the task page; staff claim and complete every step in their inbox; the
decision maker grants; the applicant sees "Certified" and opens the certificate, whose
verify link shows it active on the public register.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from engine.demo import DEMO_PASSWORD

APPLICANT_EMAIL = "greta.garcia@example.org"
APPLICANT_PASSWORD = "greta-secret-2026"


def log_in(page: Page, base: str, username: str, password: str = DEMO_PASSWORD) -> None:
    page.goto(base + "/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("form.stacked button[type=submit]")
    expect(page.locator("header .who")).to_contain_text("Log out")


def log_out(page: Page) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page.locator("header .who")).to_contain_text("Log in")


def inbox_row(page: Page, case_id: int, task_name: str):
    return (
        page.locator("table.inbox tbody tr")
        .filter(has=page.locator(f"a:text-is('#{case_id}')"))
        .filter(has_text=task_name)
    )


def staff_step(
    page: Page,
    base: str,
    username: str,
    case_id: int,
    task_name: str,
    fill: Callable[[Page], None],
    screenshot: Callable[[str], object] | None = None,
) -> None:
    """Log in as `username`, claim the task from the available tab (unless it is already
    theirs), open it from the assigned tab, fill the form and complete it."""
    log_in(page, base, username)
    page.goto(base + "/inbox?tab=available")
    available = inbox_row(page, case_id, task_name)
    if available.count():
        available.get_by_role("button", name="Claim").click()
        expect(inbox_row(page, case_id, task_name)).to_have_count(0)
    page.goto(base + "/inbox?tab=assigned")
    mine = inbox_row(page, case_id, task_name)
    expect(mine).to_have_count(1)
    if screenshot is not None:
        screenshot("journey-inbox")
    mine.get_by_role("link", name="Open").click()
    expect(page.locator("h1")).to_contain_text(task_name)
    fill(page)
    page.locator(".task-form button[type=submit]").click()
    expect(page.locator(".flash.success")).to_contain_text("completed")
    log_out(page)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_applicant_is_certified_through_portal_inbox_and_verify(live_server, page, screenshot):
    base = live_server
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # -- the applicant registers and applies ------------------------------------------
    page.goto(base + "/login")
    page.get_by_role("link", name="Create an account").click()
    page.fill("#given_name", "Greta")
    page.fill("#family_name", "Garcia")
    page.fill("#email", APPLICANT_EMAIL)
    page.fill("#password", APPLICANT_PASSWORD)
    page.fill("#password_confirm", "not the same password")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#password_confirm-error")).to_contain_text("not the same")
    screenshot("journey-register-errors")
    page.fill("#password", APPLICANT_PASSWORD)
    page.fill("#password_confirm", APPLICANT_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(re.compile(r"/portal$"))
    expect(page.locator("h1")).to_have_text("My certification")

    page.locator("label.choice", has_text="Data Protection Officer").click()
    screenshot("journey-portal-apply")
    page.get_by_role("button", name="Start my application").click()
    expect(page).to_have_url(re.compile(r"/portal/cases/\d+$"))
    case_id = int(page.url.rsplit("/", 1)[-1])
    expect(page.locator(".progress")).to_contain_text("waiting for you to submit")
    page.set_input_files(
        "#file",
        {"name": "cv.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.7\n% CV\n"},
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.locator(".flash.success")).to_contain_text("cv.pdf was added")
    screenshot("journey-portal-case")

    page.get_by_role("link", name="Submit application").first.click()
    expect(page.locator("h1")).to_contain_text("Submit application")
    # One required field left empty first: the form comes back with the error next to it.
    page.fill("[name=experience_years]", "6")
    page.check("[name=declaration_accurate]")
    page.locator(".task-form button[type=submit]").click()
    expect(page.locator("#error-motivation")).to_be_visible()
    screenshot("journey-task-form-errors")
    page.fill("[name=motivation]", "I advise three hospitals on GDPR compliance.")
    page.locator(".task-form button[type=submit]").click()
    expect(page.locator(".flash.success")).to_contain_text("completed")
    page.goto(base + "/portal")
    expect(page.locator(".case-card .progress")).to_contain_text("checked for completeness")
    log_out(page)

    # -- staff work the case through their inbox ----------------------------------------
    def completeness(p: Page) -> None:
        p.check("[name=application_complete]")

    def eligibility(p: Page) -> None:
        p.check("[name=eligibility_outcome][value=eligible]")
        p.fill("[name=eligibility_rationale]", "Six years as a DPO, CV and references verified.")

    def schedule(p: Page) -> None:
        p.fill("[name=exam_date]", "2026-04-15")
        p.fill("[name=exam_venue]", "Certrail exam centre, room 2")

    def assign(p: Page) -> None:
        p.fill("[name=examiner]", "examiner")

    def administer(p: Page) -> None:
        p.check("[name=candidate_attended]")
        p.check("[name=candidate_identity_verified]")

    def score(p: Page) -> None:
        p.fill("[name=written_score]", "82")

    def review(p: Page) -> None:
        p.check("[name=file_review_recommendation][value=grant]")
        p.fill("[name=file_review_summary]", "Eligible, passed the written exam with 82%.")

    def decide(p: Page) -> None:
        p.check("[name=certification_decision][value=grant]")
        p.fill("[name=decision_rationale]", "All requirements of the DPO scheme are met.")

    staff_step(
        page, base, "clerk", case_id, "Check application completeness", completeness, screenshot
    )
    staff_step(page, base, "reviewer", case_id, "Review eligibility", eligibility)
    staff_step(page, base, "clerk", case_id, "Schedule assessment", schedule)
    staff_step(page, base, "clerk", case_id, "Assign examiner", assign)
    staff_step(page, base, "invigilator", case_id, "Administer examination", administer)
    staff_step(page, base, "examiner", case_id, "Score written examination", score)
    staff_step(page, base, "reviewer", case_id, "Review certification file", review)
    staff_step(page, base, "decider", case_id, "Decide on certification", decide)

    log_in(page, base, "decider")
    page.goto(f"{base}/cases/{case_id}")
    expect(page.locator("body")).to_contain_text("Greta Garcia")
    screenshot("journey-case-page")
    log_out(page)

    # -- the applicant is certified -------------------------------------------------------
    log_in(page, base, APPLICANT_EMAIL, APPLICANT_PASSWORD)
    page.goto(base + "/portal")
    expect(page.locator(".case-card .progress")).to_contain_text("Certified")
    screenshot("journey-portal-certified")
    page.get_by_role("link", name=re.compile("View and print certificate")).click()
    expect(page.locator(".cert-sheet .holder")).to_have_text("Greta Garcia")
    expect(page.locator(".cert-sheet")).to_contain_text("Data Protection Officer")
    expect(page.locator(".cert-sheet .qr svg")).to_be_visible()
    number = page.locator(".cert-sheet .number").inner_text().strip()
    assert re.fullmatch(r"DPO-\d{4}-\d{6}", number)
    screenshot("journey-certificate")

    # -- anyone can verify it -----------------------------------------------------------
    page.locator(".cert-sheet .verify a").click()
    expect(page).to_have_url(re.compile(rf"/verify\?number={number}$"))
    expect(page.locator(".result .verdict")).to_contain_text("Valid: this certificate is active")
    expect(page.locator(".result")).to_contain_text("Greta Garcia")
    expect(page.locator(".result")).not_to_contain_text(APPLICANT_EMAIL)
    screenshot("journey-verify")
    assert errors == []
