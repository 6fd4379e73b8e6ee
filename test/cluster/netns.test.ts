// Tests of the multi-host test bed (netns.ts): hosts reach each other and are reached from the
// root namespace, kill() pulls the plug on a whole namespace, cut()/heal() take a host off the
// network and back, cleanup leaves nothing behind (also when a test throws, when creation fails
// halfway, and after a crash via sweepStale()), concurrent beds do not collide, and the
// loopback fallback works. The namespace tests are skipped when namespaces are unavailable.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import {
  createTestBed,
  netnsAvailable,
  pidAlive,
  sweepStale,
  useTestBed,
  type Host,
  type TestBed,
} from "./netns.js";

const NETNS = netnsAvailable();
const skipNetns = NETNS ? false : "network namespaces unavailable (needs root and iproute2)";
const MODULE = new URL("./netns.js", import.meta.url).href;
const RESERVATIONS = "/run/shoal-testbed";

// A TCP echo server on all addresses; prints its port once listening.
const ECHO_SERVER =
  "const s=require('net').createServer(c=>c.pipe(c));" +
  "s.listen(0,'0.0.0.0',()=>console.log(s.address().port));";
// Connects to argv host:port, sends "ping", prints the echo; exits 1 on error, 2 on timeout.
const ECHO_CLIENT =
  "const [h,p,ms]=process.argv.slice(1);" +
  "setTimeout(()=>{console.error('timeout');process.exit(2)},+ms);" +
  "const c=require('net').connect(+p,h,()=>c.write('ping'));" +
  "c.on('data',d=>{process.stdout.write(String(d));process.exit(0)});" +
  "c.on('error',e=>{console.error(e.code);process.exit(1)});";

async function checkFor(ms: number, fn: () => Promise<void> | void): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await fn();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** Starts the echo server inside host and returns its port. */
function startEcho(host: Host, bindAddr = "0.0.0.0"): Promise<number> {
  const child = host.spawn(process.execPath, ["-e", ECHO_SERVER.replace("0.0.0.0", bindAddr)]);
  return firstLine(child).then(Number);
}

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      const nl = out.indexOf("\n");
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    child.once("exit", (code) => reject(new Error(`exited (${code}) before printing a line`)));
  });
}

/** Runs the echo client inside host against addr:port. */
function echoFrom(host: Host, addr: string, port: number, timeoutMs = 2000) {
  return host.exec(process.execPath, ["-e", ECHO_CLIENT, addr, String(port), String(timeoutMs)]);
}

/** Echo from the test's own (root) namespace; rejects on error or after timeoutMs. */
function echoFromRoot(addr: string, port: number, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = createConnection({ host: addr, port, timeout: timeoutMs }, () => c.write("ping"));
    c.once("data", (d) => {
      c.destroy();
      resolve(String(d));
    });
    c.once("timeout", () => {
      c.destroy();
      reject(new Error("timeout"));
    });
    c.once("error", reject);
  });
}

function namespaces(): string[] {
  return execFileSync("ip", ["netns", "list"], { encoding: "utf8" })
    .split("\n")
    .map((l) => l.split(" ")[0]!)
    .filter((n) => n !== "");
}

function links(): string[] {
  const out = execFileSync("ip", ["-j", "link", "show"], { encoding: "utf8" });
  return (JSON.parse(out) as Array<{ ifname: string }>).map((l) => l.ifname);
}

/** Namespaces and links that belong to the bed with this id. */
function leftoversOf(id: string): string[] {
  const own = new RegExp(`^${id}[bvn]\\d*$`);
  return [...namespaces(), ...links()].filter((n) => own.test(n));
}

function reservationsOf(id: string): string[] {
  if (!existsSync(RESERVATIONS)) return [];
  return readdirSync(RESERVATIONS).filter((r) => {
    try {
      return (
        execFileSync("cat", [`${RESERVATIONS}/${r}/owner`], { encoding: "utf8" }).trim() === id
      );
    } catch {
      return false;
    }
  });
}

/** Runs an ES module script in a fresh node process (outside this test runner's protocol). */
function runScript(
  script: string,
  env: Record<string, string> = {},
): { child: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete childEnv["NODE_TEST_CONTEXT"];
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { env: childEnv });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once("close", (code) => resolve({ code, stdout, stderr })),
  );
  return { child, done };
}

