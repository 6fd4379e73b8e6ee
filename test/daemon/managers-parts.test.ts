// The pieces of several managers that need no etcd: the --store flag, which API requests a
// follower forwards, and node ls's MANAGER STATUS.

import { test } from "node:test";
import assert from "node:assert/strict";
import { parseStoreFlag } from "../../src/cli/daemon-options.js";
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
