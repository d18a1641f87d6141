"""The process owner's modeler in Chromium: a change drawn in the browser goes through
validation, review by a quality manager and publication, while a case started earlier stays
on the version it started with; and the modeler writes back every SpiffWorkflow extension of
the shipped models it does not touch."""

from __future__ import annotations

import re

import pytest
from lxml import etree
from playwright.sync_api import expect

from engine.catalog import BPMN_DIR
from tests.e2e.test_certification_journey import log_in, log_out
from tests.engine.helpers import start_application

SPIFF = "http://spiffworkflow.org/bpmn/schema/1.0/core"
NEW_TASK = "check_references"

ADD_TASK = """() => {
  const m = window.certrailModeler;
  const registry = m.get('elementRegistry');
  const shape = m.get('elementFactory').createShape({ type: 'bpmn:UserTask' });
  const task = m.get('modeling').createShape(shape, { x: 740, y: 140 }, registry.get('Participant_decision'));
  m.get('modeling').updateProperties(task, { id: 'NEW_TASK' });
  m.get('selection').select(task);
  return task.id;
}""".replace("NEW_TASK", NEW_TASK)

CONNECT = """() => {
  const m = window.certrailModeler;
  const registry = m.get('elementRegistry');
  const modeling = m.get('modeling');
  modeling.removeConnection(registry.get('Flow_review_decide'));
  modeling.connect(registry.get('review_file'), registry.get('NEW_TASK'));
  modeling.connect(registry.get('NEW_TASK'), registry.get('decide_certification'));
}""".replace("NEW_TASK", NEW_TASK)


def open_modeler(page, base: str, process_id: str) -> None:
    page.goto(f"{base}/models/{process_id}/edit")
    expect(page.locator("#canvas[data-ready='true']")).to_have_count(1)


def decision_version(engine, case_id: int) -> int:
    case = engine.case(case_id)
    return engine.model_version(case.subprocess_versions["decision"]).version


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_owner_draws_a_step_quality_manager_publishes_and_old_cases_keep_their_version(
    engine, live_server, page, screenshot
):
    base = live_server
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            msg.type == "error"
            and not msg.location["url"].endswith("/favicon.ico")
            and errors.append(msg.text)
        ),
    )
    page.on("dialog", lambda dialog: dialog.accept())
    before = start_application(engine, "alice")
    assert decision_version(engine, before) == 1

    # -- the process owner adds a user task through the modeler and its side panel ------
    log_in(page, base, "owner")
    open_modeler(page, base, "decision")
    expect(page.locator("#ident-version")).to_have_text("v1")
    page.evaluate(ADD_TASK)
    panel = page.locator("#task-panel")
    expect(panel).to_be_visible()
    expect(page.locator("#prop-id")).to_have_text(NEW_TASK)
    page.fill("#prop-name", "Check references")
    page.locator("#prop-name").press("Tab")
    page.select_option("#prop-role", "reviewer")
    page.select_option("#prop-form", "file_review")
    page.fill("#prop-due", "P5D")
    page.locator("#prop-due").press("Tab")
    page.check("#task-panel input[name=sod][value='SOD-4EYES']")
    expect(page.locator("#prop-form-edit")).to_have_attribute(
        "href", "/models/decision/forms/file_review"
    )

    # the side panel's changes are commands: undo takes the role back, redo restores it
    page.click("#undo")
    expect(page.locator("#task-panel input[name=sod][value='SOD-4EYES']")).not_to_be_checked()
    page.click("#redo")
    expect(page.locator("#task-panel input[name=sod][value='SOD-4EYES']")).to_be_checked()

    page.fill("#change-summary", "Reference check before the decision")
    page.click("#save-draft")
    expect(page.locator("#modeler-status")).to_contain_text("Draft v2 saved")
    expect(page.locator("#ident-version")).to_have_text("v2")
    expect(page.locator("#ident-dirty")).to_be_hidden()
    loose = page.locator(f"#findings-list li.finding-error[data-element-id='{NEW_TASK}']")
    expect(loose.first).to_be_visible()
    expect(
        page.locator(f"g.djs-element.finding-error[data-element-id='{NEW_TASK}']")
    ).to_have_count(1)
    page.click("#canvas", position={"x": 5, "y": 5})
    expect(panel).to_be_hidden()
    loose.first.click()
    assert page.evaluate(
        "() => window.certrailModeler.get('selection').get().map((e) => e.id)"
    ) == [NEW_TASK]
    screenshot("modeler-lint-error")

    # -- connected, it saves clean and goes to review ----------------------------------
    page.evaluate(CONNECT)
    page.click("#save-draft")
    expect(page.locator("#modeler-status")).to_have_text(
        re.compile(r"Draft v2 saved: (no findings|0 errors)")
    )
    expect(page.locator("#findings-list li.finding-error")).to_have_count(0)
    expect(page.locator("g.djs-element.finding-error")).to_have_count(0)
    page.click("#submit-review")
    expect(page.locator(".flash.success")).to_contain_text("decision v2 submitted for review")
    draft = engine.model_history("decision")[0]
    assert (draft.version, draft.status) == (2, "in_review")
    props = etree.fromstring(draft.bpmn_xml.encode()).xpath(
        f"//*[@id='{NEW_TASK}']//spiffworkflow:property", namespaces={"spiffworkflow": SPIFF}
    )
    assert {p.get("name"): p.get("value") for p in props} == {
        "role": "reviewer",
        "form": "file_review",
        "due": "P5D",
        "sod": "SOD-4EYES",
    }
    log_out(page)

    # -- the quality manager approves and publishes ----------------------------------------
    log_in(page, base, "quality")
    page.goto(base + "/models/decision")
    row = page.locator("tr[data-version='2']")
    row.get_by_role("button", name="Approve").click()
    expect(page.locator(".flash.success")).to_contain_text("decision v2 approved")
    page.locator("tr[data-version='2']").get_by_role("button", name="Publish").click()
    expect(page.locator(".flash.success")).to_contain_text("decision v2 published")
    expect(page.locator("tr[data-version='2'] .model-status")).to_have_text("published")
    expect(page.locator("tr[data-version='1'] .model-status")).to_have_text("retired")

    after = start_application(engine, "bob", "DPO")
    assert decision_version(engine, after) == 2
    assert decision_version(engine, before) == 1
    assert errors == []


def spiffworkflow_content(xml: str) -> list[str]:
    """Every spiffworkflow extension element (its attributes, text and children), in order,
    with the id of the element it extends."""
    root = etree.fromstring(xml.encode())
    return [
        f"{element.getparent().getparent().get('id')}: {_canonical(element)}"
        for element in root.iter(f"{{{SPIFF}}}*")
        if element.getparent().tag.endswith("extensionElements")
    ]


def _canonical(element) -> str:
    name = etree.QName(element)
    attributes = " ".join(f"{k}={v!r}" for k, v in sorted(element.attrib.items()))
    children = "".join(_canonical(child) for child in element)
    return f"<{name.namespace == SPIFF}:{name.localname} {attributes}>{(element.text or '').strip()}{children}</>"


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_saving_a_shipped_model_without_edits_keeps_its_spiffworkflow_extensions(live_server, page):
    log_in(page, live_server, "owner")
    for path in sorted(BPMN_DIR.glob("*.bpmn")):
        open_modeler(page, live_server, path.stem)
        expect(page.locator("#modeler-notice")).to_be_hidden()
        saved = page.evaluate(
            "async () => (await window.certrailModeler.saveXML({ format: true })).xml"
        )
        original = spiffworkflow_content(path.read_text())
        assert original, path.name
        assert spiffworkflow_content(saved) == original, path.name
