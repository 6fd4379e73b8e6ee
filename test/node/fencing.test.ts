// Fencing: a worker that has heard no assignment from the managers for their node-down grace
// (3 heartbeat periods) plus a margin stops its tasks (the managers run them elsewhere by now),
// not a tick before; it logs the loss of the control bus and its return, and the managers' next
// assignment starts again what is still wanted. The session's clock is injected; the checks run
// on its heartbeat ticks, which the test counts on the bus.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { connect, JSONCodec, type NatsConnection } from "nats";
import {
  AGENT_USER,
  assignSubject,
  hbSubject,
  statusSubject,
  type Assignments,
  type StatusMessage,
} from "../../src/api/bus.js";
import type { Task, TaskState } from "../../src/api/types.js";
import { checkFor, defer } from "./helpers.js";
import { BUS_AGENT_PASSWORD, testBusAuth, startBus, startWorkerSession } from "../helpers/bus.js";
import { startServer } from "../helpers/servers.js";
import type { MockKernel } from "./mock-driver.js";
import { task } from "../store/helpers.js";

const codec = JSONCodec<unknown>();
const PERIOD = 100;
const MARGIN = 100;

function sleepers(n: number): Task[] {
  return Array.from({ length: n }, (_, i) => {
    const x = task(`f${i}`, "s1", "w1");
    return {
      ...x,
      spec: { ...x.spec, command: ["mock", "sleep"], stopGracePeriodMs: 1000 },
      status: { ...x.status, state: "assigned" as TaskState },
    };
  });
}

function assign(nc: NatsConnection, tasks: Task[]): void {
  const msg: Assignments = { nodeId: "w1", tasks, endpoints: {}, heartbeatMs: PERIOD };
  nc.publish(assignSubject("w1"), codec.encode(msg));
}

const live = (k: MockKernel) => [...k.procs.values()].filter((p) => p.status === null).length;

/** A log that keeps its lines. */
function captureLog() {
  const lines: string[] = [];
  return {
    lines,
    has: (re: RegExp) => lines.some((l) => re.test(l)),
    log: { info: (m: string) => lines.push(m), warn: (m: string) => lines.push(m) },
  };
}

