// `shoal store repair <dir>` (loaded lazily by the CLI): repairs a damaged embedded store
// (src/store/repair.ts) with the daemon stopped. `dir` is the store directory, or a daemon's data
// dir that holds it as `store/`.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { repairStore } from "../store/repair.js";
import { StoreError } from "../store/store.js";

export async function repairStoreCommand(dir: string): Promise<number> {
  const storeDir = existsSync(join(dir, "store")) ? join(dir, "store") : dir;
  if (!existsSync(storeDir)) {
    throw new StoreError("ERR_INVALID", `no store directory at ${storeDir}`);
  }
  const report = await repairStore(storeDir, {
    onWarning: (msg) => process.stderr.write(`warning: ${msg}\n`),
  });
  process.stdout.write(report.message + "\n");
  return 0;
}
