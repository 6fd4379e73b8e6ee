// Process-level tests of `shoal init` and `shoal join`: what they refuse, the address init
// advertises, and that a join or init that fails leaves no daemon and no state behind.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fakeApi, shoal, type FakeRequest } from "./fake-api.js";
import { freePort } from "../helpers/cluster.js";
import { killTaskProcesses, startDaemon } from "../helpers/daemon.js";
import { checkFor } from "../helpers/servers.js";
import { joinHostPort } from "../../src/lib/addr.js";
import { systemAddress } from "../../src/lib/netif.js";
import { createRootCa, issueNodeCert, newKeyAndCsr } from "../../src/manager/ca.js";
import { managerTls, testCa, testToken } from "../helpers/pki.js";

const TOKEN = await testToken("s".repeat(25));
const ALREADY =
  'This node is already part of a swarm. Use "shoal leave" to leave this swarm and join another one.';

/** A data dir path that does not exist yet (removed after the test). */
function freshDir(t: { after(fn: () => void): void }): string {
  const parent = mkdtempSync(join(tmpdir(), "shoal-cli-"));
  t.after(() => rmSync(parent, { recursive: true, force: true }));
  return join(parent, "data");
}

/** Processes whose command line names this path (a daemon started on that data dir). */
function processesOn(path: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, "utf8").split("\0").includes(path))
        out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

function env(dataDir: string): NodeJS.ProcessEnv {
  return { ...process.env, SHOAL_DATA_DIR: dataDir, SHOAL_HOST: "" };
}

function listen(host: string): Promise<Server> {
  const s = createServer((c) => c.destroy());
  return new Promise((resolve, reject) => {
    s.once("error", reject);
    s.listen({ host, port: 0 }, () => resolve(s));
  });
}

function portOf(s: Server): number {
  const a = s.address();
  return typeof a === "object" && a ? a.port : 0;
}

/** A stand-in join endpoint (port 2377's HTTPS, with a manager certificate of the test CA, or
 * of another CA with `foreign`) answering with these message-server URLs. */
async function joinEndpoint(
  host: string,
  natsUrls: (req: FakeRequest) => string[],
  foreign = false,
) {
  const ca = foreign ? await createRootCa(new Date()) : await testCa();
  const own = await managerTls();
  const tls = foreign
    ? await (async () => {
        const { keyPem, csrPem } = await newKeyAndCsr();
        const now = new Date();
        const cert = await issueNodeCert(ca, csrPem, {
          nodeId: "m",
          role: "manager",
          addrs: [],
          now,
        });
        return { cert: cert + "\n" + ca.certPem, key: keyPem };
      })()
    : { cert: own.certPem + "\n" + own.caPem, key: own.keyPem };
  return fakeApi(
    (req) =>
      req.method === "POST" && req.path === "/v1/swarm/join"
        ? (res) =>
            void issueNodeCert(ca, (req.body as { csr: string }).csr, {
              nodeId: "w".repeat(25),
              role: "worker",
              addrs: [],
              now: new Date(),
            }).then((cert) => {
              res.setHeader("Content-Type", "application/json");
              res.end(
                JSON.stringify({
                  nodeId: "w".repeat(25),
                  role: "worker",
                  caCert: ca.certPem,
                  cert,
                  natsUrls: natsUrls(req),
                  appNatsUrls: natsUrls(req),
                  busUser: "CN=w",
                  heartbeatMs: 1000,
                }),
              );
            })
        : undefined,
    { host, tls },
  );
}

test("join: a manager that cannot be reached fails at once; nothing is started or written", async (t) => {
  const dir = freshDir(t);
  const port = await freePort();
  const r = await shoal(
    ["join", "--token", TOKEN, "--data-dir", dir, `127.0.0.1:${port}`],
    env(dir),
  );
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    new RegExp(`^Error: cannot reach the manager at 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`),
  );
  assert.equal(existsSync(dir), false);
  const bad = await shoal(
    ["join", "--token", "SHOAL-1-nope", "--data-dir", dir, "127.0.0.1"],
    env(dir),
  );
  assert.equal(bad.code, 1);
  assert.match(
    bad.stderr,
    /^invalid join token: expected SHOAL-1-<CA digest>-<secret>\nSee 'shoal join --help'\.\n$/,
  );
});

test("join [::1]:PORT reaches the manager; a message server it cannot reach fails the join before any daemon starts", async (t) => {
  const dir = freshDir(t);
  const closed = await freePort();
  let endpoint;
  try {
    endpoint = await joinEndpoint("::1", () => [`nats://[::1]:${closed}`]);
  } catch {
    return t.skip("no IPv6 loopback on this machine");
  }
  t.after(() => endpoint.close());
  const r = await shoal(
    ["join", "--token", TOKEN, "--data-dir", dir, `[::1]:${endpoint.port}`],
    env(dir),
  );
  assert.equal(r.code, 1, r.stdout);
  // The join request reached the manager over IPv6, with this machine's address towards it.
  const req = endpoint.requests.find((x) => x.path === "/v1/swarm/join");
  assert.ok(req, "no join request arrived");
  assert.equal((req.body as { token: string }).token, TOKEN);
  assert.equal((req.body as { addr: string }).addr, "::1");
  assert.match(
    r.stderr,
    new RegExp(
      `^Error: the manager at \\[::1\\]:${endpoint.port} accepted the join, but its message server cannot be reached from this machine \\(nats://\\[::1\\]:${closed}: .*ECONNREFUSED`,
    ),
  );
  assert.equal(existsSync(dir), false);
});

