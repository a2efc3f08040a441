/* Sharing a segment with marketers: the grants table and the select of candidates are redrawn
   from the API's answers, without reloading the page. */

import { api } from '../cdp/lib/api.js';
import { el } from '../cdp/lib/dom.js';

export function sharing(config, segment) {
  const table = document.getElementById('grants-table');
  if (!table) return;
  const body = table.querySelector('tbody');
  const choose = document.getElementById('grant-user');
  const grantForm = document.getElementById('grant-form');
  const noCandidates = document.getElementById('no-candidates');
  const errorBox = document.getElementById('sharing-error');
  const statusBox = document.getElementById('sharing-status');
  const grantButton = document.getElementById('grant');
  const grantsUrl = `${config.api}${segment.id}/grants/`;

  function say(message, isError) {
    errorBox.textContent = isError ? message : '';
    errorBox.hidden = !isError;
    statusBox.textContent = isError ? '' : message;
    statusBox.hidden = !!isError;
  }
  function syncCandidates() {
    const any = choose.options.length > 0;
    grantForm.hidden = !any;
    noCandidates.hidden = any;
  }
  function addCandidate(id, name) {
    const before = Array.from(choose.options).find((o) => o.text > name);
    choose.insertBefore(el('option', { value: String(id) }, name), before || null);
    syncCandidates();
  }
  function grantRow(g) {
    return el('tr', { dataset: { user: g.user_id, username: g.username } },
      el('td', null, g.username),
      el('td', null, el('span', 'pill off', 'Can edit')),
      el('td', 'num', el('button', { class: 'button small danger', type: 'button',
        'data-revoke': g.user_id }, 'Revoke')));
  }
  function showGrants(grants) {
    body.querySelectorAll('tr:not(.owner-row)').forEach((tr) => tr.remove());
    const shared = grants.filter((g) => !g.owner);
    body.append(...shared.map(grantRow));
    if (!shared.length) {
      body.append(el('tr', 'no-grants',
        el('td', { class: 'muted', colSpan: 3 }, 'Not shared with anyone yet.')));
    }
  }

  if (grantButton) grantButton.addEventListener('click', () => {
    const option = choose.selectedOptions[0];
    if (!option) return;
    grantButton.disabled = true;
    api('POST', grantsUrl, { user_id: Number(option.value) })
      .then((data) => {
        option.remove();
        syncCandidates();
        showGrants(data.grants || []);
        say(option.text + ' can now edit and publish this segment.');
      })
      .catch((err) => say(err.message, true))
      .then(() => { grantButton.disabled = false; });
  });
  body.addEventListener('click', (e) => {
    const b = e.target.closest('[data-revoke]');
    if (!b) return;
    const row = b.closest('tr');
    const name = row.dataset.username;
    const user = b.getAttribute('data-revoke');
    b.disabled = true;
    api('DELETE', grantsUrl + user + '/')
      .then(() => {
        row.remove();
        if (!body.querySelector('tr[data-user]')) showGrants([]);
        addCandidate(user, name);
        say('Access revoked: ' + name + ' can no longer edit this segment.');
      })
      .catch((err) => { b.disabled = false; say(err.message, true); });
  });
}
