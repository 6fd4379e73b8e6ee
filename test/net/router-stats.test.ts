// The router's per-service figures on their own: latencies land in the right bucket (bounds are
// inclusive, as Prometheus' `le`), requests are taken once, and a service that left the table
// is forgotten only when nothing of it is left to take.

import { test } from "node:test";
import assert from "node:assert/strict";
import { LATENCY_BUCKETS_S, RouterStats } from "../../src/net/router/stats.js";

test("latencies land in their bucket: a bound belongs to its own bucket, beyond 10 s to +Inf", () => {
  const stats = new RouterStats(() => 0);
  const t = stats.service("s1", "web");
  for (const ms of [0, 1, 1.0001, 2.5, 9.99, 10, 10_000, 10_001, -3]) t.observe(ms);
  const counts = new Map<string, number>();
  LATENCY_BUCKETS_S.forEach((le, i) => {
    if (t.buckets[i]! > 0) counts.set(String(le), t.buckets[i]!);
  });
  if (t.buckets[LATENCY_BUCKETS_S.length]! > 0) {
    counts.set("+Inf", t.buckets[LATENCY_BUCKETS_S.length]!);
  }
  assert.deepEqual(Object.fromEntries(counts), {
    "0.001": 3, // 0, 1 and a negative reading (counted as 0)
    "0.0025": 2, // 1.0001, 2.5
    "0.01": 2, // 9.99, 10
    "10": 1,
    "+Inf": 1,
  });
  assert.equal(t.observed, 9);
  assert.equal(t.sumMs, 0 + 1 + 1.0001 + 2.5 + 9.99 + 10 + 10_000 + 10_001 + 0);
});

test("requests are taken once per service; a service gone from the table is pruned when taken", () => {
  const stats = new RouterStats(() => 0);
  const web = stats.service("s1", "web");
  const api = stats.service(undefined, "api");
  web.requests += 5;
  api.requests += 2;
  assert.equal(stats.service("s1", "web"), web, "the same figures for the same service");
  assert.deepEqual(stats.takeRequestCounts(), [
    { serviceId: "s1", count: 5 },
    { serviceId: "api", count: 2 },
  ]);
  assert.deepEqual(stats.takeRequestCounts(), []);
  web.requests += 1;
  stats.prune(new Set()); // web still has a request to hand over; api has none
  assert.deepEqual(
    stats.all().map((s) => s.service),
    ["web"],
  );
  assert.deepEqual(stats.takeRequestCounts(), [{ serviceId: "s1", count: 1 }]);
  stats.prune(new Set());
  assert.deepEqual(stats.all(), []);
});
