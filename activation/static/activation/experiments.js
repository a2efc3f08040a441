/* The experiments list: units exposed per experiment, the metric library's form (the
   property field only for a sum) and the new-experiment form, both through the API. */

import { ApiError, api, fieldErrors } from '../cdp/lib/api.js';
import { pageData } from '../cdp/lib/dom.js';
import { grouped } from '../cdp/lib/format.js';

const config = pageData('experiments-config') || { experiments: [] };

config.experiments.forEach((e) => {
  const cell = document.querySelector(`tr[data-experiment="${e.id}"] .exposed-cell`);
  if (cell) cell.textContent = grouped(Object.values(e.exposures).reduce((a, b) => a + b, 0));
});

function explain(err, target) {
  const fields = fieldErrors(err);
  target.textContent = Object.keys(fields).length ?
    Object.entries(fields).map(([k, v]) => `${k}: ${v.join(' ')}`).join(' · ') :
    (err instanceof ApiError ? err.message : 'Could not reach the server; try again.');
  target.hidden = false;
}

const metricForm = document.getElementById('metric-form');
if (metricForm) {
  const sumOnly = metricForm.querySelector('[data-sum]');
  const kind = metricForm.elements.kind;
  kind.addEventListener('change', () => { sumOnly.hidden = kind.value !== 'sum'; });
  metricForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = new FormData(metricForm);
    const body = { name: data.get('name'), key: data.get('key'), kind: data.get('kind'),
      event: data.get('event'), window_days: Number(data.get('window_days')) };
    if (body.kind === 'sum') body.property = data.get('property');
    try {
      await api('POST', '/api/v1/metrics/', body);
      window.location.reload();
    } catch (err) { explain(err, document.getElementById('metric-error')); }
  });
}

const form = document.getElementById('experiment-form');
if (form) {
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const keys = String(data.get('variants')).split(',').map((s) => s.trim()).filter(Boolean);
    const body = {
      name: data.get('name'), key: data.get('key'), hypothesis: data.get('hypothesis'),
      primary_metric: data.get('primary_metric'),
      variants: keys.map((key) => ({ key, name: key, weight: 1 })),
      coverage: Number(data.get('coverage')) / 100,
    };
    try {
      const made = await api('POST', '/api/v1/experiments/', body);
      window.location.href = `/experiments/${made.id}/`;
    } catch (err) { explain(err, document.getElementById('experiment-error')); }
  });
}
