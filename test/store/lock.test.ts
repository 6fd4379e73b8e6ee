// The store directory's LOCK: refused while another live process (or this one) holds it, taken
// over once its owner is dead.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openEmbeddedStore } from "../../src/store/embedded.js";
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
});
