// A subscription as the subject index stores it: a client's SUB, a route's interest, an import's,
// or one of the server's own (internal.ts).
// `conn` receives the messages; `max` and `delivered` implement UNSUB with a maximum.

export interface MsgTarget {
  /**
   * Import: an account's import (accounts.ts), which delivers into another account; Internal:
   * the server's own connection in the system account (internal.ts).
   */
  readonly kind: "Client" | "Route" | "Import" | "Internal";
  /**
   * Queue one message for delivery to this subscription (flushed by the server later); the
   * message is payload[start, end).
   */
  deliver(
    sub: Subscription,
    subject: string,
    reply: string,
    hdrLen: number,
    payload: Buffer,
    start: number,
    end: number,
  ): void;
}

export class Subscription {
  /** Messages delivered so far. */
  delivered = 0;
  /** Auto-unsubscribe after this many messages (0 = never). */
  max = 0;
  closed = false;
  /** A route's queue interest: how many members the remote server has (RS+ weight). */
  weight = 1;

  constructor(
    readonly subject: string,
    readonly queue: string | null,
    readonly sid: string,
    readonly conn: MsgTarget,
  ) {}
}
