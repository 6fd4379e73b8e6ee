// Signal names as users write them ("TERM", "SIGTERM", "sigkill", "15"), checked against the
// OS's table: one parser for the API's validation and the drivers.

import { constants } from "node:os";

/** The OS name of a signal ("SIGTERM"), or null when the text names none. */
export function signalOf(sig: string): NodeJS.Signals | null {
  const s = sig.trim().toUpperCase();
  const table = constants.signals as Record<string, number>;
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    for (const [name, num] of Object.entries(table)) {
      if (num === n) return name as NodeJS.Signals;
    }
    return null;
  }
  const name = s.startsWith("SIG") ? s : `SIG${s}`;
  return table[name] !== undefined ? (name as NodeJS.Signals) : null;
}
