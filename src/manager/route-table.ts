// The HTTP router's table, as the manager sends it to every node: for each service whose labels
// claim hosts (Traefik's or interlock's, src/api/route-labels.ts), its routes with the tasks that
// serve traffic now as backends. A backend is the task's node address and the host port its
// agent holds for the route's target port (as for published ports), so a router on any node
// reaches a task on any other over the underlay, whatever networks the task is on.

import { specRoutes } from "../api/route-labels.js";
import { servesTraffic, type Node, type Service, type Task } from "../api/types.js";
import type { Route, RouteBackend, RouteTable } from "../api/routes.js";

export function routeTableOf(services: Service[], tasks: Task[], nodes: Node[]): RouteTable {
  const routes: Route[] = [];
  let byService: Map<string, Task[]> | undefined;
  const ready = new Map(nodes.filter((n) => n.status === "ready").map((n) => [n.id, n]));
  for (const s of services) {
    const claimed = specRoutes(s.spec);
    if (claimed.length === 0) continue;
    if (byService === undefined) {
      byService = new Map();
      for (const t of tasks) {
        if (!servesTraffic(t)) continue;
        const list = byService.get(t.serviceId);
        if (list) list.push(t);
        else byService.set(t.serviceId, [t]);
      }
    }
    const serving = byService.get(s.id) ?? [];
    for (const r of claimed) {
      const backends: RouteBackend[] = [];
      for (const t of serving) {
        const node = ready.get(t.nodeId);
        const port = t.hostPorts[String(r.port)];
        if (node === undefined || port === undefined) continue;
        backends.push({ host: node.addr, port, id: t.id });
      }
      routes.push({
        service: s.spec.name,
        serviceId: s.id,
        router: r.router,
        rule: r.rule,
        priority: r.priority,
        ...(r.sticky ? { sticky: r.sticky } : {}),
        backends,
      });
    }
  }
  return { routes };
}
