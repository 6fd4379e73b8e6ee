// The drivers a node's agent runs tasks with: the process driver always (its warnings go to
// the daemon's log).

import { DriverSet } from "../agent/drivers/driver-set.js";
import { ProcessDriver } from "../agent/drivers/process.js";

export function nodeDrivers(log: { warn(msg: string): void }): DriverSet {
  return new DriverSet({ process: new ProcessDriver({ warn: (m) => log.warn(m) }) });
}
