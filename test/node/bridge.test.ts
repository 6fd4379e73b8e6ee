// Bridge networking with the real process driver and agent (Linux, as root, with iproute2): each
// task in a network namespace of its own on the node's bridge, listening on its target port
// itself behind the agent's host-port forwarder; the namespace, veth, address reservation and
// forwarder go when the task ends; a restarted agent forwards an adopted task's port again; and
// a host that cannot do it says why.

import { after, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import { Agent, type TaskReport } from "../../src/node/agent.js";
import type { Handle } from "../../src/node/drivers/driver.js";
import {
  BRIDGE_NAME,
  IPAM_DIR,
  findIp,
  nsName,
  teardownTaskNet,
  type TaskNet,
} from "../../src/node/drivers/netns.js";
import { ProcessDriver } from "../../src/node/drivers/process.js";
import { defaultServiceSpec, type Task } from "../../src/api/types.js";
import { checkFor, defer, pidAlive, readLog, taskId, tempDir } from "./helpers.js";
import { task } from "../store/helpers.js";

const IP = findIp();
const skip =
  process.platform !== "linux"
    ? "bridge networking needs Linux"
    : process.getuid?.() !== 0
      ? "bridge networking needs root"
      : IP === ""
        ? "bridge networking needs iproute2's ip"
        : false;

const quietLog = { info() {}, warn() {}, error() {}, debug() {} };
const node = process.execPath;
/** Answers every request with the task's slot, on $PORT. */
const HTTP_SERVER =
  "require('http').createServer((q,s)=>s.end(process.env.SHOAL_TASK_SLOT)).listen(+process.env.PORT)";

// The bridge is node infrastructure and stays once made, but a test run that made it on a
// machine without one takes it away again (unless some other agent holds addresses on it).
const bridgeExisted = skip === false && existsSync(`/sys/class/net/${BRIDGE_NAME}`);
after(() => {
  if (skip !== false || bridgeExisted || reservations().length > 0) return;
  try {
    execFileSync(IP, ["link", "del", BRIDGE_NAME], { stdio: "ignore" });
  } catch {
    // gone already
  }
});

interface Reservation {
  address: string;
  taskId: string;
  ns: string;
}

function reservations(): Reservation[] {
  let names: string[];
  try {
    names = readdirSync(IPAM_DIR);
  } catch {
    return [];
  }
  const out: Reservation[] = [];
  for (const address of names) {
    try {
      const r = JSON.parse(readFileSync(join(IPAM_DIR, address), "utf8")) as Reservation;
      out.push({ ...r, address });
    } catch {
      // being written
    }
  }
  return out;
}

function netnsList(): string[] {
  // `ip netns list` complains on stderr about namespaces being torn down meanwhile: not ours.
  return execFileSync(IP, ["netns", "list"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  })
    .split("\n")
    .map((l) => l.split(" ")[0]!)
    .filter((l) => l !== "");
}

function linkExists(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`);
}

/** Removes whatever a test's task left of its network, pass or fail. */
function sweepOnEnd(t: TestContext, id: string): void {
  defer(t, async () => {
    const ns = nsName(id);
    const mine = reservations().filter((r) => r.taskId === id);
    for (const r of mine) await teardownTaskNet(IP, id, { ns, address: r.address, veth: "" });
    await teardownTaskNet(IP, id, { ns, address: "", veth: "" });
  });
}

function bridgeTask(slot: number, command: string[]): Task {
  const t = task(taskId(), "svc1", "node1", { serviceName: "web", slot });
  return {
    ...t,
    spec: {
      ...defaultServiceSpec("web"),
      command,
      network: "bridge",
      stopGracePeriodMs: 5000,
      ports: [{ published: 8000, target: 8000, protocol: "tcp", mode: "ingress" }],
    },
    status: { ...t.status, state: "assigned", timestamp: 0, message: "" },
    createdAt: 0,
    updatedAt: 0,
  };
}

/** An agent over a real process driver whose reports the test can wait for. */
function startAgent(
  t: TestContext,
  dataDir: string,
  natsUrl = "nats://127.0.0.1:4222",
): { agent: Agent; reports: TaskReport[]; report: (id: string, state: string) => TaskReport } {
  const reports: TaskReport[] = [];
  const agent = new Agent(
    new ProcessDriver({ logCheckIntervalMs: 50, pollIntervalMs: 20, outboundNat: false }),
    quietLog,
    {
      nodeId: "node1",
      hostname: "host1",
      dataDir,
      natsUrl,
      logMaxBytes: 0,
      report: (r) => reports.push(...r),
    },
  );
  defer(t, () => agent.stop(true));
  const report = (id: string, state: string): TaskReport => {
    const r = reports.find((x) => x.taskId === id && x.state === state);
    if (!r) throw new Error(`no ${state} report for ${id}`);
    return r;
  };
  return { agent, reports, report };
}

/** One HTTP GET through 127.0.0.1:port, raw: the body, or a rejection. */
function get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1");
    let data = "";
    s.setTimeout(2000, () => s.destroy(new Error("timeout")));
    s.on("error", reject);
    s.on("data", (b: Buffer) => (data += b.toString()));
    s.on("end", () => {
      const body = data.split("\r\n\r\n")[1];
      if (!data.startsWith("HTTP/1.1 200") || body === undefined) reject(new Error(data));
      else resolve(body);
    });
    s.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  });
}

/** Whether nothing listens on 127.0.0.1:port. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.on("connect", () => {
      s.destroy();
      resolve(false);
    });
    s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code === "ECONNREFUSED"));
  });
}

function savedNet(dataDir: string, id: string): TaskNet {
  const file = join(dataDir, "tasks", id, "handle.json");
  const saved = JSON.parse(readFileSync(file, "utf8")) as { handle: { net: TaskNet } };
  return saved.handle.net;
}

function envOf(dataDir: string, id: string): Record<string, string> {
  const text = readFileSync(join(dataDir, "tasks", id, "env.txt"), "utf8");
  return Object.fromEntries(
    text
      .split("\n")
      .filter((l) => l.includes("="))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}

test(
  "two bridge tasks both listen on 8000, each behind its host port, alone in their namespace",
  { skip },
  async (t) => {
    const dataDir = tempDir(t);
    const { agent, report } = startAgent(t, dataDir);
    // Records its environment and the interfaces it sees, then serves HTTP on $PORT.
    const command = [
      "sh",
      "-c",
      `env > env.txt; cat /proc/net/dev > dev.txt; exec ${node} -e "${HTTP_SERVER}"`,
    ];
    const a = bridgeTask(1, command);
    const b = bridgeTask(2, command);
    sweepOnEnd(t, a.id);
    sweepOnEnd(t, b.id);
    agent.assign([a, b]);
    await checkFor(10_000, () => report(a.id, "running") && report(b.id, "running"));
    const portA = report(a.id, "running").hostPorts!["8000"]!;
    const portB = report(b.id, "running").hostPorts!["8000"]!;
    assert.notEqual(portA, portB);
    assert.equal(await checkFor(10_000, () => get(portA)), "1");
    assert.equal(await checkFor(10_000, () => get(portB)), "2");

    for (const task of [a, b]) {
      const env = envOf(dataDir, task.id);
      assert.equal(env["PORT"], "8000");
      assert.equal(env["SHOAL_PORT_8000"], "8000");
      assert.equal(env["NATS_URL"], "nats://10.213.0.1:4222", "loopback becomes the gateway");
      const dev = readFileSync(join(dataDir, "tasks", task.id, "dev.txt"), "utf8");
      const ifaces = [...dev.matchAll(/^\s*([^\s:]+):/gm)].map((m) => m[1]).sort();
      assert.deepEqual(ifaces, ["eth0", "lo"]);
    }
    const netA = savedNet(dataDir, a.id);
    const netB = savedNet(dataDir, b.id);
    assert.notEqual(netA.address, netB.address);
    assert.ok(netnsList().includes(netA.ns));
    assert.ok(linkExists(netA.veth));
    assert.ok(reservations().some((r) => r.address === netA.address && r.taskId === a.id));

    // Stop a: everything of its network goes; b keeps answering.
    agent.assign([b]);
    await checkFor(10_000, () => report(a.id, "shutdown"));
    assert.ok(!netnsList().includes(netA.ns), "namespace deleted");
    assert.ok(!linkExists(netA.veth), "veth deleted");
    assert.ok(!reservations().some((r) => r.taskId === a.id), "address released");
    assert.ok(await refused(portA), "forwarder closed");
    assert.equal(await get(portB), "2");

    agent.assign([]);
    await checkFor(10_000, () => report(b.id, "shutdown"));
    assert.ok(!netnsList().includes(netB.ns));
    assert.ok(!linkExists(netB.veth));
    assert.ok(!reservations().some((r) => r.taskId === b.id));
    assert.ok(await refused(portB));
  },
);

test("a bridge task reaches the node's message server through NATS_URL", { skip }, async (t) => {
  // A stand-in for the node's server, listening on every address as the daemon's does.
  const server = createServer((s) => s.end("INFO {}\r\n"));
  await new Promise<void>((r) => server.listen(0, "0.0.0.0", r));
  defer(t, () => new Promise((r) => server.close(r)));
  const port = (server.address() as { port: number }).port;
  const dataDir = tempDir(t);
  const { agent, report } = startAgent(t, dataDir, `nats://127.0.0.1:${port}`);
  const client =
    "const u=new URL(process.env.NATS_URL);" +
    "require('net').connect(+u.port,u.hostname).on('data',d=>process.stdout.write(d))";
  const task = bridgeTask(1, [node, "-e", client]);
  sweepOnEnd(t, task.id);
  agent.assign([task]);
  await checkFor(10_000, () => report(task.id, "complete"));
  assert.equal(readLog(join(dataDir, "tasks", task.id)), "INFO {}\r\n");
  assert.ok(!reservations().some((r) => r.taskId === task.id));
});

