/* Building and updating DOM nodes (el() for HTML elements, svg() for SVG ones, fill() to
   replace a node's content), buttons that are not <button>s, and the page's json_script data. */

const SVG_NS = 'http://www.w3.org/2000/svg';
// set as properties (the live state), not as attributes (the initial state)
const PROPERTIES = new Set(['value', 'checked', 'selected', 'disabled', 'hidden', 'type',
  'title', 'id', 'tabIndex', 'colSpan', 'rows', 'href', 'label']);

function append(node, children) {
  children.flat(Infinity).forEach((child) => {
    if (child === null || child === undefined || child === false) return;
    node.append(child instanceof Node ? child : String(child));
  });
  return node;
}

function assign(node, attrs, asProperty) {
  Object.entries(attrs || {}).forEach(([key, value]) => {
    if (value === null || value === undefined || value === false) return;
    if (key === 'class') node.setAttribute('class', value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'style') Object.assign(node.style, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else if (asProperty(key)) node[key] = value;
    else node.setAttribute(key, value === true ? '' : value);
  });
  return node;
}

/* An HTML element: el('a', { class: 'x', href: url, onclick: fn }, 'text', childNode).
   attrs may be a string: the class name alone. Null, undefined and false children (and
   attribute values) are skipped, so optional parts can be written inline. */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  assign(node, typeof attrs === 'string' ? { class: attrs } : attrs, (key) => PROPERTIES.has(key));
  return append(node, children);
}

/* An SVG element; every attribute is set as an attribute. */
export function svg(tag, attrs, ...children) {
  return append(assign(document.createElementNS(SVG_NS, tag), attrs, () => false), children);
}

/* Empty a node, then fill it with the given children. */
export function fill(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/* Run `handler` on a click, and on Enter or Space while the element has the focus (for
   elements acting as buttons without being <button>s). */
export function onActivate(node, handler) {
  node.addEventListener('click', handler);
  node.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); handler(e); }
  });
}

/* A head that opens and closes a body, announced as a button; `item` gets the class "open"
   while the body shows. */
export function expandable(item, head, body) {
  head.setAttribute('role', 'button');
  head.setAttribute('aria-expanded', 'false');
  head.tabIndex = 0;
  onActivate(head, () => {
    body.hidden = !body.hidden;
    item.classList.toggle('open', !body.hidden);
    head.setAttribute('aria-expanded', String(!body.hidden));
  });
}

/* The page data that a template put in a json_script block, or null when there is none. */
export function pageData(id) {
  const node = document.getElementById(id);
  return node ? JSON.parse(node.textContent) : null;
}
