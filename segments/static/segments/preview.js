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

export function personLink(p, config) {
  return el('a', { href: config.profile_url + p.id + '/' }, personName(p));
}

/* options: {config, tree, showTop(message), ruleErrors(err) -> [{path, message}]} */
export function livePreview({ config, tree, showTop, ruleErrors }) {
  const countOut = document.getElementById('preview-count');
  const metaOut = document.getElementById('preview-meta');
  const sampleOut = document.getElementById('preview-sample');
  const panel = document.getElementById('preview');
  let timer = null, sequence = 0;

  function idle(message) {
    tree.clearErrors();
    showTop('');
    countOut.textContent = '—';
    delete countOut.dataset.count;
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
    metaOut.textContent = (data.count === 1 ? 'profile' : 'profiles') + ' · counted in ' +
      data.milliseconds + ' ms';
    sampleOut.replaceChildren(...data.sample.map((p) => {
      const ids = (p.identities || []).filter((i) => i.type !== 'anonymous_id');
      return el('li', null, personLink(p, config),
        ids.length ? el('span', 'muted small', ' ' + ids[0].value) : null);
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
