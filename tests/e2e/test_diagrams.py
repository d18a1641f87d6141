"""Every shipped model carries diagram interchange that bpmn-js can draw."""

from __future__ import annotations

import pytest

from engine.catalog import BPMN_DIR
from tests.e2e.test_certification_journey import log_in

SHIPPED = len(list(BPMN_DIR.glob("*.bpmn")))


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_home_page_draws_every_shipped_model_with_bpmn_js(live_server, page, screenshot):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, live_server, "clerk")
    page.goto(live_server + "/models")
    page.wait_for_selector(".diagram[data-rendered='true']")
    page.wait_for_function(
        f"document.querySelectorAll(\".diagram[data-rendered='true']\").length === {SHIPPED}"
    )
    assert SHIPPED >= 5
    for process_id in (
        "submit_application",
        "score_practical",
        "decide_certification",
        "decide_appeal",
        "approve_response",
    ):
        assert page.locator(f"[data-element-id='{process_id}']").count() == 1
    screenshot("home-models")
    assert errors == []
