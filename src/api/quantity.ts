// Byte quantities as written in manifests: Kubernetes ("512Mi", "2Gi") and
// libvirt ("512MiB", "20GB") spellings. Single-letter suffixes (k, K, M, G, T, P, E) are
// refused: Kubernetes reads "2G" as 2·10⁹ bytes, libvirt as 2 GiB (and "100k" as 100000
// vs 102400 bytes), and guessing wrong silently costs a user 7% of their disk or RAM.

import { quoteText } from "./text.js";

const BINARY: Record<string, number> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 };
const DECIMAL: Record<string, number> = { KB: 1, MB: 2, GB: 3, TB: 4, PB: 5, EB: 6 };
const AMBIGUOUS = new Set(["k", "K", "M", "G", "T", "P", "E"]);

export type QuantityResult = { ok: true; bytes: number } | { ok: false; message: string };

const QUANTITY_RE = /^([+-]?)(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/;

export function parseQuantity(input: unknown): QuantityResult {
  if (typeof input === "number") {
    return {
      ok: false,
      message: `${input} has no unit; write e.g. "${input}Mi" (mebibytes) or "${input}Gi" (gibibytes)`,
    };
  }
  if (typeof input !== "string") {
    return { ok: false, message: `expected a quantity such as "512Mi" or "2Gi"` };
  }
  const text = input.trim();
  const match = QUANTITY_RE.exec(text);
  if (!match) return { ok: false, message: `${quoteText(input)} is not a quantity; write e.g. "512Mi" or "2Gi"` };
  const [, sign, digits, rawUnit] = match as unknown as [string, string, string, string];
  if (sign === "-") return { ok: false, message: `${quoteText(input)} is negative; a size must be positive` };
  const value = Number(digits);
  let factor: number;
  if (rawUnit === "") {
    return {
      ok: false,
      message: `${quoteText(input)} has no unit; write e.g. "${digits}Mi" (mebibytes) or "${digits}Gi" (gibibytes)`,
    };
  } else if (rawUnit === "B" || rawUnit === "b" || rawUnit === "bytes") {
    factor = 1;
  } else if (AMBIGUOUS.has(rawUnit)) {
    return {
      ok: false,
      message: `${quoteText(input)} is ambiguous (Kubernetes reads ${rawUnit} as a power of 1000, libvirt as a power of 1024); write "${digits}${rawUnit.toUpperCase()}i" or "${digits}${rawUnit.toUpperCase()}B"`,
    };
  } else {
    const iec = rawUnit.endsWith("iB") ? rawUnit.slice(0, -1) : rawUnit; // MiB -> Mi
    if (iec in BINARY) factor = 1024 ** BINARY[iec]!;
    else if (rawUnit in DECIMAL) factor = 1000 ** DECIMAL[rawUnit]!;
    else return { ok: false, message: `${quoteText(input)} has an unknown unit ${quoteText(rawUnit)}; use Ki, Mi, Gi, Ti (or KiB, MiB, GiB, TiB, KB, MB, GB)` };
  }
  const bytes = value * factor;
  if (!Number.isSafeInteger(bytes)) {
    return { ok: false, message: `${quoteText(input)} is not a whole number of bytes or is too large` };
  }
  if (bytes <= 0) return { ok: false, message: `${quoteText(input)} must be greater than zero` };
  return { ok: true, bytes };
}

/** Renders bytes in the largest binary unit that divides them exactly ("2Gi", "1536Mi"). */
export function formatBytes(bytes: number): string {
  const units = ["Ei", "Pi", "Ti", "Gi", "Mi", "Ki"] as const;
  for (const [i, unit] of units.entries()) {
    const factor = 1024 ** (6 - i);
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return `${bytes}B`;
}

/** Approximate, for display: "252.0Gi", "512Mi", "3.5Ti". */
export function formatBytesApprox(bytes: number): string {
  const units = ["", "Ki", "Mi", "Gi", "Ti", "Pi"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = Number.isInteger(value) ? String(value) : value.toFixed(1);
  return unit === 0 ? `${text}B` : `${text}${units[unit]}`;
}
