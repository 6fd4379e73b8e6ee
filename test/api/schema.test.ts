// The contract's validator: a table of bad inputs and the message each gets (the field and the
// rule), closed request schemas naming unknown fields, decode of bus messages (bytes in, a value
// or an error out), and the dropped-message counter that logs at most once per period.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { check, closed, decode, DroppedMessages, matches, problems } from "../../src/api/schema.js";
import { SchemaError } from "../../src/api/errors.js";
import {
  defaultServiceSpec,
  NodeSchema,
  ServiceSchema,
  ServiceSpecSchema,
  TaskStatusSchema,
  type ServiceSpec,
} from "../../src/api/types.js";
import { HeartbeatSchema } from "../../src/api/bus.js";
import { apiRoutes, joinRoutes } from "../../src/api/http.js";
import { node } from "../store/helpers.js";

function spec(over: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...defaultServiceSpec("web"), command: ["sleep", "1"], ...over };
}
const withUpdate = (u: Record<string, unknown>) =>
  spec({ update: { ...defaultServiceSpec("x").update, ...u } });
const without = (key: keyof ServiceSpec) => {
  const s = spec();
  delete s[key];
  return s;
};

const createBody = apiRoutes.createService.body;

describe("check: messages name the field and the rule", () => {
  const table: Array<[string, unknown, string]> = [
    [
      "an unknown failure action",
      { spec: withUpdate({ failureAction: "explode" }) },
      "spec.update.failureAction must be one of pause, continue, rollback",
    ],
    [
      "a failure ratio above 1",
      { spec: withUpdate({ maxFailureRatio: 7 }) },
      "spec.update.maxFailureRatio must be <= 1",
    ],
    [
      "a negative failure ratio",
      { spec: withUpdate({ maxFailureRatio: -0.5 }) },
      "spec.update.maxFailureRatio must be >= 0",
    ],
    ["a numeric env value", { spec: spec({ env: { FOO: 1 } }) }, "spec.env.FOO must be a string"],
    [
      "an env key that is not an identifier",
      { spec: spec({ env: { "A-B": true } }) },
      'spec.env["A-B"] must be a string',
    ],
    ["a spec without mode", { spec: without("mode") }, "spec.mode is required"],
    ["no spec at all", {}, "spec is required"],
    ["a body that is not an object", [], "body must be an object"],
    [
      "a mode with neither key",
      { spec: spec({ mode: {} }) },
      "spec.mode must have exactly one of replicated, global",
    ],
    [
      "a mode with both keys",
      { spec: spec({ mode: { replicated: { replicas: 1 }, global: {} } }) },
      "spec.mode must have exactly one of replicated, global",
    ],
    [
      "negative replicas",
      { spec: spec({ mode: { replicated: { replicas: -1 } } }) },
      "spec.mode.replicated.replicas must be >= 0",
    ],
    [
      "fractional replicas",
      { spec: spec({ mode: { replicated: { replicas: 1.5 } } }) },
      "spec.mode.replicated.replicas must be an integer",
    ],
    [
      "a port out of range",
      {
        spec: spec({
          ports: [{ published: 70000, target: 80, protocol: "tcp", mode: "ingress" }],
        }),
      },
      "spec.ports[0].published must be <= 65535",
    ],
    [
      "an unknown protocol",
      {
        spec: spec({
          ports: [{ published: 8080, target: 80, protocol: "sctp", mode: "ingress" }],
        }),
      },
      "spec.ports[0].protocol must be one of tcp, udp",
    ],
    ["an unknown field", { spec: spec({ replicas: 3 }) }, "spec.replicas is not a known field"],
    [
      "a misspelt nested field",
      { spec: withUpdate({ failureActoin: "pause" }) },
      "spec.update.failureActoin is not a known field",
    ],
    ["an unknown top-level field", { spec: spec(), force: true }, "force is not a known field"],
    [
      "a bad service name",
      { spec: spec({ name: "-web" }) },
      "spec.name must be letters, digits, '_', '.', '-' (max 63), starting with a letter or digit",
    ],
    [
      "a command that is not a list of strings",
      { spec: spec({ command: ["sleep", 1] }) },
      "spec.command[1] must be a string",
    ],
    [
      "a negative memory limit",
      { spec: spec({ limits: { cpus: 0, memoryBytes: -1 } }) },
      "spec.limits.memoryBytes must be >= 0",
    ],
    [
      "an unknown network mode",
      { spec: spec({ network: "overlay" }) },
      "spec.network must be one of host, bridge",
    ],
    [
      "a restart condition of the wrong type",
      { spec: spec({ restartPolicy: { ...defaultServiceSpec("x").restartPolicy, condition: 1 } }) },
      "spec.restartPolicy.condition must be one of none, on-failure, any",
    ],
  ];
  for (const [what, body, message] of table) {
    test(what, () => {
      assert.throws(
        () => check(createBody, body, "", "body"),
        (err: unknown) => {
          assert.ok(err instanceof SchemaError);
          assert.equal(err.code, "ERR_INVALID");
          assert.equal(err.message, message);
          return true;
        },
      );
    });
  }

  test("a valid body passes and is returned as it is", () => {
    const body = { spec: spec() };
    assert.equal(check(createBody, body), body);
    // Stored specs from before `update` and `network` existed still match.
    assert.ok(matches(ServiceSpecSchema, without("update")));
    assert.ok(matches(ServiceSpecSchema, without("network")));
  });

  test("several problems are all listed, the first three in the message", () => {
    const body = { spec: spec({ env: { A: 1, B: 2, C: 3, D: 4, E: 5 } }) };
    const list = problems(createBody, body);
    assert.equal(list.length, 5);
    assert.throws(
      () => check(createBody, body),
      (err: SchemaError) =>
        err.message ===
          "spec.env.A must be a string; spec.env.B must be a string; spec.env.C must be a string; and 2 more problems" &&
        err.problems.length === 5,
    );
  });

  test("the name prefixes every field; the root is named when it is the problem", () => {
    assert.deepEqual(problems(ServiceSpecSchema, without("mode"), "spec"), [
      "spec.mode is required",
    ]);
    assert.deepEqual(problems(ServiceSpecSchema, 5, "spec"), ["spec must be an object"]);
    assert.deepEqual(problems(NodeSchema, node("n1", { addr: 1 as unknown as string })), [
      "addr must be a string",
    ]);
  });

  test("an object where an object or null is expected: the object's problems", () => {
    const svc = {
      id: "s1",
      spec: spec(),
      version: 1,
      previousSpec: { ...spec(), stopSignal: 9 },
      updateStatus: { state: "updating", version: 2, startedAt: 1, completedAt: null },
      createdAt: 1,
      updatedAt: 1,
    };
    assert.deepEqual(problems(ServiceSchema, svc, "service"), [
      "service.previousSpec.stopSignal must be a string",
      "service.updateStatus.message is required",
    ]);
    assert.deepEqual(
      problems(ServiceSchema, { ...svc, previousSpec: 5 }, "service")[0],
      "service.previousSpec must be an object or null",
    );
  });

  test("a union of values and null says both", () => {
    assert.deepEqual(problems(TaskStatusSchema.properties.exitCode, "x", "exitCode"), [
      "exitCode must be an integer or null",
    ]);
    assert.deepEqual(
      problems(joinRoutes.join.body, { token: "t", csr: "c", hostname: "h", addr: "a", nodeId: 1 }),
      ["nodeId must be a string"],
    );
  });
});

