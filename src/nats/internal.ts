// The server's own connection in the system account, as nats-server's internal system client:
// subscriptions whose messages go to a function (in the account's index, and told to routes as a
// client's interest is), and messages the server publishes itself, routed like a client's. A
// message is handed to its function after the delivery that brought it has finished (never from
// inside Server.route, whose scratch state a nested route would overwrite), in arrival order.
// The connection does not receive its own messages (nats-server's system client does not
// either): a request it publishes to a queue group it belongs to goes to another server's member.

import type { Account } from "./accounts.js";
import { Subscription, type MsgTarget } from "./subscription.js";

/** What the connection needs of the server. */
export interface InternalHost {
  /** The system account (its index holds the subscriptions), or undefined before it exists. */
  systemAccount(): Account | undefined;
  /** Interest of `account` told to routes (Cluster.localInterest). */
  internalInterest(sub: Subscription, delta: 1 | -1, account: string): void;
  /** Routes a message published in `account` by `from` (Server.route). */
  route(
    from: InternalClient,
    subject: string,
    reply: string,
    hdr: number,
    payload: Buffer,
    queues: null,
    start: number,
    end: number,
    account: Account,
  ): number;
}

/** A message of an internal subscription: the payload without its headers. */
export type InternalHandler = (subject: string, reply: string, body: Buffer) => void;

interface Pending {
  sub: Subscription;
  subject: string;
  reply: string;
  body: Buffer;
}

export class InternalClient implements MsgTarget {
  readonly kind = "Internal";
  /** Never echoed: Server.route skips this connection's own subscriptions for its messages. */
  readonly opts = { echo: false } as const;
  private readonly handlers = new Map<Subscription, InternalHandler>();
  private queue: Pending[] = [];
  private scheduled = false;
  private nextSid = 1;

  constructor(private readonly host: InternalHost) {}

  /** Subscribes in the system account (with a queue group, or null). */
  subscribe(subject: string, queue: string | null, handler: InternalHandler): Subscription {
    const acc = this.host.systemAccount();
    if (acc === undefined) throw new Error("no system account");
    const sub = new Subscription(subject, queue, String(this.nextSid++), this);
    this.handlers.set(sub, handler);
    acc.sublist.insert(sub);
    this.host.internalInterest(sub, 1, acc.name);
    return sub;
  }

  unsubscribe(sub: Subscription): void {
    if (!this.handlers.delete(sub)) return;
    sub.closed = true;
    const acc = this.host.systemAccount();
    if (acc !== undefined && acc.sublist.remove(sub)) {
      this.host.internalInterest(sub, -1, acc.name);
    }
  }

  /** Publishes in the system account, to local subscribers and routes with interest. */
  publish(subject: string, reply: string, body: Buffer): number {
    const acc = this.host.systemAccount();
    if (acc === undefined) return 0;
    return this.host.route(this, subject, reply, -1, body, null, 0, body.length, acc);
  }

  deliver(
    sub: Subscription,
    subject: string,
    reply: string,
    hdr: number,
    payload: Buffer,
    start: number,
    end: number,
  ): void {
    if (!this.handlers.has(sub)) return;
    sub.delivered++;
    // A copy: the payload may sit in a read buffer that the next read overwrites.
    const body = Buffer.from(payload.subarray(start + Math.max(0, hdr), end));
    this.queue.push({ sub, subject, reply, body });
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.drain());
  }

  private drain(): void {
    this.scheduled = false;
    const list = this.queue;
    this.queue = [];
    for (const m of list) this.handlers.get(m.sub)?.(m.subject, m.reply, m.body);
  }
}
