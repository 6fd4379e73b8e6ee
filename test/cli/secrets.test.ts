// Secrets and configs on the command line, without a daemon: `--secret`/`--config` parsing with
// Docker's defaults and errors, `--secret-add/-rm` on update, `secret create`'s body, the ls rows
// and inspect shapes (a secret's never has data), compose's top-level and service-level
// secrets/configs converted to `<stack>_<name>` objects and references, and `stack deploy`/`rm`
// creating and removing them (against a fake API).

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fakeApi, shoal } from "./fake-api.js";
import type { ServiceSpec } from "../../src/api/types.js";
import {
  createSpec,
  parseFileReference,
  prettyService,
  updatedReferences,
  updatedSpec,
} from "../../src/cli/service.js";
import { createFileBody, fileRows, inspectShape, prettyFile } from "../../src/cli/secret.js";
import { loadSources } from "../../src/cli/compose/load.js";
import { convertStack } from "../../src/cli/compose/convert.js";
import { withFileIds } from "../../src/cli/stack.js";
import { UsageError } from "../../src/cli/errors.js";
import { defaultServiceSpec } from "../../src/api/model.js";

test("--secret and --config: short and long syntax, Docker's defaults and errors", () => {
  assert.deepEqual(parseFileReference("secret", "db_pass"), {
    source: "db_pass",
    target: "db_pass",
    uid: "0",
    gid: "0",
    mode: 0o444,
  });
  assert.deepEqual(parseFileReference("config", "app"), {
    source: "app",
    target: "/app",
    uid: "0",
    gid: "0",
    mode: 0o444,
  });
  assert.deepEqual(
    parseFileReference("secret", "source=db_pass,target=pw,uid=100,gid=101,mode=0400"),
    { source: "db_pass", target: "pw", uid: "100", gid: "101", mode: 0o400 },
  );
  assert.equal(parseFileReference("secret", "src=a,mode=256").mode, 256);
  const bad: Array<[string, RegExp]> = [
    ["target=x", /source is required/],
    ["source=a,colour=red", /invalid field in secret request: colour/],
    ["source=a,mode=0999", /invalid mode '0999'/],
    ["source=a,mode=01000", /invalid mode/],
    ["source=a,uid=root", /invalid uid 'root'/],
    ["source=a,target", /must be a key=value pair/],
  ];
  for (const [v, re] of bad) {
    assert.throws(
      () => parseFileReference("secret", v),
      (e: unknown) => e instanceof UsageError && re.test(e.message),
      v,
    );
  }
  const spec = createSpec({ secret: ["a", "source=b,target=bee"], config: ["c"] }, ["x"], "web");
  assert.deepEqual(
    spec.secrets?.map((r) => [r.source, r.target]),
    [
      ["a", "a"],
      ["b", "bee"],
    ],
  );
  assert.deepEqual(
    spec.configs?.map((r) => r.target),
    ["/c"],
  );
});

test("--secret-add replaces by source or target, --secret-rm removes by name", () => {
  const cur = [
    { source: "a", id: "ida", target: "a", uid: "0", gid: "0", mode: 0o444 },
    { source: "b", id: "idb", target: "b", uid: "0", gid: "0", mode: 0o444 },
  ];
  assert.deepEqual(
    updatedReferences("secret", cur, ["source=a,mode=0400", "c"], ["b"])?.map((r) => [
      r.source,
      r.mode,
    ]),
    [
      ["a", 0o400],
      ["c", 0o444],
    ],
  );
  assert.equal(updatedReferences("secret", cur, [], ["a", "b"]), undefined);
  const spec = { ...defaultServiceSpec("web"), secrets: cur };
  assert.equal(updatedSpec(spec, { secretRm: ["a", "b"] }, []).secrets, undefined);
  assert.deepEqual(
    updatedSpec(spec, { configAdd: ["conf"] }, []).configs?.map((r) => r.target),
    ["/conf"],
  );
  // Flags that do not touch secrets leave them as they are.
  assert.deepEqual(updatedSpec(spec, {}, []).secrets, cur);
  const pretty = prettyService(
    {
      id: "x",
      spec,
      version: 1,
      previousSpec: null,
      createdAt: 0,
      updatedAt: 0,
      running: 0,
      desired: 1,
    },
    0,
  );
  assert.match(pretty, / Secrets:\n {2}Target:\ta\n {2}Source:\ta\n {2}Target:\tb\n {2}Source:\tb/);
});

