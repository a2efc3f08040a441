/* Behaviours of every page, declared in the templates by data- attributes (no inline handlers,
   so that a strict Content-Security-Policy holds):
     [data-copy="text"] or [data-copy-from="<id>"]  a button copying that text, or that
                                                    element's text, to the clipboard
     [data-autosubmit]   a select or checkbox that submits its form when changed
     [data-confirm="…"]  on a form, or on one of its submit buttons: asks before submitting,
                         and does not submit when refused
     [data-back]         a link that goes back in the tab's history (its href without one) */

function fallbackCopy(text) {
  // navigator.clipboard only exists in secure contexts; self-hosted installs may be plain http
  const area = document.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.style.position = 'fixed';
  area.style.opacity = '0';
  document.body.appendChild(area);
  area.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
  area.remove();
  return ok ? Promise.resolve() : Promise.reject(new Error('copy failed'));
}

function copy(text) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text).catch(() => fallbackCopy(text));
  }
  return fallbackCopy(text);
}

document.addEventListener('click', (e) => {
  const btn = e.target.closest('[data-copy], [data-copy-from]');
  if (!btn) return;
  e.preventDefault();
  let text = btn.dataset.copy;
  if (text === undefined) {
    const from = document.getElementById(btn.dataset.copyFrom);
    text = from ? from.textContent : '';
  }
  const label = btn.dataset.label || btn.textContent;
  btn.dataset.label = label;
  copy(text).then(() => { btn.textContent = 'Copied'; }, () => { btn.textContent = 'Press Ctrl+C'; })
    .then(() => { setTimeout(() => { btn.textContent = label; }, 1500); });
});

document.addEventListener('click', (e) => {
  const link = e.target.closest('[data-back]');
  if (!link || window.history.length < 2) return;
  e.preventDefault();
  window.history.back();
});

document.addEventListener('change', (e) => {
  const field = e.target.closest('[data-autosubmit]');
  if (field && field.form) field.form.submit();
});

document.addEventListener('submit', (e) => {
  const form = e.target;
  const asker = e.submitter && e.submitter.hasAttribute('data-confirm') ? e.submitter : form;
  const question = asker.getAttribute('data-confirm');
  if (question !== null && !window.confirm(question)) e.preventDefault();
});
