// Runs the driver conformance suite against every driver: the process driver (real processes
// through /bin/sh) and the in-memory mock driver used by agent tests.

import { ProcessDriver } from "../../src/agent/drivers/process.js";
import { conformance } from "./conformance.js";
import { MockDriver, MockKernel } from "./mock-driver.js";

const sh = (script: string): string[] => ["sh", "-c", script];

conformance({
  name: "process",
  create: () => new ProcessDriver({ logCheckIntervalMs: 50, pollIntervalMs: 20 }),
  baseEnv: () => ({ PATH: process.env["PATH"] ?? "/usr/bin:/bin" }),
  programs: {
    exit: (code) => sh(`exit ${code}`),
    sleep: () => sh("echo ready; exec sleep 60"),
    ignoreTerm: () => sh('trap "" TERM; echo ready; exec sleep 60'),
    env: () => ["env"],
    pwd: () => ["pwd"],
    spew: (n, stay) =>
      sh(
        `i=0; while [ $i -lt ${n} ]; do printf 'line %06d %s\\n' $i ${"x".repeat(88)}; ` +
          `i=$((i+1)); done; echo err >&2; ${stay ? "exec sleep 60" : "exit 0"}`,
      ),
  },
});

const kernel = new MockKernel();
conformance({
  name: "mock",
  create: () => new MockDriver(kernel, { logCheckIntervalMs: 50 }),
  baseEnv: () => ({ PATH: "/usr/bin:/bin" }),
  programs: {
    exit: (code) => ["mock", "exit", String(code)],
    sleep: () => ["mock", "sleep"],
    ignoreTerm: () => ["mock", "ignore-term"],
    env: () => ["mock", "env"],
    pwd: () => ["mock", "pwd"],
    spew: (n, stay) => ["mock", "spew", String(n), ...(stay ? ["stay"] : [])],
  },
});
