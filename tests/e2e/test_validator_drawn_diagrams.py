"""Diagrams drawn with the bpmn-js modeler in Chromium (through its modeling API, as the
editor does) and saved with saveXML: the validator answers each with findings, never an
exception, and points at the element that is wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.forms import FormRegistry
from engine.validation import validate_model_source
from tests.engine.helpers import cpu_seconds_of

ROOT = Path(__file__).resolve().parents[2]
MODELER_JS = ROOT / "web" / "node_modules" / "bpmn-js" / "dist" / "bpmn-modeler.production.min.js"

DRAW = """
async () => {
  const drawings = {};
  async function draw(name, build) {
    const modeler = new BpmnJS({ container: '#canvas' });
    await modeler.createDiagram();
    const get = (service) => modeler.get(service);
    const registry = get('elementRegistry');
    const tools = {
      modeling: get('modeling'),
      factory: get('elementFactory'),
      moddle: get('moddle'),
      root: get('canvas').getRootElement(),
      start: registry.get('StartEvent_1'),
    };
    tools.add = (type, x, y, id) => {
      const shape = tools.modeling.createShape(tools.factory.createShape({ type }), { x, y }, tools.root);
      if (id) tools.modeling.updateProperties(shape, { id });
      return shape;
    };
    tools.link = (a, b) => tools.modeling.connect(a, b);
    tools.name = (element, name) => tools.modeling.updateLabel(element, name);
    tools.expression = (body) => tools.moddle.create('bpmn:FormalExpression', { body });
    tools.executable = () => tools.modeling.updateProperties(tools.root, { isExecutable: true });
    build(tools);
    drawings[name] = (await modeler.saveXML({ format: true })).xml;
    modeler.destroy();
  }

  await draw('blank', () => {});

  await draw('review-chain', (t) => {
    t.executable();
    t.name(t.start, 'File received');
    const review = t.add('bpmn:UserTask', 350, 120);
    t.name(review, 'Review the file');
    const gateway = t.add('bpmn:ExclusiveGateway', 500, 120);
    t.name(gateway, 'Complete?');
    const done = t.add('bpmn:EndEvent', 650, 120);
    t.name(done, 'Reviewed');
    const back = t.add('bpmn:EndEvent', 500, 260);
    t.name(back, 'Returned');
    t.link(t.start, review);
    t.link(review, gateway);
    const yes = t.link(gateway, done);
    t.modeling.updateProperties(yes, { conditionExpression: t.expression('complete == True') });
    const no = t.link(gateway, back);
    t.modeling.updateProperties(gateway, { default: no.businessObject });
  });

  await draw('disconnected-task', (t) => {
    const work = t.add('bpmn:Task', 350, 120);
    t.name(work, 'Do the work');
    const end = t.add('bpmn:EndEvent', 520, 120);
    t.name(end, 'Done');
    t.link(t.start, work);
    t.link(work, end);
    const stray = t.add('bpmn:Task', 350, 300, 'Stray_task');
    t.name(stray, 'Forgotten step');
  });

  await draw('boundary-timer', (t) => {
    t.executable();
    const wait = t.add('bpmn:UserTask', 350, 120);
    t.name(wait, 'Send the evidence');
    const end = t.add('bpmn:EndEvent', 520, 120);
    t.name(end, 'Received');
    const late = t.add('bpmn:EndEvent', 520, 300);
    t.name(late, 'Too late');
    t.link(t.start, wait);
    t.link(wait, end);
    const timer = t.factory.createShape({
      type: 'bpmn:BoundaryEvent',
      eventDefinitionType: 'bpmn:TimerEventDefinition',
    });
    const boundary = t.modeling.createShape(timer, { x: 370, y: 162 }, wait, { attach: true });
    t.modeling.updateProperties(boundary, { id: 'Deadline' });
    t.name(boundary, 'Thirty days');
    boundary.businessObject.eventDefinitions[0].timeDuration = t.expression('"P30D"');
    t.link(boundary, late);
  });

  await draw('parallel-without-join', (t) => {
    const split = t.add('bpmn:ParallelGateway', 300, 120);
    const a = t.add('bpmn:ScriptTask', 420, 60);
    t.name(a, 'Score written');
    const b = t.add('bpmn:ScriptTask', 420, 200);
    t.name(b, 'Score practical');
    const both = t.add('bpmn:Task', 600, 120, 'Both_scores');
    t.name(both, 'Combine');
    const end = t.add('bpmn:EndEvent', 750, 120);
    t.name(end, 'Scored');
    t.link(t.start, split);
    t.link(split, a);
    t.link(split, b);
    t.link(a, both);
    t.link(b, both);
    t.link(both, end);
  });

  await draw('implicit-split', (t) => {
    const work = t.add('bpmn:Task', 350, 120, 'Splitting_task');
    t.name(work, 'Do the work');
    const one = t.add('bpmn:EndEvent', 520, 60);
    t.name(one, 'One');
    const two = t.add('bpmn:EndEvent', 520, 200);
    t.name(two, 'Two');
    t.link(t.start, work);
    t.link(work, one);
    t.link(work, two);
  });
  return drawings;
}
"""


@pytest.fixture(scope="module")
def drawn(browser) -> dict[str, str]:
    if not MODELER_JS.exists():
        pytest.skip("web/node_modules is absent: run `make install` (npm ci in web/)")
    context = browser.new_context()
    page = context.new_page()
    page.set_content('<div id="canvas" style="width: 1000px; height: 700px"></div>')
    page.add_script_tag(path=str(MODELER_JS))
    try:
        return page.evaluate(DRAW)
    finally:
        context.close()


def validate(xml: str):
    validation, cpu_seconds = cpu_seconds_of(
        lambda: validate_model_source(xml, FormRegistry(), known_processes=set())
    )
    assert cpu_seconds < 2.0
    return validation


def errors(validation) -> dict[str | None, list[str]]:
    found: dict[str | None, list[str]] = {}
    for finding in validation.errors:
        found.setdefault(finding.element_id, []).append(finding.message)
    return found


def test_every_drawn_diagram_yields_a_validation(drawn):
    assert set(drawn) == {
        "blank",
        "review-chain",
        "disconnected-task",
        "boundary-timer",
        "parallel-without-join",
        "implicit-split",
    }
    for name, xml in drawn.items():
        validation = validate(xml)
        assert validation.findings, name
        assert all(f.severity in ("error", "warning") for f in validation.findings)


def test_a_blank_diagram_lacks_an_end_event(drawn):
    validation = validate(drawn["blank"])
    process_id = re.search(r'<bpmn:process id="([^"]+)"', drawn["blank"]).group(1)
    messages = errors(validation)[process_id]
    assert any(m.startswith("end-event-required") for m in messages)
    assert 'the process is not executable: set isExecutable="true"' in messages


def test_a_drawn_review_chain_is_sound_but_needs_certrail_task_properties(drawn):
    validation = validate(drawn["review-chain"])
    assert validation.model is not None
    messages = [f.message for f in validation.errors]
    assert not [m for m in messages if re.match(r"^[a-z]+(-[a-z]+)+: ", m)], messages
    assert "user task has no 'form' property" in messages
    assert any(m.startswith("user task has no role") for m in messages)


def test_a_drawn_disconnected_task_is_named(drawn):
    validation = validate(drawn["disconnected-task"])
    [finding] = [f for f in validation.errors if f.element_id == "Stray_task"]
    assert finding.element_name == "Forgotten step"
    assert finding.message.startswith("no-disconnected")


def test_a_drawn_boundary_timer_with_a_quoted_duration_passes(drawn):
    validation = validate(drawn["boundary-timer"])
    assert validation.model is not None
    assert "Deadline" not in errors(validation)
    assert all("timer" not in f.message for f in validation.findings)


def test_drawn_parallel_paths_into_one_task_are_a_fake_join(drawn):
    validation = validate(drawn["parallel-without-join"])
    [finding] = [f for f in validation.findings if f.message.startswith("fake-join")]
    assert (finding.element_id, finding.severity) == ("Both_scores", "warning")


def test_a_drawn_implicit_split_is_an_error(drawn):
    validation = validate(drawn["implicit-split"])
    assert any(m.startswith("no-implicit-split") for m in errors(validation)["Splitting_task"])
