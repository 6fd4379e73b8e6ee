// `shoal events`, like `docker events`: the cluster's events from the manager's stream
// (GET /v1/events), one line each — `2026-12-07T04:21:15.123000000Z service create <id>
// (name=web)` — or as JSON (`--format json`) or a Go template. `--since`/`--until` take what
// Docker's take (a Go duration back from now, RFC 3339, a date, Unix seconds); without
// `--until` it follows new events until Ctrl-C. `--filter` goes to the daemon, which knows the
// keys (type, event, service, node, network, stack, scope). `shoal events credentials` prints
// the bus user that may only subscribe to `$SHOAL.events.>`.

import type { ClusterEvent, EventCredentials } from "../api/events.js";
import { call, stream } from "./api-client.js";
import { UsageError } from "./errors.js";
import { filterPairs } from "./filter.js";
import { execute, parseTemplate, type Row } from "./template.js";
import { parseGoDuration } from "../lib/duration.js";

const DATE_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?)?(Z|[+-]\d{2}:\d{2})?$/;

/**
 * A `--since`/`--until` value as Docker's GetTimestamp reads it, in ms: a Go duration counts
 * back from `now` (`10m`), else an RFC 3339 time or a prefix of one (`2026-12-07`,
 * `2026-12-07T04:21`; local time without a zone), else Unix seconds (`1765081275.5`).
 */
export function parseTimeFlag(flag: string, value: string, now: number): number {
  const v = value.trim();
  const d = v === "0" ? undefined : parseGoDuration(v);
  if (d !== undefined) return now - d;
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const m = DATE_TIME.exec(v);
  if (m) {
    const [y, mo, day, h, mi, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i] ?? 0)) as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const ms = Number(`0.${m[7] ?? "0"}`) * 1000;
    const zone = m[8];
    if (zone === undefined) {
      const t = new Date(y, mo - 1, day, h, mi, s).getTime() + ms;
      if (!Number.isNaN(t)) return Math.round(t);
    } else {
      const off =
        zone === "Z"
          ? 0
          : (zone[0] === "-" ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4)));
      const t = Date.UTC(y, mo - 1, day, h, mi, s) + ms - off * 60_000;
      if (!Number.isNaN(t)) return Math.round(t);
    }
  }
  throw new UsageError(
    `invalid argument "${value}" for "${flag}" flag: failed to parse value as time or duration: "${value}"`,
  );
}

/** Unix seconds as the API takes them (`1765081275.123`). */
export function unixSeconds(ms: number): string {
  const t = Math.max(0, Math.round(ms));
  return `${Math.floor(t / 1000)}.${String(t % 1000).padStart(3, "0")}`;
}

/** Docker's line: the time (RFC 3339, nine decimals, UTC), type, action, id and attributes. */
export function formatEvent(e: ClusterEvent): string {
  const iso = new Date(Math.round(e.timeNano / 1e6)).toISOString().replace("Z", "000000Z");
  const attrs = Object.keys(e.Actor.Attributes)
    .sort()
    .map((k) => `${k}=${e.Actor.Attributes[k]}`);
  return `${iso} ${e.Type} ${e.Action} ${e.Actor.ID}${attrs.length ? ` (${attrs.join(", ")})` : ""}`;
}

export interface EventsOptions {
  since?: string;
  until?: string;
  filter?: string[];
  format?: string;
}

/** The query string of an events request (checked here, before anything is fetched). */
export function eventsQuery(o: EventsOptions, now: number): URLSearchParams {
  const q = new URLSearchParams();
  if (o.since !== undefined) q.set("since", unixSeconds(parseTimeFlag("--since", o.since, now)));
  if (o.until !== undefined) q.set("until", unixSeconds(parseTimeFlag("--until", o.until, now)));
  const filters = filterPairs(o.filter ?? []);
  if (filters.size > 0) q.set("filters", JSON.stringify(Object.fromEntries(filters)));
  return q;
}

/** How each event is printed: the default line, `json`, or a Go template. */
export function eventPrinter(format: string | undefined): (e: ClusterEvent) => string {
  const f = format?.trim();
  if (!f) return formatEvent;
  if (f === "json") return (e) => JSON.stringify(e);
  const t = parseTemplate(f.replace(/\\t/g, "\t").replace(/\\n/g, "\n"));
  return (e) => execute(t, e as unknown as Row);
}

export async function events(o: EventsOptions): Promise<number> {
  const q = eventsQuery(o, Date.now());
  const print = eventPrinter(o.format);
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  let rest = "";
  try {
    await stream(
      `/v1/events?${q}`,
      (chunk) => {
        const lines = (rest + chunk).split("\n");
        rest = lines.pop()!;
        const out = lines.filter((l) => l !== "").map((l) => print(JSON.parse(l) as ClusterEvent));
        if (out.length > 0) process.stdout.write(out.join("\n") + "\n");
      },
      ac.signal,
    );
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
  return 0;
}

/** `shoal events credentials`: the read-only events user on the bus, as JSON. */
export async function credentials(): Promise<number> {
  const c = await call<EventCredentials>("GET", "/v1/events/credentials");
  process.stdout.write(JSON.stringify(c, null, 2) + "\n");
  return 0;
}
