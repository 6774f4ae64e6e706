// User text inside messages: a manifest's keys and values are quoted with every control, C1,
// bidirectional and line-separator character escaped, so a manifest cannot forge terminal
// output (a cursor move, an "error:" line of its own, text reversed) through kvmctl's messages.

/**
 * C0 and C1 controls, DEL, bidi embeddings/overrides/isolates and marks (also Arabic's), zero-width
 * characters, line/paragraph separators and the byte order mark: nothing a reader should not see.
 */
export const UNSAFE_TEXT = /[\u0000-\u001f\u007f-\u009f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g;

/** `text` with each unsafe character as a \u escape (a tab and a newline too: messages are one line). */
export function escapeText(text: string): string {
  return text.replace(UNSAFE_TEXT, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** A value from a manifest as a message quotes it: escaped, in double quotes, cut at `max` characters. */
export function quoteText(value: unknown, max = 80): string {
  let text: string;
  try {
    text = typeof value === "string" ? value : (JSON.stringify(value) ?? String(value));
  } catch {
    text = Array.isArray(value) ? "[…]" : "{…}"; // a value that contains itself
  }
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  return `"${escapeText(cut).replace(/"/g, '\\"')}"`;
}

/**
 * Orders strings by UTF-16 code units: the same on every host, whatever its locale
 * (`localeCompare` follows ICU's collation for LANG, and loading that collator costs a
 * long-running controller ~2.7 MB resident). Names are DNS labels and keys "Kind/name".
 */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
