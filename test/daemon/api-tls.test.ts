// The CLI against a daemon's TCP API with mutual TLS (`--api-addr ... --api-tls`): with
// SHOAL_TLS_VERIFY it presents this manager's own certificate (or SHOAL_CERT_PATH's) and works;
// without it, it is told to set SHOAL_TLS_VERIFY.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCliEnv, startDaemon } from "../helpers/daemon.js";

describe("the CLI over a TCP API with mutual TLS", () => {
  test("works with SHOAL_TLS_VERIFY and a manager's certificate, is told how without", async (t) => {
    const d = await startDaemon({ args: ["--api-addr", "127.0.0.1:0", "--api-tls"] });
    t.after(() => d.cleanup());
    const m = /API listening on tcp:\/\/127\.0\.0\.1:(\d+) \(mutual TLS/.exec(d.log());
    assert.ok(m, d.log());
    const host = `tcp://127.0.0.1:${m[1]}`;
    const empty = mkdtempSync(join(tmpdir(), "shoal-nocerts-"));
    t.after(() => rmSync(empty, { recursive: true, force: true }));

    const ok = await runCliEnv(
      { SHOAL_HOST: host, SHOAL_TLS_VERIFY: "1", SHOAL_DATA_DIR: d.dataDir },
      ["node", "ls", "-q"],
    );
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.trim().split("\n").length, 1);

    const plain = await runCliEnv(
      { SHOAL_HOST: host, SHOAL_TLS_VERIFY: "", SHOAL_DATA_DIR: empty },
      ["node", "ls"],
    );
    assert.notEqual(plain.code, 0);
    assert.match(
      plain.stderr,
      /closed the connection: if its API has mutual TLS .* set SHOAL_TLS_VERIFY=1/,
    );

    const noFiles = await runCliEnv(
      { SHOAL_HOST: host, SHOAL_TLS_VERIFY: "1", SHOAL_CERT_PATH: empty },
      ["node", "ls"],
    );
    assert.notEqual(noFiles.code, 0);
    assert.match(noFiles.stderr, /cannot read .*ca\.pem for SHOAL_TLS_VERIFY \(ENOENT\)/);
  });
});
