/* The members table of a segment's page: paging and searching (name, email or user id) swap
   in the table rendered by the page's members/ view — the template the page itself was
   rendered with — without reloading the page, so an unsaved rule in the builder stays as it
   is. The address bar follows (a reload shows the same page of members). Without scripts the
   pager links and the search form reload the page instead. */

import { el } from '../cdp/lib/dom.js';

const SEARCH_DELAY_MS = 300;

export function membersTable() {
  const card = document.getElementById('members');
  const results = document.getElementById('members-results');
  if (!card || !results || !card.dataset.url) return;
  const form = document.getElementById('members-search');
  const q = document.getElementById('members-q');
  let sequence = 0, timer = null;

  function load(query) {
    const mine = ++sequence;
    card.classList.add('loading');
    fetch(card.dataset.url + (query ? '?' + query : ''),
      { credentials: 'same-origin', headers: { Accept: 'text/html' } })
      .then((response) => {
        if (!response.ok) throw new Error('HTTP ' + response.status);
        return response.text();
      })
      .then((html) => {
        if (mine !== sequence) return;  // a later page or search won
        card.classList.remove('loading');
        const parsed = document.createElement('template');
        parsed.innerHTML = html;
        results.replaceChildren(parsed.content);
        const url = new URL(window.location.href);
        url.search = query;
        window.history.replaceState(window.history.state, '', url);
      })
      .catch((err) => {
        if (mine !== sequence) return;
        card.classList.remove('loading');
        results.replaceChildren(el('p', 'msg error', 'Could not load the members: ' + err.message));
      });
  }
  function search() {
    const params = new URLSearchParams();
    if (q.value.trim()) params.set('q', q.value.trim());
    load(params.toString());
  }
  results.addEventListener('click', (e) => {
    const link = e.target.closest('.pager a[href]');
    if (!link || e.ctrlKey || e.metaKey || e.shiftKey) return;
    e.preventDefault();
    load(new URL(link.href).search.slice(1));
    card.scrollIntoView({ block: 'nearest' });
  });
  if (form && q) {
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      clearTimeout(timer);
      search();
    });
    q.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(search, SEARCH_DELAY_MS);
    });
  }
}
