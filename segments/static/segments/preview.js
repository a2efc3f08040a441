/* The live preview beside the rule: how many profiles match it now and a sample of them,
   asked of the segments API a moment after the last edit. */

import { api } from '../cdp/lib/api.js';
import { el } from '../cdp/lib/dom.js';
import { grouped } from '../cdp/lib/format.js';

const DEBOUNCE_MS = 400;
const SAMPLE = 10;

export function personName(p) {
  return p.display_name || ('Profile #' + p.id);
}

/* What to show under a person's name: their email, else their user id, else their anonymous
   id (never a device id, and never the name again). */
export function personDetail(p) {
  const ids = p.identities || [];
  const first = (type) => (ids.find((i) => i.type === type) || {}).value;
  return [first('email'), first('user_id'), first('anonymous_id')]
    .find((v) => v && v !== personName(p)) || '';
}

/* "14 %" of a count out of a total: whole percents, tenths below 1 %, "< 0.1 %" above 0. */
export function share(count, total) {
  if (!total) return '';
  const pct = (100 * count) / total;
  if (pct === 0) return '0 %';
  if (pct < 0.1) return '< 0.1 %';
  if (pct < 1) return pct.toFixed(1) + ' %';
  if (pct > 99 && count < total) return '> 99 %';
  return Math.round(pct) + ' %';
}

export function personLink(p, config) {
  return el('a', { href: config.profile_url + p.id + '/' }, personName(p));
}

/* options: {config, tree, showTop(message), ruleErrors(err) -> [{path, message}]} */
export function livePreview({ config, tree, showTop, ruleErrors }) {
  const countOut = document.getElementById('preview-count');
  const ofOut = document.getElementById('preview-of');
  const metaOut = document.getElementById('preview-meta');
  const sampleOut = document.getElementById('preview-sample');
  const panel = document.getElementById('preview');
  let timer = null, sequence = 0;

  function idle(message) {
    tree.clearErrors();
    showTop('');
    countOut.textContent = '—';
    delete countOut.dataset.count;
    if (ofOut) ofOut.textContent = '';
    metaOut.textContent = message;
    sampleOut.textContent = '';
    panel.classList.remove('stale', 'invalid');
  }
  function shown(data) {
    tree.clearErrors();
    showTop('');
    panel.classList.remove('stale', 'invalid');
    countOut.textContent = grouped(data.count);
    countOut.dataset.count = data.count;
    if (ofOut && data.total !== undefined) {
      ofOut.textContent = 'of ' + grouped(data.total) +
        (data.total ? ' (' + share(data.count, data.total) + ')' : '');
      ofOut.dataset.total = data.total;
    }
    metaOut.textContent = (data.count === 1 ? 'profile' : 'profiles') + ' · counted in ' +
      data.milliseconds + ' ms';
    sampleOut.replaceChildren(...data.sample.map((p) => {
      const detail = personDetail(p);
      return el('li', null, personLink(p, config),
        detail ? el('div', 'muted small sample-detail', detail) : null);
    }));
    if (data.count > data.sample.length) {
      sampleOut.append(el('li', 'muted small more',
        '… and ' + grouped(data.count - data.sample.length) + ' more'));
    }
  }
  function failed(err) {
    panel.classList.remove('stale');
    panel.classList.add('invalid');
    countOut.textContent = '—';
    delete countOut.dataset.count;
    if (ofOut) ofOut.textContent = '';
    sampleOut.textContent = '';
    const errors = ruleErrors(err);
    if (errors.length) {
      metaOut.textContent = 'Fix the rule to see a count.';
      showTop(tree.showErrors(errors).join('\n'));
    } else {
      metaOut.textContent = 'Could not count.';
      showTop(err.message);
    }
  }
  function run() {
    const mine = ++sequence;
    if (tree.isEmpty()) { idle('Add a condition to see who matches.'); return; }
    if (tree.isIncomplete()) { idle('Finish the conditions to see who matches.'); return; }
    metaOut.textContent = 'Counting…';
    api('POST', config.api + 'preview/', { rule: tree.rule(), sample: SAMPLE })
      .then((data) => { if (mine === sequence) shown(data); })
      .catch((err) => { if (mine === sequence) failed(err); });
  }
  return {
    run,
    schedule() {
      clearTimeout(timer);
      panel.classList.add('stale');
      timer = setTimeout(run, DEBOUNCE_MS);
    },
  };
}
