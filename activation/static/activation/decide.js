/* decide.js: personalisation for customer websites, without dependencies or a build step.
   Asks the CDP's decision API (`/v1/decide`, browser mode: the source's write key, the page's
   origin in the source's allowed origins) which offer each placement shows this visitor and
   which variant of each experiment, fills the page's placements and records what was seen.

     import { createDecide } from 'https://cdp.example.com/static/activation/decide.js';

     const decide = createDecide({
       host: 'https://cdp.example.com',  // the CDP (where /v1/decide and /v1/track live)
       writeKey: 'WK…',                  // a source's write key
       userId: 'u-42',                   // optional: the signed-in visitor
       anonymousId: '…',                 // optional; by default analytics.js's ajs_anonymous_id
                                         // when the page has one, else our own, kept in
                                         // localStorage under "cdp_anonymous_id"
       sessionCache: true,               // reuse answers within the tab's session
       cacheTtlMs: 1800000,              // … for at most this long (30 min)
       timeoutMs: 800,                   // after this, the page keeps its defaults
     });

     const answer = await decide.get({ placements: ['home_hero'], experiments: ['hero_test'],
                                       context: { campaign: 'spring' }, traits: { plan: 'pro' } });
     await decide.fill();                 // or fill(someElement, { experiments: [...] })
     decide.variant('hero_test');         // {variant, payload} from the answers so far
     decide.impression('home_hero', 'spring_sale');  // what fill() does when the offer is seen

   get(request) answers `{profile_id, traits, segments, experiments: {key: {variant, payload}},
   placements: {name: {offer, content, reason}}, recommendations, degraded, request_id}`.
   `context.page` (url, path, referrer, title) and `context.locale` (navigator.language) are
   added; what the caller passes wins. With `sessionCache`, an answer is kept in
   sessionStorage under a key of the whole request except page.referrer and page.title (which
   change between visits of the same page): pass `sessionCache: false` when offers depend on
   them. Degraded answers are never kept.

   fill(root = document, request) finds the elements with `data-placement="name"` under root,
   asks for those placements in one request (with request's experiments, context, traits)
   and, where the answer names an offer, puts the offer's content into the element: each
   content field into the element's `[data-field="field"]` descendants (an <img> gets the
   value as src, or as alt for `alt`; an <a> gets `url`/`href`/`link` as href; anything else
   as text), `image` into the element's <img>s and `url`/`href` into its <a>s when no
   descendant names the field; then `data-offer="offer key"` on the element. It resolves to
   the answer. Only textContent and attributes are set (never HTML), and only http(s)
   addresses (links also mailto: and tel:). Where the answer has no offer, or is degraded, or
   on any error, the element keeps its own markup: the default. A filled element's impression
   (an `Offer Viewed` track event with {offer_id, placement} to /v1/track, which the frequency
   caps count) is sent once half of it is on screen (IntersectionObserver; at once without
   one), while the page itself is visible, at most once per page view and placement.

   Nothing here throws to the page: a network error, a timeout, a refusal (e.g. an origin
   that is not allowed) resolve to a default answer `{degraded: true, placements: {}, error}`
   (error: 'timeout', 'network', or the API's error code such as 'rate_limited') and the page
   keeps its defaults. An answer from the session cache has `cached: true`; `decide.lastAnswer`
   is the latest. A site with a Content-Security-Policy allows the CDP's host in script-src
   (this module), connect-src (/v1/decide, /v1/track) and img-src (offers' images). */

const VERSION = '1.0.0';
const LIBRARY = 'cdp-decide.js';
const ANON_KEY = 'cdp_anonymous_id';
const AJS_ANON_KEY = 'ajs_anonymous_id';
const CACHE_PREFIX = 'cdp_decide:';
const OFFER_VIEWED = 'Offer Viewed';
const DEFAULTS = { sessionCache: true, cacheTtlMs: 30 * 60 * 1000, timeoutMs: 800 };
const LINK_FIELDS = new Set(['url', 'href', 'link']);
const IMAGE_FIELDS = new Set(['image', 'image_url', 'src']);
const LINK_SCHEMES = new Set(['http:', 'https:', 'mailto:', 'tel:']);
const IMAGE_SCHEMES = new Set(['http:', 'https:']);
const VISIBLE_RATIO = 0.5;

