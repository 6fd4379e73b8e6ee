// Exports and imports between stacks' accounts (issue 14), declared by service labels: what a
// service's labels share, the union per account, imports of what is not exported left out with
// a warning naming both accounts, and bad values refused by the spec's validation.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { appAccountPlan, sharesOf, type AppService } from "../../src/manager/bus-users.js";
import { specProblems } from "../../src/manager/validate.js";
import { subjectsOverlap } from "../../src/nats/subject.js";
import { defaultServiceSpec } from "../../src/api/types.js";
import {
  NAMESPACE_LABEL,
  NATS_EXPORT_SERVICE_LABEL as EXP_SVC,
  NATS_EXPORT_STREAM_LABEL as EXP_STREAM,
  NATS_IMPORT_SERVICE_LABEL as IMP_SVC,
  NATS_IMPORT_STREAM_LABEL as IMP_STREAM,
} from "../../src/api/model.js";

const svc = (
  id: string,
  stack: string | undefined,
  labels: Record<string, string>,
): AppService => ({
  id,
  spec: { labels: { ...(stack ? { [NAMESPACE_LABEL]: stack } : {}), ...labels } },
});

describe("share labels", () => {
  test("labels → exports and imports (same subject on both sides; apps: outside stacks)", () => {
    const cases: [Record<string, string>, ReturnType<typeof sharesOf>][] = [
      [{}, { exports: [], imports: [], problems: [] }],
      [
        { [EXP_STREAM]: "orders.>, audit.*", [EXP_SVC]: "rpc.price" },
        {
          exports: [
            { kind: "stream", subject: "orders.>", accounts: [] },
            { kind: "stream", subject: "audit.*", accounts: [] },
            { kind: "service", subject: "rpc.price", accounts: [] },
          ],
          imports: [],
          problems: [],
        },
      ],
      [
        {
          [NAMESPACE_LABEL]: "b",
          [IMP_STREAM]: "a:orders.>,apps:news",
          [IMP_SVC]: " a : rpc.price",
        },
        {
          exports: [],
          imports: [
            { kind: "stream", account: "stack-a", subject: "orders.>", to: "orders.>" },
            { kind: "stream", account: "apps", subject: "news", to: "news" },
            { kind: "service", account: "stack-a", subject: "rpc.price", to: "rpc.price" },
          ],
          problems: [],
        },
      ],
    ];
    for (const [labels, want] of cases)
      assert.deepEqual(sharesOf(labels), want, JSON.stringify(labels));
  });

  test("bad values: each named by its label, the good entries kept", () => {
    const cases: [Record<string, string>, string][] = [
      [{ [EXP_STREAM]: "" }, `spec.labels["${EXP_STREAM}"]: an empty subject`],
      [{ [EXP_STREAM]: "a,,b" }, `spec.labels["${EXP_STREAM}"]: an empty subject`],
      [
        { [EXP_SVC]: "rpc.>.x" },
        `spec.labels["${EXP_SVC}"]: "rpc.>.x" is not a valid subject (no empty tokens or spaces, '>' only as the last token)`,
      ],
      [
        { [EXP_STREAM]: "a..b" },
        `spec.labels["${EXP_STREAM}"]: "a..b" is not a valid subject (no empty tokens or spaces, '>' only as the last token)`,
      ],
      [
        { [EXP_STREAM]: "$SHOAL.assign.x" },
        `spec.labels["${EXP_STREAM}"]: "$SHOAL.assign.x" is under $SHOAL., which applications cannot use`,
      ],
      [
        { [IMP_STREAM]: "orders.>" },
        `spec.labels["${IMP_STREAM}"]: "orders.>" must be <stack>:<subject> (the stack that exports it; apps: services outside stacks)`,
      ],
      [
        { [IMP_SVC]: ":rpc.price" },
        `spec.labels["${IMP_SVC}"]: ":rpc.price" must be <stack>:<subject> (the stack that exports it; apps: services outside stacks)`,
      ],
      [{ [IMP_SVC]: "a:" }, `spec.labels["${IMP_SVC}"]: an empty subject`],
      [
        { [IMP_STREAM]: "a:orders.>", [NAMESPACE_LABEL]: "a" },
        `spec.labels["${IMP_STREAM}"]: "a:orders.>": a stack cannot import from itself`,
      ],
    ];
    for (const [labels, want] of cases) {
      assert.deepEqual(sharesOf(labels).problems, [want], JSON.stringify(labels));
    }
    const some = sharesOf({ [EXP_STREAM]: "ok.>, bad..x" });
    assert.deepEqual(some.exports, [{ kind: "stream", subject: "ok.>", accounts: [] }]);
    assert.equal(some.problems.length, 1);
  });

  test("the spec's validation refuses bad share labels, naming the label", () => {
    const spec = (labels: Record<string, string>) => ({
      ...defaultServiceSpec("web"),
      command: ["run"],
      labels,
    });
    assert.deepEqual(specProblems(spec({ [EXP_STREAM]: "orders.>", [IMP_SVC]: "a:rpc.x" })), []);
    // Stored before these labels meant anything: the service is not left alone for them.
    assert.deepEqual(
      specProblems(spec({ [IMP_STREAM]: "orders" }), undefined, { stored: true }),
      [],
    );
    assert.deepEqual(specProblems(spec({ [IMP_STREAM]: "orders" })), [
      `spec.labels["${IMP_STREAM}"]: "orders" must be <stack>:<subject> (the stack that exports it; apps: services outside stacks)`,
    ]);
  });
});

