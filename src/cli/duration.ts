// Durations as kubectl spells them: "90s", "2m", "1h30m", "500ms"; a bare number is seconds.
import { UsageError } from "./errors.js";

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function parseDuration(text: string, flag: string): number {
  const trimmed = text.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
  const parts = [...trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== trimmed) {
    throw new UsageError(`${flag}: invalid duration "${text}" (examples: 30s, 2m, 1h30m)`);
  }
  return parts.reduce((total, [, value, unit]) => total + Number(value) * UNIT_MS[unit!]!, 0);
}

/** Age as kubectl prints it: 45s, 12m, 3h, 2d. */
export function formatAge(from: Date, now = Date.now()): string {
  const seconds = Math.max(0, Math.floor((now - from.getTime()) / 1000));
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 120) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h`;
  return `${Math.floor(hours / 24)}d`;
}
