// Applications' users on the message server: each service has its own, in its stack's account
// (or the applications' one), derived from the cluster secret; the anonymous user is in the
// applications' account; none may use $SHOAL.>.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import {
  APPS_ACCOUNT,
  appAccountOf,
  appAccounts,
  appCredentials,
  busUsers,
  type AppService,
} from "../../src/manager/bus-users.js";
import { APP_USER } from "../../src/api/bus.js";
import { natsUrlForBridge, natsUrlWithUser } from "../../src/node/drivers/netns.js";

const svc = (id: string, stack?: string): AppService => {
  const labels: Record<string, string> = {};
  if (stack) labels["com.docker.stack.namespace"] = stack;
  return { id, spec: { labels } };
};

describe("applications' users and accounts", () => {
  test("a service's account is its stack's, else the applications' one", () => {
    for (const [s, want] of [
      [svc("a"), APPS_ACCOUNT],
      [svc("b", "shop"), "stack-shop"],
      [svc("c", "blog"), "stack-blog"],
    ] as const) {
      assert.equal(appAccountOf(s), want);
    }
  });

  test("one account per stack, and the applications' one always", () => {
    assert.deepEqual(
      appAccounts([svc("a", "shop"), svc("b", "shop"), svc("c"), svc("d", "blog")]).map(
        (a) => a.name,
      ),
      ["apps", "stack-blog", "stack-shop"],
    );
    assert.deepEqual(appAccounts([]), [{ name: "apps", exports: [], imports: [] }]);
  });

  test("credentials are the service's own, stable, and differ by service and cluster", () => {
    const a = appCredentials("secret-1", "svc1");
    assert.equal(a.user, "svc-svc1");
    assert.equal(a.serviceId, "svc1");
    assert.deepEqual(appCredentials("secret-1", "svc1"), a);
    assert.notEqual(appCredentials("secret-1", "svc2").password, a.password);
    assert.notEqual(appCredentials("secret-2", "svc1").password, a.password);
    assert.ok(a.password.length >= 40);
  });

  test("the users: each service in its account, none may use $SHOAL.>", () => {
    const users = busUsers("s", "cl", [], [svc("x", "shop"), svc("y")], true);
    const x = users.find((u) => u.user === "svc-x")!;
    const y = users.find((u) => u.user === "svc-y")!;
    const anon = users.find((u) => u.user === APP_USER)!;
    assert.equal(x.account, "stack-shop");
    assert.equal(y.account, APPS_ACCOUNT);
    assert.equal(anon.account, APPS_ACCOUNT);
    assert.equal(x.password, appCredentials("s", "x").password);
    for (const u of [x, y, anon]) {
      assert.deepEqual(u.permissions?.publish?.deny, ["$SHOAL.>"]);
      assert.deepEqual(u.permissions?.subscribe?.deny, ["$SHOAL.>"]);
    }
  });

  test("the anonymous default user exists only when the swarm enables it", () => {
    assert.equal(
      busUsers("s", "cl", [], [svc("y")]).some((u) => u.user === APP_USER),
      false,
    );
    assert.equal(
      busUsers("s", "cl", [], [svc("y")], true).some((u) => u.user === APP_USER),
      true,
    );
  });
});

describe("a task's NATS_URL", () => {
  test("carries the service's user, percent-encoded, in every URL of a list", () => {
    assert.equal(
      natsUrlWithUser("nats://10.0.0.1:4222,nats://10.0.0.2:4222", "svc-a", "p/w+=x"),
      "nats://svc-a:p%2Fw+%3Dx@10.0.0.1:4222,nats://svc-a:p%2Fw+%3Dx@10.0.0.2:4222",
    );
  });

  test("a bridge task reaches a loopback server at its gateway, others stay", () => {
    assert.equal(
      natsUrlForBridge("nats://127.0.0.1:4222,nats://10.0.0.2:4222", "172.30.0.1"),
      "nats://172.30.0.1:4222,nats://10.0.0.2:4222",
    );
  });
});