test("secret create's body, ls rows, inspect shapes; a secret's inspect has no data", () => {
  const body = createFileBody("secret", "pw", "-", { label: ["env=dev"] }, (p) => {
    assert.equal(p, 0); // "-" is stdin
    return Buffer.from("hunter2\n");
  });
  assert.deepEqual(body, {
    name: "pw",
    labels: { env: "dev" },
    data: Buffer.from("hunter2\n").toString("base64"),
  });
  assert.throws(
    () => createFileBody("secret", "pw", "f", {}, () => Buffer.alloc(0)),
    /secret data must not be empty/,
  );
  assert.throws(
    () =>
      createFileBody("secret", "pw", "/nope", {}, () => {
        throw new Error("ENOENT");
      }),
    /error reading content from "\/nope"/,
  );

  const now = Date.UTC(2024, 0, 1, 12, 0, 0);
  const info = {
    id: "abc123",
    name: "pw",
    labels: { env: "dev" },
    createdAt: now - 120_000,
    updatedAt: now - 5_000,
  };
  assert.deepEqual(fileRows([info], now)[0], {
    ID: "abc123",
    Name: "pw",
    Driver: "",
    CreatedAt: "2 minutes ago",
    UpdatedAt: "5 seconds ago",
    Labels: "env=dev",
  });
  assert.deepEqual(inspectShape(info), {
    ID: "abc123",
    Version: { Index: 1 },
    CreatedAt: "2024-01-01T11:58:00.000Z",
    UpdatedAt: "2024-01-01T11:59:55.000Z",
    Spec: { Name: "pw", Labels: { env: "dev" } },
  });
  const cfg = { ...info, data: Buffer.from("a=1").toString("base64") };
  assert.equal(
    (inspectShape(cfg) as { Spec: { Data: string } }).Spec.Data,
    Buffer.from("a=1").toString("base64"),
  );
  assert.match(
    prettyFile("secret", info),
    /^ID:\s+abc123\nName:\s+pw\nLabels:\n - env=dev\nDriver:/,
  );
  assert.match(prettyFile("config", cfg), /Data:\na=1$/);
});

test("compose: top-level secrets and configs, short and long service syntax", () => {
  const files = new Map([
    ["/stack/pw.txt", Buffer.from("hunter2")],
    ["/abs/app.conf", Buffer.from("a=1")],
  ]);
  const ctx = {
    workingDir: "/stack",
    lookup: (k: string) => (k === "TOKEN" ? "tok" : undefined),
    readFile: () => {
      throw new Error("readBytes is used");
    },
    readBytes: (p: string) => {
      const b = files.get(p);
      if (!b) throw new Error(`ENOENT ${p}`);
      return b;
    },
  };
  const text = [
    "services:",
    "  web:",
    "    command: x",
    "    secrets: [pw, {source: token, target: api_token, uid: '100', mode: 0400}]",
    "    configs: [app, {source: inline, target: /etc/inline.conf}]",
    "secrets:",
    "  pw: {file: ./pw.txt}",
    "  token: {environment: TOKEN}",
    "  shared: {external: true}",
    "configs:",
    "  app: {file: /abs/app.conf, labels: {team: a}}",
    "  inline: {content: 'x=2', name: fixed-name}",
  ].join("\n");
  const s = convertStack(
    loadSources([{ file: "stack.yml", text }], () => undefined),
    "demo",
    ctx,
  );
  assert.deepEqual(s.warnings, []);
  const ns = { "com.docker.stack.namespace": "demo" };
  const b64 = (v: string) => Buffer.from(v).toString("base64");
  assert.deepEqual(s.secrets, [
    {
      name: "demo_pw",
      external: false,
      create: { name: "demo_pw", labels: ns, data: b64("hunter2") },
    },
    {
      name: "demo_token",
      external: false,
      create: { name: "demo_token", labels: ns, data: b64("tok") },
    },
    { name: "shared", external: true },
  ]);
  assert.deepEqual(
    s.configs.map((c) => [c.name, c.create?.labels, c.create?.data]),
    [
      ["demo_app", { team: "a", ...ns }, b64("a=1")],
      ["fixed-name", ns, b64("x=2")],
    ],
  );
  const web = s.services[0]!;
  assert.deepEqual(web.secrets, [
    { source: "demo_pw", target: "pw", uid: "0", gid: "0", mode: 0o444 },
    { source: "demo_token", target: "api_token", uid: "100", gid: "0", mode: 0o400 },
  ]);
  assert.deepEqual(
    web.configs?.map((r) => [r.source, r.target]),
    [
      ["demo_app", "/app"],
      ["fixed-name", "/etc/inline.conf"],
    ],
  );
  // What a redeploy compares with the stored spec: the references with their ids.
  const withIds = withFileIds(web, new Map([["demo_pw", "id1"]]), new Map());
  assert.equal(withIds.secrets?.[0]?.id, "id1");
  assert.equal(withIds.secrets?.[1]?.id, undefined);

  const undef = "services:\n  web:\n    command: x\n    secrets: [nope]\n";
  assert.throws(
    () =>
      convertStack(
        loadSources([{ file: "s.yml", text: undef }], () => undefined),
        "d",
        ctx,
      ),
    /services\.web\.secrets\[0\]: service "web" refers to undefined secret nope: invalid compose file/,
  );
  const missing = "services:\n  web:\n    command: x\nsecrets:\n  pw: {file: ./gone}\n";
  assert.throws(
    () =>
      convertStack(
        loadSources([{ file: "s.yml", text: missing }], () => undefined),
        "d",
        ctx,
      ),
    /secrets\.pw\.file: cannot read \/stack\/gone/,
  );
});

