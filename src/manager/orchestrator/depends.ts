// Start order (compose's depends_on, which Swarm ignores — moby issue 40364): a service that names
// dependencies gets its first tasks only once each dependency has reached its condition. Only the
// first start waits: once a service has tasks, restarts, updates and reschedules never look at
// its dependencies again (a dependency that fails later does not stop it, as in compose). Pure:
// the reconciler asks before it fills a service's slots.

import {
  replicasOf,
  servesTraffic,
  type ServiceDependency,
  type Service,
  type Task,
} from "../../api/types.js";

/** Whether one task of the dependency counts toward the condition. */
function meets(t: Task, condition: ServiceDependency["condition"]): boolean {
  switch (condition) {
    case "service_started":
      // Started: running, or running and still waiting for its first healthy result.
      return (
        t.desiredState === "running" &&
        (t.status.state === "running" || t.status.state === "starting")
      );
    case "service_healthy":
      // A task with a health check is `running` only once a check has passed: healthy is what
      // may receive traffic.
      return servesTraffic(t);
    case "service_completed_successfully":
      return t.status.state === "complete" && t.status.exitCode === 0;
  }
}

/** How many of the dependency's tasks must meet the condition: every replica, or one (global). */
function needed(dep: Service): number {
  return replicasOf(dep.spec) ?? 1;
}

/**
 * Why the service's first tasks must wait, naming the first dependency not ready yet (`waiting
 * for service "db" to be healthy`), or null when it may start. `tasks` holds every service's
 * tasks; a service that already has tasks never waits.
 */
export function startBlocker(s: Service, services: readonly Service[], tasks: readonly Task[]) {
  const deps = s.spec.dependsOn ?? [];
  if (deps.length === 0 || tasks.some((t) => t.serviceId === s.id)) return null;
  for (const d of deps) {
    const dep = services.find((x) => x.spec.name === d.service);
    if (!dep) {
      if (!d.required) continue;
      return `waiting for service "${d.service}", which does not exist`;
    }
    const want = needed(dep);
    const have = tasks.filter((t) => t.serviceId === dep.id && meets(t, d.condition)).length;
    if (have < want) return `waiting for service "${d.service}" to ${WORDS[d.condition]}`;
  }
  return null;
}

const WORDS: Record<ServiceDependency["condition"], string> = {
  service_started: "start",
  service_healthy: "be healthy",
  service_completed_successfully: "complete successfully",
};
