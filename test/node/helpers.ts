// Small helpers for the agent and driver tests: temporary task directories, a per-test cleanup
// stack, polling for a condition, reading a task's log files, and a RunSpec with test defaults.

import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import type { RunSpec } from "../../src/node/drivers/driver.js";
import { defer } from "../helpers/defer.js";
import { checkFor } from "../helpers/servers.js";
import Docker from "dockerode";
export { defer, checkFor };

/** A fresh directory, removed when the test ends. */
export function tempDir(t: TestContext, prefix = "shoal-agent-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A log file's text, "" when it does not exist yet. */
export function readLog(taskDir: string, stream: "stdout" | "stderr" = "stdout"): string {
  try {
    return readFileSync(join(taskDir, `${stream}.log`), "utf8");
  } catch {
    return "";
  }
}

/** Waits until the task printed `line` on stdout (programs print "ready" once set up). */
export function waitForLine(taskDir: string, line: string, ms = 5000): Promise<boolean> {
  return checkFor(ms, () => readLog(taskDir).split("\n").includes(line));
}

let seq = 0;

/** A unique task id for a test. */
export function taskId(): string {
  seq++;
  return `t${process.pid}x${seq}x${Math.random().toString(36).slice(2, 8)}`;
}

export function runSpec(taskDir: string, command: string[], over: Partial<RunSpec> = {}): RunSpec {
  return {
    taskId: taskId(),
    serviceName: "web",
    slot: 1,
    nodeId: "node1",
    nodeHostname: "host1",
    command,
    env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin" },
    workdir: "",
    taskDir,
    limits: { cpus: 0, memoryBytes: 0 },
    stopSignal: "SIGTERM",
    logMaxBytes: 0,
    ...over,
  };
}

/** Whether the pid exists (and is not a zombie). */
export function pidAlive(pid: number): boolean {
  if (process.platform === "linux") {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
      return state !== "Z" && state !== "X";
    } catch {
      return false;
    }
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A census of real processes: the pids (not zombies) whose environment sets `name` to one of
 * `values`, by value. Linux only (/proc/PID/environ).
 */
export function envCensus(name: string, values: Iterable<string>): Map<string, number[]> {
  const wanted = new Set(values);
  const found = new Map<string, number[]>();
  const re = new RegExp(`(?:^|\0)${name}=([^\0]*)`);
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    let env: string;
    try {
      env = readFileSync(`/proc/${pid}/environ`, "utf8");
    } catch {
      continue;
    }
    const m = re.exec(env);
    if (!m || !wanted.has(m[1]!) || !pidAlive(pid)) continue;
    found.set(m[1]!, [...(found.get(m[1]!) ?? []), pid]);
  }
  return found;
}

/** The task processes of some task ids (SHOAL_TASK_ID in their environment), by task id. */
export function taskCensus(ids: Iterable<string>): Map<string, number[]> {
  return envCensus("SHOAL_TASK_ID", ids);
}

/** Kills the process groups of some pids (a test's cleanup of what it started). */
export function killGroups(pids: number[]): void {
  for (const g of processGroups(pids)) {
    try {
      process.kill(-g, "SIGKILL");
    } catch {
      // gone
    }
  }
}

/** The process groups (pgids) of some pids (Linux). */
export function processGroups(pids: number[]): Set<number> {
  const groups = new Set<number>();
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      groups.add(Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]));
    } catch {
      // gone
    }
  }
  return groups;
}

/** The image the docker tests run (a static busybox imported by .ci/docker.sh). */
export const DOCKER_TEST_IMAGE = "shoal-test/busybox:latest";

/** Why the docker driver's tests cannot run here (no engine, no test image), or null. */
export async function dockerUnavailable(): Promise<string | null> {
  const docker = new Docker();
  try {
    await docker.ping();
  } catch (err) {
    return `no Docker Engine reachable (${(err as Error).message}); run .ci/docker.sh`;
  }
  try {
    await docker.getImage(DOCKER_TEST_IMAGE).inspect();
  } catch {
    return `test image ${DOCKER_TEST_IMAGE} missing; run .ci/docker.sh`;
  }
  return null;
}
