// Placement preferences, max replicas per node and rollback settings at the edges: the
// `service create/update` flags in the spec (and Docker's words for bad ones), `service inspect
// --pretty` and `service ls` as Docker prints them, the compose deploy keys converted, and the
// manager's validation of what a client sends.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createSpec, prettyService, serviceRows, updatedSpec } from "../../src/cli/service.js";
import { buildProgram } from "../../src/cli/program.js";
import { UsageError } from "../../src/cli/errors.js";
import { loadSources } from "../../src/cli/compose/load.js";
import { convertStack } from "../../src/cli/compose/convert.js";
import { specProblems } from "../../src/manager/validate.js";
import {
  defaultRollbackConfig,
  defaultServiceSpec,
  type ServiceSpec,
} from "../../src/api/types.js";

const usage = (re: RegExp) => (e: unknown) => e instanceof UsageError && re.test(e.message);

test("service create: --placement-pref, --replicas-max-per-node and --rollback-* in the spec", () => {
  const s = createSpec(
    {
      placementPref: ["spread=node.labels.zone", "spread=node.labels.rack"],
      replicasMaxPerNode: "2",
      rollbackParallelism: "3",
      rollbackDelay: "2s",
      rollbackFailureAction: "continue",
      rollbackMonitor: "1m",
      rollbackMaxFailureRatio: "0.25",
      rollbackOrder: "start-first",
    },
    ["x"],
    "web",
  );
  assert.deepEqual(s.preferences, [{ spread: "node.labels.zone" }, { spread: "node.labels.rack" }]);
  assert.equal(s.maxReplicasPerNode, 2);
  assert.deepEqual(s.rollback, {
    parallelism: 3,
    delayMs: 2000,
    failureAction: "continue",
    monitorMs: 60_000,
    maxFailureRatio: 0.25,
    order: "start-first",
  });
  // No flags: no preferences, no limit, Swarm's rollback defaults.
  const plain = createSpec({}, ["x"], "web");
  assert.equal(plain.preferences, undefined);
  assert.equal(plain.maxReplicasPerNode, undefined);
  assert.deepEqual(plain.rollback, defaultRollbackConfig());
});

test("service create: Docker's words for bad placement and rollback flags", () => {
  const bad: Array<[Parameters<typeof createSpec>[0], RegExp]> = [
    [{ placementPref: ["node.labels.zone"] }, /must be of the format "<strategy>=<arg>"/],
    [
      { placementPref: ["binpack=node.labels.zone"] },
      /unsupported placement preference binpack \(only spread is supported\)/,
    ],
    [{ replicasMaxPerNode: "two" }, /--replicas-max-per-node/],
    [
      { mode: "global", replicasMaxPerNode: "1" },
      /^replicas-max-per-node can only be used with replicated mode$/,
    ],
    [{ rollbackFailureAction: "rollback" }, /invalid rollback failure action "rollback"/],
    [{ rollbackOrder: "sideways" }, /invalid rollback order "sideways"/],
    [{ rollbackMaxFailureRatio: "2" }, /"--rollback-max-failure-ratio"/],
  ];
  for (const [opts, re] of bad) assert.throws(() => createSpec(opts, ["x"], "web"), usage(re));
});

test("service update: --placement-pref-add/-rm, the limit changed or cleared, rollback kept", () => {
  const s = createSpec(
    { placementPref: ["spread=node.labels.zone"], replicasMaxPerNode: "2", rollbackDelay: "5s" },
    ["x"],
    "web",
  );
  const u = updatedSpec(
    s,
    {
      placementPrefRm: ["spread=node.labels.zone"],
      placementPrefAdd: ["spread=node.labels.rack"],
      replicasMaxPerNode: "3",
      rollbackParallelism: "0",
    },
    [],
  );
  assert.deepEqual(u.preferences, [{ spread: "node.labels.rack" }]);
  assert.equal(u.maxReplicasPerNode, 3);
  assert.equal(u.rollback?.delayMs, 5000, "settings not given stay");
  assert.equal(u.rollback?.parallelism, 0);
  const cleared = updatedSpec(
    u,
    { placementPrefRm: ["spread=node.labels.rack"], replicasMaxPerNode: "0" },
    [],
  );
  assert.equal(cleared.preferences, undefined);
  assert.equal(cleared.maxReplicasPerNode, undefined);
});

test("the flags are on service create and update", async () => {
  for (const argv of [
    ["service", "create", "--placement-pref", "spread=node.labels.zone", "--", "x"],
    ["service", "update", "--placement-pref-add", "spread=node.labels.zone", "web"],
    ["service", "update", "--placement-pref-rm", "spread=node.labels.zone", "web"],
    ["service", "create", "--replicas-max-per-node", "1", "--rollback-delay", "1s", "--", "x"],
    ["service", "update", "--rollback-monitor", "1s", "--rollback-order", "start-first", "web"],
    ["service", "update", "--rollback-parallelism", "2", "--rollback-failure-action", "x", "web"],
    ["service", "update", "--rollback-max-failure-ratio", "0.5", "web"],
  ]) {
    const { program } = buildProgram(argv);
    const leaf = program.commands
      .find((c) => c.name() === "service")!
      .commands.find((c) => c.name() === argv[1])!;
    let opts: Record<string, unknown> | undefined;
    leaf.action((...a: unknown[]) => {
      opts = (a[a.length - 1] as typeof leaf).opts();
    });
    await program.parseAsync(argv, { from: "user" });
    assert.ok(opts && Object.keys(opts).length >= 1, argv.join(" "));
  }
});

