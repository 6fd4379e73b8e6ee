// `npm run bench -- store`: write throughput of the state stores — service updates per second
// (each update reads a service and puts it back with its version + 1, as a `service update`
// does) on the embedded store (one fsync'd log on the local disk) and on the etcd store (a
// 1-member etcd and a 3-member etcd on this host, from the Debian etcd-server package), one
// writer awaiting each update, and 64 concurrent writers (group commits).

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openEmbeddedStore } from "../src/store/embedded.js";
import { openEtcdStore } from "../src/store/etcd.js";
import type { Store } from "../src/store/store.js";
import { etcdPath, startEtcd } from "../test/helpers/etcd.js";
import { service } from "../test/store/helpers.js";
import type { Row, Suite, SuiteContext, SuiteResult } from "./report.js";

const SERVICES = 100;

/** Updates per second of `writers` loops, each awaiting its update, for `ms`. */
async function measure(store: Store, writers: number, ms: number): Promise<number> {
  await store.update((tx) => {
    for (let i = 0; i < SERVICES; i++) tx.putService(service(`s${i}`, `svc-${i}`));
  });
  let done = 0;
  const end = Date.now() + ms;
  const start = Date.now();
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      for (let k = w; Date.now() < end; k += writers) {
        const id = `s${k % SERVICES}`;
        await store.update((tx) => {
          const s = tx.getService(id)!;
          tx.putService({ ...s, version: s.version + 1, updatedAt: Date.now() });
        });
        done++;
      }
    }),
  );
  return done / ((Date.now() - start) / 1000);
}

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const notes: string[] = [];
  const rows: Row[] = [
    {
      id: "serial",
      label: "service updates/s, 1 writer",
      unit: "req/s",
      better: "higher",
      values: {},
    },
    {
      id: "concurrent",
      label: "service updates/s, 64 writers",
      unit: "req/s",
      better: "higher",
      values: {},
    },
  ];
  const setups: Array<[string, () => Promise<{ store: Store; stop: () => Promise<void> }>]> = [
    [
      "embedded",
      async () => {
        const dir = mkdtempSync(join(tmpdir(), "shoal-bench-store-"));
        const store = await openEmbeddedStore(dir, { onWarning: () => {} });
        return {
          store,
          stop: async () => {
            await store.close();
            rmSync(dir, { recursive: true, force: true });
          },
        };
      },
    ],
    ...[1, 3].map(
      (members) =>
        [
          `etcd${members}`,
          async () => {
            const etcd = await startEtcd({ members });
            const store = await openEtcdStore({ endpoints: etcd.endpoints, onWarning: () => {} });
            return {
              store,
              stop: async () => {
                await store.close();
                await etcd.stop();
              },
            };
          },
        ] as [string, () => Promise<{ store: Store; stop: () => Promise<void> }>],
    ),
  ];
  for (const [col, setup] of setups) {
    if (col.startsWith("etcd") && etcdPath() === null) {
      for (const r of rows) r.values[col] = "no etcd";
      continue;
    }
    for (const row of rows) {
      let best = 0;
      for (let i = 0; i < ctx.repeat; i++) {
        ctx.log(`store: ${col} ${row.id} (${i + 1}/${ctx.repeat})`);
        const { store, stop } = await setup();
        try {
          best = Math.max(best, await measure(store, row.id === "serial" ? 1 : 64, ctx.durationMs));
        } finally {
          await stop();
        }
      }
      row.values[col] = Math.round(best);
    }
  }
  notes.push(
    "Each update reads one of 100 services and puts it back (version + 1); the promise resolves " +
      "once the write is durable (embedded: fsync'd log; etcd: committed by the members and " +
      "back in the store's mirror). All etcd members run on this host, each with its own fsync.",
  );
  return {
    suite: "store",
    title: "State store write throughput",
    columns: [
      { id: "embedded", label: "embedded" },
      { id: "etcd1", label: "etcd (1 member)" },
      { id: "etcd3", label: "etcd (3 members)" },
    ],
    rows,
    notes,
    params: { services: SERVICES, durationMs: ctx.durationMs, repeat: ctx.repeat },
  };
}

export const storeSuite: Suite = {
  name: "store",
  description: "state store write throughput: embedded vs etcd (service updates per second)",
  options: {},
  run,
};
