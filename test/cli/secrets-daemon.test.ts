// Secrets end to end on one machine: a real daemon and CLI, a real task process. `secret create`
// from a file, a service whose process reads $SHOAL_SECRETS_DIR/<target>, the secret shown by
// ls/inspect without its value, `secret rm` refused while the service uses it; and the value
// never in the daemon's log output.

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDaemon, checkFor } from "../helpers/daemon.js";

test("a service's process reads its secret; the value is never in the daemon's log", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const wd = mkdtempSync(join(tmpdir(), "shoal-secret-"));
  t.after(() => rmSync(wd, { recursive: true, force: true }));
  const value = `s3cr3t-${process.pid}-${Date.now()}`;
  writeFileSync(join(wd, "pw.txt"), value);

  const made = await d.cli(
    "secret",
    "create",
    "--label",
    "env=test",
    "db_pass",
    join(wd, "pw.txt"),
  );
  assert.equal(made.code, 0, made.stderr);
  const dup = await d.cli("secret", "create", "db_pass", join(wd, "pw.txt"));
  assert.notEqual(dup.code, 0);
  assert.match(dup.stderr, /rpc error: code = AlreadyExists desc = secret db_pass already exists/);

  const created = await d.cli(
    "service",
    "create",
    "--name",
    "reader",
    "-d",
    "--secret",
    "source=db_pass,target=pw,mode=0400",
    "-w",
    wd,
    "--",
    "sh",
    "-c",
    'stat -c %a "$SHOAL_SECRETS_DIR/pw" > mode.out; cat "$SHOAL_SECRETS_DIR/pw" > value.out; sleep 600',
  );
  assert.equal(created.code, 0, created.stderr + created.stdout);
  assert.ok(
    await checkFor(
      20_000,
      () => existsSync(join(wd, "value.out")) && readFileSync(join(wd, "value.out"), "utf8") !== "",
    ),
    d.log(),
  );
  assert.equal(readFileSync(join(wd, "value.out"), "utf8"), value);
  assert.equal(readFileSync(join(wd, "mode.out"), "utf8").trim(), "400");

  const ls = await d.cli("secret", "ls");
  assert.match(ls.stdout, /^ID\s+NAME\s+DRIVER\s+CREATED\s+UPDATED\n\S+\s+db_pass\s+/);
  const inspect = await d.cli("secret", "inspect", "db_pass");
  assert.equal(inspect.code, 0, inspect.stderr);
  assert.ok(!inspect.stdout.includes(value));
  assert.deepEqual(JSON.parse(inspect.stdout)[0].Spec, {
    Name: "db_pass",
    Labels: { env: "test" },
  });
  const svc = await d.cli("service", "inspect", "reader");
  assert.ok(!svc.stdout.includes(value));

  // The task's private directory holds the file while it runs.
  assert.equal(taskFileDirs(AGENT_DIR(d.dataDir)).length, 1);

  const inUse = await d.cli("secret", "rm", "db_pass");
  assert.equal(inUse.code, 1);
  assert.match(
    inUse.stderr,
    /Error response from daemon: rpc error: code = InvalidArgument desc = secret 'db_pass' is in use by the following service: reader/,
  );
  assert.equal((await d.cli("service", "rm", "reader")).code, 0);
  const rm = await d.cli("secret", "rm", "db_pass");
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal(rm.stdout, "db_pass\n");
  // The task's files go when it ends.
  assert.ok(await checkFor(20_000, () => taskFileDirs(AGENT_DIR(d.dataDir)).length === 0));

  assert.ok(!d.log().includes(value), "the secret's value is in the daemon's log");
  assert.ok(!d.log().includes(Buffer.from(value).toString("base64")));
});

const AGENT_DIR = (dataDir: string) => join(dataDir, "agent");

/** The task-file directories left under a node's data dir. */
function taskFileDirs(dataDir: string): string[] {
  try {
    return readdirSync(join(dataDir, "secrets"));
  } catch {
    return [];
  }
}
