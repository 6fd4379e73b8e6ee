// A full resolver's directory sync over $SYS.REQ.CLAIMS.PACK (src/nats/claimsync.ts): the merge
// rules of nats-server's DirJWTStore (a missing key saved, a newer iat replaces, the same jti or
// an older iat does not), then clusters that sync: two shoal servers, and a Go nats-server with
// a shoal server, each starting with an account JWT the other lacks.

import { test, describe, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, jwtAuthenticator } from "nats";
import {
  checkFor,
  goServerPath,
  runGoServer,
  runServer,
  type RunningServer,
} from "../helpers/servers.js";
import { defer, routePortOf } from "../helpers/cluster.js";
import { makeAccount, makeOperator, makeUser, type TestAccount } from "../helpers/jwt.js";
import { mergePack, saveIfNewer } from "../../src/nats/claimsync.js";
import type { ClaimsHost } from "../../src/nats/claims.js";
import { applyConfig, defaultOptions } from "../../src/nats/options.js";
import { parseConfig } from "../../src/nats/conf.js";

const CI = !["", "0", "false"].includes(process.env["CI"] ?? "");
const skipGo = goServerPath() !== null || CI ? false : "the Go nats-server is not installed";
const nowSec = () => Math.floor(Date.now() / 1000);

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "shoal-claimsync-"));
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("config: resolver.interval is a Go duration, 1 minute when missing or not positive", () => {
  const op = makeOperator();
  const intervalOf = (extra: string) => {
    const opts = defaultOptions();
    const text = `operator: "${op.jwt}"\nresolver { type: full, dir: "/tmp/x"${extra} }\n`;
    applyConfig(opts, parseConfig(text), () => {});
    return opts.operator!.resolverIntervalMs;
  };
  assert.equal(intervalOf(""), 60_000);
  assert.equal(intervalOf(', interval: "1m30s"'), 90_000);
  assert.equal(intervalOf(', interval: "250ms"'), 250);
  assert.equal(intervalOf(', interval: "0s"'), 60_000);
  assert.equal(intervalOf(', interval: "-1s"'), 60_000);
  assert.throws(() => intervalOf(', interval: "abc"'), /interval: time: invalid duration "abc"/);
  assert.throws(() => intervalOf(", interval: 5"), /interval must be a duration/);
});

describe("merging a pack into the directory (nats-server's saveIfNewer)", () => {
  test("a missing key is saved; a newer iat replaces; the same jti or an older iat does not", (t) => {
    const dir = tempDir(t);
    const op = makeOperator();
    const A = makeAccount(op.kp, {}, { iat: nowSec() - 100 });
    const file = join(dir, `${A.pub}.jwt`);
    assert.equal(saveIfNewer(dir, A.pub, A.jwt), true);
    assert.equal(readFileSync(file, "utf8"), A.jwt);
    // The same JWT again: nothing written.
    assert.equal(saveIfNewer(dir, A.pub, A.jwt), false);
    // Another JWT of A issued later replaces it; one issued earlier does not.
    const newer = makeAccount(op.kp, { tags: ["v2"] }, { iat: nowSec() }, A.kp);
    const older = makeAccount(op.kp, { tags: ["v0"] }, { iat: nowSec() - 200 }, A.kp);
    assert.equal(saveIfNewer(dir, A.pub, newer.jwt), true);
    assert.equal(saveIfNewer(dir, A.pub, older.jwt), false);
    assert.equal(readFileSync(file, "utf8"), newer.jwt);
    // A saved file that cannot be decoded is replaced by whatever comes.
    writeFileSync(file, "garbage");
    assert.equal(saveIfNewer(dir, A.pub, older.jwt), true);
    assert.equal(readFileSync(file, "utf8"), older.jwt);
    // Only account keys name files.
    assert.throws(() => saveIfNewer(dir, "../escape", A.jwt), /^Error: invalid public key$/);
  });

  test("a line without exactly one '|' stops the merge with nats-server's words", (t) => {
    const dir = tempDir(t);
    const op = makeOperator();
    const A = makeAccount(op.kp);
    const B = makeAccount(op.kp);
    // No trusted operator: the JWTs merged are saved and install nothing.
    const host = {
      opts: { operator: { resolverDir: dir, operators: [] } },
      holdsAccount: () => false,
    } as unknown as ClaimsHost;
    const pack = `${A.pub}|${A.jwt}\nno bar here\n${B.pub}|${B.jwt}`;
    assert.throws(
      () => mergePack(host, pack, Date.now()),
      /^Error: line in package didn't contain 2 entries: "no bar here"$/,
    );
    assert.equal(readFileSync(join(dir, `${A.pub}.jwt`), "utf8"), A.jwt);
    assert.throws(() => readFileSync(join(dir, `${B.pub}.jwt`)), /ENOENT/);
  });
});

interface World {
  op: ReturnType<typeof makeOperator>;
  sys: TestAccount;
}

/** A config file of a full resolver over `dir`, syncing every `interval`, in cluster "sync". */
function confOf(w: World, dir: string, routeTo: number | null, interval = "300ms"): string {
  return [
    `operator: "${w.op.jwt}"`,
    `system_account: ${w.sys.pub}`,
    `resolver { type: full, dir: "${dir}", interval: "${interval}" }`,
    `cluster { name: sync, listen: "127.0.0.1:-1"${routeTo === null ? "" : `, routes: ["nats-route://127.0.0.1:${routeTo}"]`} }`,
    "",
  ].join("\n");
}

