// The store directory's LOCK: refused while another live process (or this one) holds it, taken
// over once its owner is dead — also while that owner is a zombie nobody has reaped yet.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { openEmbeddedStore } from "../../src/store/embedded.js";
import { pidAlive, procState } from "../../src/store/lock.js";
import { StoreError } from "../../src/store/store.js";
import { node, tmpStoreDir, warnings, Writer } from "./helpers.js";

function locked(pidText: string) {
  return (err: unknown) =>
    err instanceof StoreError &&
    err.code === "ERR_LOCKED" &&
    err.message.includes(pidText) &&
    err.message.includes("LOCK");
}

describe("embedded store lock", () => {
  test("refused while another process holds it, taken over after it dies", async (t) => {
    const dir = tmpStoreDir(t);
    const w = new Writer(["hold", dir]);
    t.after(() => void w.child.kill("SIGKILL"));
    await w.waitFor((l) => l.some((x) => x.startsWith("ready")));
    const pid = w.child.pid!;
    assert.equal(readFileSync(join(dir, "LOCK"), "utf8").trim(), String(pid));
    await assert.rejects(openEmbeddedStore(dir), locked(`process ${pid}`));
    await w.kill9();
    const wn = warnings();
    const s = await openEmbeddedStore(dir, { onWarning: wn.onWarning });
    assert.equal(readFileSync(join(dir, "LOCK"), "utf8").trim(), String(process.pid));
    assert.equal(wn.list.length, 1);
    assert.match(wn.list[0]!, new RegExp(`took over the stale lock .*LOCK of process ${pid}`));
    await s.update((tx) => tx.putNode(node("n1")));
    await s.close();
    assert.equal(existsSync(join(dir, "LOCK")), false);
  });

  test("refused to a second open in the same process", async (t) => {
    const dir = tmpStoreDir(t);
    const s = await openEmbeddedStore(dir);
    await assert.rejects(openEmbeddedStore(dir), locked("this process"));
    await s.close();
    const again = await openEmbeddedStore(dir);
    await again.close();
  });

  test("an unreadable lock is stale", async (t) => {
    const dir = tmpStoreDir(t);
    writeFileSync(join(dir, "LOCK"), "");
    const wn = warnings();
    const s = await openEmbeddedStore(dir, { onWarning: wn.onWarning });
    assert.match(wn.list[0]!, /unreadable/);
    await s.close();
  });

  test("a zombie holder (exited, not reaped) does not block the lock", async (t) => {
    // sh starts `sleep 0.3` in the background, prints its pid and becomes `sleep`, which never
    // reaps it: the child stays a zombie until the sleep ends.
    const parent = spawn("sh", ["-c", "sleep 0.3 & echo $!; exec sleep 60"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    t.after(() => void parent.kill("SIGKILL"));
    const [line] = (await once(createInterface({ input: parent.stdout! }), "line")) as [string];
    const zombie = Number(line);
    assert.ok(zombie > 0, `no pid from the shell: ${line}`);
    // Wait (bounded) for the background child to have exited.
    for (let i = 0; i < 500 && procState(zombie) !== "Z"; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(procState(zombie), "Z", "the child should be a zombie");
    let signalled = true;
    try {
      process.kill(zombie, 0);
    } catch {
      signalled = false;
    }
    assert.ok(signalled, "kill(pid, 0) still succeeds on a zombie");
    assert.equal(pidAlive(zombie), false);
    assert.equal(pidAlive(parent.pid!), true);

    const dir = tmpStoreDir(t);
    writeFileSync(join(dir, "LOCK"), `${zombie}\n`);
    const wn = warnings();
    const s = await openEmbeddedStore(dir, { onWarning: wn.onWarning });
    assert.match(wn.list[0]!, new RegExp(`stale lock .*LOCK of process ${zombie}, which is gone`));
    await s.close();
  });
});
