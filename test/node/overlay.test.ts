// Overlay networks on the network-namespace test bed (Linux, as root): two "machines", each
// running an Overlays instance inside its namespace (a small agent process that takes calls on
// stdin), task namespaces wired into the networks, traffic between them: TCP and UDP across
// machines, isolation between networks, no way out of an internal network, masquerading out
// of a normal one, a virtual IP balanced over backends on both machines, peers coming and
// going, a restarted agent adopting what the killed one made, and nothing left behind.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { createInterface } from "node:readline";
import { createTestBed, netnsAvailable, type Host, type TestBed } from "../cluster/netns.js";
import { findIp } from "../../src/node/drivers/netns.js";
import {
  OVERLAY_MTU,
  overlayNames,
  overlayTag,
  overlayUnsupportedReason,
} from "../../src/node/drivers/overlay.js";
import type { NodeNetwork } from "../../src/api/bus.js";
import { checkFor } from "./helpers.js";
import { OverlayAgent as Agent } from "../helpers/overlay-agent.js";

const reason = await overlayUnsupportedReason();
const skip = reason ?? (netnsAvailable() ? false : "network namespaces are not available");

const node = process.execPath;

/** Answers on TCP and UDP port argv[2] with "argv[1] <the asker's address>". */
const SERVER = `
const [name, port] = process.argv.slice(1);
let up = 0;
const ready = () => { if (++up === 2) console.log("ready"); };
require("net").createServer((s) => { s.on("error", () => {}); s.end(name + " " + s.remoteAddress); })
  .listen(+port, "0.0.0.0", ready);
const u = require("dgram").createSocket("udp4");
u.on("message", (m, r) => u.send(name + " " + r.address, r.port, r.address));
u.bind(+port, "0.0.0.0", ready);
`;

