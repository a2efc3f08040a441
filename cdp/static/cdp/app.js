/* Behaviours of every page, declared in the templates by data- attributes (no inline handlers,
   so that a strict Content-Security-Policy holds):
     [data-copy="text"] or [data-copy-from="<id>"]  a button copying that text, or that
                                                    element's text, to the clipboard
     [data-autosubmit]   a select or checkbox that submits its form when changed
     [data-confirm="…"]  on a form, or on one of its submit buttons: asks before submitting,
                         and does not submit when refused
     [data-back]         a link that goes back in the tab's history (its href without one)
     [data-nav-toggle]   the button that opens and closes the sidebar on narrow screens
   and every <time data-when> (cdp/present.py) is shown in the reader's zone. */

import { localise, localiseAll } from './lib/format.js';

localiseAll();
// relative times ("3 minutes ago") stay true while the page is open
setInterval(() => document.querySelectorAll('time[data-when="ago"]').forEach(localise), 60_000);
// and moments that scripts insert later are shown the same way
new MutationObserver((changes) => {
  for (const change of changes) {
    change.addedNodes.forEach((node) => {
      if (node.nodeType !== 1) return;
      if (node.matches('time[data-when]') && !node.title) localise(node);
      node.querySelectorAll('time[data-when]:not([title])').forEach(localise);
    });
  }
}).observe(document.documentElement, { childList: true, subtree: true });

document.addEventListener('click', (e) => {
  const toggle = e.target.closest('[data-nav-toggle]');
  if (!toggle) return;
  const open = toggle.getAttribute('aria-expanded') !== 'true';
  toggle.setAttribute('aria-expanded', String(open));
  document.body.classList.toggle('nav-open', open);
});

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
