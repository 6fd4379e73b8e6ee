// Issue 14's history test, in the manner of Jepsen, on the network-namespace test bed: 3
// managers and 1 worker, each on its own machine, and an etcd cluster of 3 members, one on each
// manager's machine (started by the test in the machine's namespace: the managed members are
// not wired into the daemon yet), so that killing or cutting off a manager hits an etcd member
// too.
//
// Clients (2) keep creating, scaling and removing services through the HTTP API of a manager
// (its socket), failing over to the next manager when an operation does not succeed, and record
// every operation with its result: ok, failed (the API said it did not happen, or nobody
// listened) or unknown (a timeout, or an answer that leaves it open). Each client has services
// of its own, so each service's history is one sequence (test/helpers/history.ts).
//
// Meanwhile a fault loop runs a bounded number of rounds (SHOAL_HISTORY_ROUNDS, default 2):
//   1. the leader's machine dies outright (its link down, every process of it killed: the
//      manager, its etcd member, its tasks); once the two others agree on a new leader, the
//      machine comes back: the same etcd member on its data dir and `shoal daemon --data-dir`
//      (the same manager, with its saved settings), so each round starts with 3 managers;
//   2. a manager is cut off the network (its veth down) — the leader in even rounds, a
//      follower in odd ones — until the leader has marked its node down (its tasks are
//      rescheduled while they still run on the cut-off machine), then healed.
// At the end: exactly one leader, which all managers name; the services in etcd (read with the
// etcd3 client) are what the history allows (every acknowledged write there, nothing a failed
// write did); every manager's API shows the same services; and, by the processes on the hosts
// (their SHOAL_* environment), each service runs exactly its replica count, no slot twice, and
// nothing of a removed service.

import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import {
  closeSync,
  cpSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { request } from "node:http";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import { startSwarm, type Swarm } from "../helpers/swarm.js";
import { killTaskProcesses } from "../helpers/daemon.js";
import { checkFor, SHOAL_BIN } from "../helpers/servers.js";
import { etcdSkip, startEtcd, waitHealthy, type EtcdCluster } from "../helpers/etcd.js";
import {
  checkHistory,
  type HistoryEntry,
  type HistoryOp,
  type KeyState,
  type Outcome,
} from "../helpers/history.js";
import { defaultServiceSpec } from "../../src/api/model.js";
import { NO_LEADER } from "../../src/daemon/managers.js";
import type { Info, ServiceSummary } from "../../src/api/http.js";
import type { Node, Service, Task } from "../../src/api/types.js";

const ROUNDS = Number(process.env["SHOAL_HISTORY_ROUNDS"] ?? 2);
const CLIENTS = 2;
const KEYS_PER_CLIENT = 3;
/** A client gives up on an answer after this long (a forwarded write waits 15 s for the leader). */
const CLIENT_TIMEOUT_MS = 20_000;
const MANAGERS = 3;

interface Answer {
  status: number;
  body: string;
}

/** One HTTP request on a manager's API socket; rejects on a socket error or after `timeoutMs`. */
function call(
  dir: string,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = CLIENT_TIMEOUT_MS,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        socketPath: join(dir, "shoal.sock"),
        method,
        path,
        headers: payload === undefined ? {} : { "content-type": "application/json" },
      },
      (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on("error", reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(payload);
  });
}

async function get<T>(dir: string, path: string, timeoutMs = 5000): Promise<T> {
  const a = await call(dir, "GET", path, undefined, timeoutMs);
  if (a.status !== 200) throw new Error(`GET ${path}: ${a.status} ${a.body}`);
  return JSON.parse(a.body) as T;
}