describe("netns test bed", { skip: skipNetns }, () => {
  test("hosts reach each other, and the root namespace reaches every host", async (t) => {
    const bed = await useTestBed(t, 3);
    assert.equal(bed.mode, "netns");
    assert.equal(bed.hosts.length, 3);
    const net = bed.bridgeAddr.replace(/\.1$/, "");
    assert.match(bed.bridgeAddr, /^10\.77\.\d+\.1$/);
    assert.deepEqual(
      bed.hosts.map((h) => h.addr),
      [`${net}.11`, `${net}.12`, `${net}.13`],
    );
    for (const h of bed.hosts) assert.ok(h.ns.length <= 15 && namespaces().includes(h.ns));

    const ports = await Promise.all(bed.hosts.map((h) => startEcho(h)));
    const pairs: Array<[Host, Host, number]> = [];
    for (const [i, from] of bed.hosts.entries()) {
      for (const [j, to] of bed.hosts.entries()) if (i !== j) pairs.push([from, to, ports[j]!]);
    }
    const results = await Promise.all(
      pairs.map(([from, to, port]) => echoFrom(from, to.addr, port)),
    );
    for (const [i, r] of results.entries()) {
      assert.deepEqual(r, { code: 0, stdout: "ping", stderr: "" }, `pair ${i}`);
    }
    for (const [i, h] of bed.hosts.entries()) {
      assert.equal(await echoFromRoot(h.addr, ports[i]!), "ping");
    }
    // lo is up inside a namespace, and the default route points at the bridge.
    const self = await echoFrom(bed.hosts[0]!, "127.0.0.1", ports[0]!);
    assert.equal(self.stdout, "ping");
    const routes = await bed.hosts[1]!.exec("ip", ["route"]);
    assert.match(
      routes.stdout,
      new RegExp(`^default via ${bed.bridgeAddr.replace(/\./g, "\\.")} `, "m"),
    );
  });

  test("kill() kills every process in the namespace and only there", async (t) => {
    const bed = await useTestBed(t, 2);
    const [h1, h2] = bed.hosts as [Host, Host];
    const sleeper = h1.spawn("sleep", ["1000"], { stdio: "ignore" });
    // A grandchild that the bed never saw: found through `ip netns pids`.
    const shell = h1.spawn("sh", ["-c", "sleep 1000 & echo $!; wait"]);
    const grandchild = Number(await firstLine(shell));
    const other = h2.spawn("sleep", ["1000"], { stdio: "ignore" });
    await checkFor(2000, () => {
      const pids = execFileSync("ip", ["netns", "pids", h1.ns], { encoding: "utf8" });
      for (const pid of [sleeper.pid!, shell.pid!, grandchild]) {
        assert.ok(pids.split("\n").includes(String(pid)), `${pid} in ${h1.ns}`);
      }
    });
    await h1.kill();
    for (const pid of [sleeper.pid!, shell.pid!, grandchild]) {
      assert.equal(pidAlive(pid), false, `pid ${pid} is gone`);
    }
    assert.equal(sleeper.signalCode, "SIGKILL");
    assert.equal(execFileSync("ip", ["netns", "pids", h1.ns], { encoding: "utf8" }), "");
    assert.equal(pidAlive(other.pid!), true, "the other host's process survives");
  });

  test("cut() makes a host unreachable and heal() brings it back", async (t) => {
    const bed = await useTestBed(t, 3);
    const [h1, h2, h3] = bed.hosts as [Host, Host, Host];
    const port = await startEcho(h1);
    const port3 = await startEcho(h3);
    assert.equal((await echoFrom(h2, h1.addr, port)).stdout, "ping");

    await h1.cut();
    const [fromPeer, fromCut] = await Promise.all([
      echoFrom(h2, h1.addr, port, 500),
      echoFrom(h1, h3.addr, port3, 500),
    ]);
    assert.notEqual(fromPeer.code, 0, "a peer cannot reach the cut host");
    assert.notEqual(fromCut.code, 0, "the cut host cannot reach a peer");
    await assert.rejects(echoFromRoot(h1.addr, port, 500));
    assert.equal((await echoFrom(h2, h3.addr, port3)).stdout, "ping", "the others still talk");

    await h1.heal();
    // The same server, still running, answers again (ARP may need a moment).
    await checkFor(5000, async () => {
      assert.equal((await echoFrom(h2, h1.addr, port, 500)).stdout, "ping");
    });
    await checkFor(5000, async () => {
      assert.equal((await echoFrom(h1, h3.addr, port3, 500)).stdout, "ping");
    });
    assert.equal(await echoFromRoot(h1.addr, port), "ping");
    const routes = await h1.exec("ip", ["route"]);
    assert.match(routes.stdout, /^default via /m, "heal() restores the default route");
  });

  test("cleanup() removes every namespace, link and reservation, and kills everything", async () => {
    const bed = await createTestBed(2);
    const sleeper = bed.hosts[1]!.spawn("sleep", ["1000"], { stdio: "ignore" });
    assert.equal(leftoversOf(bed.id).length, 2 + 2 + 1, "2 namespaces, 2 veths, 1 bridge");
    assert.equal(reservationsOf(bed.id).length, 1);
    await bed.cleanup();
    assert.deepEqual(leftoversOf(bed.id), []);
    assert.deepEqual(reservationsOf(bed.id), []);
    assert.equal(pidAlive(sleeper.pid!), false);
    await bed.cleanup(); // idempotent
  });

  test("cleanup() removes the task namespaces a killed host's daemon left in /run/netns", async () => {
    const bed = await createTestBed(1);
    const name = `shoal-orphan${process.pid}`;
    try {
      // As a daemon on the host makes a task's namespace: in the host's own mount namespace,
      // so the root sees only an empty file once the host is gone.
      const r = await bed.hosts[0]!.exec("ip", ["netns", "add", name]);
      assert.equal(r.code, 0, r.stderr);
      mkdirSync(`/etc/netns/${name}`, { recursive: true });
      assert.ok(existsSync(`/run/netns/${name}`));
      await bed.cleanup();
      assert.equal(existsSync(`/run/netns/${name}`), false);
      assert.equal(existsSync(`/etc/netns/${name}`), false);
    } finally {
      rmSync(`/run/netns/${name}`, { force: true });
      rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
    }
  });

  test("a test that throws midway still leaves nothing behind", async () => {
    // A node:test file of its own: the first test throws with a bed in use; the second looks.
    const script = `
      import { test } from "node:test";
      import { execFileSync } from "node:child_process";
      import { useTestBed } from ${JSON.stringify(MODULE)};
      let id;
      test("throws", async (t) => {
        const bed = await useTestBed(t, 2);
        id = bed.id;
        const s = bed.hosts[0].spawn("sleep", ["1000"], { stdio: "ignore" });
        console.log("BED " + id + " " + s.pid);
        throw new Error("boom");
      });
      test("looks", () => {
        const names = execFileSync("ip", ["netns", "list"], { encoding: "utf8" }) +
          execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" });
        console.log(names.includes(id) ? "LEFTOVERS" : "CLEAN");
      });`;
    const { code, stdout } = await runScript(script).done;
    assert.equal(code, 1, "the throwing test failed");
    assert.match(stdout, /boom/);
    assert.match(stdout, /CLEAN/);
    const m = /^BED (\S+) (\d+)$/m.exec(stdout);
    assert.ok(m, stdout);
    assert.deepEqual(leftoversOf(m[1]!), []);
    assert.equal(pidAlive(Number(m[2])), false);
  });

  test("creation that fails halfway rolls back", async () => {
    // The first bed of a fresh process is <prefix>-<pid36>-1: block its second namespace.
    const script = `
      import { execFileSync } from "node:child_process";
      import { createTestBed } from ${JSON.stringify(MODULE)};
      const id = "shlr-" + process.pid.toString(36) + "-1";
      execFileSync("ip", ["netns", "add", id + "n2"]);
      const names = () => execFileSync("ip", ["netns", "list"], { encoding: "utf8" }) +
        execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" });
      try {
        await createTestBed(3, { prefix: "shlr" });
        console.log("CREATED");
      } catch (err) {
        console.log("FAILED " + err.code);
      }
      const left = [id + "b", id + "v1", id + "n1", id + "v2", id + "n3"].filter((n) => names().includes(n));
      console.log("LEFT " + JSON.stringify(left));
      execFileSync("ip", ["netns", "del", id + "n2"]);
      console.log("ID " + id);`;
    const { code, stdout, stderr } = await runScript(script).done;
    assert.equal(code, 0, stderr);
    assert.match(stdout, /FAILED COMMAND_FAILED/);
    assert.match(stdout, /LEFT \[\]/);
    const id = /ID (\S+)/.exec(stdout)![1]!;
    assert.deepEqual(leftoversOf(id), []);
    assert.deepEqual(reservationsOf(id), []);
  });

  test("exit and signal handlers clean up; sweepStale() removes what a crash left", async () => {
    const script = (then: string) => `
      import { createTestBed } from ${JSON.stringify(MODULE)};
      const bed = await createTestBed(2, { prefix: "shlc" });
      const s = bed.hosts[1].spawn("sleep", ["1000"], { stdio: "ignore" });
      console.log("BED " + bed.id + " " + s.pid);
      ${then}`;
    const started = async (run: ReturnType<typeof runScript>) => {
      const line = await firstLine(run.child);
      const m = /^BED (\S+) (\d+)$/.exec(line);
      assert.ok(m, line);
      return { id: m[1]!, pid: Number(m[2]) };
    };

    // An uncaught exception: the exit handler removes the bed.
    const thrown = runScript(script(`throw new Error("crash");`));
    const a = await started(thrown);
    assert.notEqual((await thrown.done).code, 0);
    assert.deepEqual(leftoversOf(a.id), []);
    assert.equal(pidAlive(a.pid), false);

    // SIGTERM while the bed is in use: the signal handler removes it, then the process dies.
    const termed = runScript(script(`setInterval(() => {}, 1000);`));
    const b = await started(termed);
    termed.child.kill("SIGTERM");
    assert.equal((await termed.done).code, null, "died of the signal");
    assert.deepEqual(leftoversOf(b.id), []);
    assert.equal(pidAlive(b.pid), false);

    // SIGKILL: nothing can run, so the bed is left behind until sweepStale().
    const killed = runScript(script(`setInterval(() => {}, 1000);`));
    const c = await started(killed);
    killed.child.kill("SIGKILL");
    await killed.done;
    assert.equal(leftoversOf(c.id).length, 5, "2 namespaces, 2 veths, 1 bridge left");
    assert.equal(pidAlive(c.pid), true, "its sleep survived in the namespace");
    const other = await sweepStale("shl");
    assert.ok(!other.some((n) => n.includes(c.id)), "another prefix's sweep leaves them alone");
    assert.equal(leftoversOf(c.id).length, 5);
    const removed = await sweepStale("shlc");
    assert.ok(removed.length >= 5, JSON.stringify(removed));
    assert.deepEqual(leftoversOf(c.id), []);
    assert.deepEqual(reservationsOf(c.id), []);
    assert.equal(pidAlive(c.pid), false);
  });

  test("two beds at the same time do not collide", async (t) => {
    const [a, b] = (await Promise.all([useTestBed(t, 2), useTestBed(t, 2)])) as [TestBed, TestBed];
    assert.notEqual(a.id, b.id);
    assert.notEqual(a.bridgeAddr, b.bridgeAddr);
    const nsA = a.hosts.map((h) => h.ns);
    for (const h of b.hosts) assert.ok(!nsA.includes(h.ns));
    const [pa, pb] = await Promise.all([startEcho(a.hosts[0]!), startEcho(b.hosts[0]!)]);
    const [ra, rb] = await Promise.all([
      echoFrom(a.hosts[1]!, a.hosts[0]!.addr, pa),
      echoFrom(b.hosts[1]!, b.hosts[0]!.addr, pb),
    ]);
    assert.equal(ra.stdout, "ping");
    assert.equal(rb.stdout, "ping");
    await a.cleanup();
    assert.deepEqual(leftoversOf(a.id), []);
    assert.equal((await echoFrom(b.hosts[1]!, b.hosts[0]!.addr, pb)).stdout, "ping", "b unharmed");
    assert.equal(leftoversOf(b.id).length, 5);
  });
});