describe("fencing", () => {
  test("tasks stop after the grace plus the margin without assignments, not before", async (t) => {
    const url = await startBus(t);
    const manager = await connect({ servers: url, user: AGENT_USER, pass: BUS_AGENT_PASSWORD });
    defer(t, () => manager.close());
    let beats = 0;
    const statuses: StatusMessage[] = [];
    manager.subscribe(hbSubject("w1"), { callback: () => beats++ });
    manager.subscribe(statusSubject("w1"), {
      callback: (_e, m) => statuses.push(codec.decode(m.data) as StatusMessage),
    });
    await manager.flush();
    const nextBeats = async (n: number) => {
      const until = beats + n;
      assert.ok(await checkFor(5000, () => beats >= until), `${n} more heartbeats`);
    };

    let clock = 1_000_000;
    const cap = captureLog();
    const { session, kernel } = await startWorkerSession(t, url, "w1", {
      now: () => clock,
      fenceMarginMs: MARGIN,
      log: cap.log,
    });
    const tasks = sleepers(3);
    assign(manager, tasks);
    assert.ok(await checkFor(5000, () => live(kernel) === 3), "the tasks run");
    await nextBeats(2); // the period of the assignments is in effect

    // Time goes by a period per heartbeat tick (a jump would look like a stall of the process).
    const advance = async (ms: number) => {
      for (let left = ms; left > 0; left -= PERIOD) {
        clock += Math.min(PERIOD, left);
        await nextBeats(1);
      }
    };

    // Silent for exactly the grace plus the margin: lost, but not fenced yet.
    await advance(3 * PERIOD + MARGIN);
    await nextBeats(2);
    assert.ok(cap.has(/^lost the control bus: no assignments/), cap.lines.join("\n"));
    assert.equal(session.fences, 0);
    assert.equal(live(kernel), 3);

    // One ms more: fenced at the next tick.
    await advance(1);
    assert.ok(await checkFor(5000, () => session.fences === 1), "fenced");
    assert.ok(await checkFor(5000, () => live(kernel) === 0), "every task stopped");
    assert.ok(cap.has(/^fenced: no word from the managers .*: stopping 3 task\(s\)/));
    // Reported failed, with the reason.
    assert.ok(
      await checkFor(5000, () => {
        const failed = statuses.flatMap((s) => s.reports).filter((r) => r.state === "failed");
        return failed.length === 3 && failed.every((r) => /^fenced: /.test(r.err ?? ""));
      }),
      "reported failed",
    );
    await nextBeats(2);
    assert.equal(session.fences, 1, "fenced once per loss");

    // The managers are back: logged, and what they still want here runs again.
    await advance(2000);
    assign(manager, tasks);
    assert.ok(await checkFor(5000, () => cap.has(/^control bus back after 2\.0 s; 3 task/)));
    assert.ok(await checkFor(5000, () => live(kernel) === 3), "restarted");
  });

  test("fencing off: the tasks keep running", async (t) => {
    const url = await startBus(t);
    const manager = await connect({ servers: url, user: AGENT_USER, pass: BUS_AGENT_PASSWORD });
    defer(t, () => manager.close());
    let beats = 0;
    manager.subscribe(hbSubject("w1"), { callback: () => beats++ });
    await manager.flush();
    let clock = 1_000_000;
    const cap = captureLog();
    const { kernel } = await startWorkerSession(t, url, "w1", {
      now: () => clock,
      fencing: false,
      log: cap.log,
    });
    assign(manager, sleepers(2));
    assert.ok(await checkFor(5000, () => live(kernel) === 2));
    // Well past the default margin (1 s here), a period per tick.
    for (let i = 0; i < 20; i++) {
      clock += PERIOD;
      const until = beats + 1;
      assert.ok(await checkFor(5000, () => beats >= until));
    }
    assert.ok(cap.has(/^lost the control bus/));
    assert.equal(live(kernel), 2);
  });

  test("a stall of the node's own process is not taken for the managers' silence", async (t) => {
    const url = await startBus(t);
    const manager = await connect({ servers: url, user: AGENT_USER, pass: BUS_AGENT_PASSWORD });
    defer(t, () => manager.close());
    let beats = 0;
    manager.subscribe(hbSubject("w1"), { callback: () => beats++ });
    await manager.flush();
    let clock = 1_000_000;
    const cap = captureLog();
    const { session, kernel } = await startWorkerSession(t, url, "w1", {
      now: () => clock,
      fenceMarginMs: MARGIN,
      log: cap.log,
    });
    assign(manager, sleepers(2));
    assert.ok(await checkFor(5000, () => live(kernel) === 2));
    // Ten seconds pass between two ticks: the process was blocked, not the managers silent.
    clock += 10_000;
    const until = beats + 3;
    assert.ok(await checkFor(5000, () => beats >= until));
    assert.equal(session.fences, 0);
    assert.ok(!cap.has(/^lost the control bus/), cap.lines.join("\n"));
    assert.equal(live(kernel), 2);
  });

  test("a lost connection is logged at once, and the return", async (t) => {
    let server = await startServer({
      ...testBusAuth(),
    });
    const port = server.port;
    defer(t, () => server.shutdown());
    const url = `nats://127.0.0.1:${port}`;
    const cap = captureLog();
    await startWorkerSession(t, url, "w1", { fencing: false, log: cap.log });
    await server.shutdown();
    assert.ok(
      await checkFor(5000, () => cap.has(/^lost the control bus: disconnected/)),
      cap.lines.join("\n"),
    );
    server = await startServer({
      ...testBusAuth(),
      port,
    });
    const manager = await connect({ servers: url, user: AGENT_USER, pass: BUS_AGENT_PASSWORD });
    defer(t, () => manager.close());
    // The agent resubscribes once reconnected; the managers' next assignment is its sign.
    assert.ok(
      await checkFor(10_000, () => {
        assign(manager, []);
        return cap.has(/^control bus back after \d+\.\d s$/);
      }),
      cap.lines.join("\n"),
    );
  });
});
