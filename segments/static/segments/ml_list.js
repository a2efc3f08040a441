/* The models list: creating a model (then its first training run) through the API, and
   progress bars of active runs kept current until they end (then the page reloads). */

import { ApiError, api, fieldErrors, getJSON } from '../cdp/lib/api.js';
import { pageData } from '../cdp/lib/dom.js';

const config = pageData('models-config') || { models: [] };
const form = document.getElementById('model-form');

/* The settings each kind has: only its own fields show. */
function showKindFields() {
  const kind = form.elements.kind.value;
  form.querySelectorAll('[data-kinds]').forEach((label) => {
    label.hidden = !label.dataset.kinds.split(' ').includes(kind);
  });
}

function settings(data) {
  const kind = data.get('kind');
  if (kind === 'clusters') return data.get('k') ? { k: Number(data.get('k')) } : {};
  if (kind === 'recommendations') {
    return { top_n: Number(data.get('top_n') || 10), exclude: data.get('exclude') };
  }
  return { event: data.get('event'), horizon_days: Number(data.get('horizon_days')) };
}

if (form) {
  form.elements.kind.addEventListener('change', showKindFields);
  showKindFields();
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const error = document.getElementById('model-error');
    error.hidden = true;
    const body = {
      name: data.get('name'), key: data.get('key'), kind: data.get('kind'),
      config: settings(data),
    };
    try {
      const model = await api('POST', '/api/v1/models/', body);
      await api('POST', `/api/v1/models/${model.id}/train/`);
      window.location.href = `/models/${model.id}/`;
    } catch (err) {
      const fields = fieldErrors(err);
      error.textContent = Object.keys(fields).length ?
        Object.entries(fields).map(([k, v]) => `${k}: ${v.join(' ')}`).join(' · ') :
        (err instanceof ApiError ? err.message : 'Could not reach the server; try again.');
      error.hidden = false;
    }
  });
}

/* Poll the models with an active run; reload when one of them ends. */
const active = config.models.filter((m) => m.last_run &&
  ['queued', 'running'].includes(m.last_run.status));
async function poll() {
  for (const m of active) {
    const runs = await getJSON(`/api/v1/models/${m.id}/runs/?page_size=1`).catch(() => null);
    const run = runs && runs.results[0];
    if (!run) continue;
    if (!['queued', 'running'].includes(run.status)) { window.location.reload(); return; }
    const cell = document.querySelector(`tr[data-model="${m.id}"] .run-cell`);
    const bar = cell && cell.querySelector('progress');
    if (bar) bar.value = run.percent;
    const stage = cell && cell.querySelector('.run-stage');
    if (stage) stage.textContent = `${run.stage} · ${run.percent} %`;
  }
  setTimeout(poll, 1000);
}
if (active.length) setTimeout(poll, 1000);
