"""Impartiality in a real browser: the examiner who scored a candidate is not offered the
candidate's certification decision and is told why (ISO/IEC 17024 9.4); the manager sees
who may take the task, why the examiner is barred, and assigns it to an eligible decider."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.test_certification_journey import inbox_row, log_in, log_out
from tests.engine.helpers import drive_to_decision, ready_task, start_application


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_barred_examiner_is_explained_and_manager_assigns_an_eligible_decider(
    engine, live_server, page, screenshot
):
    base = live_server
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    case_id = start_application(engine, "alice")
    drive_to_decision(engine, case_id, "alice", examiner="examiner_decider")
    task = ready_task(engine, case_id, "decide_certification")

    # -- the examiner who scored the exam is not offered the decision -----------------
    log_in(page, base, "examiner_decider")
    page.goto(base + "/inbox?tab=available")
    expect(page.locator("h1")).to_contain_text("Inbox")
    expect(inbox_row(page, case_id, task.name)).to_have_count(0)

    page.goto(f"{base}/tasks/{task.id}")
    notice = page.locator(".notice.readonly")
    expect(notice).to_contain_text("You cannot complete this task")
    expect(notice).to_contain_text("scored this candidate's written exam")
    expect(notice).to_contain_text("ISO/IEC 17024 9.4")
    expect(page.locator("#eligibility")).to_have_count(0)
    expect(page.locator(".task-form button[type=submit]")).to_have_count(0)
    log_out(page)

    # -- the manager sees who may do it and assigns it --------------------------------
    log_in(page, base, "manager")
    page.goto(f"{base}/tasks/{task.id}")
    panel = page.locator("#eligibility")
    expect(panel).to_be_visible()
    barred = panel.locator("tr[data-username=examiner_decider]")
    expect(barred.locator(".elig")).to_have_text("barred")
    expect(barred).to_contain_text("Max Multirole scored this candidate's written exam")
    expect(barred).to_contain_text("9.4")
    expect(barred.get_by_role("button")).to_have_count(0)
    eligible = panel.locator("tr[data-username=decider]")
    expect(eligible.locator(".elig")).to_have_text("eligible")
    panel.scroll_into_view_if_needed()
    screenshot("impartiality-task-page-manager")
    panel.screenshot(path=str(SCREENSHOTS / "impartiality-manager-panel.png"))

    eligible.get_by_role("button", name="Assign to Dana Decider").click()
    expect(page.locator(".flash.success")).to_contain_text("assigned to Dana Decider")
    expect(page.locator(".task-side")).to_contain_text("Dana Decider")
    expect(page.locator("#eligibility tr[data-username=decider] .badge")).to_have_text("assigned")
    log_out(page)

    # -- the decider now finds it in "Assigned to me" ----------------------------------
    log_in(page, base, "decider")
    page.goto(base + "/inbox?tab=assigned")
    expect(inbox_row(page, case_id, task.name)).to_have_count(1)
    assert errors == []
