// DriverSet: a task starts on the driver its spec names, later calls follow the handle's driver,
// and a driver the node does not have is a clear error (also as an exit status, never a throw).

import { test } from "node:test";
import assert from "node:assert/strict";
import { DriverSet } from "../../src/node/drivers/driver-set.js";
import { ProcessDriver } from "../../src/node/drivers/process.js";
import { MockDriver, MockKernel } from "./mock-driver.js";
import { checkFor, runSpec, tempDir } from "./helpers.js";

test("tasks go to the driver their spec names; handles find their way back", async (t) => {
  const kernel = new MockKernel();
  const set = new DriverSet({ process: new ProcessDriver(), mock: new MockDriver(kernel) });
  const onMock = await set.start(runSpec(tempDir(t), ["mock", "sleep"], { driver: "mock" }));
  assert.equal(onMock["driver"], "mock");
  assert.ok(kernel.procs.has(onMock.pid));
  const onProcess = await set.start(runSpec(tempDir(t), ["sleep", "100"]));
  assert.equal(onProcess["driver"], "process");
  t.after(() => set.destroy(onProcess));

  // stop and wait follow the handle: the mock task ends in the mock kernel, the process one
  // is a real process.
  const mockEnd = set.wait(onMock);
  await set.stop(onMock, 1000);
  assert.equal((await mockEnd).signal, "SIGTERM");
  assert.equal((await set.inspect(onProcess)).running, true);
  const procEnd = set.wait(onProcess);
  await set.stop(onProcess, 2000);
  await checkFor(5000, async () => (await procEnd).signal === "SIGTERM");
});

test("a driver the node does not have: a clear error", async (t) => {
  const set = new DriverSet({ process: new ProcessDriver() });
  await assert.rejects(set.start(runSpec(tempDir(t), ["x"], { driver: "docker" })), {
    code: "ERR_DRIVER_UNAVAILABLE",
    message: "the docker driver is not available on this node (it has: process)",
  });
  const status = await set.wait({ taskId: "x", pid: 1, startedAt: 0, driver: "docker" });
  assert.match(status.error ?? "", /the docker driver is not available/);
});
