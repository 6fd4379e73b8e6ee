// The drivers a node's agent runs tasks with: the process driver always (its warnings go to
// the daemon's log), and the docker driver when a Docker Engine answers when the node starts.
// The node reports their names and the limits each can enforce (node.drivers, node.limits), so
// the scheduler places a task only where its driver is and its limits hold.

import { DriverSet } from "./drivers/driver-set.js";
import { reportsLimits, type Driver, type OverlayNetworks } from "./drivers/driver.js";
import { DockerDriver } from "./drivers/docker.js";
import { ProcessDriver } from "./drivers/process.js";
import { Overlays, overlayUnsupportedReason } from "./drivers/overlay.js";
import { findIp, findIptables } from "./drivers/netns.js";
import type { LimitSupport } from "../api/types.js";
import type { Logger } from "../lib/log.js";

export interface NodeDrivers {
  set: DriverSet;
  names: string[];
  /** Per driver, the limits it can enforce on this node. */
  limits: Record<string, LimitSupport>;
  /** The node's side of user-defined networks; null where this node cannot have them. */
  overlays: OverlayNetworks | null;
  /** Why it cannot, when overlays is null. */
  overlayUnsupported?: string;
}

/** The drivers in `drivers`, with what they report. */
export function describeDrivers(
  drivers: Record<string, Driver>,
  overlays: OverlayNetworks | null = null,
): NodeDrivers {
  const limits: Record<string, LimitSupport> = {};
  for (const [name, d] of Object.entries(drivers)) {
    limits[name] = reportsLimits(d) ? d.limitSupport() : { cpu: false, memory: false };
  }
  return { set: new DriverSet(drivers), names: Object.keys(drivers), limits, overlays };
}

/**
 * The node's drivers. `underlay` is the node's address other nodes reach it on: where this node
 * can have overlay networks (Linux, root, `ip`, vxlan), the process and docker drivers wire tasks
 * into them.
 */
export async function nodeDrivers(
  log: Pick<Logger, "info" | "warn">,
  underlay: string,
): Promise<NodeDrivers> {
  const why = await overlayUnsupportedReason();
  const overlays =
    why === null
      ? new Overlays({ ipPath: findIp(), iptablesPath: findIptables(), underlay, log })
      : null;
  if (why !== null) log.info(`overlay networks are not available on this node: ${why}`);
  const drivers: Record<string, Driver> = {
    process: new ProcessDriver({ warn: (m) => log.warn(m), overlays }),
  };
  const docker = new DockerDriver({ overlays });
  // An engine on a slow or unreachable DOCKER_HOST must not hold up the daemon's start.
  const timeout = new Promise<boolean>((r) => setTimeout(() => r(false), 2000).unref());
  if (await Promise.race([docker.available(), timeout])) {
    drivers["docker"] = docker;
    log.info("a Docker Engine answers: the docker driver is available");
  }
  return {
    ...describeDrivers(drivers, overlays),
    ...(why !== null ? { overlayUnsupported: why } : {}),
  };
}
