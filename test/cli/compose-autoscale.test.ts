// `x-shoal-autoscale` in a compose file's service: accepted by the compose schema (an `x-` key),
// converted to the spec's policy (min 1 unless given, percents as `70%` or 70, stabilization as
// a duration, the replicas starting at min without deploy.replicas), refused with errors that
// name the key; and a redeploy keeps the count the autoscaler gave the service.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { loadSources } from "../../src/cli/compose/load.js";
import { convertStack } from "../../src/cli/compose/convert.js";
import { withAutoscaledReplicas } from "../../src/cli/stack.js";
import { defaultServiceSpec } from "../../src/api/types.js";

const ctx = {
  workingDir: "/nowhere",
  lookup: () => undefined,
  readFile: (p: string) => readFileSync(p, "utf8"),
};

const convert = (autoscale: string, deploy = "") =>
  convertStack(
    loadSources(
      [
        {
          file: "stack.yml",
          text: `services:\n  web:\n    command: node app.js\n${deploy}    x-shoal-autoscale:\n${autoscale}`,
        },
      ],
      () => undefined,
    ),
    "demo",
    ctx,
  ).services[0]!;

test("x-shoal-autoscale becomes the spec's policy", () => {
  const s = convert(
    "      min: 2\n      max: 8\n      cpu: 70%\n      memory: 80\n      rps: 100\n      stabilization: 2m\n",
    "    deploy:\n      resources:\n        limits: {memory: 256M}\n",
  );
  assert.deepEqual(s.autoscale, {
    min: 2,
    max: 8,
    cpuPercent: 70,
    memoryPercent: 80,
    rps: 100,
    stabilizationMs: 120_000,
  });
  assert.deepEqual(s.mode, { replicated: { replicas: 2 } }, "starts at min");
  const given = convert("      max: 4\n      cpu: 50\n", "    deploy:\n      replicas: 3\n");
  assert.deepEqual(given.autoscale, { min: 1, max: 4, cpuPercent: 50 });
  assert.deepEqual(given.mode, { replicated: { replicas: 3 } });
});

test("x-shoal-autoscale: errors name the key", () => {
  const bad: Array<[string, string, RegExp]> = [
    ["      cpu: 70%\n", "", /services\.web\.x-shoal-autoscale\.max: is required/],
    ["      max: 4\n", "", /services\.web\.x-shoal-autoscale: needs a target: cpu, memory or rps/],
    [
      "      max: 4\n      cpu: lots\n",
      "",
      /x-shoal-autoscale\.cpu: must be a percent like 70%, not "lots"/,
    ],
    ["      max: 4\n      cpu: 0%\n", "", /x-shoal-autoscale\.cpu: must be a percent/],
    [
      "      max: 0\n      cpu: 70\n",
      "",
      /x-shoal-autoscale\.max: must be a whole number >= 1, not 0/,
    ],
    ["      max: 2.5\n      cpu: 70\n", "", /x-shoal-autoscale\.max: must be a whole number >= 1/],
    [
      "      max: 4\n      rps: -1\n",
      "",
      /x-shoal-autoscale\.rps: must be a number of requests per second > 0/,
    ],
    [
      "      max: 4\n      cpu: 70\n      stabilization: soon\n",
      "",
      /x-shoal-autoscale\.stabilization: invalid duration "soon"/,
    ],
    [
      "      max: 4\n      cpus: 70\n",
      "",
      /x-shoal-autoscale\.cpus: is not a known key \(min, max, cpu, memory, rps, stabilization\)/,
    ],
    ["      - max\n", "", /x-shoal-autoscale: must be a mapping/],
    [
      "      max: 4\n      cpu: 70\n",
      "    deploy:\n      mode: global\n",
      /x-shoal-autoscale: can only be used with replicated mode/,
    ],
  ];
  for (const [a, deploy, re] of bad) assert.throws(() => convert(a, deploy), re, a);
});

test("a redeploy keeps the autoscaler's count, within the file's bounds", () => {
  const cur = { ...defaultServiceSpec("demo_web"), mode: { replicated: { replicas: 7 } } };
  const file = {
    ...defaultServiceSpec("demo_web"),
    autoscale: { min: 2, max: 10, cpuPercent: 70 },
  };
  assert.deepEqual(withAutoscaledReplicas(cur, file).mode, { replicated: { replicas: 7 } });
  const lower = { ...file, autoscale: { min: 2, max: 5, cpuPercent: 70 } };
  assert.deepEqual(withAutoscaledReplicas(cur, lower).mode, { replicated: { replicas: 5 } });
  const plain = { ...defaultServiceSpec("demo_web"), mode: { replicated: { replicas: 3 } } };
  assert.deepEqual(withAutoscaledReplicas(cur, plain).mode, { replicated: { replicas: 3 } });
});
