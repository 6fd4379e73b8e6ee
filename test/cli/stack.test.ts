// `shoal stack` end to end on a real daemon (run as root: overlay networks): deploy a two-service
// stack of process services, list it, deploy again with one service's replicas changed (only that
// service is updated, the other keeps its tasks), and remove it (services and network).

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDaemon, checkFor } from "../helpers/daemon.js";

const SERVER = "require('http').createServer((q, s) => s.end('ok')).listen(8080)";

function stackFile(webReplicas: number): string {
  return `services:
  web:
    command: ["node", "-e", "${SERVER}"]
    deploy:
      replicas: \${WEB_REPLICAS:-${webReplicas}}
  worker:
    entrypoint: node
    command: ["-e", "${SERVER}"]
    environment: [ROLE=worker]
    deploy:
      replicas: 1
`;
}

test("stack deploy, services, ps, redeploy of one changed service, rm", async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip("overlay networks need root");
    return;
  }
  const d = await startDaemon();
  const dir = mkdtempSync(join(tmpdir(), "shoal-stack-"));
  t.after(async () => {
    await d.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  const file = join(dir, "stack.yml");
  writeFileSync(file, stackFile(2));

  const first = await d.cli("stack", "deploy", "-c", file, "demo");
  assert.equal(first.code, 0, first.stderr);
  assert.equal(
    first.stdout,
    "Creating network demo_default\nCreating service demo_web\nCreating service demo_worker\n",
  );

  const services = async () => {
    const r = await d.cli("stack", "services", "demo", "--format", "{{.Name}} {{.Replicas}}");
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  await checkFor(30_000, async () => (await services()) === "demo_web 2/2\ndemo_worker 1/1\n");

  const ls = await d.cli("stack", "ls");
  assert.equal(ls.stdout, "NAME      SERVICES\ndemo      2\n");
  const ps = await d.cli("stack", "ps", "demo", "--format", "{{.Name}} {{.DesiredState}}");
  assert.equal(ps.stdout, "demo_web.1 Running\ndemo_web.2 Running\ndemo_worker.1 Running\n");
  const workerTasks = await d.cli("service", "ps", "-q", "demo_worker");

  // The same file again: nothing changes.
  const same = await d.cli("stack", "deploy", "-c", file, "demo");
  assert.equal(same.code, 0, same.stderr);
  assert.equal(same.stdout, "");

  writeFileSync(file, stackFile(3));
  const again = await d.cli("stack", "deploy", "-c", file, "demo");
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /^Updating service demo_web \(id: [0-9a-z]+\)\n$/);
  await checkFor(30_000, async () => (await services()) === "demo_web 3/3\ndemo_worker 1/1\n");
  assert.equal((await d.cli("service", "ps", "-q", "demo_worker")).stdout, workerTasks.stdout);

  const config = await d.cli("stack", "config", "-c", file);
  assert.match(config.stdout, /replicas: 3\n/);

  const rm = await d.cli("stack", "rm", "demo");
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal(
    rm.stdout,
    "Removing service demo_web\nRemoving service demo_worker\nRemoving network demo_default\n",
  );
  assert.equal((await d.cli("service", "ls", "-q")).stdout, "");
  assert.doesNotMatch((await d.cli("network", "ls")).stdout, /demo_default/);
  const gone = await d.cli("stack", "ps", "demo");
  assert.equal(gone.stderr, "Nothing found in stack: demo\n");
});
