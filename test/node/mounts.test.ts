// Mounts and the task's user on the process driver: a bind mount seen at its target (and not
// outside the task), read-only enforced, a named volume kept across tasks, Docker's message for a
// missing bind source, a task run as another user (and its health checks too), unknown users,
// and a clear refusal where the machine cannot do mount namespaces. The real mount and user
// tests need Linux and root (they are skipped elsewhere, saying why).

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { ProcessDriver } from "../../src/node/drivers/process.js";
import { findMountTools, mountUnsupportedReason } from "../../src/node/drivers/mountns.js";
import { parseDb, resolveUser, type DbLookup } from "../../src/node/drivers/users.js";
import { checkFor, readLog, runSpec, taskId, tempDir } from "./helpers.js";
import { Agent, type TaskReport } from "../../src/node/agent.js";
import type { Task, TaskState } from "../../src/api/types.js";
import { quietLog } from "../helpers/bus.js";
import { task } from "../store/helpers.js";

const sh = (script: string): string[] => ["sh", "-c", script];
const fast = (): ProcessDriver => new ProcessDriver({ logCheckIntervalMs: 50, pollIntervalMs: 20 });

const uid = process.getuid?.() ?? -1;
const skip = mountUnsupportedReason(process.platform, uid, findMountTools()) ?? false;
if (skip) console.log(`# skipping real mount tests: ${skip}`);