/** Starts a server of `kind` on a directory holding `accounts` (and the system account). */
async function start(
  t: TestContext,
  root: string,
  name: string,
  kind: "go" | "shoal",
  w: World,
  accounts: TestAccount[],
  routeTo: number | null,
  interval?: string,
): Promise<{ srv: RunningServer; dir: string; file: string }> {
  const dir = join(root, name);
  mkdirSync(dir);
  for (const a of [w.sys, ...accounts]) writeFileSync(join(dir, `${a.pub}.jwt`), a.jwt);
  const file = join(root, `${name}.conf`);
  writeFileSync(file, confOf(w, dir, routeTo, interval));
  const srv = await (kind === "go" ? runGoServer : runServer)(["-c", file, "-p", "-1"]);
  defer(t, () => srv.stop("SIGKILL"));
  return { srv, dir, file };
}

/** Waits until `dir` holds exactly `jwt` for account `pub`. */
async function waitForJwt(dir: string, pub: string, jwt: string, what: string): Promise<void> {
  const file = join(dir, `${pub}.jwt`);
  await checkFor(15_000, () => {
    try {
      return readFileSync(file, "utf8") === jwt;
    } catch {
      return false;
    }
  }).catch(() => assert.fail(`${what}: ${file} never held the expected JWT`));
}

/** A user of `acc` logs in on `port` and gets a reply through it. */
async function userWorks(t: TestContext, port: number, acc: TestAccount): Promise<void> {
  const u = makeUser(acc.kp);
  const nc = await connect({
    servers: `127.0.0.1:${port}`,
    reconnect: false,
    authenticator: jwtAuthenticator(u.jwt, u.seed),
  });
  defer(t, () => nc.close());
  await nc.flush();
}

describe("full resolvers of a cluster sync their directories", () => {
  test("two shoal servers: each gets the JWT it lacked, and the newer of two JWTs", async (t) => {
    const root = tempDir(t);
    const op = makeOperator();
    const w = { op, sys: makeAccount(op.kp) };
    const onlyFirst = makeAccount(op.kp);
    const onlySecond = makeAccount(op.kp);
    const oldA = makeAccount(op.kp, { tags: ["old"] }, { iat: nowSec() - 100 });
    const newA = makeAccount(op.kp, { tags: ["new"] }, { iat: nowSec() }, oldA.kp);
    const first = await start(t, root, "first", "shoal", w, [onlyFirst, newA], null);
    const second = await start(
      t,
      root,
      "second",
      "shoal",
      w,
      [onlySecond, oldA],
      await routePortOf(first.srv),
    );
    await waitForJwt(second.dir, onlyFirst.pub, onlyFirst.jwt, "second");
    await waitForJwt(first.dir, onlySecond.pub, onlySecond.jwt, "first");
    await waitForJwt(second.dir, newA.pub, newA.jwt, "second (newer iat)");
    // The older JWT did not replace the newer one.
    assert.equal(readFileSync(join(first.dir, `${newA.pub}.jwt`), "utf8"), newA.jwt);
    // A synced account is one the server knows: its users log in.
    await userWorks(t, second.srv.port, onlyFirst);
    await userWorks(t, first.srv.port, onlySecond);
  });

  test("a reload's new interval applies: from an hour to 300ms, the sync comes", async (t) => {
    const root = tempDir(t);
    const op = makeOperator();
    const w = { op, sys: makeAccount(op.kp) };
    const onlyFirst = makeAccount(op.kp);
    const first = await start(t, root, "first", "shoal", w, [onlyFirst], null, "1h");
    const port = await routePortOf(first.srv);
    const second = await start(t, root, "second", "shoal", w, [], port, "1h");
    writeFileSync(second.file, confOf(w, second.dir, port, "300ms"));
    second.srv.proc.kill("SIGHUP");
    await checkFor(10_000, () => /Reloaded server configuration/.test(second.srv.output()));
    await waitForJwt(second.dir, onlyFirst.pub, onlyFirst.jwt, "second, after its reload");
  });

  test(
    "differential: a Go nats-server and a shoal server sync both ways",
    { skip: skipGo, timeout: 60_000 },
    async (t) => {
      const root = tempDir(t);
      const op = makeOperator();
      const w = { op, sys: makeAccount(op.kp) };
      const onlyGo = makeAccount(op.kp);
      const onlyShoal = makeAccount(op.kp);
      // Routes in one direction: shoal solicits the Go server.
      const go = await start(t, root, "go", "go", w, [onlyGo], null);
      const shoal = await start(
        t,
        root,
        "shoal",
        "shoal",
        w,
        [onlyShoal],
        await routePortOf(go.srv),
      );
      await waitForJwt(shoal.dir, onlyGo.pub, onlyGo.jwt, "shoal");
      await waitForJwt(go.dir, onlyShoal.pub, onlyShoal.jwt, "go");
      await userWorks(t, shoal.srv.port, onlyGo);
      await userWorks(t, go.srv.port, onlyShoal);
    },
  );
});
