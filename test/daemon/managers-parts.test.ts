// The pieces of several managers that need no etcd: the --store flag, which API requests a
// follower forwards, and node ls's MANAGER STATUS.

import { test } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import {
  daemonArgv,
  parseDaemonFlags,
  parseStoreFlag,
  runOptions,
} from "../../src/cli/daemon-options.js";
import { readStoreTls, storeEndpoints } from "../../src/daemon/store-tls.js";
import { isApiWrite } from "../../src/daemon/managers.js";
import { managerStatus } from "../../src/cli/node.js";
import type { Node } from "../../src/api/types.js";

test("--store takes etcd://HOST:PORT[,HOST:PORT...] and names what is wrong", () => {
  assert.deepEqual(parseStoreFlag("etcd://h1:2379,10.0.0.2:2379,[::1]:2379"), [
    "http://h1:2379",
    "http://10.0.0.2:2379",
    "http://[::1]:2379",
  ]);
  assert.deepEqual(parseStoreFlag(""), []);
  assert.throws(() => parseStoreFlag("h1:2379"), /not an etcd:\/\/ address/);
  assert.throws(() => parseStoreFlag("etcd://h1"), /"h1" is not HOST:PORT/);
  assert.throws(() => parseStoreFlag("etcd://h1:2379,"), /"" is not HOST:PORT/);
});

test("a follower forwards writes, token rotations and the dashboard token; not leave, not reads", () => {
  assert.equal(isApiWrite("POST", "/v1/services"), true);
  assert.equal(isApiWrite("DELETE", "/v1/services/web"), true);
  assert.equal(isApiWrite("POST", "/v1/swarm/leave?force=1"), false);
  assert.equal(isApiWrite("GET", "/v1/services"), false);
  assert.equal(isApiWrite("GET", "/v1/swarm/join-token/worker"), false);
  assert.equal(isApiWrite("GET", "/v1/swarm/join-token/worker?rotate=1"), true);
  assert.equal(isApiWrite("GET", "/v1/dashboard/token"), true);
});

test("MANAGER STATUS: Leader, Reachable, Unreachable (down), empty for workers", () => {
  const n = (id: string, role: Node["role"], status: Node["status"]) =>
    ({ id, role, status }) as Node;
  assert.equal(managerStatus(n("a", "manager", "ready"), "a"), "Leader");
  assert.equal(managerStatus(n("b", "manager", "ready"), "a"), "Reachable");
  assert.equal(managerStatus(n("c", "manager", "down"), "a"), "Unreachable");
  assert.equal(managerStatus(n("c", "manager", "ready"), undefined), "Reachable");
  assert.equal(managerStatus(n("w", "worker", "ready"), "a"), "");
});

test("--store etcds:// (or https:// URLs) is TLS; --store-cacert/--store-cert/--store-key go with it", () => {
  assert.deepEqual(parseStoreFlag("etcds://h1:2379,[::1]:2379"), [
    "https://h1:2379",
    "https://[::1]:2379",
  ]);
  assert.deepEqual(parseStoreFlag("https://h1:2379,https://h2:2379/"), [
    "https://h1:2379",
    "https://h2:2379",
  ]);
  assert.throws(() => parseStoreFlag("https://h1:2379,h2:2379"), /"h2:2379" is not an https:/);
  const m = {
    interfaces: () => ({}),
    systemAddress: () => "10.0.0.5",
  };
  const flags = { dataDir: "/d", store: "etcds://h1:2379" };
  const p = parseDaemonFlags(
    { ...flags, storeCacert: "ca.pem", storeCert: "/c/cert.pem", storeKey: "/c/key.pem" },
    { natsPort: 4222 },
    m,
  );
  assert.deepEqual(p.storeTls, {
    cacert: resolve("ca.pem"),
    cert: "/c/cert.pem",
    key: "/c/key.pem",
  });
  // What init gives the daemon it starts parses back to the same store and files.
  const argv = daemonArgv(runOptions(p, { host: "10.0.0.5", port: 2377 }));
  const at = (flag: string) => argv[argv.indexOf(flag) + 1];
  assert.equal(at("--store"), "etcds://h1:2379");
  assert.equal(at("--store-cacert"), resolve("ca.pem"));
  assert.equal(at("--store-cert"), "/c/cert.pem");
  assert.equal(at("--store-key"), "/c/key.pem");
  assert.throws(
    () => parseDaemonFlags(flags, { natsPort: 4222 }, m),
    /an etcds:\/\/ \(TLS\) store needs "--store-cacert"/,
  );
  assert.throws(
    () => parseDaemonFlags({ ...flags, storeCacert: "ca", storeKey: "k" }, { natsPort: 4222 }, m),
    /"--store-cert" and "--store-key" go together/,
  );
  assert.equal(parseDaemonFlags({ dataDir: "/d" }, { natsPort: 4222 }, m).storeTls, undefined);
});

test("with TLS the store's endpoints are https://; a file it cannot read names its flag", () => {
  assert.deepEqual(storeEndpoints(["http://h1:2379", "https://h2:2379"], true), [
    "https://h1:2379",
    "https://h2:2379",
  ]);
  assert.deepEqual(storeEndpoints(["http://h1:2379"], false), ["http://h1:2379"]);
  assert.throws(
    () => readStoreTls({ cacert: "/nonexistent/ca.pem" }),
    /cannot read --store-cacert \/nonexistent\/ca\.pem \(ENOENT\)/,
  );
});
