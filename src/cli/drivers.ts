// The drivers a node's agent runs tasks with: the process driver always (its warnings go to
// the daemon's log). The names are reported to the managers (node.drivers) so the scheduler
// places a task only where its driver is.

import { DriverSet } from "../agent/drivers/driver-set.js";
import type { Driver } from "../agent/drivers/driver.js";
import { ProcessDriver } from "../agent/drivers/process.js";

export interface NodeDrivers {
  set: DriverSet;
  names: string[];
}

export async function nodeDrivers(log: { warn(msg: string): void }): Promise<NodeDrivers> {
  const drivers: Record<string, Driver> = {
    process: new ProcessDriver({ warn: (m) => log.warn(m) }),
  };
  return { set: new DriverSet(drivers), names: Object.keys(drivers) };
}