/**
 * Runs a throwaway agent process that starts the tasks and prints each one's host port when it
 * runs; the test kills it with SIGKILL, as a crash would.
 */
async function agentProcess(
  t: TestContext,
  dataDir: string,
  tasks: Task[],
): Promise<{ pid: number; ports: Record<string, number> }> {
  const agentUrl = new URL("../../src/node/agent.js", import.meta.url).href;
  const driverUrl = new URL("../../src/node/drivers/process.js", import.meta.url).href;
  const script =
    `const { Agent } = await import(${JSON.stringify(agentUrl)});\n` +
    `const { ProcessDriver } = await import(${JSON.stringify(driverUrl)});\n` +
    `const quiet = { info() {}, warn() {}, error() {}, debug() {} };\n` +
    `const a = new Agent(new ProcessDriver({ outboundNat: false }), quiet, { nodeId: "node1", hostname: "host1",\n` +
    `  dataDir: process.argv[1], natsUrl: "nats://127.0.0.1:4222", logMaxBytes: 0,\n` +
    `  report: (rs) => { for (const r of rs) if (r.state === "running")\n` +
    `    process.stdout.write(JSON.stringify([r.taskId, r.hostPorts["8000"]]) + "\\n"); } });\n` +
    `a.assign(JSON.parse(process.argv[2]));\n` +
    `setInterval(() => {}, 1000);\n`;
  const child = spawn(node, ["--input-type=module", "-e", script, dataDir, JSON.stringify(tasks)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  defer(t, () => {
    child.kill("SIGKILL");
  });
  let out = "";
  child.stdout.on("data", (b: Buffer) => (out += b.toString()));
  await checkFor(10_000, () => out.split("\n").filter((l) => l !== "").length === tasks.length);
  const ports: Record<string, number> = {};
  for (const line of out.split("\n")) {
    if (line === "") continue;
    const [id, port] = JSON.parse(line) as [string, number];
    ports[id] = port;
  }
  return { pid: child.pid!, ports };
}

test(
  "a restarted agent adopts a running bridge task and forwards its host port again",
  { skip },
  async (t) => {
    const dataDir = tempDir(t);
    const serve = bridgeTask(1, [node, "-e", HTTP_SERVER]);
    // Ends once the test says so, while no agent runs: nothing of its network may stay.
    const ends = bridgeTask(2, ["sh", "-c", "while [ ! -e go ]; do sleep 0.02; done"]);
    sweepOnEnd(t, serve.id);
    sweepOnEnd(t, ends.id);
    const pids: number[] = [];
    defer(t, () => {
      for (const pid of pids) {
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          // gone
        }
      }
    });
    const first = await agentProcess(t, dataDir, [serve, ends]);
    const port = first.ports[serve.id]!;
    const handle = (id: string): Handle =>
      (
        JSON.parse(readFileSync(join(dataDir, "tasks", id, "handle.json"), "utf8")) as {
          handle: Handle;
        }
      ).handle;
    const hServe = handle(serve.id);
    const hEnds = handle(ends.id);
    pids.push(hServe.pid, hEnds.pid);
    const netEnds = savedNet(dataDir, ends.id);
    assert.equal(await checkFor(10_000, () => get(port)), "1");

    process.kill(first.pid, "SIGKILL");
    await checkFor(5000, () => !pidAlive(first.pid));
    await checkFor(5000, () => refused(port));
    assert.ok(pidAlive(hServe.pid), "the task outlived its agent");
    execFileSync("touch", [join(dataDir, "tasks", ends.id, "go")]);
    await checkFor(5000, () => !pidAlive(hEnds.pid));

    const { agent, report } = startAgent(t, dataDir);
    await agent.recover();
    const adopted = report(serve.id, "running");
    assert.equal(adopted.message, "adopted");
    assert.equal(adopted.hostPorts!["8000"], port);
    assert.equal(await checkFor(10_000, () => get(port)), "1");
    // The one that ended meanwhile: reported, and its network is gone.
    assert.equal(report(ends.id, "failed").message, "exited while the agent was down");
    assert.ok(!netnsList().includes(netEnds.ns));
    assert.ok(!linkExists(netEnds.veth));
    assert.ok(!reservations().some((r) => r.taskId === ends.id));

    const netServe = savedNet(dataDir, serve.id);
    agent.assign([]);
    await checkFor(10_000, () => report(serve.id, "shutdown"));
    assert.ok(!netnsList().includes(netServe.ns));
    assert.ok(!reservations().some((r) => r.taskId === serve.id));
    assert.ok(await refused(port));
  },
);

test("bridge networking where it cannot work fails the task with the reason", async (t) => {
  const cases: Array<[ConstructorParameters<typeof ProcessDriver>[0], RegExp]> = [
    [
      { uid: 1000, platform: "linux" },
      /^bridge networking needs root \(the agent runs as uid 1000\)$/,
    ],
    [
      { uid: 0, platform: "darwin" },
      /^bridge networking needs Linux network namespaces \(this is darwin\)$/,
    ],
    [{ uid: 0, platform: "linux", ipPath: "/nonexistent/ip" }, /needs iproute2's `ip` command/],
  ];
  for (const [opts, message] of cases) {
    const dataDir = tempDir(t);
    const reports: TaskReport[] = [];
    const agent = new Agent(new ProcessDriver(opts), quietLog, {
      nodeId: "node1",
      hostname: "host1",
      dataDir,
      natsUrl: "nats://127.0.0.1:4222",
      logMaxBytes: 0,
      report: (r) => reports.push(...r),
    });
    defer(t, () => agent.stop(true));
    const task = bridgeTask(1, ["true"]);
    agent.assign([task]);
    const failed = await checkFor(5000, () =>
      reports.find((r) => r.taskId === task.id && r.state === "failed"),
    );
    assert.match(failed?.err ?? "", message);
    assert.ok(!reservations().some((r) => r.taskId === task.id));
    // The driver's own error carries the code.
    await assert.rejects(
      new ProcessDriver(opts).start({
        taskId: taskId(),
        serviceName: "web",
        slot: 1,
        nodeId: "node1",
        nodeHostname: "host1",
        command: ["true"],
        env: {},
        workdir: "",
        taskDir: join(dataDir, "direct"),
        limits: { cpus: 0, memoryBytes: 0 },
        stopSignal: "SIGTERM",
        logMaxBytes: 0,
        network: "bridge",
      }),
      { code: "ERR_NETWORK_UNSUPPORTED", message },
    );
  }
});
