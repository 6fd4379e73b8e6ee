// The docker driver against a real Docker Engine: the conformance suite, then what is docker's
// own (images, labels, host networking, limits, an unreachable engine). Needs an engine on
// /var/run/docker.sock (or DOCKER_HOST) and the test image shoal-test/busybox:latest, a static
// busybox imported by .ci/docker.sh; without them every test here is skipped with the reason.

import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import Docker from "dockerode";
import { DriverError, type Handle, type RunSpec } from "../../src/node/drivers/driver.js";
import { DockerDriver, DockerLabels } from "../../src/node/drivers/docker.js";
import { conformance, shellPrograms } from "./conformance.js";
import {
  checkFor,
  defer,
  dockerUnavailable,
  DOCKER_TEST_IMAGE,
  readLog,
  runSpec,
  tempDir,
  waitForLine,
} from "./helpers.js";

const IMAGE = DOCKER_TEST_IMAGE;

const skip = await dockerUnavailable();
if (skip !== null) {
  test(`docker driver: skipped: ${skip}`, { skip }, () => {});
} else {
  const newDriver = (): DockerDriver =>
    new DockerDriver({ logCheckIntervalMs: 50, defaultImage: IMAGE });

  conformance({
    name: "docker",
    create: newDriver,
    // PATH of the image; HOSTNAME and HOME given, so the engine adds nothing of its own.
    baseEnv: () => ({ PATH: "/bin", HOME: "/", HOSTNAME: "shoal-test" }),
    skip: {
      "the task runs in its workdir, by default its task directory":
        "a container runs in its image's WORKDIR, and a host directory is not in the container",
    },
    // The engine reports no pid for a container that has already ended, and the suite checks
    // the pid start() returns: so the exit program lives a moment.
    programs: shellPrograms("sleep 0.2; "),
  });

  const docker = new Docker();

  function spec(t: TestContext, command: string[], over: Partial<RunSpec> = {}): RunSpec {
    return runSpec(join(tempDir(t), "task"), command, {
      driver: "docker",
      image: IMAGE,
      env: { PATH: "/bin" },
      ...over,
    });
  }

  async function start(t: TestContext, d: DockerDriver, s: RunSpec): Promise<Handle> {
    const h = await d.start(s);
    defer(t, () => d.destroy(h));
    return h;
  }

  describe("docker driver", () => {
    test("exec runs inside the container: its env, output, exit code, timeout", async (t) => {
      const d = newDriver();
      const h = await start(t, d, spec(t, ["sleep", "60"], { env: { PATH: "/bin", WHO: "box" } }));
      const req = { env: {}, workdir: "", timeoutMs: 10_000 };
      // stdout and stderr are two streams the engine interleaves in no set order: one each.
      const r = await d.exec(h, { ...req, argv: ["/bin/sh", "-c", 'echo "in $WHO"; exit 4'] });
      assert.deepEqual(r, { exitCode: 4, output: "in box\n", timedOut: false });
      const err = await d.exec(h, { ...req, argv: ["/bin/sh", "-c", "echo e >&2; exit 3"] });
      assert.deepEqual(err, { exitCode: 3, output: "e\n", timedOut: false });
      const slow = await d.exec(h, { ...req, argv: ["sleep", "5"], timeoutMs: 200 });
      assert.deepEqual(slow, { exitCode: -1, output: "", timedOut: true });
      const missing = await d.exec(h, { ...req, argv: ["no-such-cmd"] });
      assert.notEqual(missing.exitCode, 0);
    });

    test("an image that is not on the node is refused, not pulled", async (t) => {
      const d = newDriver();
      await assert.rejects(
        d.start(spec(t, ["true"], { image: "shoal-test/no-such-image:1" })),
        (err: unknown) => {
          assert.ok(err instanceof DriverError);
          assert.equal(err.code, "ERR_IMAGE_NOT_FOUND");
          assert.match(err.message, /shoal-test\/no-such-image:1/);
          assert.match(err.message, /does not pull/);
          return true;
        },
      );
    });

    test("the container is labelled, named and on the host network", async (t) => {
      const d = newDriver();
      const s = spec(t, ["sh", "-c", "echo ready; exec sleep 60"], { slot: 4 });
      const h = await start(t, d, s);
      assert.equal(h["driver"], "docker");
      assert.equal(typeof h["containerId"], "string");
      assert.ok(h.pid > 0);
      await waitForLine(s.taskDir, "ready");
      const info = await docker.getContainer(String(h["containerId"])).inspect();
      assert.equal(info.Name, `/shoal-${s.taskId}`);
      assert.equal(info.HostConfig.NetworkMode, "host");
      assert.equal(info.Config.Labels[DockerLabels.task], s.taskId);
      assert.equal(info.Config.Labels[DockerLabels.service], "web");
      assert.equal(info.Config.Labels[DockerLabels.slot], "4");
      assert.equal(info.Config.Labels[DockerLabels.node], "node1");
      assert.equal(info.State.Pid, h.pid);
      assert.equal((await d.inspect(h)).running, true);
    });

    test("bridge networking is refused for now", async (t) => {
      await assert.rejects(newDriver().start(spec(t, ["true"], { network: "bridge" })), {
        code: "ERR_NETWORK_UNSUPPORTED",
      });
    });

    test("limits reach the container's HostConfig", async (t) => {
      const d = newDriver();
      const s = spec(t, ["sh", "-c", "echo ready; exec sleep 60"], {
        limits: { cpus: 0.5, memoryBytes: 64 * 1024 * 1024 },
      });
      const h = await start(t, d, s);
      const info = await docker.getContainer(String(h["containerId"])).inspect();
      assert.equal(info.HostConfig.NanoCpus, 500_000_000);
      assert.equal(info.HostConfig.Memory, 64 * 1024 * 1024);
    });

    test("reap() removes the container an interrupted start left", async (t) => {
      const first = newDriver();
      const s = spec(t, ["sh", "-c", "echo ready; exec sleep 60"]);
      const h = await start(t, first, s);
      const intent = { taskId: s.taskId, driver: "docker", taskDir: s.taskDir, at: Date.now() };
      // The driver that started it does not count it as left over.
      assert.equal(await first.reap(intent), 0);
      // A new driver (a restarted agent, which has no handle) removes it.
      assert.equal(await newDriver().reap(intent), 1);
      await assert.rejects(docker.getContainer(String(h["containerId"])).inspect());
    });

    test("a new driver instance recovers the container and streams its logs", async (t) => {
      const first = newDriver();
      const s = spec(t, ["sh", "-c", "echo ready; while sleep 0.05; do echo tick; done"]);
      const h = await start(t, first, s);
      await waitForLine(s.taskDir, "ready");
      const second = newDriver();
      const adopted = await second.recover(JSON.parse(JSON.stringify(h)) as Handle);
      assert.ok(adopted, "recovered");
      defer(t, () => second.destroy(adopted));
      assert.equal(adopted["containerId"], h["containerId"]);
      assert.equal(adopted.pid, h.pid);
      // The handle of a container that was replaced (same id, other start) is not adopted.
      const other = { ...h, containerStartedAt: "2001-01-01T00:00:00Z" };
      assert.equal(await newDriver().recover(other), null);
      const before = readLog(s.taskDir).length;
      assert.ok(await checkFor(5000, () => readLog(s.taskDir).length > before), "logs go on");
      await second.stop(adopted, 5000);
      assert.equal((await second.wait(adopted)).signal, "SIGTERM");
      await second.destroy(adopted);
      await assert.rejects(docker.getContainer(String(h["containerId"])).inspect(), {
        statusCode: 404,
      });
    });

    test("an unreachable engine is reported as ERR_DRIVER_UNAVAILABLE", async (t) => {
      const d = new DockerDriver({ socketPath: join(tempDir(t), "no-docker.sock") });
      await assert.rejects(d.start(spec(t, ["true"])), (err: unknown) => {
        assert.ok(err instanceof DriverError);
        assert.equal(err.code, "ERR_DRIVER_UNAVAILABLE");
        assert.match(err.message, /^no Docker Engine reachable at unix:\/\/.*no-docker\.sock/);
        return true;
      });
    });
  });
}
