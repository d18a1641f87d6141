// Draws a case's process diagrams with bpmn-js and marks done, current and overdue steps.
// A call activity in the top diagram takes the state of the process it calls.
(function () {
  const dataEl = document.getElementById('diagram-markers');
  if (!dataEl || typeof BpmnJS === 'undefined') return;
  const processes = JSON.parse(dataEl.textContent).processes || {};

  function subprocessState(processId) {
    const m = processes[processId];
    if (!m) return null;
    if (m.overdue.length) return 'overdue';
    if (m.current.length) return 'current';
    if (m.completed.length) return 'done';
    return null;
  }

  document.querySelectorAll('.case-diagram').forEach(async (el) => {
    const processId = el.id.replace(/^diagram-/, '');
    const markers = processes[processId] || { completed: [], current: [], overdue: [] };
    const viewer = new BpmnJS({ container: el });
    try {
      const xml = await (await fetch(el.dataset.src, { credentials: 'same-origin' })).text();
      await viewer.importXML(xml);
      const canvas = viewer.get('canvas');
      const registry = viewer.get('elementRegistry');
      const mark = (id, cls) => { if (registry.get(id)) canvas.addMarker(id, cls); };
      markers.completed.forEach((id) => mark(id, 'done'));
      markers.current.forEach((id) => mark(id, 'current'));
      markers.overdue.forEach((id) => mark(id, 'overdue'));
      if (el.dataset.top === 'true') {
        registry.filter((e) => e.type === 'bpmn:CallActivity').forEach((e) => {
          const state = subprocessState(e.businessObject.calledElement);
          if (state === 'overdue') { mark(e.id, 'current'); mark(e.id, 'overdue'); }
          else if (state) mark(e.id, state);
        });
      }
      canvas.zoom('fit-viewport');
      el.dataset.rendered = 'true';
    } catch (err) {
      el.textContent = 'The diagram could not be drawn: ' + err.message;
    }
  });
})();
