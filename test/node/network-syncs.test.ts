// The node's network builds (src/node/network-syncs.ts) with a build function the test settles by
// hand: a set whose networks exist already is ready at once (a stack's tasks do not wait for the
// build that only moves a VIP backend), a burst of sets is one build after the running one, and
// a new network, or one a running build takes away, waits for the build that makes it.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { NodeNetwork } from "../../src/api/bus.js";
import { NetworkSyncs } from "../../src/node/network-syncs.js";

function net(id: string, vni: number, backends: string[] = []): NodeNetwork {
  return {
    id,
    name: `stack_${id}`,
    driver: "overlay",
    vni,
    subnet: `10.0.${vni}.0/24`,
    internal: false,
    nodeAddr: `10.0.${vni}.2/24`,
    peers: [],
    vips: [{ addr: `10.0.${vni}.3`, backends }],
  };
}

/** A build function whose calls the test ends one by one. */
function builds() {
  const calls: Array<{ nets: NodeNetwork[]; end: (err?: Error) => void }> = [];
  const waiters: Array<() => void> = [];
  const build = (nets: NodeNetwork[]) =>
    new Promise<void>((resolve, reject) => {
      calls.push({ nets, end: (err) => (err ? reject(err) : resolve()) });
      for (const w of waiters.splice(0)) w();
    });
  /** Waits until the n-th call (1-based) has been made. */
  const called = async (n: number): Promise<void> => {
    while (calls.length < n) await new Promise<void>((r) => waiters.push(r));
  };
  return { calls, build, called };
}

/** Whether `p` has settled by the time the promise jobs queued now have run. */
async function settled(p: Promise<void>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  for (let i = 0; i < 20; i++) await Promise.resolve();
  return done;
}

test("networks that exist are ready at once; a burst is one build after the running one", async () => {
  const b = builds();
  const errors: Error[] = [];
  const s = new NetworkSyncs(b.build, (e) => errors.push(e));

  // A new network: ready once the build that makes it is done.
  const first = s.set([net("a", 4097)]);
  await b.called(1);
  assert.equal(await settled(first), false);
  b.calls[0]!.end();
  await first;

  // Only a VIP backend moved: ready at once, the build still runs.
  const moved = s.set([net("a", 4097, ["10.0.97.4"])]);
  assert.equal(await settled(moved), true);
  await b.called(2);
  // Three more while that build runs: ready at once, and built together afterwards.
  for (const backends of [["x"], ["x", "y"], ["x", "y", "z"]]) {
    assert.equal(await settled(s.set([net("a", 4097, backends)])), true);
  }
  b.calls[1]!.end();
  await b.called(3);
  assert.deepEqual(b.calls[2]!.nets[0]!.vips[0]!.backends, ["x", "y", "z"]);
  b.calls[2]!.end();
  await s.idle();
  assert.equal(b.calls.length, 3);
  assert.deepEqual(errors, []);
});

test("a new network waits for its build: the running one when it makes it", async () => {
  const b = builds();
  const s = new NetworkSyncs(b.build, () => {});
  const both = [net("a", 4097), net("b", 4098)];
  const first = s.set(both);
  await b.called(1);
  // The same networks (a backend moved) while the first build runs: ready with that build, not
  // the one queued after it.
  const again = s.set([net("a", 4097, ["10.0.97.9"]), net("b", 4098)]);
  assert.equal(await settled(again), false);
  b.calls[0]!.end();
  await Promise.all([first, again]);
  await b.called(2);
  // A network the running build does not make waits for the next one.
  const more = s.set([...both, net("c", 4099)]);
  assert.equal(await settled(more), false);
  b.calls[1]!.end();
  await b.called(3);
  assert.equal(await settled(more), false);
  b.calls[2]!.end();
  await more;
});

test("a network a running build takes away, or after a failed build, waits", async () => {
  const b = builds();
  const errors: Error[] = [];
  const s = new NetworkSyncs(b.build, (e) => errors.push(e));
  const a = net("a", 4097);
  const first = s.set([a]);
  await b.called(1);
  b.calls[0]!.end();
  await first;

  // The node's last task on `a` went: the build removes it; a task back on it meanwhile waits.
  void s.set([]);
  await b.called(2);
  const back = s.set([a]);
  assert.equal(await settled(back), false);
  b.calls[1]!.end();
  await b.called(3);
  // A failed build: the set is ready (its tasks fail by name), and nothing counts as built.
  b.calls[2]!.end(new Error("no ip"));
  await back;
  assert.deepEqual(
    errors.map((e) => e.message),
    ["no ip"],
  );
  const after = s.set([a, net("b", 4098)]);
  await b.called(4);
  assert.equal(await settled(after), false);
  b.calls[3]!.end();
  await after;
});
