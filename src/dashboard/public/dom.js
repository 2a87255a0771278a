// DOM building with text nodes only: device data never meets an HTML parser (SPEC §9, a State of
// `<img src=x onerror=…>` must run nothing): never an HTML string, no on* or style attributes (the CSP).

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (/^on|^style$/i.test(name)) throw new Error(`attribute ${name} is not allowed`);
    el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }
  return el;
}

/** An HTML element: attributes set as attributes, children as nodes or text. */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, the same way. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  return build(el, null, children);
}

const exact = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const short = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

/** A time as people read it: "27 Nov 2026, 05:14:54". */
export function exactTime(ms) {
  return Number.isFinite(ms) ? exact.format(ms) : 'unknown';
}

export function shortTime(ms) {
  return Number.isFinite(ms) ? short.format(ms) : 'unknown';
}

export const byId = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
