// DOM building with text nodes only: device data never meets an HTML parser (SPEC §9, a State of
// `<img src=x onerror=…>` must run nothing): never an HTML string, no on* or style attributes (the CSP).

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * Attributes: null, undefined and false leave one out, true sets it empty.
 * @typedef {Record<string, string | number | boolean | null | undefined>} Attrs
 */
/**
 * A child: a node, text (a string or a number), or nothing (null, undefined, false); an array of
 * children counts as its items.
 * @typedef {Node | string | number | null | undefined | false} Child
 */

/**
 * @template {Element} E
 * @param {E} el
 * @param {Attrs | null | undefined} attrs
 * @param {(Child | Child[])[]} children
 * @returns {E}
 */
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

/**
 * An HTML element: attributes set as attributes, children as nodes or text.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Attrs | null} [attrs]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/**
 * An SVG element, the same way.
 * @template {keyof SVGElementTagNameMap} K
 * @param {K} tag
 * @param {Attrs | null} [attrs]
 * @param {...(Child | Child[])} children
 * @returns {SVGElementTagNameMap[K]}
 */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/**
 * Replaces the children of `el`.
 * @template {Element} E
 * @param {E} el
 * @param {...(Child | Child[])} children
 * @returns {E}
 */
export function fill(el, ...children) {
  el.replaceChildren();
  return build(el, null, children);
}

const exact = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const short = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

/**
 * A time as people read it: "27 Nov 2026, 05:14:54".
 * @param {number} ms
 */
export function exactTime(ms) {
  return Number.isFinite(ms) ? exact.format(ms) : 'unknown';
}

/** @param {number} ms */
export function shortTime(ms) {
  return Number.isFinite(ms) ? short.format(ms) : 'unknown';
}

/**
 * An element of the page, which has it (index.html).
 * @param {string} id
 */
export const byId = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
