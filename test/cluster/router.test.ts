// Issue 12's router test on three machines of the namespace test bed: two services on two host
// names; every machine's router (port 80) reaches every task of each, round robin, wherever the
// task runs; a sticky cookie set by one machine's router pins the client on the others too, and
// moves when the pinned task is killed.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { netnsSwarm } from "../helpers/swarm.js";
import { checkFor } from "../helpers/servers.js";
import { routedGet, routerTaskScript } from "../helpers/router.js";

test("router on three machines: two host names, every task from every machine, sticky across machines", async (t) => {
  const swarm = await netnsSwarm(t, 3);
  if (swarm === undefined) return;
  const dir = mkdtempSync(join(tmpdir(), "shoal-router-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const script = routerTaskScript(dir);
  const hosts = swarm.bed.hosts;
  const services = [
    { name: "blue", host: "blue.example.test", replicas: 3, sticky: [] as string[] },
    {
      name: "green",
      host: "green.example.test",
      replicas: 3,
      sticky: ["--label", "traefik.http.services.green.loadbalancer.sticky.cookie.name=pin"],
    },
  ];
  for (const s of services) {
    await swarm.ok(
      "service",
      "create",
      "--detach",
      "--name",
      s.name,
      "--replicas",
      String(s.replicas),
      "--label",
      `traefik.http.routers.${s.name}.rule=Host(\`${s.host}\`)`,
      "--label",
      `traefik.http.services.${s.name}.loadbalancer.server.port=8080`,
      ...s.sticky,
      "--",
      "node",
      script,
    );
  }
  for (const s of services) {
    await checkFor(60_000, async () => (await swarm.running(s.name)).length === s.replicas, 250);
  }
  const blue = await swarm.running("blue");
  assert.ok(new Set(blue.map((x) => x.nodeId)).size >= 2, "blue's tasks are on several machines");

  for (const s of services) {
    const want = (await swarm.running(s.name)).map((x) => x.id).sort();
    for (const h of hosts) {
      let got = new Set<string>();
      await checkFor(10_000, async () => {
        got = new Set();
        for (let i = 0; i < s.replicas * 2; i++) {
          const a = await routedGet(80, s.host, undefined, "/", h.addr);
          if (a.status === 200) got.add(a.body.split(" ")[0]!);
        }
        return got.size === s.replicas;
      });
      assert.deepEqual([...got].sort(), want, `${s.host} through ${h.name}'s router`);
    }
  }

  // Sticky: the cookie one machine's router sets pins the client on every machine's router.
  const first = await routedGet(80, "green.example.test", undefined, "/", hosts[0]!.addr);
  const cookie = first.setCookie.find((c) => c.startsWith("pin="))?.split(";")[0];
  assert.ok(cookie, `green sets its sticky cookie: ${first.setCookie.join(" | ")}`);
  const [pinned, pid] = first.body.split(" ");
  for (const h of hosts) {
    for (let i = 0; i < 3; i++) {
      const a = await routedGet(80, "green.example.test", cookie, "/", h.addr);
      assert.equal(a.body.split(" ")[0], pinned, `pinned through ${h.name}`);
    }
  }
  process.kill(Number(pid), "SIGKILL");
  let moved = "";
  await checkFor(20_000, async () => {
    const a = await routedGet(80, "green.example.test", cookie, "/", hosts[1]!.addr);
    const id = a.body.split(" ")[0]!;
    if (a.status === 200 && id !== pinned && a.setCookie.some((c) => c.startsWith("pin=")))
      moved = id;
    return moved !== "";
  });
  const live = (await swarm.running("green")).map((x) => x.id);
  assert.ok(live.includes(moved), "moved to a live task of green");
});
