// The agent and a task on a network the node is still building: the driver is asked to start the
// task at once (a container is made and started meanwhile), with the promise of the build, which
// it waits for only to wire the task; the task is running once the driver has.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { NodeNetwork } from "../../src/api/bus.js";
import { Agent, type TaskReport } from "../../src/node/agent.js";
import type { Handle, RunSpec } from "../../src/node/drivers/driver.js";
import type { TaskState } from "../../src/api/types.js";
import { MockDriver, MockKernel } from "./mock-driver.js";
import { checkFor, taskId, tempDir } from "./helpers.js";
import { quietLog } from "../helpers/bus.js";
import { task } from "../store/helpers.js";

const NET: NodeNetwork = {
  id: "net1",
  name: "st_default",
  driver: "overlay",
  vni: 4097,
  subnet: "10.0.7.0/24",
  internal: false,
  nodeAddr: "10.0.7.2/24",
  peers: [],
  vips: [],
};

/** A mock driver that wires as a real one would: after the spec's networks are built. */
class WiringDriver extends MockDriver {
  readonly specs: RunSpec[] = [];
  wired = false;
  constructor() {
    super(new MockKernel());
  }
  override async start(spec: RunSpec): Promise<Handle> {
    this.specs.push(spec);
    const h = await super.start({ ...spec, network: "host" });
    await spec.overlayReady;
    this.wired = true;
    return { ...h, address: "10.0.7.5" };
  }
}

test("a task on a network being built is started at once and wired once it is built", async (t) => {
  const d = new WiringDriver();
  const reports: TaskReport[] = [];
  const agent = new Agent(d, quietLog, {
    nodeId: "n1",
    hostname: "n1",
    dataDir: tempDir(t),
    natsUrl: "nats://127.0.0.1:4222",
    logMaxBytes: 0,
    report: (r) => reports.push(...r),
  });
  t.after(() => agent.stop(true));
  let built!: () => void;
  agent.setNetworks([NET], new Promise<void>((r) => (built = r)));
  const id = taskId();
  const x = task(id, "s1", "n1");
  agent.assign([
    {
      ...x,
      spec: { ...x.spec, command: ["mock", "sleep"] },
      networks: [{ networkId: NET.id, addr: "10.0.7.5/24" }],
      status: { ...x.status, state: "assigned" as TaskState },
    },
  ]);

  // The driver has the task before the network is built ...
  assert.ok(await checkFor(10_000, () => d.specs.length === 1));
  const spec = d.specs[0]!;
  assert.deepEqual(spec.overlay, [{ network: NET, addr: "10.0.7.5/24" }]);
  assert.ok(spec.overlayReady);
  assert.equal(d.wired, false);
  assert.ok(!reports.some((r) => r.state === "running"));
  // ... and the task runs once it is.
  built();
  assert.ok(await checkFor(10_000, () => reports.some((r) => r.state === "running")));
  assert.equal(d.wired, true);
});
