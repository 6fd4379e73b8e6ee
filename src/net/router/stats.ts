// What the HTTP router counts per service: requests sent on to the service's tasks, and a
// latency histogram — from the request head read to the response head sent to the client (the
// backend's own answer, or the router's 502/504 for it). The node's /metrics exposes both
// (src/node/prometheus.ts: shoal_router_requests_total, shoal_router_request_duration_seconds);
// the heartbeat takes the requests since the last one for the autoscaler (`takeRequestCounts`).
//
// Cheap on the request path: a service's figures are one object the route holds (no map lookup
// per request), a request reads the clock twice (performance.now: monotonic, no allocation) and
// a latency is put in its bucket by a walk over at most 14 bounds. The buckets are kept
// per bucket, not cumulative; the exposition adds them up at scrape time.

/** The histogram's upper bounds in seconds (Prometheus' `le`), after them +Inf. */
export const LATENCY_BUCKETS_S: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
const BOUNDS_MS = LATENCY_BUCKETS_S.map((s) => s * 1000);

/** One service's figures on this router. */
export class ServiceTraffic {
  /** Requests sent on to the service (cumulative). */
  requests = 0;
  /** `requests` at the last `takeRequestCounts`. */
  taken = 0;
  /** Latencies per bucket: [i] counts those in (bound i-1, bound i]; the last, beyond 10 s. */
  readonly buckets = new Float64Array(BOUNDS_MS.length + 1);
  /** Latencies observed, and their sum in ms. */
  observed = 0;
  sumMs = 0;

  constructor(
    readonly serviceId: string | undefined,
    public service: string,
  ) {}

  /** One request's latency, ms. */
  observe(ms: number): void {
    const v = ms > 0 ? ms : 0;
    let i = 0;
    while (i < BOUNDS_MS.length && v > BOUNDS_MS[i]!) i++;
    this.buckets[i]!++;
    this.observed++;
    this.sumMs += v;
  }
}

export class RouterStats {
  private readonly byKey = new Map<string, ServiceTraffic>();

  /** `now`: a monotonic clock in ms (tests inject one). */
  constructor(readonly now: () => number = () => performance.now()) {}

  /** The figures of a service (by id, else name), made on first use. */
  service(serviceId: string | undefined, name: string): ServiceTraffic {
    const key = serviceId ?? name;
    let t = this.byKey.get(key);
    if (t === undefined) {
      t = new ServiceTraffic(serviceId, name);
      this.byKey.set(key, t);
    } else t.service = name;
    return t;
  }

  /**
   * Forgets the services not in `keep` (keys: id, else name) whose requests were all taken: a
   * removed service's series end, and the book does not grow with every service ever routed.
   */
  prune(keep: ReadonlySet<string>): void {
    for (const [key, t] of this.byKey) {
      if (!keep.has(key) && t.requests === t.taken) this.byKey.delete(key);
    }
  }

  /** Requests per service since the last call (services with none are left out). */
  takeRequestCounts(): Array<{ serviceId: string; count: number }> {
    const out: Array<{ serviceId: string; count: number }> = [];
    for (const [key, t] of this.byKey) {
      const n = t.requests - t.taken;
      if (n <= 0) continue;
      t.taken = t.requests;
      out.push({ serviceId: key, count: n });
    }
    return out;
  }

  all(): ServiceTraffic[] {
    return [...this.byKey.values()];
  }
}