/** Runs one operation and classifies its result. */
async function perform(
  dir: string,
  op: HistoryOp,
): Promise<{ result: Outcome; status: number; detail?: string }> {
  const name = encodeURIComponent(op.key);
  let a: Answer;
  try {
    switch (op.kind) {
      case "create": {
        const spec = {
          ...defaultServiceSpec(op.key),
          command: ["sleep", "100000"],
          mode: { replicated: { replicas: op.replicas } },
        };
        a = await call(dir, "POST", "/v1/services", { spec });
        break;
      }
      case "scale":
        a = await call(dir, "POST", `/v1/services/${name}/scale`, { replicas: op.replicas });
        break;
      case "remove":
        a = await call(dir, "DELETE", `/v1/services/${name}`);
        break;
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Nobody listening (the machine is dead): the request was never sent.
    if (code === "ECONNREFUSED" || code === "ENOENT")
      return { result: "failed", status: 0, detail: code };
    return { result: "unknown", status: 0, detail: (err as Error).message };
  }
  if (a.status >= 200 && a.status < 300) return { result: "ok", status: a.status };
  let message = a.body;
  try {
    message = (JSON.parse(a.body) as { message?: string }).message ?? a.body;
  } catch {
    // not JSON: keep the text
  }
  const detail = `${a.status} ${message}`;
  if (a.status < 500) return { result: "failed", status: a.status, detail };
  // No leader known (nothing was sent), or the store said the batch was not committed.
  if (a.status === 503 && (message === NO_LEADER || /was not committed/.test(message)))
    return { result: "failed", status: a.status, detail };
  return { result: "unknown", status: a.status, detail };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rand = (n: number) => Math.floor(Math.random() * n);

/** The processes of tasks on a host's machine: service id, slot and task id from their env. */
async function taskProcesses(
  ns: string,
): Promise<Array<{ pid: number; serviceId: string; slot: string; taskId: string }>> {
  const out = await new Promise<string>((resolve) =>
    execFile("ip", ["netns", "pids", ns], (err, stdout) => resolve(err ? "" : stdout)),
  );
  const found = [];
  for (const line of out.split("\n")) {
    const pid = Number.parseInt(line, 10);
    if (!Number.isInteger(pid)) continue;
    let env: string;
    try {
      env = readFileSync(`/proc/${pid}/environ`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    const vars = new Map(
      env
        .split("\0")
        .filter((kv) => kv.includes("="))
        .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
    );
    const taskId = vars.get("SHOAL_TASK_ID");
    if (taskId === undefined) continue;
    found.push({
      pid,
      serviceId: vars.get("SHOAL_SERVICE_ID") ?? "",
      slot: vars.get("SHOAL_TASK_SLOT") ?? "",
      taskId,
    });
  }
  return found;
}

test(
  "history: clients write through 3 managers on a 3-member etcd while leaders die and managers are cut off",
  { skip: etcdSkip(), timeout: 420_000 },
  async (t: TestContext) => {
    const began = Date.now();
    let etcd: EtcdCluster | undefined;
    let swarm: Swarm;
    try {
      swarm = await startSwarm(MANAGERS + 1, 0, {
        prefix: process.env["SHOAL_HISTORY_PREFIX"] ?? "his",
        async managerArgs(_m, bed) {
          if (bed.mode !== "netns") return [];
          etcd = await startEtcd({ hosts: bed.hosts.slice(0, MANAGERS) });
          return ["--store", `etcd://${etcd.endpoints.map((u) => u.slice(7)).join(",")}`];
        },
      });
    } catch (err) {
      await etcd?.stop();
      return t.skip(`no test bed: ${(err as Error).message}`);
    }
    const stopped = { clients: false, passed: false };
    const clientsDone: Array<Promise<void>> = [];
    t.after(async () => {
      stopped.clients = true;
      await Promise.allSettled(clientsDone);
      if (!stopped.passed) {
        // Keep what the daemons and the etcd members said, for the one who reads the failure.
        try {
          const keep = mkdtempSync(join(tmpdir(), "shoal-history-"));
          for (const [i, d] of swarm.dirs.entries()) {
            const f = join(d, "daemon.log");
            if (existsSync(f)) cpSync(f, join(keep, `daemon-${i}.log`));
          }
          for (const m of etcd?.members ?? [])
            writeFileSync(join(keep, `${m.name}.log`), m.output());
          t.diagnostic(`the daemons' and etcd members' logs are kept in ${keep}`);
        } catch (err) {
          t.diagnostic(`could not keep the logs: ${(err as Error).message}`);
        }
      }
      for (const d of swarm.dirs) killTaskProcesses(d);
      await swarm.cleanup();
      await etcd?.stop();
    });
    if (swarm.bed.mode !== "netns" || etcd === undefined) return t.skip("needs network namespaces");
    const members = etcd.members;
    const hosts = swarm.bed.hosts;
    const dirs = swarm.dirs;
    const mdirs = dirs.slice(0, MANAGERS);

    await swarm.joinManager(0);
    await swarm.joinManager(1);
    await swarm.joinWorker(MANAGERS - 1);
    const ids = await Promise.all(mdirs.map(async (d) => (await get<Info>(d, "/v1/info")).nodeId));

    /** The manager all of `among` name as leader (one of them), once they agree. */
    const leaderOf = (among: number[], ms = 60_000) =>
      checkFor(
        ms,
        async () => {
          const infos = await Promise.all(among.map((i) => get<Info>(mdirs[i]!, "/v1/info")));
          const named = new Set(infos.map((x) => x.leaderId));
          const id = infos[0]!.leaderId;
          const at = ids.findIndex((x) => x === id);
          if (named.size === 1 && among.includes(at)) return at + 1;
          throw new Error(`leaders named: ${infos.map((x) => x.leaderId).join(", ")}`);
        },
        100,
      ).then((x) => x - 1);
    const nodeStatus = async (via: number, nodeId: string) =>
      (await get<Node[]>(mdirs[via]!, "/v1/nodes")).find((n) => n.id === nodeId)?.status;

    await leaderOf([0, 1, 2]);
    await checkFor(60_000, async () => {
      const nodes = await get<Node[]>(mdirs[0]!, "/v1/nodes");
      return nodes.length === MANAGERS + 1 && nodes.every((n) => n.status === "ready");
    });
    t.diagnostic(`swarm up in ${Date.now() - began} ms`);

    // The clients.
    const history: HistoryEntry[] = [];
    const alive = mdirs.map(() => true);
    const client = async (c: number) => {
      const keys = Array.from({ length: KEYS_PER_CLIENT }, (_, k) => `h${c}-s${k}`);
      const belief = new Map<string, KeyState | "?">(keys.map((k) => [k, null]));
      let target = c % MANAGERS;
      while (!stopped.clients) {
        const key = keys[rand(keys.length)]!;
        const b = belief.get(key)!;
        const replicas = 1 + rand(3);
        const kind =
          b === null
            ? "create"
            : b === "?"
              ? (["create", "scale", "remove"] as const)[rand(3)]!
              : Math.random() < 0.7
                ? "scale"
                : "remove";
        const op: HistoryOp = kind === "remove" ? { kind, key } : { kind, key, replicas };
        for (let i = 0; i < MANAGERS && !alive[target]; i++) target = (target + 1) % MANAGERS;
        const start = Date.now();
        const r = await perform(mdirs[target]!, op);
        history.push({
          client: c,
          op,
          result: r.result,
          ...(r.detail !== undefined ? { detail: `via manager ${target}: ${r.detail}` } : {}),
          start,
          end: Date.now(),
        });
        if (r.result === "ok") belief.set(key, op.kind === "remove" ? null : op.replicas);
        else if (r.status === 404) belief.set(key, null);
        else if (r.result === "unknown" || r.status === 409) belief.set(key, "?");
        if (r.result !== "ok") target = (target + 1) % MANAGERS;
        await sleep(100 + rand(200)); // pacing, two cores shared
      }
    };
    for (let c = 0; c < CLIENTS; c++) clientsDone.push(client(c));
    // The faults start once a write was acknowledged: a client whose first writes go to a leader
    // that dies at once waits up to CLIENT_TIMEOUT_MS on each, and the rounds can end before it
    // is answered at all (seen once: 5 operations, all unknown).
    await checkFor(60_000, () => history.some((e) => e.result === "ok"), 100);

    // The fault loop.
    for (let round = 0; round < ROUNDS; round++) {
      // 1. The leader's machine dies; the two others elect another; it comes back.
      const dead = await leaderOf([0, 1, 2]);
      const others = [0, 1, 2].filter((i) => i !== dead);
      alive[dead] = false;
      const died = Date.now();
      await hosts[dead]!.cut();
      await hosts[dead]!.kill();
      killTaskProcesses(dirs[dead]!);
      const next = await leaderOf(others);
      t.diagnostic(
        `round ${round}: manager ${dead} (leader) killed, manager ${next} leads ${Date.now() - died} ms later`,
      );
      await hosts[dead]!.heal();
      members[dead]!.start();
      await waitHealthy(members[dead]!, 30_000);
      // Its output appended to daemon.log, where a joined manager's goes.
      const out = openSync(join(dirs[dead]!, "daemon.log"), "a");
      hosts[dead]!.spawn(process.execPath, [SHOAL_BIN, "daemon", "--data-dir", dirs[dead]!], {
        stdio: ["ignore", out, out],
      });
      closeSync(out);
      await checkFor(60_000, async () => (await get<Info>(mdirs[dead]!, "/v1/info")).leaderId, 200);
      alive[dead] = true;
      await leaderOf([0, 1, 2]);
      await checkFor(60_000, async () => (await nodeStatus(next, ids[dead]!)) === "ready", 200);
      t.diagnostic(`round ${round}: manager ${dead} back ${Date.now() - died} ms after it died`);

      // 2. A manager cut off: the leader in even rounds, a follower in odd ones.
      const leader = await leaderOf([0, 1, 2]);
      const cut = round % 2 === 0 ? leader : [0, 1, 2].find((i) => i !== leader)!;
      const rest = [0, 1, 2].filter((i) => i !== cut);
      const cutAt = Date.now();
      await hosts[cut]!.cut();
      const ruler = await leaderOf(rest);
      await checkFor(60_000, async () => (await nodeStatus(ruler, ids[cut]!)) === "down", 200);
      t.diagnostic(
        `round ${round}: manager ${cut} (${cut === leader ? "leader" : "follower"}) cut off; manager ${ruler} leads, the node down ${Date.now() - cutAt} ms later`,
      );
      await hosts[cut]!.heal();
      await leaderOf([0, 1, 2]);
      await checkFor(60_000, async () => (await nodeStatus(ruler, ids[cut]!)) === "ready", 200);
      t.diagnostic(`round ${round}: manager ${cut} healed ${Date.now() - cutAt} ms after the cut`);
    }
    // After the last heal, writes are acknowledged again.
    const healed = Date.now();
    await checkFor(
      60_000,
      () => history.some((e) => e.result === "ok" && (e.start ?? 0) >= healed),
      100,
    );
    stopped.clients = true;
    await Promise.all(clientsDone);
    const count = (r: Outcome) => history.filter((e) => e.result === r).length;
    t.diagnostic(
      `${history.length} operations: ${count("ok")} ok, ${count("failed")} failed, ${count("unknown")} unknown`,
    );
    // Why operations did not succeed, most frequent first (the manager's number left out).
    const why = new Map<string, number>();
    for (const e of history.filter((x) => x.result !== "ok")) {
      const k = `${e.result}: ${(e.detail ?? "").replace(/^via manager \d+: /, "").slice(0, 70)}`;
      why.set(k, (why.get(k) ?? 0) + 1);
    }
    for (const [k, n] of [...why].sort((a, b) => b[1] - a[1])) t.diagnostic(`  ${n} × ${k}`);
    assert.ok(count("ok") > 0, "some operations succeeded");

    // Exactly one leader, named by every manager.
    const leader = await leaderOf([0, 1, 2]);
    const infos = await Promise.all(mdirs.map((d) => get<Info>(d, "/v1/info")));
    assert.equal(
      infos.filter((x) => x.nodeId === x.leaderId).length,
      1,
      `one manager leads: ${JSON.stringify(infos.map((x) => [x.nodeId, x.leaderId]))}`,
    );
    assert.equal(infos[leader]!.nodeId, infos[leader]!.leaderId);

    // etcd's state: what the history allows.
    const client3 = new Etcd3({ hosts: etcd.endpoints });
    let stored: Service[];
    try {
      stored = Object.values(
        (await client3.getAll().prefix("/shoal/service/").json()) as Record<string, Service>,
      );
    } finally {
      client3.close();
    }
    const replicasOf = (s: Service) =>
      "replicated" in s.spec.mode ? s.spec.mode.replicated.replicas : -1;
    const found = new Map(stored.map((s) => [s.spec.name, replicasOf(s)] as const));
    const problems = checkHistory(history, found);
    const log = () =>
      history
        .map(
          (e) =>
            `${e.start! - began} ms +${e.end! - e.start!}: client ${e.client} ${e.op.kind} ${e.op.key}${"replicas" in e.op ? `=${e.op.replicas}` : ""} -> ${e.result}${e.detail ? ` (${e.detail})` : ""}`,
        )
        .join("\n");
    if (process.env["SHOAL_HISTORY_LOG"] === "1")
      for (const l of log().split("\n")) t.diagnostic(l);
    assert.deepEqual(problems, [], `history violations; the history:\n${log()}`);

    // Every manager's view (its mirror, through the API) agrees with etcd.
    const want = JSON.stringify([...found].sort());
    for (const [i, d] of mdirs.entries()) {
      await checkFor(20_000, async () => {
        const list = await get<ServiceSummary[]>(d, "/v1/services");
        const got = JSON.stringify(list.map((s) => [s.spec.name, replicasOf(s)]).sort());
        if (got !== want) throw new Error(`manager ${i} shows ${got}, etcd holds ${want}`);
        return true;
      });
    }

    // The processes on the machines: each service runs its replicas, no slot twice, nothing of a
    // removed service; and the API says the same.
    const byId = new Map(stored.map((s) => [s.id, s]));
    const converged = await checkFor(
      120_000,
      async () => {
        const slots = new Map<string, string[]>();
        for (const h of hosts) {
          for (const p of await taskProcesses(h.ns)) {
            const k = `${p.serviceId}/${p.slot}`;
            const owners = slots.get(k) ?? [];
            if (!owners.includes(`${h.name}/${p.taskId}`)) owners.push(`${h.name}/${p.taskId}`);
            slots.set(k, owners);
          }
        }
        const wrong: string[] = [];
        for (const [k, owners] of slots) {
          const s = byId.get(k.split("/")[0]!);
          if (s === undefined) wrong.push(`${k}: a task of a removed service runs (${owners})`);
          else if (owners.length > 1)
            wrong.push(`${s.spec.name} slot ${k.split("/")[1]} runs twice: ${owners}`);
        }
        for (const s of stored) {
          const n = [...slots.keys()].filter((k) => k.startsWith(`${s.id}/`)).length;
          if (n !== replicasOf(s))
            wrong.push(`${s.spec.name}: ${n} slots run, ${replicasOf(s)} wanted`);
        }
        const tasks = await get<Task[]>(mdirs[leader]!, "/v1/tasks");
        for (const s of stored) {
          const n = tasks.filter(
            (x) =>
              x.serviceId === s.id && x.status.state === "running" && x.desiredState === "running",
          ).length;
          if (n !== replicasOf(s))
            wrong.push(`${s.spec.name}: the API shows ${n} running, ${replicasOf(s)} wanted`);
        }
        if (wrong.length > 0) throw new Error(wrong.join("\n"));
        return slots.size + 1;
      },
      500,
    );
    stopped.passed = true;
    t.diagnostic(
      `${stored.length} services, ${converged - 1} replicas running as acknowledged; ${Date.now() - began} ms in all`,
    );
  },
);