function summary(spec: ServiceSpec) {
  return {
    id: "s1",
    spec,
    version: 1,
    previousSpec: null,
    createdAt: 0,
    updatedAt: 0,
    running: 6,
    desired: 6,
  };
}

test("service inspect --pretty: Placement and RollbackConfig as Docker prints them", () => {
  const spec: ServiceSpec = {
    ...defaultServiceSpec("web"),
    command: ["x"],
    constraints: ["node.role==worker"],
    preferences: [{ spread: "node.labels.zone" }, { spread: "node.labels.rack" }],
    maxReplicasPerNode: 2,
    rollback: { ...defaultRollbackConfig(), delayMs: 2000, failureAction: "continue" },
  };
  const text = prettyService(summary(spec), 0);
  assert.ok(
    text.includes(
      "Placement:\n Constraints:\t[node.role==worker]\n" +
        " Preferences:   [spread=node.labels.zone spread=node.labels.rack]\n" +
        " Max Replicas Per Node:   2\nUpdateConfig:\n",
    ),
    text,
  );
  assert.ok(
    text.includes(
      " Update order:      stop-first\nRollbackConfig:\n Parallelism:\t1\n Delay:\t\t2s\n" +
        " On failure:\tcontinue\n Monitoring Period: 5s\n Max failure ratio: 0\n" +
        " Rollback order:    stop-first\n",
    ),
    text,
  );
  // A spec without them (stored before they existed): an empty Placement, Swarm's defaults.
  const plain = prettyService(summary({ ...defaultServiceSpec("web"), command: ["x"] }), 0);
  assert.match(plain, /\nPlacement:\nUpdateConfig:\n/);
  assert.match(plain, /\nRollbackConfig:\n Parallelism:\t1\n On failure:\tpause\n/);
});

test("service ls: REPLICAS says the limit as Docker does", () => {
  const spec = { ...defaultServiceSpec("web"), command: ["x"], maxReplicasPerNode: 1 };
  assert.equal(serviceRows([summary(spec)])[0]!.Replicas, "6/6 (max 1 per node)");
  assert.equal(serviceRows([summary(defaultServiceSpec("w"))])[0]!.Replicas, "6/6");
});

test("the manager refuses a preference over no label and a limit on a global service", () => {
  const base = { ...defaultServiceSpec("web"), command: ["x"] };
  assert.deepEqual(specProblems({ ...base, preferences: [{ spread: "node.labels.zone" }] }), []);
  assert.deepEqual(specProblems({ ...base, preferences: [{ spread: "node.hostname" }] }), [
    'invalid placement preference "spread=node.hostname": spread over node.labels.<name> or engine.labels.<name>',
  ]);
  assert.deepEqual(specProblems({ ...base, mode: { global: {} }, maxReplicasPerNode: 1 }), [
    "spec.maxReplicasPerNode can only be used with replicated mode",
  ]);
  assert.match(
    specProblems({ ...base, rollback: { failureAction: "rollback" } }).join("\n"),
    /spec\.rollback\.failureAction/,
  );
  assert.match(
    specProblems({ ...base, maxReplicasPerNode: -1 }).join("\n"),
    /spec\.maxReplicasPerNode/,
  );
});

// ---- compose ------------------------------------------------------------------------------------

const ctx = { workingDir: "/nowhere", lookup: () => undefined, readFile: () => "" };
const stack = (text: string) =>
  convertStack(
    loadSources([{ file: "stack.yml", text }], () => undefined),
    "st",
    ctx,
  );

test("compose: placement preferences, max_replicas_per_node and rollback_config converted", () => {
  const s = stack(`services:
  w:
    command: [run]
    deploy:
      replicas: 6
      placement:
        constraints: [node.role==worker]
        preferences:
          - spread: node.labels.zone
          - spread: node.labels.rack
        max_replicas_per_node: 2
      update_config: {parallelism: 2, failure_action: rollback}
      rollback_config:
        parallelism: 0
        delay: 3s
        failure_action: continue
        monitor: 10s
        max_failure_ratio: 0.5
        order: start-first
`);
  assert.deepEqual(s.warnings, [], "none of them is ignored any more");
  const w = s.services[0]!;
  assert.deepEqual(w.preferences, [{ spread: "node.labels.zone" }, { spread: "node.labels.rack" }]);
  assert.equal(w.maxReplicasPerNode, 2);
  assert.deepEqual(w.constraints, ["node.role==worker"]);
  assert.equal(w.update?.parallelism, 2);
  assert.equal(w.update?.failureAction, "rollback");
  assert.deepEqual(w.rollback, {
    parallelism: 0,
    delayMs: 3000,
    failureAction: "continue",
    monitorMs: 10_000,
    maxFailureRatio: 0.5,
    order: "start-first",
  });
  // Without them: none of the fields.
  const plain = stack("services:\n  w:\n    command: [run]\n").services[0]!;
  assert.equal(plain.preferences, undefined);
  assert.equal(plain.maxReplicasPerNode, undefined);
  assert.equal(plain.rollback, undefined);
});

test("compose: bad rollback_config and a limit on a global service name their key", () => {
  assert.throws(
    () =>
      stack(
        "services:\n  w:\n    command: [run]\n    deploy:\n      rollback_config: {failure_action: rollback}\n",
      ),
    /services\.w\.deploy\.rollback_config\.failure_action: must be pause or continue/,
  );
  assert.throws(
    () =>
      stack(
        "services:\n  w:\n    command: [run]\n    deploy:\n      mode: global\n      placement: {max_replicas_per_node: 1}\n",
      ),
    /services\.w\.deploy\.placement\.max_replicas_per_node: can only be used with replicated mode/,
  );
});
