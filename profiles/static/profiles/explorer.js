/* The profile explorer's filters that need more than a form field: a registered filter with
   a client-side editor (config from {{ explorer_config|json_script:"explorer-config" }}).
   Kind "rule" is the segment builder's own condition editor — its modules (the rule tree,
   the rule model, the form controls) are loaded from the URLs the registering app gives, so
   this page does not copy them nor name the app they come from. The editor writes the rule
   as JSON into the filter's hidden field when the form is submitted; the server checks it
   and its errors come back on the nodes they name. Empty fields are left out of the URL. */

import { el, pageData } from '../cdp/lib/dom.js';

const config = pageData('explorer-config') || { filters: [], errors: [] };
const form = document.getElementById('explorer-form');
const editors = [];  // {param, input, tree, status}

async function ruleEditor(filter) {
  const { param, editor } = filter;
  const input = document.getElementById(`explorer-input-${param}`);
  const container = document.getElementById(`explorer-tree-${param}`);
  const jsonOut = document.getElementById(`explorer-json-${param}`);
  const status = document.getElementById(`explorer-status-${param}`);
  if (!input || !container) return;
  const [treeModule, modelModule, controlsModule] = await Promise.all([
    import(editor.modules.tree), import(editor.modules.model), import(editor.modules.controls),
  ]);
  const suggest = editor.suggestions || {};
  controlsModule.datalist('dl-traits', suggest.traits || []);
  controlsModule.datalist('dl-events', suggest.events || []);
  let rule = null;
  if (input.value.trim()) {
    try { rule = JSON.parse(input.value); } catch (e) { rule = input.value; }
  }
  const tree = treeModule.ruleTree({
    model: new modelModule.RuleModel(editor.language, suggest),
    language: editor.language,
    editable: true,
    rule,
    container,
    jsonOut,
    onChange: () => { if (status) status.textContent = 'Apply to filter the list.'; },
  });
  tree.render();
  const errors = (config.errors || []).filter((e) => e.path === param ||
    e.path.startsWith(param + '.') || e.path.startsWith(param + '['));
  if (errors.length) {
    const unplaced = tree.showErrors(errors);
    if (unplaced.length && status) status.textContent = unplaced.join('; ');
    container.closest('details').open = true;
  }
  editors.push({ param, input, tree, status });
}

function beforeSubmit(e) {
  for (const { input, tree, status } of editors) {
    const applying = e.submitter && e.submitter.id.startsWith('explorer-apply-');
    if (tree.isEmpty()) {
      input.value = '';
    } else if (!tree.isIncomplete()) {
      input.value = JSON.stringify(tree.rule());
    } else if (applying) {
      // a condition still being filled in: say so here rather than send half a rule
      e.preventDefault();
      status.textContent = 'Finish each condition (a name and a value) first.';
      status.classList.add('bad-ink');
      return;
    }  // else (another field changed): the conditions in use stay as they were
  }
  // a clean, shareable address: no empty parameters, no default order
  form.querySelectorAll('input[name], select[name]').forEach((field) => {
    if (field.value === '' || (field.name === 'order' && field.value === '-created')) {
      field.disabled = true;
    }
  });
  // the fields come back enabled when the page is shown again from the history
  window.addEventListener('pageshow', () => {
    form.querySelectorAll('[name]').forEach((field) => { field.disabled = false; });
  }, { once: true });
}

if (form) {
  form.addEventListener('submit', beforeSubmit);
  // a pick list applies at once, through the submit event (so the editors write their rule)
  form.addEventListener('change', (e) => {
    if (e.target.matches('select[data-apply]')) form.requestSubmit();
  });
  form.querySelectorAll('[data-remove]').forEach((button) => {
    button.addEventListener('click', () => {
      const param = button.dataset.remove;
      const entry = editors.find((x) => x.param === param);
      if (entry) entry.tree = { isEmpty: () => true };
      document.getElementById(`explorer-input-${param}`).value = '';
      form.requestSubmit();
    });
  });
  Promise.all((config.filters || []).filter((f) => f.editor && f.editor.kind === 'rule')
    .map((f) => ruleEditor(f).catch((err) => {
      const box = document.getElementById(`explorer-tree-${f.param}`);
      if (box) box.replaceChildren(el('p', 'msg error', `The editor did not load: ${err.message}`));
    })));
}
