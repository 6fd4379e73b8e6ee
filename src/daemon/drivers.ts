// The drivers a node's agent runs tasks with: the process driver always (its warnings go to
// the daemon's log), and the docker driver when a Docker Engine answers when the daemon starts.
// The names are reported to the managers (node.drivers) so the scheduler places a task only
// where its driver is.

import { DriverSet } from "../node/drivers/driver-set.js";
import type { Driver } from "../node/drivers/driver.js";
import { DockerDriver } from "../node/drivers/docker.js";
import { ProcessDriver } from "../node/drivers/process.js";

export interface NodeDrivers {
  set: DriverSet;
  names: string[];
}

export async function nodeDrivers(log: {
  info(msg: string): void;
  warn(msg: string): void;
}): Promise<NodeDrivers> {
  const drivers: Record<string, Driver> = {
    process: new ProcessDriver({ warn: (m) => log.warn(m) }),
  };
  const docker = new DockerDriver();
  // An engine on a slow or unreachable DOCKER_HOST must not hold up the daemon's start.
  const timeout = new Promise<boolean>((r) => setTimeout(() => r(false), 2000).unref());
  if (await Promise.race([docker.available(), timeout])) {
    drivers["docker"] = docker;
    log.info("a Docker Engine answers: the docker driver is available");
  }
  return { set: new DriverSet(drivers), names: Object.keys(drivers) };
}
