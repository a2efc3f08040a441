/* The segment builder page: edits the rule as a tree (tree.js), previews who matches
   (preview.js), and saves, diffs and publishes the segment through the segments API; for an
   existing segment also its size over time, members (paged, searchable), the CSV export's
   columns, duplicate, discard, delete, sharing and versions.
   The API is the authority on rules: a 400 names the path of each bad node, which is mapped
   back onto the tree. The page data comes from {{ config|json_script:"segment-config" }}. */

import { api, fieldErrors } from '../cdp/lib/api.js';
import { el, pageData } from '../cdp/lib/dom.js';
import { exportColumns } from './export_columns.js';
import { clearFlash, goWithFlash, showFlash } from './flash.js';
import { membersTable } from './members.js';
import { livePreview, personLink } from './preview.js';
import { RuleModel } from './rule_model.js';
import { sharing } from './sharing.js';
import { sizeChart } from './size_chart.js';
import { ruleTree } from './tree.js';

const config = pageData('segment-config');
let segment = config.segment;
const editable = !!config.can_manage;
const suggest = config.suggestions || {};
const $ = (id) => document.getElementById(id);
const topError = $('builder-error');
const tagsInput = $('segment-tags');

showFlash();

function showTop(message) {
  topError.textContent = message || '';
  topError.hidden = !message;
}
/* A 400 answer's problems as [{path, message}]: those of the rule ("rule.all[0].trait"…), or
   those of the other fields. */