describe("mounts on this host", { skip }, () => {
  test("a bind mount is seen at its target, only by the task", async (t) => {
    const dir = tempDir(t);
    const src = join(dir, "src");
    mkdirSync(src);
    writeFileSync(join(src, "hello.txt"), "from the node\n");
    const target = join(dir, "target");
    const d = fast();
    const task = join(dir, "task");
    const h = await d.start(
      runSpec(task, sh(`cat ${target}/hello.txt && echo written > ${target}/new.txt`), {
        mounts: [{ type: "bind", source: src, target, readOnly: false }],
      }),
    );
    assert.equal((await d.wait(h)).exitCode, 0, readLog(task, "stderr"));
    assert.equal(readLog(task), "from the node\n");
    assert.equal(
      readFileSync(join(src, "new.txt"), "utf8"),
      "written\n",
      "writes reach the source",
    );
    // The mount point was made on the node, but the mount stayed inside the task.
    assert.deepEqual(readdirSync(target), []);
  });

  test("a read-only bind mount refuses writes", async (t) => {
    const dir = tempDir(t);
    const src = join(dir, "src");
    mkdirSync(src);
    writeFileSync(join(src, "f"), "x\n");
    const d = fast();
    const task = join(dir, "task");
    const h = await d.start(
      runSpec(task, sh(`cat ${dir}/ro/f; echo y > ${dir}/ro/g`), {
        mounts: [{ type: "bind", source: src, target: join(dir, "ro"), readOnly: true }],
      }),
    );
    assert.notEqual((await d.wait(h)).exitCode, 0);
    assert.equal(readLog(task), "x\n");
    assert.match(readLog(task, "stderr"), /Read-only file system/);
    assert.equal(existsSync(join(src, "g")), false);
  });

  test("a named volume is kept across tasks under volumes/<name>/_data", async (t) => {
    const dir = tempDir(t);
    const volumesDir = join(dir, "volumes");
    const d = fast();
    const target = join(dir, "vol");
    const mounts = [{ type: "volume" as const, source: "data", target, readOnly: false }];
    const a = await d.start(
      runSpec(join(dir, "a"), sh(`echo kept > ${target}/file`), { mounts, volumesDir }),
    );
    assert.equal((await d.wait(a)).exitCode, 0, readLog(join(dir, "a"), "stderr"));
    await d.destroy(a);
    assert.equal(readFileSync(join(volumesDir, "data", "_data", "file"), "utf8"), "kept\n");
    const b = await d.start(
      runSpec(join(dir, "b"), sh(`cat ${target}/file`), { mounts, volumesDir }),
    );
    assert.equal((await d.wait(b)).exitCode, 0);
    assert.equal(readLog(join(dir, "b")), "kept\n");
  });

  test("a missing bind source fails the start with Docker's message", async (t) => {
    const dir = tempDir(t);
    const d = fast();
    const missing = join(dir, "nope");
    await assert.rejects(
      d.start(
        runSpec(join(dir, "task"), sh("true"), {
          mounts: [{ type: "bind", source: missing, target: join(dir, "x"), readOnly: false }],
        }),
      ),
      {
        code: "ERR_MOUNT",
        message: `invalid mount config for type "bind": bind source path does not exist: ${missing}`,
      },
    );
  });

  test("a mount that cannot be made fails the start with why, and the command never runs", async (t) => {
    const dir = tempDir(t);
    const src = join(dir, "src");
    mkdirSync(src);
    // The target's parent is a file: no mount point can be made under it.
    writeFileSync(join(dir, "file"), "");
    const d = fast();
    await assert.rejects(
      d.start(
        runSpec(join(dir, "task"), sh(`touch ${dir}/ran`), {
          mounts: [{ type: "bind", source: src, target: join(dir, "file", "x"), readOnly: false }],
        }),
      ),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, "ERR_MOUNT");
        assert.match(err.message, /^creating mount point .*file\/x: /);
        return true;
      },
    );
    assert.equal(existsSync(join(dir, "ran")), false);
  });

  test("a file bind, a tmpfs, and a workdir inside a mount", async (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, "conf"), "setting=1\n");
    const d = fast();
    const task = join(dir, "task");
    const h = await d.start(
      runSpec(task, sh(`cat conf.txt; echo t > ${dir}/tmp/x && cat ${dir}/tmp/x; pwd`), {
        workdir: join(dir, "etc"),
        mounts: [
          { type: "tmpfs", source: "", target: join(dir, "tmp"), readOnly: false },
          {
            type: "bind",
            source: join(dir, "conf"),
            target: join(dir, "etc", "conf.txt"),
            readOnly: true,
          },
        ],
      }),
    );
    assert.equal((await d.wait(h)).exitCode, 0, readLog(task, "stderr"));
    assert.equal(readLog(task), `setting=1\nt\n${join(dir, "etc")}\n`);
  });

  test("the task runs as its user (id -u as nobody is 65534), and so does a check", async (t) => {
    const dir = tempDir(t);
    const d = fast();
    const task = join(dir, "task");
    const h = await d.start(runSpec(task, ["id", "-u"], { user: "nobody" }));
    assert.equal((await d.wait(h)).exitCode, 0, readLog(task, "stderr"));
    assert.equal(readLog(task), "65534\n");

    const task2 = join(dir, "task2");
    const h2 = await d.start(
      runSpec(task2, sh("echo ready; exec sleep 60"), {
        // The test's directories are closed to nobody.
        workdir: "/",
        user: "65534:65534",
        mounts: [{ type: "tmpfs", source: "", target: join(dir, "u"), readOnly: false }],
      }),
    );
    t.after(() => d.destroy(h2));
    const r = await d.exec(h2, {
      argv: ["sh", "-c", `id -u; id -g; grep -c ' ${join(dir, "u")} ' /proc/self/mounts`],
      env: { PATH: "/usr/bin:/bin" },
      workdir: "/",
      timeoutMs: 5000,
    });
    assert.equal(r.output, "65534\n65534\n1\n");
  });

  test("the agent gives a task its mounts (volumes under DATA_DIR/volumes) and its user", async (t) => {
    const dataDir = tempDir(t);
    const reports: TaskReport[] = [];
    const agent = new Agent(fast(), quietLog, {
      nodeId: "n1",
      hostname: "n1",
      dataDir,
      natsUrl: "nats://127.0.0.1:4222",
      logMaxBytes: 0,
      report: (r) => reports.push(...r),
    });
    t.after(() => agent.stop(true));
    const target = join(dataDir, "seen");
    const x = task(taskId(), "s1", "n1");
    const t1: Task = {
      ...x,
      spec: {
        ...x.spec,
        command: ["sh", "-c", `id -u > ${target}/uid`],
        workdir: "/",
        user: "nobody:nogroup",
        mounts: [{ type: "volume", source: "st_data", target, readOnly: false }],
        restartPolicy: { ...x.spec.restartPolicy, condition: "none" },
      },
      status: { ...x.status, state: "assigned" as TaskState },
    };
    // The path to the target, and the volume's directory, are open to the user.
    chmodSync(dataDir, 0o755);
    mkdirSync(join(dataDir, "volumes", "st_data", "_data"), { recursive: true, mode: 0o777 });
    chmodSync(join(dataDir, "volumes", "st_data", "_data"), 0o777);
    agent.assign([t1]);
    assert.ok(
      await checkFor(10_000, () =>
        reports.some((r) => r.state === "complete" || r.state === "failed"),
      ),
    );
    const end = reports.find((r) => r.state === "complete" || r.state === "failed")!;
    assert.equal(end.state, "complete", JSON.stringify(end));
    assert.equal(
      readFileSync(join(dataDir, "volumes", "st_data", "_data", "uid"), "utf8"),
      "65534\n",
    );
  });

  test("an unknown user fails the start with Docker's message", async (t) => {
    const dir = tempDir(t);
    const d = fast();
    await assert.rejects(
      d.start(runSpec(join(dir, "task"), ["true"], { user: "no-such-user-x" })),
      {
        code: "ERR_USER",
        message: "unable to find user no-such-user-x: no matching entries in passwd file",
      },
    );
  });
});