describe("loopback test bed", () => {
  test("hosts on 127.0.0.x: spawn, exec, kill; cut() and heal() are refused", async (t) => {
    const bed = await useTestBed(t, 3, { mode: "loopback" });
    assert.equal(bed.mode, "loopback");
    assert.deepEqual(
      bed.hosts.map((h) => h.addr),
      ["127.0.0.11", "127.0.0.12", "127.0.0.13"],
    );
    const [h1, h2] = bed.hosts as [Host, Host];
    const port = await startEcho(h1, h1.addr);
    assert.equal((await echoFrom(h2, h1.addr, port)).stdout, "ping");
    assert.equal(await echoFromRoot(h1.addr, port), "ping");

    const shell = h1.spawn("sh", ["-c", "sleep 1000 & echo $!; wait"]);
    const grandchild = Number(await firstLine(shell));
    const other = h2.spawn("sleep", ["1000"], { stdio: "ignore" });
    await h1.kill();
    assert.equal(pidAlive(shell.pid!), false);
    assert.equal(pidAlive(grandchild), false, "the whole process group is killed");
    assert.equal(pidAlive(other.pid!), true);

    await assert.rejects(h1.cut(), { code: "NOT_SUPPORTED", message: /not supported in loopback/ });
    await assert.rejects(h1.heal(), { code: "NOT_SUPPORTED" });
    await bed.cleanup();
    assert.equal(pidAlive(other.pid!), false, "cleanup kills what the hosts spawned");
  });

  test("the fallback says so in one line of output", async () => {
    const script = `
      import { createTestBed } from ${JSON.stringify(MODULE)};
      const a = await createTestBed(2);
      const b = await createTestBed(2);
      console.log("MODE " + a.mode + " " + a.hosts[1].addr);
      await a.cleanup();
      await b.cleanup();`;
    const { code, stdout, stderr } = await runScript(script, { SHOAL_TESTBED: "loopback" }).done;
    assert.equal(code, 0, stderr);
    const notes = stdout.split("\n").filter((l) => l.includes("loopback fallback"));
    assert.equal(notes.length, 1, stdout);
    assert.match(notes[0]!, /SHOAL_TESTBED=loopback/);
    assert.match(stdout, /MODE loopback 127\.0\.0\.12/);
  });
});
