/* The observed schema: each event's row ([data-toggle] = the id of its properties' row) opens
   and closes the list of its properties, on a click anywhere in the row or with its
   "N fields" button (the keyboard's way in, which says whether the list is open). */

document.querySelectorAll('.schema-event[data-toggle]').forEach((row) => {
  const button = row.querySelector('.fields-toggle');
  row.addEventListener('click', () => {
    const target = document.getElementById(row.dataset.toggle);
    if (!target) return;
    target.hidden = !target.hidden;
    row.classList.toggle('open', !target.hidden);
    if (button) button.setAttribute('aria-expanded', String(!target.hidden));
  });
});
