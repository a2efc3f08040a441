/* The JSON API from the pages: session auth, Django's CSRF token, and errors as thrown
   ApiErrors carrying the API's {"error": {"code", "message", "detail"}}. */

export function csrfToken() {
  const cookie = document.cookie.split(';').map((c) => c.trim())
    .find((c) => c.startsWith('csrftoken='));
  if (cookie) return decodeURIComponent(cookie.slice('csrftoken='.length));
  const input = document.querySelector('[name=csrfmiddlewaretoken]');
  return input ? input.value : '';
}

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || null;
    super((error && error.message) || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.body = body || {};
    this.code = error ? error.code : null;  // null: the answer was not an API error
    this.detail = (error && error.detail) || {};
  }
}

/* fetch() a JSON endpoint: resolves to the parsed answer ({} when it has no body), rejects
   with an ApiError for an error status, or with fetch's TypeError when the server is not
   reached. */
export async function api(method, url, body) {
  const headers = { Accept: 'application/json', 'X-CSRFToken': csrfToken() };
  const options = { method, credentials: 'same-origin', headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    options.body = JSON.stringify(body);
  }
  const response = await fetch(url, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export function getJSON(url) {
  return api('GET', url);
}

/* A validation error's messages by the path of the field they are about, as the API sends
   them in its one validation shape, detail {"fields": {"<path>": ["message", …]}}:
   {"rule.all[0].trait": ["expected a trait name"], "tags[1]": ["…"]}. Empty for other errors. */
export function fieldErrors(err) {
  const fields = (err && err.detail && err.detail.fields) || {};
  const out = {};
  Object.entries(fields).forEach(([path, messages]) => {
    out[path] = (Array.isArray(messages) ? messages : [messages]).map(String);
  });
  return out;
}