test("stack deploy creates the stack's secrets (external ones must exist); stack rm removes them", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "shoal-stack-secrets-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "pw.txt"), "hunter2");
  const file = join(dir, "stack.yml");
  writeFileSync(
    file,
    [
      "services:",
      "  web:",
      "    command: [sleep, '600']",
      "    secrets: [pw]",
      "    configs: [{source: shared, target: /etc/shared.conf}]",
      "secrets:",
      "  pw: {file: ./pw.txt}",
      "configs:",
      "  shared: {external: true}",
      "",
    ].join("\n"),
  );
  const ns = { "com.docker.stack.namespace": "demo" };
  let secrets: unknown[] = [];
  let configs: unknown[] = [];
  const api = await fakeApi((req) => {
    if (req.method === "GET" && req.path === "/v1/networks") return { json: [] };
    if (req.method === "POST" && req.path === "/v1/networks") return { json: { id: "net1" } };
    if (req.method === "GET" && req.path === "/v1/secrets") return { json: secrets };
    if (req.method === "GET" && req.path === "/v1/configs") return { json: configs };
    if (req.method === "POST" && req.path === "/v1/secrets") return { json: { id: "sec1" } };
    if (req.method === "GET" && req.path === "/v1/services") return { json: [] };
    if (req.method === "POST" && req.path === "/v1/services") return { json: { id: "svc1" } };
    if (req.method === "DELETE" && req.path === "/v1/secrets/sec1") return { json: {} };
    return undefined;
  });
  t.after(() => api.close());

  const missing = await shoal(["stack", "deploy", "-c", file, "demo"], api.env);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /config "shared" is declared as external, but could not be found/);

  configs = [{ id: "c1", name: "shared", labels: {}, createdAt: 0, updatedAt: 0 }];
  api.requests.length = 0;
  const ok = await shoal(["stack", "deploy", "-c", file, "demo"], api.env);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /Creating secret demo_pw\n/);
  const made = api.requests.find((r) => r.method === "POST" && r.path === "/v1/secrets");
  assert.deepEqual(made?.body, {
    name: "demo_pw",
    labels: ns,
    data: Buffer.from("hunter2").toString("base64"),
  });
  const svc = api.requests.find((r) => r.method === "POST" && r.path === "/v1/services");
  const spec = (svc?.body as { spec: ServiceSpec }).spec;
  assert.deepEqual(
    [spec.secrets?.[0]?.source, spec.configs?.[0]?.source, spec.configs?.[0]?.target],
    ["demo_pw", "shared", "/etc/shared.conf"],
  );

  secrets = [{ id: "sec1", name: "demo_pw", labels: ns, createdAt: 0, updatedAt: 0 }];
  const rm = await shoal(["stack", "rm", "demo"], api.env);
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal(rm.stdout, "Removing secret demo_pw\n"); // the external config stays
});
