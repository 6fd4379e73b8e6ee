// A message server in a process of its own, run by tests with --expose-gc: started with the
// options given as JSON in argv[2], it reports its port, then answers every "status" message
// with its counters and resident memory, after a full garbage collection when asked ("gc").

import { readFileSync } from "node:fs";
import { startServer } from "./servers.js";

export interface GcServerStatus {
  port: number;
  slowConsumers: number;
  /** VmRSS and VmHWM (the peak) of this process, in bytes. */
  rss: number;
  peak: number;
}

function status(field: "VmRSS" | "VmHWM"): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync("/proc/self/status", "latin1"));
  return m ? Number(m[1]) * 1024 : 0;
}

const server = await startServer(JSON.parse(process.argv[2] ?? "{}"));
const report = () =>
  process.send!({
    port: server.port,
    slowConsumers: server.slowConsumers,
    rss: status("VmRSS"),
    peak: status("VmHWM"),
  } satisfies GcServerStatus);
process.on("message", (m) => {
  if (m === "gc") {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (!gc) throw new Error("run with --expose-gc");
    gc();
  }
  report();
});
process.on("disconnect", () => process.exit(0));
report();