// impressions sent in this page view (a module runs once per document): host, key, placement
const viewed = new Set();
let memoryAnonymousId = null;  // when the browser keeps no storage for this page

const isObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);

function store(kind) {
  try {
    return window[kind] || null;  // reading it throws where storage is blocked
  } catch (err) {
    return null;
  }
}

function read(kind, key) {
  try {
    const storage = store(kind);
    return storage ? storage.getItem(key) : null;
  } catch (err) {
    return null;
  }
}

function write(kind, key, value) {
  try {
    const storage = store(kind);
    if (!storage) return false;
    storage.setItem(key, value);
    return true;
  } catch (err) {
    return false;
  }
}

function uuid() {
  const c = typeof crypto !== 'undefined' ? crypto : null;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();  // secure contexts only
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === 'function') c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i += 1) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)]
    .join('-');
}

function unquote(text) {
  // analytics.js keeps ids JSON-encoded ("\"id\""), in cookies also URL-encoded
  if (typeof text !== 'string' || !text) return null;
  let value = text;
  try { value = decodeURIComponent(value); } catch (err) { /* keep it as it is */ }
  try {
    const parsed = JSON.parse(value);
    if (typeof parsed === 'string' || typeof parsed === 'number') value = String(parsed);
  } catch (err) { /* not JSON: the id itself */ }
  value = value.trim();
  return value && value !== 'null' && value !== 'undefined' ? value : null;
}

function cookie(name) {
  try {
    const found = document.cookie.split('; ').find((part) => part.startsWith(`${name}=`));
    return found ? found.slice(name.length + 1) : null;
  } catch (err) {
    return null;
  }
}

function anonymousIdOfPage() {
  // analytics.js's id first: decisions and the site's own events then meet on one profile
  const ajs = unquote(read('localStorage', AJS_ANON_KEY)) || unquote(cookie(AJS_ANON_KEY));
  if (ajs) return ajs;
  const ours = unquote(read('localStorage', ANON_KEY));
  if (ours) return ours;
  const made = memoryAnonymousId || uuid();
  if (!write('localStorage', ANON_KEY, made)) memoryAnonymousId = made;
  return made;
}

function pageContext() {
  try {
    return {
      url: location.href,
      path: location.pathname,
      referrer: document.referrer,
      title: document.title,
    };
  } catch (err) {
    return {};
  }
}

function locale() {
  try {
    return navigator.language || undefined;
  } catch (err) {
    return undefined;
  }
}

