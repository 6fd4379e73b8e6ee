// The event feed: the one place the page reads cluster events from — the manager's event log,
// what `shoal events` reads, streamed by the dashboard server's /api/events. Each event is
// delivered once (by `seq`), oldest first, including the recent history sent at (re)connect.

import type { DashEvent } from "./types.js";
import { subscribe } from "./stream.js";

export const EVENTS_URL = "/api/events";

export function subscribeEvents(
  onEvent: (e: DashEvent) => void,
  onStatus?: (open: boolean) => void,
  url = EVENTS_URL,
): () => void {
  let last = 0;
  return subscribe<DashEvent>(
    url,
    "event",
    (e) => {
      if (e.seq <= last) return; // history sent again after a reconnect
      last = e.seq;
      onEvent(e);
    },
    onStatus,
  );
}

/** One line for an event, in words. */
export function describeEvent(e: DashEvent): string {
  const a = e.Actor.Attributes;
  const name = a["name"] ?? e.Actor.ID.slice(0, 12);
  if (e.Type === "service") {
    if (e.Action === "scale")
      return `service ${name} scaled ${a["replicas.old"]} → ${a["replicas.new"]}`;
    if (a["updatestate.new"])
      return `service ${name} update ${a["updatestate.new"].replace(/_/g, " ")}${a["message"] ? `: ${a["message"]}` : ""}`;
    return `service ${name} ${e.Action === "create" ? "created" : e.Action === "remove" ? "removed" : "updated"}`;
  }
  if (e.Type === "node") {
    if (a["availability.new"])
      return `node ${name} availability ${a["availability.old"]} → ${a["availability.new"]}`;
    if (a["state.new"]) return `node ${name} ${a["state.new"]}`;
    const done: Record<string, string> = { join: "joined", remove: "removed", create: "joined" };
    return `node ${name} ${done[e.Action] ?? e.Action}`;
  }
  if (e.Type === "task") {
    const where = a["node"] ? ` on ${a["node"]}` : "";
    const err = a["error"] ? ` — ${a["error"]}` : "";
    const health = /^health_status: (.*)$/.exec(e.Action);
    if (health) return `task ${name} ${health[1]}${where}`;
    return `task ${name} ${e.Action}${where}${err}`;
  }
  if (e.Type === "autoscale") {
    const why = a["reason"] ? ` (${a["reason"]})` : "";
    return `autoscaler scaled ${name} ${a["replicas.old"]} → ${a["replicas.new"]}${why}`;
  }
  if (e.Type === "manager" && e.Action === "leader") return `manager ${name} is the leader`;
  return `${e.Type} ${name} ${e.Action === "create" ? "created" : e.Action === "remove" ? "removed" : e.Action}`;
}
