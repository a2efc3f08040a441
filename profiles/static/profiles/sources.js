/* A source's page: the tab bars ([data-tabs]) switch which [data-panel] shows (the snippets of
   each SDK). */

document.querySelectorAll('[data-tabs]').forEach((bar) => {
  bar.addEventListener('click', (e) => {
    const tab = e.target.closest('.tab');
    if (!tab) return;
    bar.querySelectorAll('.tab').forEach((t) => t.classList.toggle('active', t === tab));
    // the panels of this bar's card only (the page has one bar per kind of SDK)
    bar.closest('section').querySelectorAll('[data-panel]').forEach((p) => {
      p.hidden = p.dataset.panel !== tab.dataset.tab;
    });
  });
});
