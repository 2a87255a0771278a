// SPEC §3: IMEI and ICCID keep their exact digits, and no number is stored as a different one.
// JSON.parse keeps the nearest double of a number token; that is the number the
// payload wrote when the double prints as the same decimal (0.1, 1e21, 9007199254740991), and a
// different one when the token has more digits than a double keeps (an ICCID of 20), overflows
// (1e400 → Infinity) or underflows (1e-400 → 0). normalize.ts reads a message's numbers again, from
// its text, only when one of them may be such a number.

const NUMBER = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([-+]?\d+))?$/;
const NEGATIVE_EXPONENT = /[eE]-/;

/**
 * Can a number that parsed to a safe integer have been written with more digits than its double
 * keeps? Only with a fraction or a negative exponent (1.00000000000000000001, 499999999999999999999e-20):
 * an integer token below 2^53 parses exactly, and above it is no safe integer. Checked once per
 * message with a number: two indexOf scans, about 25 ns on a 150-byte message against about 600 ns
 * for its JSON.parse (node 20, a one-off loop); the regex only runs on a text with a '-'. A false
 * alarm ("v1.2" in a string) costs a second read of the text (about 1 µs on 80 bytes), never a different result.
 */
export function mayHideDigits(text: string): boolean {
  return text.includes('.') || (text.includes('-') && NEGATIVE_EXPONENT.test(text));
}

/** Does the double print as the decimal number the token wrote? */
export function sameNumber(token: string, value: number): boolean {
  if (!Number.isFinite(value)) return false;
  const printed = String(value);
  return token === printed || canonical(token) === canonical(printed);
}

/** A decimal number as sign, significant digits and exponent: "-1.50e2", "-150" → "-15e1"; zero → "0". */
function canonical(number: string): string {
  const m = NUMBER.exec(number);
  if (m === null) return number;
  const fraction = m[3] ?? '';
  const digits = m[2]! + fraction;
  const first = digits.search(/[1-9]/);
  if (first === -1) return '0';
  let end = digits.length;
  while (digits.charCodeAt(end - 1) === 0x30) end--;
  return `${m[1]}${digits.slice(first, end)}e${Number(m[4] ?? 0) - fraction.length + digits.length - end}`;
}

/**
 * The number members of a flat JSON object, in text JSON.parse accepted as an object: each key with
 * its number's source text; a repeated key's last number wins. Looked up only for a key whose
 * parsed value is a number, that is whose last member is one, as in JSON.parse. Nested values are
 * stepped over (toRecord refuses them). A Map: keys stay data.
 */
export function numberTokens(text: string): Map<string, string> {
  const numbers = new Map<string, string>();
  let i = skipSpace(text, skipSpace(text, 0) + 1); // past '{'
  while (text.charCodeAt(i) === QUOTE) {
    const keyStart = i;
    const keyEnd = stringEnd(text, i);
    i = skipSpace(text, skipSpace(text, keyEnd) + 1); // past ':'
    const c = text.charCodeAt(i);
    let end: number;
    if (c === QUOTE) end = stringEnd(text, i);
    else if (c === 0x7b || c === 0x5b) end = nestedEnd(text, i); // '{' '['
    else end = literalEnd(text, i);
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      // '-' or a digit: a number. A key with an escape is decoded as JSON.parse decoded it.
      const key = text.slice(keyStart + 1, keyEnd - 1);
      numbers.set(key.includes('\\') ? (JSON.parse(text.slice(keyStart, keyEnd)) as string) : key, text.slice(i, end));
    }
    i = skipSpace(text, end);
    if (text.charCodeAt(i) !== 0x2c) break; // ','
    i = skipSpace(text, i + 1);
  }
  return numbers;
}

const QUOTE = 0x22;

function skipSpace(text: string, i: number): number {
  for (let c = text.charCodeAt(i); c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d; c = text.charCodeAt(++i));
  return i;
}

/** Past the closing quote of the string that starts at i: the first quote after an even run of backslashes. */
function stringEnd(text: string, i: number): number {
  for (let quote = text.indexOf('"', i + 1); quote !== -1; quote = text.indexOf('"', quote + 1)) {
    let backslashes = 0;
    while (text.charCodeAt(quote - 1 - backslashes) === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return quote + 1;
  }
  /* c8 ignore next 2 */ // JSON.parse accepted the text: the closing quote is always found
  return text.length;
}

/** Past a number, true, false or null. */
function literalEnd(text: string, i: number): number {
  for (let c = text.charCodeAt(i); i < text.length; c = text.charCodeAt(++i)) {
    if (c === 0x2c || c === 0x7d || c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) break; // ',' '}' space
  }
  return i;
}

/** Past the object or array that starts at i; no recursion, so any depth. */
function nestedEnd(text: string, i: number): number {
  let depth = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = stringEnd(text, i);
      continue;
    }
    if (c === 0x7b || c === 0x5b) depth++;
    else if ((c === 0x7d || c === 0x5d) && --depth === 0) return i + 1;
    i++;
  }
  /* c8 ignore start */ // JSON.parse accepted the text: the closing bracket is always found
  return i;
}
/* c8 ignore stop */