/** Asks argv[2]:argv[3] argv[4] times over argv[1] (tcp|udp); prints the answers as JSON. */
const CLIENT = `
const [proto, host, port, n] = process.argv.slice(1);
const answers = [];
function tcp(left) {
  if (left === 0) return console.log(JSON.stringify(answers));
  let got = "";
  const s = require("net").connect(+port, host);
  s.setTimeout(3000, () => s.destroy(new Error("ETIMEDOUT")));
  s.on("data", (d) => (got += d));
  s.on("error", (e) => { answers.push("ERR " + (e.code || e.message)); tcp(0); });
  s.on("end", () => { answers.push(got); tcp(left - 1); });
}
function udp() {
  const u = require("dgram").createSocket("udp4");
  const t = setInterval(() => u.send("hi", +port, host), 200);
  const give = setTimeout(() => { console.log(JSON.stringify(["ERR timeout"])); process.exit(0); }, 5000);
  u.send("hi", +port, host);
  u.on("message", (m) => {
    clearInterval(t); clearTimeout(give); console.log(JSON.stringify([String(m)])); u.close();
  });
}
proto === "tcp" ? tcp(+n) : udp();
`;

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { timeout: 20_000 }, (err, out, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(" ")}: ${stderr || err.message}`)) : resolve(out),
    ),
  );
}

test("names fit Linux's and iptables' limits and differ per daemon", () => {
  const a = overlayNames(overlayTag("10.77.3.11"));
  const b = overlayNames(overlayTag("10.77.3.12"));
  const links = [a.bridge(16_777_215), a.vxlan(16_777_215), a.veth("shoal-" + "x".repeat(40), "n")];
  for (const l of links) assert.ok(l.length <= 15, l);
  assert.ok(a.vipChain("n".repeat(30), "10.0.0.1").length <= 28);
  assert.notEqual(a.bridge(7), b.bridge(7));
  assert.notEqual(a.bridge(7), a.bridge(8));
  assert.notEqual(a.veth("ns1", "n"), a.veth("ns2", "n"));
  assert.notEqual(a.natPre, b.natPre);
});

test("overlay networks say why they cannot work", async () => {
  assert.match((await overlayUnsupportedReason("darwin", 0, "/sbin/ip"))!, /need Linux.*darwin/);
  assert.match((await overlayUnsupportedReason("linux", 1000, "/sbin/ip"))!, /root.*1000/);
  assert.match((await overlayUnsupportedReason("linux", 0, ""))!, /`ip`/);
});

describe("overlay networks", { skip, timeout: 120_000 }, () => {
  const IP = findIp();
  let bed: TestBed;
  let A: Host;
  let B: Host;
  let agentA: Agent;
  let agentB: Agent;
  const tag = `ov${process.pid.toString(36)}`;
  const taskNs: string[] = [];
  const children = new Set<ChildProcess>();

  /** A task namespace (on no host: the agent wires it in). */
  async function taskNamespace(name: string): Promise<string> {
    const ns = `${tag}-${name}`;
    await run(IP, ["netns", "add", ns]);
    taskNs.push(ns);
    return ns;
  }

  function inNs(ns: string, args: string[]): ChildProcess {
    const c = spawn(IP, ["netns", "exec", ns, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    children.add(c);
    c.once("exit", () => children.delete(c));
    return c;
  }

  /** Starts a server in a namespace (a task's or a host's); resolves when it listens. */
  async function serve(ns: string, name: string, port: number): Promise<ChildProcess> {
    const c = inNs(ns, [node, "-e", SERVER, name, String(port)]);
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: c.stdout! }).once("line", () => resolve());
      c.once("exit", (code) => reject(new Error(`server ${name} exited with ${code}`)));
    });
    return c;
  }

  async function ask(ns: string, proto: "tcp" | "udp", addr: string, port: number, n = 1) {
    const c = inNs(ns, [node, "-e", CLIENT, proto, addr, String(port), String(n)]);
    let out = "";
    c.stdout!.on("data", (d: Buffer) => (out += d));
    await new Promise((r) => c.once("exit", r));
    return JSON.parse(out) as string[];
  }

  const netOn = (host: "A" | "B", n: Omit<NodeNetwork, "nodeAddr" | "peers">, hostPart: number) =>
    ({
      ...n,
      nodeAddr: `${n.subnet.split(".").slice(0, 3).join(".")}.${hostPart}/24`,
      peers: [host === "A" ? B.addr : A.addr],
    }) as NodeNetwork;

  const red = {
    id: "rednet",
    name: "red",
    driver: "overlay",
    vni: 4097,
    subnet: "10.201.1.0/24",
    internal: false,
    vips: [] as NodeNetwork["vips"],
  };
  const blue = { ...red, id: "bluenet", name: "blue", vni: 4098, subnet: "10.201.2.0/24" };
  const grey = { ...red, id: "greynet", name: "grey", vni: 4099, subnet: "10.201.3.0/24" };
  const internal = { ...grey, internal: true };
  const VIP = "10.201.1.100";
  const withVip = { ...red, vips: [{ addr: VIP, backends: ["10.201.1.10", "10.201.1.20"] }] };
  const netsA = () => [netOn("A", withVip, 2), netOn("A", blue, 2), netOn("A", internal, 2)];
  const netsB = () => [netOn("B", withVip, 3), netOn("B", blue, 3)];

  const hostIp = (h: Host, args: string[]) => run(IP, ["-n", h.ns, ...args]);
  const names = (h: Host) => overlayNames(overlayTag(h.addr));
  async function ourLinks(h: Host): Promise<string[]> {
    const out = await hostIp(h, ["-o", "link", "show"]);
    const n = names(h);
    return out
      .split("\n")
      .map((l) => /^\d+:\s+([^:@]+)/.exec(l)?.[1] ?? "")
      .filter((l) => n.linkPrefixes.some((p) => l.startsWith(p)));
  }
  async function ourRules(h: Host): Promise<string[]> {
    const out = await run(IP, ["netns", "exec", h.ns, "iptables-save"]);
    return out.split("\n").filter((l) => l.includes(names(h).chainPrefix));
  }

  let tA: string; // task on A: red .10, then blue .10
  let tB: string; // task on B: red .20
  let tC: string; // VIP client on A: red .11
  let tI: string; // task on A on the internal network only

  before(async () => {
    bed = await createTestBed(2, { prefix: "ovl", mode: "netns" });
    [A, B] = bed.hosts as [Host, Host];
    agentA = new Agent(A);
    agentB = new Agent(B);
    await agentA.call("sync", netsA());
    await agentB.call("sync", netsB());
    tA = await taskNamespace("a");
    tB = await taskNamespace("b");
    tC = await taskNamespace("c");
    tI = await taskNamespace("i");
    const [redA, blueA, intA] = netsA() as [NodeNetwork, NodeNetwork, NodeNetwork];
    await agentA.call("attach", tA, [
      { network: redA, addr: "10.201.1.10/24" },
      { network: blueA, addr: "10.201.2.10/24" },
    ]);
    await agentA.call("attach", tC, [{ network: redA, addr: "10.201.1.11/24" }]);
    await agentA.call("attach", tI, [{ network: intA, addr: "10.201.3.10/24" }]);
    await agentB.call("attach", tB, [{ network: netsB()[0]!, addr: "10.201.1.20/24" }]);
  });

  after(async () => {
    for (const c of children) c.kill("SIGKILL");
    for (const ns of taskNs) {
      await run(IP, ["netns", "del", ns]).catch(() => undefined);
      rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    }
    await bed?.cleanup();
  });

  test("a task gets its addresses, routes, MTU and resolver", async () => {
    const addrs = await run(IP, ["-n", tA, "-o", "-4", "addr", "show"]);
    assert.match(addrs, /eth0\s+inet 10\.201\.1\.10\/24/);
    assert.match(addrs, /eth1\s+inet 10\.201\.2\.10\/24/);
    assert.match(await run(IP, ["-n", tA, "route"]), /default via 10\.201\.1\.2 dev eth0/);
    assert.match(
      await run(IP, ["-n", tA, "link", "show", "eth0"]),
      new RegExp(`mtu ${OVERLAY_MTU}`),
    );
    assert.equal(
      readFileSync(`/etc/netns/${tA}/resolv.conf`, "utf8").split("\n").slice(1).join("\n"),
      "nameserver 10.201.1.2\noptions ndots:0\n",
    );
    const n = names(A);
    for (const l of [n.bridge(red.vni), n.vxlan(red.vni), n.veth(tA, red.id)]) {
      assert.match(await hostIp(A, ["link", "show", l]), new RegExp(`mtu ${OVERLAY_MTU}`), l);
    }
  });

  test("tasks attached at the same time each get their own wiring", async () => {
    const many = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => taskNamespace(`m${i}`)));
    const redA = netsA()[0]!;
    // All calls in flight at once, a sync among them (it waits for the attaches before it).
    await Promise.all([
      ...many.map((ns, i) =>
        agentA.call("attach", ns, [{ network: redA, addr: `10.201.1.${60 + i}/24` }]),
      ),
      agentA.call("sync", netsA()),
    ]);
    for (const [i, ns] of many.entries()) {
      const addrs = await run(IP, ["-n", ns, "-o", "-4", "addr", "show"]);
      assert.match(addrs, new RegExp(`eth0\\s+inet 10\\.201\\.1\\.${60 + i}/24`), ns);
    }
    await serve(many[0]!, "m1", 7100);
    assert.deepEqual(await ask(many[5]!, "tcp", "10.201.1.60", 7100), ["m1 10.201.1.65"]);
    await Promise.all(many.map((ns) => agentA.call("detach", ns)));
    const left = (await ourLinks(A)).filter((l) =>
      many.some((ns) => l === names(A).veth(ns, red.id)),
    );
    assert.deepEqual(left, []);
  });

  test("attach refuses a network that was not synced, sync refuses a bad one", async () => {
    const ns = await taskNamespace("x");
    const unknown = netOn("A", { ...blue, id: "unknown", vni: 4242 }, 2);
    await assert.rejects(
      agentA.call("attach", ns, [{ network: unknown, addr: "10.201.2.50/24" }]),
      /network blue \(unknown\) is not set up on this node/,
    );
    const links = await ourLinks(A);
    await assert.rejects(
      agentA.call("sync", [{ ...netsA()[0]!, subnet: "10.201.1.0" }]),
      /subnet: "10\.201\.1\.0" is not an IPv4 CIDR/,
    );
    // The refused sync changed nothing.
    assert.deepEqual(await ourLinks(A), links);
  });

  test("TCP and UDP between tasks on two machines", async () => {
    await serve(tB, "b", 7000);
    assert.deepEqual(await ask(tA, "tcp", "10.201.1.20", 7000), ["b 10.201.1.10"]);
    assert.deepEqual(await ask(tA, "udp", "10.201.1.20", 7000), ["b 10.201.1.10"]);
  });

  test("two networks are isolated from each other", async () => {
    // tA is on both: fine. A task on blue alone (tA's blue address as the source is not
    // enough: tA reaches red directly), so try from the node's blue side: a blue-only task.
    const tBlue = await taskNamespace("blue");
    await agentA.call("attach", tBlue, [{ network: netsA()[1]!, addr: "10.201.2.11/24" }]);
    const drops = async () => {
      const out = await run(IP, ["netns", "exec", A.ns, "iptables", "-v", "-x", "-n", "-L"]);
      const line = out.split("\n").find((l) => /DROP.*sob\+\s+sob\+/.test(l));
      return Number(line?.trim().split(/\s+/)[0] ?? 0);
    };
    const before = await drops();
    const attempt = ask(tBlue, "tcp", "10.201.1.20", 7000);
    await checkFor(5000, async () => (await drops()) > before);
    // Blue reaches blue though.
    await serve(tA, "a-blue", 7001);
    assert.deepEqual(await ask(tBlue, "tcp", "10.201.2.10", 7001), ["a-blue 10.201.2.11"]);
    assert.match((await attempt)[0]!, /^ERR/);
  });

  test("an internal network has no way out; a normal one is masqueraded out", async () => {
    await serve(B.ns, "hostB", 7002);
    assert.doesNotMatch(await run(IP, ["-n", tI, "route"]), /default/);
    assert.deepEqual(await ask(tI, "tcp", B.addr, 7002), ["ERR ENETUNREACH"]);
    // Out through A, as A.
    assert.deepEqual(await ask(tC, "tcp", B.addr, 7002), [`hostB ${A.addr}`]);
  });

  test("a virtual IP balances over backends on both machines", async () => {
    await serve(tA, "a", 7003);
    await serve(tB, "b", 7003);
    const answers = await ask(tC, "tcp", VIP, 7003, 40);
    const from = (who: string) => answers.filter((a) => a.startsWith(`${who} `)).length;
    assert.equal(from("a") + from("b"), 40, answers.join(", "));
    assert.ok(from("a") > 0 && from("b") > 0, answers.join(", "));
    // Replies come back through the node: the backends see the node's address.
    assert.ok(
      answers.every((a) => a.endsWith(" 10.201.1.2")),
      answers.join(", "),
    );
  });

  test("a peer that goes away loses its forwarding entry", async () => {
    const fdb = () => bridgeFdb(A, names(A).vxlan(red.vni));
    assert.match(await fdb(), new RegExp(`dst ${B.addr.replace(/\./g, "\\.")}`));
    await agentA.call(
      "sync",
      netsA().map((n) => ({ ...n, peers: [] })),
    );
    assert.doesNotMatch(await fdb(), /dst /);
    await agentA.call("sync", netsA());
    assert.match(await fdb(), new RegExp(`dst ${B.addr.replace(/\./g, "\\.")}`));
  });

  test("a restarted agent adopts what the killed one made, then removes it all", async () => {
    const before = await hostIp(A, ["-o", "link", "show"]);
    await agentA.kill9();
    agentA = new Agent(A);
    await agentA.call("sync", netsA());
    assert.equal(await hostIp(A, ["-o", "link", "show"]), before, "links recreated");
    assert.deepEqual(await ask(tA, "tcp", "10.201.1.20", 7000), ["b 10.201.1.10"]);
    // A network dropped: its links and its VIP chain go.
    await agentA.call("sync", [netOn("A", red, 2)]);
    assert.deepEqual(
      (await ourLinks(A)).filter((l) => l.includes(names(A).bridge(blue.vni).slice(3))),
      [],
    );
    assert.ok(!(await ourRules(A)).some((l) => /-V[0-9A-F]{8}/.test(l)));
    await agentA.call("sync", []);
    assert.deepEqual(await ourLinks(A), []);
    assert.deepEqual(await ourRules(A), []);
    assert.ok(!existsSync(`/etc/netns/${tA}`), "resolv.conf left");
  });

  test("detach removes a task's veths and resolver; removeAll leaves nothing", async () => {
    const n = names(B);
    await agentB.call("detach", tB);
    assert.deepEqual(
      (await ourLinks(B)).filter((l) => l === n.veth(tB, red.id)),
      [],
    );
    assert.ok(!existsSync(`/etc/netns/${tB}`));
    assert.ok((await ourLinks(B)).length > 0);
    assert.ok((await ourRules(B)).length > 0);
    await agentB.call("removeAll");
    assert.deepEqual(await ourLinks(B), []);
    assert.deepEqual(await ourRules(B), []);
  });

  async function bridgeFdb(h: Host, dev: string): Promise<string> {
    return run(IP.replace(/ip$/, "bridge"), ["-n", h.ns, "fdb", "show", "dev", dev]);
  }
});
