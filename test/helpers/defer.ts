// Test cleanup in the right order: `defer(t, fn)` runs fn when the test ends, pass or fail,
// last registered first (so clients close before their servers). Every cleanup runs even when
// one throws; the first failure is rethrown.

import type { TestContext } from "node:test";

const stacks = new WeakMap<TestContext, Array<() => unknown>>();

export function defer(t: TestContext, fn: () => unknown): void {
  let stack = stacks.get(t);
  if (stack === undefined) {
    const s: Array<() => unknown> = [];
    stacks.set(t, s);
    t.after(async () => {
      let failure: unknown = null;
      for (let f = s.pop(); f !== undefined; f = s.pop()) {
        try {
          await f();
        } catch (err) {
          failure ??= err;
        }
      }
      if (failure !== null) throw failure;
    });
    stack = s;
  }
  stack.push(fn);
}
