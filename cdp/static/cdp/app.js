/* Small helpers for every page: copy-to-clipboard buttons ([data-copy] holds the text, or
   [data-copy-from] the id of the element whose text to copy). */
(function () {
  function fallbackCopy(text) {
    // navigator.clipboard only exists in secure contexts; self-hosted installs may be plain http
    var area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.style.position = 'fixed';
    area.style.opacity = '0';
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
    area.remove();
    return ok ? Promise.resolve() : Promise.reject(new Error('copy failed'));
  }
  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(text); });
    }
    return fallbackCopy(text);
  }
  document.addEventListener('click', function (e) {
    var btn = e.target.closest('[data-copy], [data-copy-from]');
    if (!btn) return;
    e.preventDefault();
    var text = btn.dataset.copy;
    if (text === undefined) {
      var from = document.getElementById(btn.dataset.copyFrom);
      text = from ? from.textContent : '';
    }
    var label = btn.dataset.label || btn.textContent;
    btn.dataset.label = label;
    copy(text).then(function () { btn.textContent = 'Copied'; }, function () { btn.textContent = 'Press Ctrl+C'; })
      .then(function () { setTimeout(function () { btn.textContent = label; }, 1500); });
  });
})();
