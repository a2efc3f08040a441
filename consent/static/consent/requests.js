/* The privacy requests page: "keep the person out afterwards" is offered for deletions only. */

const option = document.getElementById('suppress-option');
const types = document.querySelectorAll('input[name=type]');

function sync() {
  const chosen = document.querySelector('input[name=type]:checked');
  option.hidden = !chosen || chosen.value !== 'delete';
}

if (option) {
  types.forEach((radio) => radio.addEventListener('change', sync));
  sync();
}