describe("accounts' exports and imports", () => {
  test("an account's exports and imports are the union over its services'", () => {
    const { accounts, warnings } = appAccountPlan([
      svc("a1", "a", { [EXP_STREAM]: "orders.>" }),
      svc("a2", "a", { [EXP_STREAM]: "orders.>,audit.>", [EXP_SVC]: "rpc.price" }),
      svc("b1", "b", { [IMP_STREAM]: "a:orders.new" }),
      svc("b2", "b", { [IMP_STREAM]: "a:orders.new", [IMP_SVC]: "a:rpc.price" }),
      svc("c1", "c", {}),
    ]);
    assert.deepEqual(warnings, []);
    assert.deepEqual(accounts, [
      { name: "apps", exports: [], imports: [] },
      {
        name: "stack-a",
        exports: [
          { kind: "service", subject: "rpc.price", accounts: [] },
          { kind: "stream", subject: "audit.>", accounts: [] },
          { kind: "stream", subject: "orders.>", accounts: [] },
        ],
        imports: [],
      },
      {
        name: "stack-b",
        exports: [],
        imports: [
          { kind: "service", account: "stack-a", subject: "rpc.price", to: "rpc.price" },
          { kind: "stream", account: "stack-a", subject: "orders.new", to: "orders.new" },
        ],
      },
      { name: "stack-c", exports: [], imports: [] },
    ]);
  });

  test("imports of what the other account does not export are left out, with a warning naming both", () => {
    const cases: [AppService[], string[]][] = [
      // The exporting stack is not deployed (yet).
      [
        [svc("b", "b", { [IMP_STREAM]: "a:orders.>" })],
        [
          'account "stack-b" imports stream "orders.>" from account "stack-a", which does not export it: left out until it does',
        ],
      ],
      // Exported as a stream, imported as a service.
      [
        [svc("a", "a", { [EXP_STREAM]: "rpc.price" }), svc("b", "b", { [IMP_SVC]: "a:rpc.price" })],
        [
          'account "stack-b" imports service "rpc.price" from account "stack-a", which does not export it: left out until it does',
        ],
      ],
      // Wider than the export.
      [
        [
          svc("a", "a", { [EXP_STREAM]: "orders.*" }),
          svc("b", "b", { [IMP_STREAM]: "a:orders.>" }),
        ],
        [
          'account "stack-b" imports stream "orders.>" from account "stack-a", which does not export it: left out until it does',
        ],
      ],
      // From the applications' account, which exports nothing here.
      [
        [svc("x", undefined, {}), svc("b", "b", { [IMP_STREAM]: "apps:news" })],
        [
          'account "stack-b" imports stream "news" from account "apps", which does not export it: left out until it does',
        ],
      ],
      // Inside the export: no warning.
      [
        [
          svc("a", "a", { [EXP_STREAM]: "orders.>" }),
          svc("b", "b", { [IMP_STREAM]: "a:orders.*.new" }),
        ],
        [],
      ],
      // A stored label that does not parse: a warning naming the service.
      [
        [svc("s1", "a", { [EXP_STREAM]: "bad..x" })],
        [
          `service s1: spec.labels["${EXP_STREAM}"]: "bad..x" is not a valid subject (no empty tokens or spaces, '>' only as the last token)`,
        ],
      ],
    ];
    for (const [services, want] of cases) {
      const plan = appAccountPlan(services);
      assert.deepEqual(plan.warnings, want, JSON.stringify(services));
      if (want.some((w) => w.startsWith("account"))) {
        assert.deepEqual(
          plan.accounts.find((a) => a.name === "stack-b")?.imports,
          [],
          JSON.stringify(services),
        );
      }
    }
  });
});

