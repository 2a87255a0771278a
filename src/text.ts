// Lengths of third-party text, measured one way everywhere (issue 13 finding 5): in Unicode code
// points, as ajv's maxLength counts them at ingest, so every bound agrees with every other.

/** Unicode code points; a lone surrogate counts as one, as in ajv's ucs2length. */
export function codePoints(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++, n++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
  }
  return n;
}
