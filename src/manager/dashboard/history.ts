// The autoscaler's last hour per service, for the dashboard's small chart: one point per
// decision the autoscaler recorded on the service (`autoscaleStatus`, every evaluation period),
// with the replicas it decided and the metric's value. Kept in memory from the store's changes
// (a manager that starts begins with each service's last decision); an hour of 15 s periods is
// 240 points per service.

import type { StoreEvent } from "../../store/store.js";
import type { Service } from "../../api/types.js";
import type { AutoscalePoint } from "../../api/dashboard.js";

export const HISTORY_MS = 3600_000;

export class AutoscaleHistory {
  private readonly points = new Map<string, AutoscalePoint[]>();

  /** Takes each service's latest decision (at start, and from every store batch). */
  observe(services: readonly Service[]): void {
    for (const s of services) this.add(s);
  }

  onEvents(events: readonly StoreEvent[]): void {
    for (const e of events) {
      if (e.kind !== "service") continue;
      if (e.value === null) this.points.delete(e.id);
      else this.add(e.value as Service);
    }
  }

  /** The service's points, oldest first, over the hour before its latest. */
  of(serviceId: string): AutoscalePoint[] {
    return this.points.get(serviceId) ?? [];
  }

  private add(s: Service): void {
    const st = s.autoscaleStatus;
    if (!s.spec.autoscale || !st) {
      this.points.delete(s.id);
      return;
    }
    let list = this.points.get(s.id);
    if (list === undefined) {
      list = [];
      this.points.set(s.id, list);
    }
    if (list.length > 0 && list.at(-1)!.at >= st.lastDecisionAt) return;
    list.push({ at: st.lastDecisionAt, replicas: st.desired, value: st.value });
    const from = st.lastDecisionAt - HISTORY_MS;
    while (list.length > 0 && list[0]!.at < from) list.shift();
  }
}