describe("import cycles", () => {
  test("subjects overlap when some literal subject matches both", () => {
    for (const [a, b, want] of [
      ["orders.>", "orders.new", true],
      ["orders.*", "*.new", true],
      ["orders.*", "orders.new.x", false],
      ["orders.>", "audit.>", false],
      [">", "x", true],
      ["a.b", "a.b", true],
      ["a.b", "a", false],
    ] as const) {
      assert.equal(subjectsOverlap(a, b), want, `${a} ${b}`);
      assert.equal(subjectsOverlap(b, a), want, `${b} ${a}`);
    }
  });

  test("an import that would make an overlapping subject go round is left out, with a warning", () => {
    const both = (stack: string, from: string, subject: string) =>
      svc(stack, stack, { [EXP_STREAM]: subject, [IMP_STREAM]: `${from}:${subject}` });
    const cases: [AppService[], Record<string, string[]>, string[]][] = [
      [
        [both("a", "b", "orders.>"), both("b", "a", "orders.>")],
        { "stack-a": ["orders.>"], "stack-b": [] },
        [
          'account "stack-b" imports stream "orders.>" from account "stack-a", which would form a cycle of imports: left out',
        ],
      ],
      [
        [
          both("a", "c", "x.>"),
          both("b", "a", "x.>"),
          svc("c", "c", { [EXP_STREAM]: "x.>", [IMP_STREAM]: "b:x.*" }),
        ],
        { "stack-a": ["x.>"], "stack-b": ["x.>"], "stack-c": [] },
        [
          'account "stack-c" imports stream "x.*" from account "stack-b", which would form a cycle of imports: left out',
        ],
      ],
      // Both ways on subjects that do not overlap: no cycle.
      [
        [
          svc("a", "a", { [EXP_STREAM]: "a.>", [IMP_STREAM]: "b:b.>" }),
          svc("b", "b", { [EXP_STREAM]: "b.>", [IMP_STREAM]: "a:a.>" }),
        ],
        { "stack-a": ["b.>"], "stack-b": ["a.>"] },
        [],
      ],
    ];
    for (const [services, imports, warnings] of cases) {
      const plan = appAccountPlan(services);
      assert.deepEqual(plan.warnings, warnings);
      for (const [name, subjects] of Object.entries(imports)) {
        assert.deepEqual(
          plan.accounts.find((a) => a.name === name)?.imports.map((i) => i.subject),
          subjects,
          name,
        );
      }
    }
  });
});
