// Benches an etcd member this process cannot reach before a call has to find out.
//
// etcd3 sends each call to a member picked at random and only moves on when the call fails;
// to a member whose machine died (its link cut: no reset ever comes) a call fails at its 5 s
// deadline, and etcd3's per-member circuit breaker opens only after three such failures in a
// row. After a manager's machine died, the survivors' store writes waited out those deadlines
// one after another (the managers bench: the first rescheduled task 5-6 s after the dead node
// was marked down). So, with several members, a probe asks each member for its status every
// PROBE_MS on a connection of its own (deadline PROBE_TIMEOUT_MS), and a member that did not
// answer is isolated in the client's circuit breaker for it: calls, watches and keep-alives
// go to the others at once. It is let back as soon as it answers. The probe never isolates
// every member: with none answering (this machine cut off), the client goes on as before.

import {
  circuitBreaker,
  ConsecutiveBreaker,
  handleWhen,
  noop,
  type CircuitBreakerPolicy,
} from "cockatiel";
import { Etcd3, isRecoverableError, type IOptions } from "etcd3";

/** How often each member is asked. */
export const PROBE_MS = 1000;
/** How long a member may take to answer the probe. */
export const PROBE_TIMEOUT_MS = 1000;

/** One member as the probe knows it. */
export interface ProbedMember {
  /** Whether its last probe failed. */
  failed: boolean;
  /** Whether it is isolated now. */
  isolated: boolean;
}

/**
 * Which members to isolate and which to let back, from their latest probes: a member whose probe
 * failed is isolated, one that answered is let back; but when no member would be left, the
 * failed ones are let back too (the client must try someone).
 */
export function isolationChanges(members: readonly ProbedMember[]): {
  isolate: number[];
  release: number[];
} {
  const isolate: number[] = [];
  const release: number[] = [];
  const anyAnswered = members.some((m) => !m.failed);
  members.forEach((m, i) => {
    const want = m.failed && anyAnswered;
    if (want && !m.isolated) isolate.push(i);
    if (!want && m.isolated) release.push(i);
  });
  return { isolate, release };
}

interface Member extends ProbedMember {
  host: string;
  breaker: CircuitBreakerPolicy;
  isolation: { dispose(): void } | undefined;
  prober: Etcd3;
}

export class MemberProbe {
  private readonly members: Member[];
  private timer: NodeJS.Timeout | null = null;
  private probing = false;

  /** `hosts` as the client is given them; `options`: the client's TLS (credentials, or a
   * channel factory that brings its own: etcd-tls.ts). */
  constructor(
    hosts: readonly string[],
    options: Pick<IOptions, "credentials" | "grpcOptions">,
    private readonly onChange: (host: string, isolated: boolean) => void = () => {},
  ) {
    this.members = hosts.map((host) => ({
      host,
      failed: false,
      isolated: false,
      isolation: undefined,
      // etcd3's default per-member breaker (three recoverable failures, half open after 5 s),
      // which the probe can also hold open.
      breaker: circuitBreaker(handleWhen(isRecoverableError), {
        halfOpenAfter: 5000,
        breaker: new ConsecutiveBreaker(3),
      }),
      prober: new Etcd3({
        ...options,
        hosts: host,
        faultHandling: { host: () => noop, global: noop },
        defaultCallOptions: () => ({ deadline: Date.now() + PROBE_TIMEOUT_MS }),
      }),
    }));
  }

  /** The client's per-member policy (etcd3's `faultHandling.host`). */
  readonly policyFor = (host: string): CircuitBreakerPolicy => {
    const m = this.members.find((x) => x.host === host);
    if (!m) throw new Error(`etcd probe: no member ${host}`);
    return m.breaker;
  };

  start(): void {
    this.timer = setInterval(() => void this.probe(), PROBE_MS);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const m of this.members) {
      m.isolation?.dispose();
      m.prober.close();
    }
  }

  /** Asks every member once and isolates or lets back (resolves when all answered or failed). */
  async probe(): Promise<void> {
    if (this.probing || !this.timer) return;
    this.probing = true;
    try {
      await Promise.all(
        this.members.map(async (m) => {
          try {
            await m.prober.maintenance.status();
            m.failed = false;
          } catch {
            m.failed = true;
          }
        }),
      );
      if (!this.timer) return; // closed meanwhile
      const { isolate, release } = isolationChanges(this.members);
      for (const i of isolate) {
        const m = this.members[i]!;
        m.isolation = m.breaker.isolate();
        m.isolated = true;
        this.onChange(m.host, true);
      }
      for (const i of release) {
        const m = this.members[i]!;
        m.isolation?.dispose();
        m.isolation = undefined;
        m.isolated = false;
        this.onChange(m.host, false);
      }
    } finally {
      this.probing = false;
    }
  }
}
