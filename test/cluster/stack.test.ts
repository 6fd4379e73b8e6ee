// Issue 11's stack walkthrough on three machines of the namespace test bed, with a process
// command in place of the image: 5 replicas limited to 0.1 CPU and 50M, restarted on failure,
// port 32794 published, on the stack's `webnet` overlay network. Every machine answers on
// 32794; replicas 5 → 7 in the file and a redeploy leave the first 5 tasks untouched; `stack
// rm` removes the service and the network.

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSwarm, type Swarm } from "../helpers/swarm.js";
import { checkFor, httpGet } from "../helpers/servers.js";
import { killTaskProcesses } from "../helpers/daemon.js";
import type { Node, Task } from "../../src/api/types.js";

const BUSYBOX = "/bin/busybox";

function stackFile(dir: string, replicas: number, limits: boolean): string {
  const resources = limits
    ? `
      resources:
        limits:
          cpus: "0.1"
          memory: 50M`
    : "";
  return `services:
  web:
    command: ["${BUSYBOX}", "httpd", "-f", "-p", "80", "-h", "${dir}"]
    deploy:
      replicas: ${replicas}${resources}
      restart_policy:
        condition: on-failure
    ports:
      - "32794:80"
    networks:
      - webnet
networks:
  webnet:
`;
}

test("stack walkthrough: 5 replicas on every machine's port 32794, 7 in place, removed", async (t) => {
  if (!existsSync(BUSYBOX)) return t.skip(`needs ${BUSYBOX} (busybox-static)`);
  let swarm: Swarm;
  try {
    swarm = await startSwarm(3);
  } catch (err) {
    return t.skip(`no test bed: ${(err as Error).message}`);
  }
  const dir = mkdtempSync(join(tmpdir(), "shoal-stack-"));
  writeFileSync(join(dir, "index.html"), "hello from the stack\n");
  const file = join(dir, "docker-compose.yml");
  t.after(async () => {
    await swarm.cli("stack", "rm", "getstartedlab");
    for (const d of swarm.dirs) killTaskProcesses(d);
    await swarm.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  if (swarm.bed.mode !== "netns") return t.skip("needs network namespaces");
  const ok = swarm.ok;
  const replicas = async () =>
    (await ok("stack", "services", "getstartedlab", "--format", "{{.Name}} {{.Replicas}}")).trim();
  const bySlot = async () =>
    new Map(((await swarm.running("getstartedlab_web")) as Task[]).map((x) => [x.slot, x.id]));

  // The walkthrough's limits, where the machines can enforce them: the test bed's daemons run
  // under `ip netns exec`, whose fresh /sys hides the cgroup mounts, and a limited task would
  // rightly stay pending there (the conversion of limits is in test/cli/compose.test.ts).
  const nodes = await checkFor(15_000, async () => {
    const list = await swarm.api<Node[]>("/v1/nodes");
    return list.length === 3 && list.every((n) => n.limits) ? list : undefined;
  });
  const limits = nodes!.every((n) => n.limits!["process"]?.cpu && n.limits!["process"]?.memory);
  writeFileSync(file, stackFile(dir, 5, limits));
  const deployed = await ok("stack", "deploy", "-c", file, "getstartedlab");
  assert.match(
    deployed,
    /Creating network getstartedlab_webnet\nCreating service getstartedlab_web\n/,
  );
  await checkFor(60_000, async () => (await replicas()) === "getstartedlab_web 5/5", 250);
  for (const h of swarm.bed.hosts) {
    assert.equal(await httpGet(h.addr, 32794), "hello from the stack\n", `port 32794 on ${h.name}`);
  }
  const first = await bySlot();
  assert.deepEqual([...first.keys()].sort(), [1, 2, 3, 4, 5]);

  writeFileSync(file, stackFile(dir, 7, limits));
  assert.match(
    await ok("stack", "deploy", "-c", file, "getstartedlab"),
    /^Updating service getstartedlab_web \(id: \w+\)\n$/,
  );
  await checkFor(60_000, async () => (await replicas()) === "getstartedlab_web 7/7", 250);
  const second = await bySlot();
  for (const [slot, id] of first) assert.equal(second.get(slot), id, `slot ${slot} untouched`);

  await ok("stack", "rm", "getstartedlab");
  await checkFor(60_000, async () => {
    const services = await ok("service", "ls", "-q");
    const networks = await ok("network", "ls", "--format", "{{.Name}}");
    return services === "" && !networks.includes("getstartedlab_webnet");
  });
});
