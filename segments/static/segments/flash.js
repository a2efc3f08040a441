/* A message left for the next page (saved, published, deleted…), shown there once at the top;
   the segment pages navigate after each API call instead of posting a form, so Django's
   messages cannot carry it. */

const KEY = 'cdp-segment-flash';

export function showFlash() {
  try {
    const text = sessionStorage.getItem(KEY);
    const head = document.querySelector('.content > .page-head');
    if (!text || !head) return;
    sessionStorage.removeItem(KEY);
    const note = document.createElement('div');
    note.className = 'msg success';
    note.id = 'segment-flash';
    note.setAttribute('role', 'status');
    note.textContent = text;
    head.after(note);
  } catch (e) { /* private mode */ }
}

/* The page shows one message at a time: a new error replaces the last flash. */
export function clearFlash() {
  const flash = document.getElementById('segment-flash');
  if (flash) flash.remove();
}

/* Go to `url`, where `message` is shown. */
export function goWithFlash(url, message) {
  try { sessionStorage.setItem(KEY, message); } catch (e) { /* private mode */ }
  window.location.href = url;
}
