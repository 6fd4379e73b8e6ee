// A task's secrets and configs on its node: the files (content, mode, Docker's container paths),
// refused targets; and the agent with the real process driver: the task reads
// $SHOAL_SECRETS_DIR/<target> and $SHOAL_CONFIGS_DIR/<target>, the files are gone when it ends,
// and a secret that was not sent fails the start without its value in any report.

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { Agent, type TaskReport } from "../../src/node/agent.js";
import { ProcessDriver } from "../../src/node/drivers/process.js";
import {
  containerPath,
  relativeTarget,
  taskFilesDir,
  writeTaskFiles,
} from "../../src/node/task-files.js";
import type { ServiceSpec, Task, TaskState } from "../../src/api/types.js";
import { checkFor, readLog, taskId, tempDir } from "./helpers.js";
import { quietLog } from "../helpers/bus.js";
import { task } from "../store/helpers.js";

const b64 = (s: string) => Buffer.from(s).toString("base64");
const ref = (id: string, source: string, target: string, mode = 0o444) => ({
  id,
  source,
  target,
  uid: "0",
  gid: "0",
  mode,
});

test("task files: content, mode, container paths; bad targets and missing data refused", (t) => {
  const root = join(tempDir(t), "secrets", "t1");
  const spec = {
    secrets: [ref("s1", "pw", "pw", 0o400), ref("s2", "key", "/etc/key")],
    configs: [ref("c1", "app", "/etc/app.conf"), ref("c2", "plain", "plain.conf", 0o644)],
  } as unknown as ServiceSpec;
  const data = {
    secret: new Map([
      ["s1", b64("hunter2")],
      ["s2", b64("k")],
    ]),
    config: new Map([
      ["c1", b64("a=1")],
      ["c2", b64("p")],
    ]),
  };
  const f = writeTaskFiles(root, spec, data, false);
  assert.equal(readFileSync(join(f.secretsDir!, "pw"), "utf8"), "hunter2");
  assert.equal(statSync(join(f.secretsDir!, "pw")).mode & 0o777, 0o400);
  assert.equal(statSync(root).mode & 0o777, 0o700);
  assert.equal(statSync(join(root, "..")).mode & 0o777, 0o700);
  assert.equal(readFileSync(join(f.configsDir!, "etc/app.conf"), "utf8"), "a=1");
  assert.equal(statSync(join(f.configsDir!, "plain.conf")).mode & 0o777, 0o644);
  assert.deepEqual(
    f.mounts.map((m) => m.target),
    ["/run/secrets/pw", "/etc/key", "/etc/app.conf", "/plain.conf"],
  );
  assert.equal(containerPath("secret", "a/b"), "/run/secrets/a/b");
  assert.equal(relativeTarget("../x"), null);
  assert.equal(relativeTarget("a/../../x"), null);
  assert.equal(relativeTarget("/"), null);
  assert.equal(relativeTarget("/etc/x"), "etc/x");

  if (process.getuid?.() === 0) {
    // As root the files belong to the reference's uid and gid.
    const owned = {
      secrets: [{ ...ref("s1", "pw", "pw", 0o400), uid: "1234", gid: "4321" }],
    } as unknown as ServiceSpec;
    const o = writeTaskFiles(join(root, "..", "owned"), owned, data, true);
    const st = statSync(join(o.secretsDir!, "pw"));
    assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [1234, 4321, 0o400]);
  }

  const bad = { secrets: [ref("s1", "pw", "../../escape")] } as unknown as ServiceSpec;
  assert.throws(() => writeTaskFiles(root, bad, data, false), /secret pw: invalid target/);
  const notSent = { secrets: [ref("zz", "other", "other")] } as unknown as ServiceSpec;
  assert.throws(
    () => writeTaskFiles(root, notSent, data, false),
    /secret other \(zz\) was not sent to this node/,
  );
});

function reading(id: string, script: string, over: Partial<ServiceSpec>): Task {
  const x = task(id, "s1", "n1");
  return {
    ...x,
    spec: { ...x.spec, command: ["sh", "-c", script], env: {}, workdir: "", ...over },
    status: { ...x.status, state: "assigned" as TaskState },
  };
}

test("a process task reads its secret and config files; they go when it ends", async (t) => {
  const dataDir = tempDir(t);
  const reports: TaskReport[] = [];
  const agent = new Agent(
    new ProcessDriver({ logCheckIntervalMs: 50, pollIntervalMs: 20 }),
    quietLog,
    {
      nodeId: "n1",
      hostname: "n1",
      dataDir,
      natsUrl: "nats://127.0.0.1:4222",
      logMaxBytes: 0,
      report: (r) => reports.push(...r),
    },
  );
  t.after(() => agent.stop(true));
  const id = taskId();
  const script =
    'stat -c %a "$SHOAL_SECRETS_DIR/db_pass"; cat "$SHOAL_SECRETS_DIR/db_pass"; echo; ' +
    'cat "$SHOAL_CONFIGS_DIR/etc/app.conf"; echo; echo "$SHOAL_SECRETS_DIR"';
  agent.assign(
    [
      reading(id, script, {
        secrets: [ref("sid", "db_pass", "db_pass", 0o400)],
        configs: [ref("cid", "app", "/etc/app.conf")],
      }),
    ],
    {
      secrets: [{ id: "sid", data: b64("s3cr3t-value") }],
      configs: [{ id: "cid", data: b64("x=1") }],
    },
  );
  assert.ok(await checkFor(10_000, () => reports.some((r) => r.state === "complete")));
  const out = readLog(agent.taskDir(id)).split("\n");
  assert.deepEqual(out.slice(0, 3), ["400", "s3cr3t-value", "x=1"]);
  assert.equal(out[3], join(taskFilesDir(dataDir, id), "secrets"));
  // Removed when the task ended.
  assert.ok(await checkFor(5000, () => !existsSync(taskFilesDir(dataDir, id))));

  // A secret the node was not sent: the start fails, naming it, never showing a value.
  const id2 = taskId();
  agent.assign([reading(id2, "true", { secrets: [ref("other", "api_key", "api_key")] })], {
    secrets: [{ id: "sid", data: b64("s3cr3t-value") }],
  });
  assert.ok(
    await checkFor(10_000, () => reports.some((r) => r.taskId === id2 && r.state === "failed")),
  );
  const failed = reports.find((r) => r.taskId === id2 && r.state === "failed")!;
  assert.match(failed.err ?? "", /secret api_key \(other\) was not sent to this node/);
  assert.ok(!JSON.stringify(reports).includes("s3cr3t-value"));
  assert.ok(!existsSync(taskFilesDir(dataDir, id2)));
});
