// `GET /v1/events` as Docker's /events serves it: newline-delimited JSON, the recorded events
// since `since` (or after the seq `after`) first, then every new one as it is recorded, until
// `until` passes or the client goes away. Without `since`, `until` or `after` only new events
// come, as with `docker events` (with `until` alone, the history up to it). The query is checked before anything is written (a bad one is a 400).

import type { ServerResponse } from "node:http";
import {
  eventFiltersProblem,
  eventMatches,
  type ClusterEvent,
  type EventFilters,
} from "../../api/events.js";
import { ManagerError } from "../errors.js";
import type { EventLog } from "./log.js";

export interface EventsQuery {
  since?: string;
  until?: string;
  after?: string;
  filters?: string;
}

/** Docker's `filters` query: `{"key":["v",...]}` or the older `{"key":{"v":true}}`. */
export function parseEventFilters(text: string | undefined): EventFilters {
  if (text === undefined || text.trim() === "") return {};
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ManagerError("ERR_INVALID", `invalid filters: ${(err as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ManagerError("ERR_INVALID", "invalid filters: must be a JSON object");
  }
  const out: EventFilters = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    out[k] =
      typeof v === "object" && v !== null && !Array.isArray(v)
        ? Object.entries(v as Record<string, unknown>)
            .filter(([, on]) => on === true)
            .map(([x]) => x)
        : (v as string[]);
  }
  const problem = eventFiltersProblem(out);
  if (problem) throw new ManagerError("ERR_INVALID", problem);
  return out;
}

/** The event's time in ms. */
export const eventMs = (e: ClusterEvent) => Math.round(e.timeNano / 1e6);

/**
 * Checks the query and returns what serves it on a response (which it then owns). `now` is the
 * clock `until` is measured against.
 */
export function streamEvents(
  log: EventLog,
  q: EventsQuery,
  now: () => number = Date.now,
): (res: ServerResponse) => void {
  const filters = parseEventFilters(q.filters);
  const since = q.since === undefined ? undefined : Number(q.since) * 1000;
  const until = q.until === undefined ? undefined : Number(q.until) * 1000;
  const after = q.after === undefined ? undefined : Number(q.after);
  const wanted = (e: ClusterEvent) =>
    (since === undefined || eventMs(e) >= since) &&
    (until === undefined || eventMs(e) <= until) &&
    eventMatches(e, filters);
  return (res) => {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.flushHeaders(); // the client knows the stream is on before the first event
    let timer: NodeJS.Timeout | undefined;
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      sub.close();
      clearTimeout(timer);
      res.end();
    };
    const sub = log.subscribe((e) => {
      if (until !== undefined && eventMs(e) > until) return end();
      if (wanted(e)) res.write(JSON.stringify(e) + "\n");
    }, after ?? 0);
    if (since !== undefined || until !== undefined || after !== undefined) {
      const lines = sub.history.filter(wanted).map((e) => JSON.stringify(e) + "\n");
      if (lines.length > 0) res.write(lines.join(""));
    }
    res.on("close", end);
    if (until !== undefined) {
      const left = until - now();
      if (left < 0) end();
      else timer = setTimeout(end, Math.min(left, 2 ** 31 - 1));
    }
  };
}
