// The docker driver on shoal's networks: a container is attached the way CNI plugins do it (no
// network of the engine's, a veth moved into its namespace, the node's resolver as its DNS), so
// a process task and a container on one network reach each other. On one node: one Overlays
// instance in this machine's own namespace, one network synced with the node's address and no
// peers. Needs root, VXLAN, a Docker Engine and the test image (.ci/docker.sh); the refusals need
// none of them.

import { after, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import Docker from "dockerode";
import type { NodeNetwork } from "../../src/api/bus.js";
import { DriverError, type Handle, type RunSpec } from "../../src/node/drivers/driver.js";
import { DockerDriver, DockerLabels } from "../../src/node/drivers/docker.js";
import { ProcessDriver } from "../../src/node/drivers/process.js";
import { findIp, findIptables, ipRun, nsName } from "../../src/node/drivers/netns.js";
import {
  Overlays,
  overlayNames,
  overlayTag,
  overlayUnsupportedReason,
} from "../../src/node/drivers/overlay.js";
import {
  checkFor,
  defer,
  dockerUnavailable,
  DOCKER_TEST_IMAGE,
  readLog,
  runSpec,
  tempDir,
} from "./helpers.js";

const IMAGE = DOCKER_TEST_IMAGE;

/** A network of this test run: a /24 of 10.231/16 and a VNI picked at random. */
function testNetwork(): NodeNetwork {
  const n = 1 + Math.floor(Math.random() * 250);
  return {
    id: `dockovl${process.pid}`,
    name: "docker-overlay-test",
    driver: "overlay",
    vni: 1 + Math.floor(Math.random() * 16_000_000),
    subnet: `10.231.${n}.0/24`,
    internal: false,
    nodeAddr: `10.231.${n}.1/24`,
    peers: [],
    vips: [],
  };
}

/** The network's host address number `i` (with the prefix when `cidr`). */
function hostAddr(net: NodeNetwork, i: number, cidr = false): string {
  const a = net.subnet.replace(/\.0\/24$/, `.${i}`);
  return cidr ? `${a}/24` : a;
}

function dockerSpec(t: TestContext, command: string[], over: Partial<RunSpec> = {}): RunSpec {
  return runSpec(join(tempDir(t), "task"), command, {
    driver: "docker",
    image: IMAGE,
    env: { PATH: "/bin" },
    ...over,
  });
}

describe("docker driver refuses networks it cannot join", () => {
  const net = testNetwork();
  const overlay = [{ network: net, addr: hostAddr(net, 3, true) }];
  const wiring = { attach: async () => {}, detach: async () => {} };

  test("on a node without overlay networks", async (t) => {
    const d = new DockerDriver({ socketPath: join(tempDir(t), "no.sock"), overlays: null });
    await assert.rejects(d.start(dockerSpec(t, ["true"], { overlay })), (err: unknown) => {
      assert.ok(err instanceof DriverError);
      assert.equal(err.code, "ERR_NETWORK_UNSUPPORTED");
      assert.match(err.message, /cannot join overlay networks/);
      return true;
    });
  });

  test("on a remote engine (DOCKER_HOST tcp://)", async (t) => {
    const saved = process.env["DOCKER_HOST"];
    process.env["DOCKER_HOST"] = "tcp://192.0.2.77:2375";
    let d: DockerDriver;
    try {
      d = new DockerDriver({ overlays: wiring });
    } finally {
      if (saved === undefined) delete process.env["DOCKER_HOST"];
      else process.env["DOCKER_HOST"] = saved;
    }
    await assert.rejects(d.start(dockerSpec(t, ["true"], { overlay })), (err: unknown) => {
      assert.ok(err instanceof DriverError);
      assert.equal(err.code, "ERR_NETWORK_UNSUPPORTED");
      assert.match(err.message, /only on a local engine.*tcp:\/\/192\.0\.2\.77:2375 is remote/);
      return true;
    });
  });
});

/** Why the attaching tests cannot run here, or null. */
async function unavailable(): Promise<string | null> {
  return (await overlayUnsupportedReason()) ?? (await dockerUnavailable());
}

const skip = await unavailable();
if (skip !== null) {
  test(`docker driver on shoal's networks: skipped: ${skip}`, { skip }, () => {});
} else {
  // A made-up underlay address (198.18/15, for benchmarks): the tag in the links' and chains'
  // names is then this run's own, clear of any daemon on the machine.
  const underlay = `198.18.${process.pid % 250}.${1 + Math.floor(Math.random() * 250)}`;
  const ip = findIp();
  const overlays = new Overlays({
    ipPath: ip,
    iptablesPath: findIptables(),
    underlay,
    log: { info() {}, warn: (m) => process.stderr.write(`overlay: ${m}\n`) },
  });
  const names = overlayNames(overlayTag(underlay));
  const net = testNetwork();
  const gateway = net.nodeAddr.split("/")[0]!;
  await overlays.sync([net]);
  after(() => overlays.removeAll());

  /** The node's veths leading into namespace `ns`. */
  const vethsOf = async (ns: string): Promise<string[]> => {
    const links = JSON.parse(await ipRun(ip, ["-j", "-d", "link", "show"])) as Array<{
      ifname: string;
      ifalias?: string;
    }>;
    return links.filter((l) => l.ifalias === names.vethAlias(ns)).map((l) => l.ifname);
  };

  const newDocker = (): DockerDriver => new DockerDriver({ logCheckIntervalMs: 50, overlays });

  /** Serves "hello from the process task to <asker>" on PORT, and asks the container's PEER
   * address until it answers; prints what it got. */
  const PROCESS_TASK = `
const net = require("net");
const [port, peer, peerPort] = process.argv.slice(1);
net.createServer((s) => { s.on("error", () => {}); s.end("hello from the process task to " + s.remoteAddress + "\\n"); })
  .listen(+port, "0.0.0.0", () => console.log("ready"));
function ask() {
  let got = "";
  const c = net.connect(+peerPort, peer);
  c.on("error", () => setTimeout(ask, 100));
  c.on("data", (d) => {
    got += d;
    if (got.includes("\\n")) { console.log("got: " + got.trim()); c.destroy(); }
  });
}
ask();
`;

  describe("docker driver on shoal's networks", () => {
    test("a process task and a container on one network reach each other", async (t) => {
      const proc = new ProcessDriver({ overlays, outboundNat: false });
      const docker = newDocker();
      const procAddr = hostAddr(net, 2);
      const ctrAddr = hostAddr(net, 3);

      const ps = runSpec(
        join(tempDir(t), "proc"),
        [process.execPath, "-e", PROCESS_TASK, "7001", ctrAddr, "7002"],
        { overlay: [{ network: net, addr: hostAddr(net, 2, true) }] },
      );
      const ph = await proc.start(ps);
      defer(t, () => proc.destroy(ph));

      const script = [
        "cat /etc/resolv.conf",
        'echo "hello from the container" | busybox nc -l -p 7002 &',
        `until busybox nc ${procAddr} 7001 </dev/null >/tmp/got 2>/dev/null && [ -s /tmp/got ]; do sleep 0.1; done`,
        'echo "got: $(cat /tmp/got)"',
        "exec sleep 600",
      ].join("\n");
      const cs = dockerSpec(t, ["sh", "-c", script], {
        overlay: [{ network: net, addr: hostAddr(net, 3, true) }],
      });
      const ch: Handle = await docker.start(cs);
      defer(t, () => docker.destroy(ch));
      const ns = nsName(cs.taskId);
      assert.equal(ch["netns"], ns);
      assert.equal(ch.address, ctrAddr);

      const info = await new Docker().getContainer(String(ch["containerId"])).inspect();
      assert.equal(info.HostConfig.NetworkMode, "none");

      // Container → process task, from the container's address on the network.
      const fromProc = `got: hello from the process task to ${ctrAddr}`;
      assert.ok(
        await checkFor(15_000, () => readLog(cs.taskDir).split("\n").includes(fromProc)),
        `container log: ${readLog(cs.taskDir)}`,
      );
      // Process task → container.
      assert.ok(
        await checkFor(15_000, () =>
          readLog(ps.taskDir).split("\n").includes("got: hello from the container"),
        ),
        `process task log: ${readLog(ps.taskDir)}`,
      );
      // shoal's resolver (the node's address on the network) is the container's DNS server.
      const resolv = readLog(cs.taskDir).split("\n");
      assert.ok(resolv.includes(`nameserver ${gateway}`), resolv.join("\n"));
      assert.ok(resolv.includes("options ndots:0"), resolv.join("\n"));

      // Stopping the container removes its veth and its namespace's name.
      assert.equal((await vethsOf(ns)).length, 1);
      assert.ok(existsSync(join("/run/netns", ns)));
      await docker.stop(ch, 3000);
      assert.deepEqual(await vethsOf(ns), []);
      assert.equal(existsSync(join("/run/netns", ns)), false);
      assert.equal(existsSync(join("/etc/netns", ns)), false);
      // The process task's wiring is its own, untouched.
      assert.equal((await vethsOf(nsName(ps.taskId))).length, 1);
    });

    test("a driver that adopts a container releases its network when it stops it", async (t) => {
      const first = newDocker();
      const cs = dockerSpec(t, ["sh", "-c", "echo ready; exec sleep 600"], {
        overlay: [{ network: net, addr: hostAddr(net, 4, true) }],
      });
      const h = await first.start(cs);
      defer(t, () => first.destroy(h));
      const ns = nsName(cs.taskId);
      assert.equal((await vethsOf(ns)).length, 1);
      // A driver of a new agent adopts the running container; stopping it there releases it.
      const second = newDocker();
      const adopted = await second.recover(JSON.parse(JSON.stringify(h)) as Handle);
      assert.ok(adopted, "recovered");
      assert.equal(adopted["netns"], ns);
      await second.stop(adopted, 3000);
      assert.deepEqual(await vethsOf(ns), []);
      assert.equal(existsSync(join("/run/netns", ns)), false);
    });

    /** What a killed agent leaves: a running container of the task, its namespace named and
     * wired by hand (address number `i`), with nobody watching it. */
    async function leftover(t: TestContext, i: number) {
      const cs = dockerSpec(t, ["sh", "-c", "exec sleep 600"]);
      const c = await new Docker().createContainer({
        Image: IMAGE,
        Cmd: cs.command,
        Labels: { [DockerLabels.task]: cs.taskId },
        HostConfig: { NetworkMode: "none" },
      });
      defer(t, () => c.remove({ force: true }).catch(() => {}));
      await c.start();
      const info = await c.inspect();
      const ns = nsName(cs.taskId);
      await ipRun(ip, ["netns", "attach", ns, String(info.State.Pid)]);
      defer(t, () => ipRun(ip, ["netns", "delete", ns]).catch(() => {}));
      await overlays.attach(ns, [{ network: net, addr: hostAddr(net, i, true) }]);
      assert.equal((await vethsOf(ns)).length, 1);
      const h: Handle = {
        driver: "docker",
        taskId: cs.taskId,
        pid: info.State.Pid,
        startedAt: Date.now(),
        containerId: c.id,
        containerStartedAt: info.State.StartedAt,
        taskDir: cs.taskDir,
        logMaxBytes: 0,
        stopSignal: "SIGTERM",
        netns: ns,
      };
      return { c, ns, h, spec: cs };
    }

    test("recover() of a container that ended unwatched releases its network", async (t) => {
      const { c, ns, h } = await leftover(t, 5);
      await c.kill({ signal: "SIGKILL" });
      await c.wait({ condition: "not-running" });
      // The name holds the namespace: the veth outlives the container until it is released.
      assert.equal((await vethsOf(ns)).length, 1);
      assert.equal(await newDocker().recover(h), null);
      assert.deepEqual(await vethsOf(ns), []);
      assert.equal(existsSync(join("/run/netns", ns)), false);
    });

    test("reap() releases the network of the container an interrupted start left", async (t) => {
      const { ns, spec } = await leftover(t, 6);
      const intent = { taskId: spec.taskId, driver: "docker", taskDir: spec.taskDir, at: 0 };
      assert.equal(await newDocker().reap(intent), 1);
      assert.deepEqual(await vethsOf(ns), []);
      assert.equal(existsSync(join("/run/netns", ns)), false);
    });

    test("a container that ends at once on a network reports its exit", async (t) => {
      const d = newDocker();
      const cs = dockerSpec(t, ["true"], {
        overlay: [{ network: net, addr: hostAddr(net, 7, true) }],
      });
      const h = await d.start(cs);
      defer(t, () => d.destroy(h));
      assert.deepEqual(await d.wait(h), { exitCode: 0, signal: null, error: null });
      const ns = nsName(cs.taskId);
      assert.deepEqual(await vethsOf(ns), []);
      assert.equal(existsSync(join("/run/netns", ns)), false);
    });
  });
}