test("join: a manager whose CA is not the token's is refused before the token is sent", async (t) => {
  const dir = freshDir(t);
  const endpoint = await joinEndpoint("127.0.0.1", () => [], true);
  t.after(() => endpoint.close());
  const r = await shoal(
    ["join", "--token", TOKEN, "--data-dir", dir, `127.0.0.1:${endpoint.port}`],
    env(dir),
  );
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /^Error: the manager at .* is not part of the swarm of this token: its certificate authority does not match the token's digest \(the token was not sent\)\n$/,
  );
  assert.deepEqual(endpoint.requests, [], "nothing reached the manager");
  assert.equal(existsSync(dir), false);
});

test("join: a worker daemon that does not come up is stopped by its pid and its state removed", async (t) => {
  const dir = freshDir(t);
  // A "message server" that accepts connections and says nothing: the daemon cannot join the bus.
  const mute = await listen("127.0.0.1");
  t.after(() => mute.close());
  const endpoint = await joinEndpoint("127.0.0.1", () => [`nats://127.0.0.1:${portOf(mute)}`]);
  t.after(() => endpoint.close());
  t.after(() => {
    for (const pid of processesOn(dir)) process.kill(pid, "SIGKILL");
  });
  const r = await shoal(
    [
      "join",
      "--token",
      TOKEN,
      "--data-dir",
      dir,
      "--advertise-addr",
      "127.0.0.1",
      "--publish-addr",
      "127.0.0.1",
      `127.0.0.1:${endpoint.port}`,
    ],
    env(dir),
  );
  assert.equal(r.code, 1, r.stdout);
  assert.match(
    r.stderr,
    /^Error: the shoal daemon (exited during startup|did not answer within 15s)/,
  );
  assert.deepEqual(processesOn(dir), []);
  assert.equal(existsSync(dir), false);
});

test("init on a node that joined a swarm refuses with Docker's words and starts nothing", async (t) => {
  const dir = freshDir(t);
  const { mkdirSync } = await import("node:fs");
  mkdirSync(dir);
  writeFileSync(join(dir, "join.json"), "{}");
  const r = await shoal(["init", "--data-dir", dir, "--listen-addr", "127.0.0.1:0"], env(dir));
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `Error: ${ALREADY}\n`);
  assert.deepEqual(readdirSync(dir), ["join.json"]);
  assert.deepEqual(processesOn(dir), []);
});

test("init where a manager runs already refuses; join there too", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const r = await d.cli("init", "--data-dir", d.dataDir, "--listen-addr", "127.0.0.1:0");
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `Error: ${ALREADY}\n`);
  const j = await d.cli("join", "--token", TOKEN, "--data-dir", d.dataDir, "127.0.0.1:1");
  assert.equal(j.code, 1);
  assert.equal(j.stderr, `Error: ${ALREADY}\n`);
});

test("init advertises the machine's address (not 127.0.0.1) and prints a join command for it", async (t) => {
  const dir = freshDir(t);
  const port = await freePort();
  t.after(async () => {
    if (existsSync(join(dir, "shoal.sock"))) await shoal(["leave", "--force"], env(dir));
    for (const pid of processesOn(dir)) process.kill(pid, "SIGKILL");
    if (existsSync(dir)) killTaskProcesses(dir);
  });
  let expected: string | Error;
  try {
    expected = systemAddress();
  } catch (err) {
    expected = err as Error;
  }
  const r = await shoal(
    [
      "init",
      "--data-dir",
      dir,
      "--listen-addr",
      `0.0.0.0:${port}`,
      "--nats-port",
      "-1",
      "--publish-addr",
      "127.0.0.1",
      "--consul-addr",
      "",
      "--consul-dns-addr",
      "",
      "--http-addr",
      "",
      "--metrics-addr",
      "",
    ],
    env(dir),
  );
  if (expected instanceof Error) {
    // Docker's error when the machine has no single address; nothing started.
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `Error: ${expected.message}\n`);
    assert.equal(existsSync(dir), false);
    return;
  }
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Swarm initialized: current node \([0-9a-z]{25}\) is now a manager\.\n/);
  assert.ok(
    r.stdout.includes(`    shoal join --token SHOAL-1-`) &&
      r.stdout.includes(` ${joinHostPort(expected, port)}\n`),
    r.stdout,
  );
  assert.ok(!r.stdout.includes("127.0.0.1"), r.stdout);
  const nodes = await shoal(["node", "inspect", "self"], env(dir));
  assert.equal((JSON.parse(nodes.stdout) as Array<{ addr: string }>)[0]!.addr, expected);
  const left = await shoal(["leave", "--force"], env(dir));
  assert.equal(left.code, 0, left.stderr);
  await checkFor(10_000, () => processesOn(dir).length === 0);
});

test("init whose daemon cannot start removes what it wrote and leaves no process", async (t) => {
  const dir = freshDir(t);
  const taken = await listen("127.0.0.1");
  t.after(() => taken.close());
  t.after(() => {
    for (const pid of processesOn(dir)) process.kill(pid, "SIGKILL");
  });
  const r = await shoal(
    [
      "init",
      "--data-dir",
      dir,
      "--listen-addr",
      "127.0.0.1:0",
      "--nats-port",
      String(portOf(taken)),
      "--consul-addr",
      "",
      "--consul-dns-addr",
      "",
      "--http-addr",
      "",
      "--metrics-addr",
      "",
    ],
    env(dir),
  );
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.stderr, /^Error: the shoal daemon exited during startup; last log lines:\n/);
  assert.deepEqual(processesOn(dir), []);
  assert.equal(existsSync(dir), false);
});