const isRulePath = (path) => path === 'rule' || /^rule[.[]/.test(path);
function problems(err, ofRule) {
  if (err.status !== 400) return [];
  return Object.entries(fieldErrors(err))
    .filter(([path]) => isRulePath(path) === ofRule)
    .flatMap(([path, messages]) => messages.map((message) => ({ path, message })));
}
const ruleErrors = (err) => problems(err, true);

const model = new RuleModel(config.language, suggest);
model.valuesUrl = config.api + 'values/';  // value suggestions (suggestions_data.js)
const tree = ruleTree({
  model,
  language: config.language,
  editable,
  rule: segment && (segment.draft || segment.published) ?
    (segment.draft || segment.published).rule : null,
  container: $('rule-tree'),
  jsonOut: $('rule-json'),
  onChange: () => preview.schedule(),
});
const preview = livePreview({ config, tree, showTop, ruleErrors });

// ---- save, diff, publish ------------------------------------------------------------------
let openedRule = null;  // the rule as the page opened, serialised (set once drawn)
const diffPanel = $('diff-panel');

function setBusy(busy, text) {
  ['save-draft', 'publish', 'confirm-publish'].forEach((id) => {
    const b = $(id);
    if (b) b.disabled = busy;
  });
  const status = $('save-status');
  if (status) status.textContent = text || '';
}
function failed(err) {
  setBusy(false, '');
  const errors = ruleErrors(err);
  const others = problems(err, false);
  if (errors.length) {
    // the rule's problems on its nodes; the rest (and any the tree cannot place) on top
    showTop([...tree.showErrors(errors), ...others.map((e) => `${e.path}: ${e.message}`)]
      .join('\n'));
  } else showTop(err.message);
  if (tagsInput && others.some(({ path }) => path === 'tags' || path.startsWith('tags['))) {
    tagsInput.classList.add('invalid');
    tagsInput.focus();
  }
}
function payload() {
  const tags = tagsInput ? tagsInput.value.split(',').map((t) => t.trim()).filter((t) => t) : [];
  const body = { name: $('segment-name').value.trim(), description: $('segment-description').value,
    tags };
  // an untouched rule is not sent: renaming or tagging a segment creates no draft
  const rule = tree.rule();
  if (!segment || JSON.stringify(rule) !== openedRule) body.rule = rule;
  return body;
}
function reloadWith(message, id) {
  goWithFlash(config.list_url + (id || segment.id) + '/', message);
}
function save(publish) {
  const name = $('segment-name');
  if (!name.value.trim()) {
    showTop('Give the segment a name.');
    name.focus();
    return;
  }
  showTop('');
  setBusy(true, publish ? 'Publishing…' : 'Saving…');
  if (!segment) {
    api('POST', config.api, { ...payload(), publish }).then((created) => {
      reloadWith(publish ? 'Published: ' + created.member_count + ' members.' :
        'Saved as a draft.', created.id);
    }).catch(failed);
    return;
  }
  api('PATCH', config.api + segment.id + '/', payload()).then((updated) => {
    segment = updated;
    const pending = updated.draft && !updated.draft.published_at;
    if (!pending && updated.published) {
      // the rule is the live one (only the name, description or tags changed)
      reloadWith('Saved. The rule is the live one (version ' + updated.published.number +
        '): nothing to publish.');
      return undefined;
    }
    if (!publish) { reloadWith('Draft saved (version ' + updated.draft.number + ').'); return undefined; }
    if (updated.status !== 'published') return publishNow();
    return api('GET', config.api + segment.id + '/diff/').then(showDiff);
  }).catch(failed);
}
function sampleList(target, people) {
  target.replaceChildren(...(people.length ? people.map((p) => el('li', null, personLink(p, config))) :
    [el('li', 'muted', 'nobody')]));
}
function showDiff(diff) {
  setBusy(false, 'Review the change, then publish.');
  $('diff-now').textContent = diff.members_now;
  $('diff-after').textContent = diff.members_after;
  $('diff-entering').textContent = '+' + diff.entering;
  $('diff-leaving').textContent = '−' + diff.leaving;
  $('diff-version').textContent = 'v' + diff.draft_version;
  sampleList($('diff-entering-sample'), diff.entering_sample);
  sampleList($('diff-leaving-sample'), diff.leaving_sample);
  diffPanel.hidden = false;
  diffPanel.scrollIntoView({ block: 'nearest' });
}
function publishNow() {
  setBusy(true, 'Publishing…');
  return api('POST', config.api + segment.id + '/publish/').then((result) => {
    reloadWith('Published version ' + result.version + ': ' + result.members + ' members (' +
      result.entered + ' entered, ' + result.exited + ' left).');
  }).catch(failed);
}
if (tagsInput) tagsInput.addEventListener('input', () => tagsInput.classList.remove('invalid'));
if (editable) {
  $('save-draft').addEventListener('click', () => save(false));
  $('publish').addEventListener('click', () => save(true));
  $('confirm-publish').addEventListener('click', publishNow);
  $('cancel-publish').addEventListener('click', () => {
    diffPanel.hidden = true;
    setBusy(false, 'Not published; the draft is saved.');
  });
}

// ---- an existing segment: duplicate, discard, delete, versions ----------------------------
function inUseMessage(err) {
  const used = err.detail.segments || [];
  const one = used.length === 1;
  return el('div', 'in-use',
    el('strong', null, '“' + segment.name + '” was not deleted: '),
    one ? 'another segment uses it in its rule. ' :
      used.length + ' other segments use it in their rules. ',
    'Remove the condition from ' + (one ? 'that segment' : 'those segments') + ' (or delete ' +
      (one ? 'it' : 'them') + ') first:',
    el('ul', 'in-use-list', used.map((s) => el('li', null,
      el('a', { href: config.list_url + s.id + '/' }, s.name),
      el('span', 'muted small', ' ' + s.key)))));
}
/* An action button of an existing segment: `run` returns the API call's promise; a failure
   enables the button again and shows the error (`onError`, or the common way). */
function action(id, run, onError) {
  const b = $(id);
  if (!b) return;
  b.addEventListener('click', () => {
    const call = run(b);
    if (!call) return;
    b.disabled = true;
    call.catch((err) => {
      b.disabled = false;
      clearFlash();
      (onError || failed)(err);
    });
  });
}
function wireExisting() {
  sizeChart(config, segment);
  membersTable();
  exportColumns();
  action('duplicate-segment', () => api('POST', config.api + segment.id + '/duplicate/', {})
    .then((copy) => goWithFlash(config.list_url + copy.id + '/', 'Duplicated "' + segment.name +
      '" as "' + copy.name + '": a draft of your own, not published. Rename it and change the rule.')));
  if (!editable) return;
  action('discard-draft', () => {
    if (!window.confirm('Discard the unpublished changes to "' + segment.name + '"? ' +
        'The published version (v' + segment.published.number + ') stays live.')) return null;
    return api('DELETE', config.api + segment.id + '/draft/')
      .then(() => reloadWith('Draft discarded: the published version is unchanged.'));
  });
  action('delete-segment', () => {
    if (!window.confirm('Delete "' + segment.name + '" and its membership history? ' +
        'This cannot be undone.')) return null;
    return api('DELETE', config.api + segment.id + '/')
      .then(() => goWithFlash(config.list_url, 'Deleted "' + segment.name + '".'));
  }, (err) => {
    if (err.code !== 'segment_in_use') { failed(err); return; }
    topError.replaceChildren(inUseMessage(err));
    topError.hidden = false;
    topError.scrollIntoView({ block: 'center' });
  });
  sharing(config, segment);
  document.querySelectorAll('#versions-table [data-restore]').forEach((b) => {
    b.addEventListener('click', () => {
      const number = b.getAttribute('data-restore');
      b.disabled = true;
      api('POST', config.api + segment.id + '/versions/' + number + '/restore/').then((updated) => {
        reloadWith(updated.draft ?
          'Version ' + number + ' restored as the draft (v' + updated.draft.number +
          '): publish to make it live.' :
          'Version ' + number + ' has the live rule: there is nothing to publish.');
      }).catch((err) => { b.disabled = false; clearFlash(); failed(err); });
    });
  });
}

// ---- start --------------------------------------------------------------------------------
tree.render();
openedRule = JSON.stringify(tree.rule());
preview.run();
if (segment) wireExisting();
