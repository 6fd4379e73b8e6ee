// The README's "Several machines" walkthrough, as a user types it, on three machines of the
// namespace test bed: `shoal init` with no flags on the first, then on the two others the very
// join command init printed, a published service, and every machine answering on its port.
// `shoal` is the repository's bin/shoal.js on PATH (what `npm link` gives a user); each machine
// has its own HOME, so its own ~/.shoal.

import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestBed, type Host } from "./netns.js";
import { SHOAL_BIN, checkFor, httpGet } from "../helpers/servers.js";
import { killTaskProcesses } from "../helpers/daemon.js";

test("README: init, the printed join command on two machines, a service answering everywhere", async (t) => {
  const bed = await createTestBed(3);
  if (bed.mode !== "netns") {
    await bed.cleanup();
    return t.skip("needs network namespaces (one address per machine)");
  }
  const bin = mkdtempSync(join(tmpdir(), "shoal-bin-"));
  writeFileSync(join(bin, "shoal"), `#!/bin/sh\nexec "${process.execPath}" "${SHOAL_BIN}" "$@"\n`);
  chmodSync(join(bin, "shoal"), 0o755);
  const homes = bed.hosts.map(() => mkdtempSync(join(tmpdir(), "shoal-home-")));
  const env = (i: number) => ({
    HOME: homes[i]!,
    PATH: `${bin}:${process.env["PATH"] ?? ""}`,
    SHOAL_DATA_DIR: "",
    SHOAL_HOST: "",
  });
  const sh = async (h: Host, i: number, line: string) => {
    const r = await h.exec("sh", ["-c", line], { env: env(i), timeoutMs: 60_000 });
    assert.equal(r.code, 0, `${h.name}$ ${line}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  t.after(async () => {
    for (const [i, h] of bed.hosts.entries()) {
      await h.exec("sh", ["-c", "shoal leave --force"], { env: env(i), timeoutMs: 30_000 });
      killTaskProcesses(join(homes[i]!, ".shoal"));
      await h.kill().catch(() => {});
    }
    await bed.cleanup();
    for (const d of [bin, ...homes]) rmSync(d, { recursive: true, force: true });
  });
  const [m1, m2, m3] = bed.hosts as [Host, Host, Host];

  const init = await sh(m1, 0, "shoal init");
  const joinLine = /^\s*(shoal join --token \S+ \S+)\s*$/m.exec(init)?.[1];
  assert.ok(joinLine, `init printed a join command:\n${init}`);
  assert.ok(joinLine.endsWith(` ${m1.addr}:2377`), `it advertises ${m1.addr}: ${joinLine}`);
  for (const [i, h] of [m2, m3].entries()) {
    assert.match(await sh(h, i + 1, joinLine), /This node joined a swarm as a worker/);
    // The join answer holds the node's bus password: its owner's only.
    const saved = join(homes[i + 1]!, ".shoal", "join.json");
    assert.equal(statSync(saved).mode & 0o777, 0o600, saved);
  }
  await checkFor(15_000, async () => {
    const ls = await sh(m1, 0, "shoal node ls");
    return ls.split("\n").filter((l) => /\bReady\b/.test(l)).length === 3;
  });
  await sh(
    m1,
    0,
    `shoal service create --name web --replicas 3 -p 8088:8000 -- node -e "require('http').createServer((q,s)=>s.end('hi '+process.env.SHOAL_TASK_SLOT)).listen(process.env.PORT)"`,
  );
  for (const h of bed.hosts) {
    const seen = new Set<string>();
    await checkFor(20_000, async () => {
      seen.add(await httpGet(h.addr, 8088));
      return seen.size === 3;
    });
    assert.deepEqual([...seen].sort(), ["hi 1", "hi 2", "hi 3"], `port 8088 on ${h.name}`);
  }
  const ps = await sh(m1, 0, "shoal service ps web");
  assert.equal(ps.split("\n").filter((l) => /\bRunning\b/.test(l)).length, 3, ps);
});