function stable(value) {
  // JSON with sorted keys: the same request is the same cache key whatever the key order
  if (Array.isArray(value)) return `[${value.map(stable).join(',')}]`;
  if (isObject(value)) {
    return `{${Object.keys(value).sort().filter((k) => value[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stable(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value === undefined ? null : value);
}

function hash(text) {
  // cyrb53: a short storage key; the entry keeps the whole key to rule out collisions
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i += 1) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(36);
}

function names(value) {
  if (value === undefined || value === null) return undefined;
  const list = Array.isArray(value) ? value : [value];
  return Array.from(new Set(list.filter((v) => typeof v === 'string' && v)));
}

function defaultAnswer(experiments, error) {
  const variants = {};
  for (const key of experiments || []) variants[key] = { variant: null, payload: null };
  return {
    profile_id: null,
    traits: {},
    segments: [],
    experiments: variants,
    placements: {},
    recommendations: {},
    degraded: true,
    request_id: null,
    error,
  };
}

function normalised(data, experiments) {
  if (!isObject(data) || !isObject(data.placements)) {
    return defaultAnswer(experiments, 'invalid_answer');
  }
  return {
    ...data,
    traits: isObject(data.traits) ? data.traits : {},
    segments: Array.isArray(data.segments) ? data.segments : [],
    experiments: isObject(data.experiments) ? data.experiments : {},
    recommendations: isObject(data.recommendations) ? data.recommendations : {},
    degraded: data.degraded === true,
  };
}

// ---- the page's elements ----------------------------------------------------------------

function safeUrl(value, schemes) {
  try {
    const url = new URL(value, document.baseURI);
    return schemes.has(url.protocol) ? url.href : null;
  } catch (err) {
    return null;
  }
}

function ownedBy(element, node) {
  // a placement inside another one fills its own fields
  return node.closest('[data-placement]') === element;
}

function targets(element, field) {
  const named = Array.from(element.querySelectorAll('[data-field]'))
    .filter((node) => node.getAttribute('data-field') === field && ownedBy(element, node));
  if (named.length) return named;
  if (IMAGE_FIELDS.has(field) || field === 'alt') {
    return Array.from(element.querySelectorAll('img:not([data-field])'))
      .filter((node) => ownedBy(element, node));
  }
  if (LINK_FIELDS.has(field)) {
    const links = Array.from(element.querySelectorAll('a:not([data-field])'))
      .filter((node) => ownedBy(element, node));
    return element.tagName === 'A' ? [element, ...links] : links;
  }
  return [];
}

function put(node, field, text) {
  const tag = node.tagName;
  if (tag === 'IMG') {
    if (field === 'alt') {
      node.setAttribute('alt', text);
    } else {
      const src = safeUrl(text, IMAGE_SCHEMES);
      if (src) node.setAttribute('src', src);
    }
  } else if ((tag === 'A' || tag === 'AREA') && LINK_FIELDS.has(field)) {
    const href = safeUrl(text, LINK_SCHEMES);
    if (href) node.setAttribute('href', href);
  } else {
    node.textContent = text;
  }
}

function apply(element, content) {
  for (const [field, value] of Object.entries(content)) {
    if (value === null || value === undefined || typeof value === 'object') continue;
    const text = String(value);
    for (const node of targets(element, field)) put(node, field, text);
  }
}

function placementElements(root) {
  const scope = root || document;
  const found = typeof scope.querySelectorAll === 'function'
    ? Array.from(scope.querySelectorAll('[data-placement]')) : [];
  if (scope.nodeType === 1 && scope.hasAttribute('data-placement')) found.unshift(scope);
  return found.filter((node) => node.getAttribute('data-placement'));
}

function seen(entry) {
  if (!entry.isIntersecting) return false;
  if (entry.intersectionRatio >= VISIBLE_RATIO) return true;
  // taller than twice the viewport: half the viewport covered counts
  const bounds = entry.rootBounds;
  return Boolean(bounds && entry.intersectionRect.height >= bounds.height * VISIBLE_RATIO);
}

function whenPageVisible(then) {
  // a page prerendered or opened in a background tab has shown nothing yet
  if (typeof document === 'undefined' || document.visibilityState !== 'hidden') {
    then();
    return;
  }
  const shown = () => {
    if (document.visibilityState === 'hidden') return;
    document.removeEventListener('visibilitychange', shown);
    then();
  };
  document.addEventListener('visibilitychange', shown);
}

// ---- the client -------------------------------------------------------------------------

export function createDecide(options = {}) {
  const settings = { ...DEFAULTS, ...(isObject(options) ? options : {}) };
  const host = typeof settings.host === 'string' ? settings.host.replace(/\/+$/, '') : '';
  const writeKey = typeof settings.writeKey === 'string' ? settings.writeKey.trim() : '';
  const positive = (value, fallback) => (Number(value) > 0 ? Number(value) : fallback);
  const timeoutMs = positive(settings.timeoutMs, DEFAULTS.timeoutMs);
  const ttl = positive(settings.cacheTtlMs, DEFAULTS.cacheTtlMs);
  const misconfigured = !host || !writeKey;
  if (misconfigured) {
    try {
      console.warn('decide.js: createDecide needs {host, writeKey}; the page keeps its defaults.');
    } catch (err) { /* no console */ }
  }
  const pending = new Map();  // cache key -> the request under way
  const variants = {};  // experiment key -> {variant, payload}, the latest answer's
  const watched = new WeakMap();  // element -> its IntersectionObserver
  let anonymousId = null;
  let last = null;

  function ids() {
    const userId = settings.userId === undefined || settings.userId === null
      ? undefined : String(settings.userId);
    if (!anonymousId) {
      anonymousId = settings.anonymousId ? String(settings.anonymousId) : anonymousIdOfPage();
    }
    return { userId, anonymousId };
  }

  function body(request) {
    const given = isObject(request.context) ? request.context : {};
    const page = { ...pageContext(), ...(isObject(given.page) ? given.page : {}) };
    const context = { ...given, page };
    if (context.locale === undefined && locale()) context.locale = locale();
    return {
      writeKey,
      ...ids(),
      placements: names(request.placements),
      experiments: names(request.experiments) || [],
      context,
      traits: isObject(request.traits) ? request.traits : undefined,
    };
  }

  function cacheKey(sent) {
    const page = { ...sent.context.page };
    delete page.referrer;
    delete page.title;
    return stable([host, { ...sent, context: { ...sent.context, page } }]);
  }

  function cached(key) {
    if (!settings.sessionCache) return null;
    try {
      const entry = JSON.parse(read('sessionStorage', CACHE_PREFIX + hash(key)) || 'null');
      if (!isObject(entry) || entry.k !== key || !(Date.now() - entry.t < ttl)) return null;
      return isObject(entry.a) ? entry.a : null;
    } catch (err) {
      return null;
    }
  }

  function keep(key, answer) {
    if (!settings.sessionCache || answer.degraded) return;
    const text = JSON.stringify({ k: key, t: Date.now(), a: answer });
    if (write('sessionStorage', CACHE_PREFIX + hash(key), text)) return;
    // full: drop our older answers and try once more
    try {
      const storage = store('sessionStorage');
      if (!storage) return;
      for (let i = storage.length - 1; i >= 0; i -= 1) {
        const name = storage.key(i);
        if (name && name.startsWith(CACHE_PREFIX)) storage.removeItem(name);
      }
    } catch (err) { /* nothing more to do */ }
    write('sessionStorage', CACHE_PREFIX + hash(key), text);
  }

  async function ask(sent) {
    if (misconfigured) return defaultAnswer(sent.experiments, 'misconfigured');
    if (typeof fetch !== 'function') return defaultAnswer(sent.experiments, 'unsupported');
    const controller = typeof AbortController === 'function' ? new AbortController() : null;
    let timer = null;
    let timedOut = false;
    const late = new Promise((resolve) => {
      timer = setTimeout(() => {
        timedOut = true;
        if (controller) controller.abort();
        resolve(defaultAnswer(sent.experiments, 'timeout'));
      }, timeoutMs);
    });
    const answered = (async () => {
      // a text/plain body is a "simple" request: no preflight before the answer
      const response = await fetch(`${host}/v1/decide`, {
        method: 'POST',
        body: JSON.stringify(sent),
        credentials: 'omit',
        cache: 'no-store',
        signal: controller ? controller.signal : undefined,
      });
      if (!response.ok) {
        let code = `http_${response.status}`;
        try {
          const error = (await response.json()).error;
          if (isObject(error) && typeof error.code === 'string') code = error.code;
        } catch (err) { /* not our error shape */ }
        return defaultAnswer(sent.experiments, code);
      }
      return normalised(await response.json(), sent.experiments);
    })().catch(() => defaultAnswer(sent.experiments, timedOut ? 'timeout' : 'network'));
    try {
      return await Promise.race([answered, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  function remember(answer) {
    last = answer;
    for (const [key, value] of Object.entries(answer.experiments || {})) {
      if (!isObject(value)) continue;
      variants[key] = { variant: value.variant ?? null, payload: value.payload ?? null };
    }
    return answer;
  }

  async function get(request = {}) {
    let experiments = [];
    try {
      const sent = body(isObject(request) ? request : {});
      experiments = sent.experiments;
      const key = cacheKey(sent);
      const hit = cached(key);
      if (hit) return remember({ ...hit, cached: true });
      if (!pending.has(key)) {
        const asking = ask(sent).then((answer) => {
          keep(key, answer);
          return answer;
        }).finally(() => pending.delete(key));
        pending.set(key, asking);
      }
      return remember(await pending.get(key));
    } catch (err) {
      return remember(defaultAnswer(experiments, 'client_error'));
    }
  }

  function send(event) {
    const url = `${host}/v1/track`;
    const text = JSON.stringify(event);
    try {
      // a string is sent as text/plain: no preflight, and it outlives the page
      if (navigator.sendBeacon && navigator.sendBeacon(url, text)) return true;
    } catch (err) { /* try fetch */ }
    try {
      if (typeof fetch !== 'function') return false;
      fetch(url, { method: 'POST', body: text, keepalive: true, credentials: 'omit' })
        .catch(() => {});
      return true;
    } catch (err) {
      return false;
    }
  }

  function impression(placement, offer) {
    try {
      const offerKey = isObject(offer) ? offer.offer : offer;
      if (misconfigured || typeof placement !== 'string' || !placement
          || typeof offerKey !== 'string' || !offerKey) return false;
      const once = `${host}\n${writeKey}\n${placement}`;
      if (viewed.has(once)) return false;
      viewed.add(once);
      const { userId, anonymousId: anon } = ids();
      const context = { page: pageContext(), library: { name: LIBRARY, version: VERSION } };
      if (locale()) context.locale = locale();
      return send({
        writeKey,
        type: 'track',
        event: OFFER_VIEWED,
        ...(userId ? { userId } : {}),
        anonymousId: anon,
        messageId: uuid(),
        properties: { offer_id: offerKey, placement },
        context,
      });
    } catch (err) {
      return false;
    }
  }

  function whenSeen(element, placement, offer) {
    const before = watched.get(element);
    if (before) before.disconnect();
    if (typeof IntersectionObserver !== 'function') {
      impression(placement, offer);
      return;
    }
    const observer = new IntersectionObserver((entries) => {
      if (!entries.some(seen)) return;
      observer.disconnect();
      watched.delete(element);
      whenPageVisible(() => impression(placement, offer));
    }, { threshold: [0, 0.25, VISIBLE_RATIO, 0.75, 1] });
    watched.set(element, observer);
    observer.observe(element);
  }

  async function fill(root = document, request = {}) {
    try {
      const elements = placementElements(root);
      const wanted = Array.from(new Set(elements.map((e) => e.getAttribute('data-placement'))));
      const extra = isObject(request) ? request : {};
      if (!wanted.length && !(names(extra.experiments) || []).length) {
        const { error, ...nothing } = defaultAnswer([], null);
        return { ...nothing, degraded: false };
      }
      const answer = await get({ ...extra, placements: wanted });
      if (answer.degraded) return answer;
      for (const element of elements) {
        const placement = element.getAttribute('data-placement');
        const shown = answer.placements[placement];
        if (!isObject(shown) || typeof shown.offer !== 'string' || !shown.offer
            || !isObject(shown.content)) continue;
        try {
          apply(element, shown.content);
          element.setAttribute('data-offer', shown.offer);
          whenSeen(element, placement, shown.offer);
        } catch (err) { /* this element keeps what it has */ }
      }
      return answer;
    } catch (err) {
      return defaultAnswer([], 'client_error');
    }
  }

  function variant(experimentKey) {
    const found = variants[experimentKey];
    return found ? { ...found } : { variant: null, payload: null };
  }

  return {
    get,
    fill,
    impression,
    variant,
    get lastAnswer() { return last; },
  };
}
