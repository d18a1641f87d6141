// Draws read-only process diagrams (`.model-diagram[data-src]`) with the bpmn-js viewer and
// marks elements: `data-markers` maps a CSS class to the element ids that get it (diff: added,
// removed, changed; version page: elements with findings).
(function () {
  if (typeof BpmnJS === 'undefined') return;
  document.querySelectorAll('.model-diagram[data-src]').forEach(async (el) => {
    const viewer = new BpmnJS({ container: el });
    try {
      const xml = await (await fetch(el.dataset.src, { credentials: 'same-origin' })).text();
      await viewer.importXML(xml);
      const canvas = viewer.get('canvas');
      const registry = viewer.get('elementRegistry');
      const markers = el.dataset.markers ? JSON.parse(el.dataset.markers) : {};
      Object.entries(markers).forEach(([cls, ids]) => {
        ids.forEach((id) => { if (registry.get(id)) canvas.addMarker(id, cls); });
      });
      canvas.zoom('fit-viewport');
      el.dataset.rendered = 'true';
    } catch (err) {
      el.textContent = 'The diagram could not be drawn: ' + err.message;
    }
  });
})();
