/* The retention form: a "keep forever" checkbox ([data-toggles] = the id of its number of
   days) disables that number while checked. */

document.querySelectorAll('input[data-toggles]').forEach((box) => {
  const input = document.getElementById(box.dataset.toggles);
  const sync = () => { input.disabled = box.checked; };
  box.addEventListener('change', sync);
  sync();
});