test("without mount namespaces a task with mounts is refused, saying why", async (t) => {
  const dir = tempDir(t);
  const d = new ProcessDriver({ uid: 1000 });
  await assert.rejects(
    d.start(
      runSpec(join(dir, "task"), ["true"], {
        mounts: [{ type: "tmpfs", source: "", target: "/x", readOnly: false }],
      }),
    ),
    {
      code: "ERR_MOUNTS_UNSUPPORTED",
      message:
        "mounts need root: the process driver gives the task a mount namespace of its own (the agent runs as uid 1000)",
    },
  );
  assert.equal(
    mountUnsupportedReason("darwin", 0, findMountTools()),
    "mounts need Linux mount namespaces (this is darwin)",
  );
  assert.equal(
    mountUnsupportedReason("linux", 0, { ...findMountTools(), unshare: "" }),
    "mounts need util-linux's `unshare` command, which was not found",
  );
});

test("users resolve as Docker resolves them", async () => {
  const passwd = parseDb(
    "root:x:0:0:root:/root:/bin/sh\n# c\nweb:x:1000:1000::/home/web:/bin/sh\n",
  );
  const group = parseDb(
    "root:x:0:\nweb:x:1000:\nadm:x:4:web\ndocker:x:999:web,other\nstaff:x:50:\n",
  );
  const lookup: DbLookup = async (db) => (db === "passwd" ? passwd : group);
  const cases: Array<[string, object | string]> = [
    ["web", { uid: 1000, gid: 1000, groups: [4, 999], home: "/home/web" }],
    ["1000", { uid: 1000, gid: 1000, groups: [4, 999], home: "/home/web" }],
    ["web:staff", { uid: 1000, gid: 50, groups: [], home: "/home/web" }],
    ["1000:4242", { uid: 1000, gid: 4242, groups: [], home: "/home/web" }],
    ["4242", { uid: 4242, gid: 0, groups: [], home: "/" }],
    ["nope", "unable to find user nope: no matching entries in passwd file"],
    ["web:nogroup", "unable to find group nogroup: no matching entries in group file"],
  ];
  for (const [spec, want] of cases) {
    if (typeof want === "string") {
      await assert.rejects(resolveUser(spec, lookup), { code: "ERR_USER", message: want }, spec);
    } else {
      const { uid: u, gid, groups, home } = await resolveUser(spec, lookup);
      assert.deepEqual({ uid: u, gid, groups, home }, want, spec);
    }
  }
});
