// Mounts and the user on the docker driver: a read-only bind mount seen in the container, the
// container's user, and the engine's own message for a bind source that does not exist. Needs a
// Docker Engine and the test image (.ci/docker.sh); skipped with the reason otherwise.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DockerDriver } from "../../src/node/drivers/docker.js";
import {
  DOCKER_TEST_IMAGE,
  defer,
  dockerUnavailable,
  readLog,
  runSpec,
  tempDir,
} from "./helpers.js";

const skip = (await dockerUnavailable()) ?? false;

test("docker: a read-only bind mount and the user reach the container", { skip }, async (t) => {
  const dir = tempDir(t);
  const src = join(dir, "src");
  mkdirSync(src);
  writeFileSync(join(src, "f"), "from the node\n");
  const d = new DockerDriver({ logCheckIntervalMs: 50 });
  const task = join(dir, "task");
  const h = await d.start(
    runSpec(task, ["sh", "-c", "cat /m/f; id -u; echo x > /m/g || echo refused"], {
      driver: "docker",
      image: DOCKER_TEST_IMAGE,
      env: { PATH: "/bin" },
      user: "65534",
      mounts: [{ type: "bind", source: src, target: "/m", readOnly: true }],
    }),
  );
  defer(t, () => d.destroy(h));
  assert.equal((await d.wait(h)).exitCode, 0);
  assert.equal(readLog(task), "from the node\n65534\nrefused\n");
});

test("docker: a missing bind source fails with the engine's message", { skip }, async (t) => {
  const dir = tempDir(t);
  const d = new DockerDriver({ logCheckIntervalMs: 50 });
  const missing = join(dir, "nope");
  await assert.rejects(
    d.start(
      runSpec(join(dir, "task"), ["true"], {
        driver: "docker",
        image: DOCKER_TEST_IMAGE,
        env: { PATH: "/bin" },
        mounts: [{ type: "bind", source: missing, target: "/m", readOnly: false }],
      }),
    ),
    {
      code: "ERR_MOUNT",
      message: `invalid mount config for type "bind": bind source path does not exist: ${missing}`,
    },
  );
});
