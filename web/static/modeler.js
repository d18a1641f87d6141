// The process owner's editor: bpmn-js Modeler, a side panel for Certrail's user task
// properties (stored as spiffworkflow:property elements), findings from the server's validator
// marked on the diagram, and save / validate / submit. Every property change is a command on
// the bpmn-js command stack, so undo and redo cover it.
(function () {
  'use strict';

  const configEl = document.getElementById('modeler-config');
  if (!configEl || typeof BpmnJS === 'undefined') return;
  const config = JSON.parse(configEl.textContent);
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (selector) => document.querySelector(selector);

  const TEXT_PROPERTIES = ['due', 'remind_before', 'escalate_after', 'assignee_from', 'exclude_performers_of'];
  const FLAG_PROPERTIES = ['due_business_days', 'auto_assign'];
  const DURATION = /^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$/;

  const state = { dirty: false, findings: config.findings || [], version: config.version, saving: false };

  // -- one undoable command that sets or clears one spiffworkflow property -----------------

  function SetTaskProperty(modeling, moddle) {
    this.preExecute = function (context) {
      const { element, name, value } = context;
      const bo = element.businessObject;
      let extensions = bo.extensionElements;
      if (!extensions) {
        if (!value) return;
        extensions = moddle.create('bpmn:ExtensionElements', { values: [] });
        modeling.updateProperties(element, { extensionElements: extensions });
      }
      let props = (extensions.values || []).find((v) => v.$type === 'spiffworkflow:Properties');
      if (!props) {
        if (!value) return;
        props = moddle.create('spiffworkflow:Properties', { properties: [] });
        modeling.updateModdleProperties(element, extensions, {
          values: [...(extensions.values || []), props],
        });
      }
      const list = props.properties || [];
      const existing = list.find((p) => p.name === name);
      if (existing && value) {
        modeling.updateModdleProperties(element, existing, { value });
      } else if (existing) {
        modeling.updateModdleProperties(element, props, { properties: list.filter((p) => p !== existing) });
      } else if (value) {
        const created = moddle.create('spiffworkflow:Property', { name, value });
        modeling.updateModdleProperties(element, props, { properties: [...list, created] });
      }
    };
  }
  SetTaskProperty.$inject = ['modeling', 'moddle'];

  function taskProperties(element) {
    const values = {};
    const extensions = element.businessObject.extensionElements;
    const props = extensions && (extensions.values || []).find((v) => v.$type === 'spiffworkflow:Properties');
    ((props && props.properties) || []).forEach((p) => { values[p.name] = p.value || ''; });
    return values;
  }

  function laneOf(element) {
    const lanes = element.businessObject.get('lanes') || [];
    return lanes.length ? lanes[0].name : null;
  }

  // -- the modeler --------------------------------------------------------------------------

  async function start() {
    const descriptor = await (await fetch(config.moddle_url)).json();
    const modeler = new BpmnJS({
      container: '#canvas',
      moddleExtensions: { spiffworkflow: descriptor },
    });
    window.certrailModeler = modeler;
    modeler.get('commandStack').registerHandler('certrail.setTaskProperty', SetTaskProperty);

    const xml = await (await fetch(config.source_url, { credentials: 'same-origin' })).text();
    try {
      const result = await modeler.importXML(xml);
      const dropped = (result.warnings || []).map((w) => w.message);
      if (dropped.length) showNotice('Some content could not be read by the editor and would be lost when saving: ' + dropped.join('; '));
    } catch (err) {
      showNotice('The diagram could not be opened: ' + err.message);
      return;
    }
    modeler.get('canvas').zoom('fit-viewport');
    wireToolbar(modeler);
    wirePanel(modeler);
    showFindings(modeler, state.findings);
    updateIdentification();
    $('#canvas').dataset.ready = 'true';
  }

  function showNotice(text) {
    const el = $('#modeler-notice');
    el.textContent = text;
    el.hidden = !text;
  }

  function updateIdentification() {
    $('#ident-version').textContent = state.version ? 'v' + state.version.version : '—';
    const status = $('#ident-status');
    status.textContent = state.version ? state.version.status.replace('_', ' ') : 'not saved';
    status.className = 'status model-status status-' + (state.version ? state.version.status : 'draft');
    $('#ident-checksum').textContent = state.version ? state.version.checksum.slice(0, 12) : '';
    $('#ident-dirty').hidden = !state.dirty;
    const submit = $('#submit-review');
    if (submit) {
      const draftId = state.version && state.version.status === 'draft' ? state.version.id : null;
      submit.disabled = !draftId;
      $('#submit-form').action = draftId ? config.submit_url_template.replace('__ID__', draftId) : '';
    }
  }

  async function postJSON(url, body) {
    const response = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRFToken': csrfToken },
      body: JSON.stringify(body),
    });
    let data = {};
    try { data = await response.json(); } catch (err) { data = { error: 'the server answered ' + response.status }; }
    return { ok: response.ok, status: response.status, data };
  }

  function wireToolbar(modeler) {
    const commandStack = modeler.get('commandStack');
    const undo = $('#undo');
    const redo = $('#redo');
    const refresh = () => { undo.disabled = !commandStack.canUndo(); redo.disabled = !commandStack.canRedo(); };
    modeler.on('commandStack.changed', () => { state.dirty = true; refresh(); updateIdentification(); });
    undo.addEventListener('click', () => commandStack.undo());
    redo.addEventListener('click', () => commandStack.redo());
    refresh();

    $('#validate').addEventListener('click', async () => {
      const { xml } = await modeler.saveXML({ format: true });
      setStatus('Validating…');
      const { ok, data } = await postJSON(config.validate_url, { xml });
      if (!ok) { setStatus(data.error || 'validation failed', true); showFindings(modeler, data.findings || []); return; }
      showFindings(modeler, data.findings);
      setStatus(summary(data.findings, 'Validated'));
    });

    $('#download').addEventListener('click', async () => {
      const { xml } = await modeler.saveXML({ format: true });
      const link = document.createElement('a');
      link.href = URL.createObjectURL(new Blob([xml], { type: 'application/xml' }));
      const number = state.version ? '-v' + state.version.version : '';
      link.download = config.process_id + number + '.bpmn';
      document.body.appendChild(link);
      link.click();
      link.remove();
    });

    const save = $('#save-draft');
    if (save) save.addEventListener('click', () => saveDraft(modeler));
    const submit = $('#submit-review');
    if (submit) {
      submit.addEventListener('click', async () => {
        if (state.dirty && !(await saveDraft(modeler))) return;
        if (state.findings.some((f) => f.severity === 'error')) {
          setStatus('Correct the errors before submitting for review.', true);
          return;
        }
        $('#submit-summary').value = $('#change-summary').value;
        $('#submit-form').submit();
      });
    }
    window.addEventListener('beforeunload', (event) => {
      if (state.dirty && config.can_edit && !state.submitting) { event.preventDefault(); event.returnValue = ''; }
    });
    $('#submit-form') && $('#submit-form').addEventListener('submit', () => { state.submitting = true; });
  }

  async function saveDraft(modeler) {
    if (state.saving) return false;
    state.saving = true;
    setStatus('Saving…');
    try {
      const { xml } = await modeler.saveXML({ format: true });
      const changeSummary = $('#change-summary').value.trim();
      const { ok, data } = await postJSON(config.draft_url, { xml, change_summary: changeSummary || null });
      showFindings(modeler, data.findings || []);
      if (!ok) { setStatus('Not saved: ' + (data.error || 'the server refused the draft'), true); return false; }
      state.version = data.version;
      state.dirty = false;
      updateIdentification();
      setStatus(summary(data.findings, 'Draft v' + data.version.version + ' saved'));
      if (data.version.process_id !== config.process_id) window.location = data.edit_url;
      return true;
    } finally {
      state.saving = false;
    }
  }

  function summary(findings, prefix) {
    const errors = findings.filter((f) => f.severity === 'error').length;
    const warnings = findings.length - errors;
    if (!findings.length) return prefix + ': no findings.';
    return `${prefix}: ${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}.`;
  }

  function setStatus(text, isError) {
    const el = $('#modeler-status');
    el.textContent = text;
    el.classList.toggle('error', !!isError);
  }

  // -- findings -------------------------------------------------------------------------------

  let marked = [];

  function showFindings(modeler, findings) {
    state.findings = findings;
    const canvas = modeler.get('canvas');
    const registry = modeler.get('elementRegistry');
    marked.forEach(([id, cls]) => { if (registry.get(id)) canvas.removeMarker(id, cls); });
    marked = [];
    const list = $('#findings-list');
    list.replaceChildren();
    $('#findings-count').textContent = findings.length ? `(${findings.length})` : '';
    if (!findings.length) {
      const li = document.createElement('li');
      li.className = 'muted';
      li.textContent = 'No findings.';
      list.appendChild(li);
      return;
    }
    findings.forEach((finding) => {
      const li = document.createElement('li');
      li.className = 'finding finding-' + finding.severity;
      li.dataset.elementId = finding.element_id || '';
      const where = finding.element_id ? (finding.element_name ? `${finding.element_name} (${finding.element_id})` : finding.element_id) : 'model';
      const badge = document.createElement('span');
      badge.className = 'severity';
      badge.textContent = finding.severity;
      const whereEl = document.createElement('strong');
      whereEl.textContent = where;
      li.append(badge, ' ', whereEl, ': ', finding.message);
      const element = finding.element_id && registry.get(finding.element_id);
      if (element) {
        const cls = finding.severity === 'error' ? 'finding-error' : 'finding-warning';
        canvas.addMarker(element.id, cls);
        marked.push([element.id, cls]);
        li.tabIndex = 0;
        li.classList.add('locatable');
        const locate = () => {
          modeler.get('selection').select(element);
          canvas.scrollToElement(element);
        };
        li.addEventListener('click', locate);
        li.addEventListener('keydown', (e) => { if (e.key === 'Enter') locate(); });
      }
      list.appendChild(li);
    });
  }

  // -- the side panel -------------------------------------------------------------------------

  function wirePanel(modeler) {
    const panel = $('#task-panel');
    let current = null;
    const selection = modeler.get('selection');
    const commandStack = modeler.get('commandStack');

    function render() {
      const selected = selection.get();
      current = selected.length === 1 && selected[0].type === 'bpmn:UserTask' ? selected[0] : null;
      panel.hidden = !current;
      $('#panel-empty').hidden = !!current;
      if (!current) return;
      const props = taskProperties(current);
      $('#prop-id').textContent = current.id;
      $('#prop-name').value = current.businessObject.name || '';
      const lane = laneOf(current);
      $('#prop-role-lane').textContent = lane ? `Lane: ${lane} (used when no role is chosen)` : '';
      ensureOption($('#prop-role'), props.role);
      $('#prop-role').value = props.role || '';
      ensureOption($('#prop-form'), props.form);
      $('#prop-form').value = props.form || '';
      updateFormLink(props.form);
      TEXT_PROPERTIES.forEach((name) => { $('#prop-' + name).value = props[name] || ''; });
      FLAG_PROPERTIES.forEach((name) => { $('#prop-' + name).checked = ['true', 'yes', '1'].includes((props[name] || '').toLowerCase()); });
      $('#prop-instructions').value = props.instructions || '';
      const rules = (props.sod || '').split(',').map((s) => s.trim()).filter(Boolean);
      panel.querySelectorAll('input[name=sod]').forEach((box) => { box.checked = rules.includes(box.value); });
      TEXT_PROPERTIES.concat(['instructions']).forEach(checkDuration);
    }

    function ensureOption(select, value) {
      if (value && ![...select.options].some((o) => o.value === value)) {
        select.add(new Option(value + ' (unknown)', value));
      }
    }

    function updateFormLink(name) {
      const link = $('#prop-form-edit');
      if (!link) return;
      link.hidden = !name;
      link.href = name ? config.form_url_template.replace('__NAME__', encodeURIComponent(name)) : '#';
    }

    function set(name, value) {
      if (!current) return;
      commandStack.execute('certrail.setTaskProperty', { element: current, name, value: value || '' });
    }

    function checkDuration(name) {
      const input = $('#prop-' + name);
      if (!input || !input.classList.contains('duration')) return;
      const bad = input.value && !DURATION.test(input.value.trim().toUpperCase());
      input.setCustomValidity(bad ? 'an ISO 8601 duration such as P10D or PT4H' : '');
      input.classList.toggle('invalid', !!bad);
    }

    if (!config.can_edit) panel.querySelectorAll('input, select, textarea').forEach((el) => { el.disabled = true; });

    $('#prop-name').addEventListener('change', (e) => {
      if (current) modeler.get('modeling').updateProperties(current, { name: e.target.value });
    });
    $('#prop-role').addEventListener('change', (e) => set('role', e.target.value));
    $('#prop-form').addEventListener('change', (e) => { set('form', e.target.value); updateFormLink(e.target.value); });
    TEXT_PROPERTIES.forEach((name) => {
      const input = $('#prop-' + name);
      input.addEventListener('input', () => checkDuration(name));
      input.addEventListener('change', () => set(name, input.value.trim()));
    });
    FLAG_PROPERTIES.forEach((name) => {
      $('#prop-' + name).addEventListener('change', (e) => set(name, e.target.checked ? 'true' : ''));
    });
    $('#prop-instructions').addEventListener('change', (e) => set('instructions', e.target.value.trim()));
    panel.querySelectorAll('input[name=sod]').forEach((box) => {
      box.addEventListener('change', () => {
        const chosen = [...panel.querySelectorAll('input[name=sod]:checked')].map((b) => b.value);
        set('sod', chosen.join(','));
      });
    });

    modeler.on('selection.changed', render);
    modeler.on('commandStack.changed', render);
    render();
  }

  start().catch((err) => showNotice('The editor could not start: ' + err.message));
})();