describe("closed", () => {
  test("refuses unknown fields at every depth; the open schema keeps them", () => {
    const s = { ...spec(), extra: 1, update: { parallelism: 1, extra: 2 } };
    assert.ok(matches(ServiceSpecSchema, s), "stored and bus data may carry more");
    assert.deepEqual(problems(closed(ServiceSpecSchema), s, "spec"), [
      "spec.extra is not a known field",
      "spec.update.extra is not a known field",
    ]);
  });

  test("records keep free keys", () => {
    assert.ok(matches(closed(ServiceSpecSchema), spec({ env: { ANY_NAME: "1" } })));
  });
});

describe("decode", () => {
  const hb = { nodeId: "n1", hostname: "h", tasks: [] };

  test("a valid message is returned", () => {
    const r = decode(HeartbeatSchema, new TextEncoder().encode(JSON.stringify(hb)), "heartbeat");
    assert.deepEqual(r, { ok: true, value: hb });
  });

  test("fields it does not know are kept (a newer node may send more)", () => {
    const r = decode(HeartbeatSchema, JSON.stringify({ ...hb, capabilities: { x: 1 } }));
    assert.equal(r.ok, true);
  });

  test("not JSON: an error, no throw", () => {
    const r = decode(HeartbeatSchema, new TextEncoder().encode("{nope"), "heartbeat");
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.match(r.error.message, /^heartbeat is not JSON \(/);
      assert.equal(r.error.code, "ERR_INVALID");
    }
  });

  test("the wrong shape: an error naming the field", () => {
    const bad = { ...hb, tasks: [{ taskId: "t1", state: "exploded", message: "" }] };
    const r = decode(HeartbeatSchema, JSON.stringify(bad), "heartbeat");
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.error.message, /^heartbeat\.tasks\[0\]\.state must be one of new, /);
  });

  test("JSON null and a number are refused", () => {
    for (const text of ["null", "42"]) {
      const r = decode(HeartbeatSchema, text, "heartbeat");
      assert.equal(r.ok, false);
      if (!r.ok) assert.equal(r.error.message, "heartbeat must be an object");
    }
  });
});

describe("DroppedMessages", () => {
  test("counts every drop and logs at most once per period, with the count since", () => {
    let now = 1000;
    const lines: string[] = [];
    const d = new DroppedMessages(
      (m) => lines.push(m),
      5000,
      () => now,
    );
    const err = new Error("heartbeat is not JSON");
    d.drop("$SHOAL.hb.n1", err);
    d.drop("$SHOAL.hb.n1", err);
    now += 4999;
    d.drop("$SHOAL.hb.n1", err);
    assert.equal(d.count, 3);
    assert.deepEqual(lines, ["dropped a malformed message on $SHOAL.hb.n1: heartbeat is not JSON"]);
    now += 1;
    d.drop("$SHOAL.hb.n2", err);
    assert.equal(d.count, 4);
    assert.equal(lines.length, 2);
    assert.equal(
      lines[1],
      "dropped a malformed message on $SHOAL.hb.n2: heartbeat is not JSON (and 2 more since the last report)",
    );
  });
});
