// Runs the driver conformance suite against every driver: the process driver (real processes
// through /bin/sh) and the in-memory mock driver used by agent tests.

import { ProcessDriver } from "../../src/node/drivers/process.js";
import { conformance, shellPrograms } from "./conformance.js";
import { MockDriver, MockKernel } from "./mock-driver.js";

conformance({
  name: "process",
  create: () => new ProcessDriver({ logCheckIntervalMs: 50, pollIntervalMs: 20 }),
  baseEnv: () => ({ PATH: process.env["PATH"] ?? "/usr/bin:/bin" }),
  programs: shellPrograms(),
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
