// Live preview of a form's JSON Schema: the server draws it exactly as staff see a task's form
// (or names what is wrong with the schema), a moment after the author stops typing.
(function () {
  const textarea = document.getElementById('schema');
  const preview = document.getElementById('form-preview');
  const errorEl = document.getElementById('preview-error');
  if (!textarea || !preview) return;
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  let timer = null;
  let sequence = 0;

  async function refresh() {
    const mine = ++sequence;
    const response = await fetch(preview.dataset.url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRFToken': csrfToken },
      body: JSON.stringify({ schema: textarea.value }),
    });
    if (mine !== sequence) return;
    if (response.ok) {
      preview.innerHTML = await response.text();
      errorEl.hidden = true;
      errorEl.textContent = '';
      preview.classList.remove('stale');
    } else {
      let message = 'the preview could not be drawn (' + response.status + ')';
      try { message = (await response.json()).error || message; } catch (err) { /* keep the status */ }
      errorEl.textContent = message;
      errorEl.hidden = false;
      preview.classList.add('stale');
    }
    preview.dataset.state = response.ok ? 'ok' : 'error';
  }

  textarea.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 400);
  });
  refresh();
})();
