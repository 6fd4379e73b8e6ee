// The event feed: the one place the page reads cluster events from. Today the dashboard server
// derives them from the store's changes; when `shoal events` serves its own history and live
// feed, the server's /api/events streams those instead and nothing here changes. Each event is
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
    return `node ${name} ${e.Action === "create" ? "joined" : e.Action === "remove" ? "removed" : "updated"}`;
  }
  if (e.Type === "task") {
    const where = a["node"] ? ` on ${a["node"]}` : "";
    const health = a["health"] ? ` (${a["health"]})` : "";
    const err = a["err"] ? ` — ${a["err"]}` : "";
    return `task ${name} ${a["state.new"] ?? e.Action}${health}${where}${err}`;
  }
  return `${e.Type} ${name} ${e.Action}`;
}
