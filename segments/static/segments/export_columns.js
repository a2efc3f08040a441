/* The CSV export's trait columns: the ticked traits of the Columns panel go into the Export
   link's ?traits= (one column each); the panel closes on Esc or a click elsewhere. */

export function exportColumns() {
  const link = document.getElementById('export-csv');
  const panel = document.getElementById('export-columns');
  if (!link || !panel) return;
  const boxes = [...panel.querySelectorAll('input[name=traits]')];
  const count = document.getElementById('export-count');

  function update() {
    const chosen = boxes.filter((b) => b.checked && !b.disabled).map((b) => b.value);
    const url = new URL(link.href, window.location.href);
    url.search = 'traits=' + chosen.map(encodeURIComponent).join(',');
    link.setAttribute('href', url.pathname + url.search);
    if (count) count.textContent = String(chosen.length);
  }
  boxes.forEach((b) => b.addEventListener('change', update));
  document.addEventListener('click', (e) => {
    if (panel.open && !panel.contains(e.target)) panel.open = false;
  });
  panel.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && panel.open) {
      panel.open = false;
      panel.querySelector('summary').focus();
    }
  });
  update();
}
