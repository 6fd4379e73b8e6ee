// Accounts: separate subject spaces on one server, as nats-server's accounts. Each account has
// its own subject index; a client belongs to its user's account (users outside `accounts {}`
// to $G, the global account) and publishes and subscribes in it only.
//
// Imports are subscriptions too, so that a server without them pays nothing per message:
//   stream import  — an ImportTarget subscribed in the exporter's index on the imported subject;
//                    a message published there is delivered in the importer's index on the
//                    local subject (prefix / to).
//   service import — an ImportTarget subscribed in the importer's index on the local subject; a
//                    request published there is delivered in the exporter's index on the
//                    exported subject, with its reply replaced by a fresh `_R_.` subject to
//                    which a ResponseTarget is subscribed in the exporter's index: the first
//                    response goes back to the importer on the original reply (nats-server's
//                    Singleton responses), or the mapping expires.
// In a cluster (every server configured with the same accounts) a stream import's subscription is
// interest in the exporter's account like any other, so the exporter's messages come to each
// server that imports them, which delivers them to its own importers' clients only. A service
// request goes on in the exporter's account to local subscribers and routes alike; the `_R_.`
// subjects of this server are interest in the exporter's account, so responses come back.

import { idBytes } from "../lib/lazy.js";
import type { AccountConfig, Options } from "./options.js";
import { GLOBAL_ACCOUNT } from "./options.js";
import { Sublist } from "./sublist.js";
import { Subscription, type MsgTarget } from "./subscription.js";

/** How long a service response may take before its `_R_.` mapping is dropped (nats-server's 2m). */
export const RESPONSE_TTL_MS = 2 * 60 * 1000;

/** Deliveries chained through imports (A→B→C...) stop here, as a guard against cycles. */
const MAX_IMPORT_HOPS = 8;

/** What an import needs of the server. */
export interface AccountRouter {
  /** The local client whose message is being handled (null: a route's, or none). */
  readonly producer: object | null;
  /** Interest of an import in an account, told to routes. */
  importInterest(acc: Account, subject: string, delta: 1 | -1): void;
  /** A service request routed in the exporter's account (local subscribers and routes). */
  routeImported(
    acc: Account,
    subject: string,
    reply: string,
    hdr: number,
    payload: Buffer,
    start: number,
    end: number,
  ): number;
  /** Delivery inside one account's index, to local subscribers only. */
  deliverLocal(
    acc: Account,
    subject: string,
    reply: string,
    hdr: number,
    payload: Buffer,
    start: number,
    end: number,
  ): number;
}

export interface ImportSub {
  acc: Account;
  sub: Subscription;
  inserted: boolean;
  routed: boolean;
}

export class Account {
  readonly sublist = new Sublist<Subscription>({ cache: true });
  /** When this account's configuration was last applied (/accountz update_time). */
  updated = new Date();
  /**
   * The subscriptions this account's imports placed (here and in exporters' indexes): `inserted`
   * in that account's index, `routed` as interest to routes.
   */
  importSubs: ImportSub[] = [];
  constructor(
    readonly name: string,
    public config: AccountConfig,
  ) {}
}

/** The tokens of `subject` that fill `pattern`'s wildcards, in order (`>` takes the rest). */
function wildcardParts(subject: string, pattern: string): string[] {
  const st = subject.split(".");
  const pt = pattern.split(".");
  const parts: string[] = [];
  for (let i = 0; i < pt.length; i++) {
    if (pt[i] === "*") parts.push(st[i]!);
    else if (pt[i] === ">") {
      parts.push(st.slice(i).join("."));
      break;
    }
  }
  return parts;
}

/** `subject` (matching `from`) rewritten onto `to`, each wildcard of `to` taking the next part. */
export function mapSubject(subject: string, from: string, to: string): string {
  if (from === to) return subject;
  const parts = wildcardParts(subject, from);
  let k = 0;
  return to
    .split(".")
    .map((t) => (t === "*" || t === ">" ? (parts[k++] ?? t) : t))
    .join(".");
}

/** nats-server's reply prefix for service responses. */
const REPLY_PREFIX = `_R_.${idBytes(4).toString("hex")}.`;

/** Delivers what an import receives into another account. */
export class ImportTarget implements MsgTarget {
  readonly kind = "Import";
  /** Hops of the delivery under way (see MAX_IMPORT_HOPS); shared by every import. */
  static depth = 0;
  private static replies = 0;

  constructor(
    private readonly router: AccountRouter,
    /** The index the message goes on to, and the subjects mapped from → to. */
    private readonly into: Account,
    private readonly from: string,
    private readonly to: string,
    /** Service imports: the importer, whose requester gets the response. */
    private readonly responder: Account | null,
  ) {}

  deliver(
    _sub: Subscription,
    subject: string,
    reply: string,
    hdr: number,
    payload: Buffer,
    start: number,
    end: number,
  ): void {
    if (ImportTarget.depth >= MAX_IMPORT_HOPS) return;
    const mapped = mapSubject(subject, this.from, this.to);
    ImportTarget.depth++;
    try {
      if (this.responder === null) {
        this.router.deliverLocal(this.into, mapped, reply, hdr, payload, start, end);
        return;
      }
      // A request that came over a route was imported by the server its requester is on.
      if (this.router.producer === null) return;
      let r = reply;
      if (reply !== "") {
        r = REPLY_PREFIX + (++ImportTarget.replies).toString(36);
        new ResponseTarget(this.router, this.responder, reply).subscribe(this.into, r);
      }
      this.router.routeImported(this.into, mapped, r, hdr, payload, start, end);
    } finally {
      ImportTarget.depth--;
    }
  }
}

/** The way back of one service request: its first response goes to the requester's reply. */
class ResponseTarget implements MsgTarget {
  readonly kind = "Import";
  private sub: Subscription | null = null;
  private acc: Account | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly router: AccountRouter,
    private readonly requester: Account,
    private readonly reply: string,
  ) {}

  subscribe(acc: Account, subject: string): void {
    this.acc = acc;
    this.sub = new Subscription(subject, null, subject, this);
    acc.sublist.insert(this.sub);
    this.timer = setTimeout(() => this.remove(), RESPONSE_TTL_MS);
    this.timer.unref();
  }

  private remove(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.sub !== null && this.acc !== null) this.acc.sublist.remove(this.sub);
    this.sub = null;
  }

  deliver(
    _sub: Subscription,
    _subject: string,
    reply: string,
    hdr: number,
    payload: Buffer,
    start: number,
    end: number,
  ): void {
    if (this.sub === null) return;
    this.remove();
    ImportTarget.depth++;
    try {
      this.router.deliverLocal(this.requester, this.reply, reply, hdr, payload, start, end);
    } finally {
      ImportTarget.depth--;
    }
  }
}

/**
 * The accounts of a configuration by name: $G, the system account, and each of `accounts {}`.
 * Accounts kept from `prev` (a reload) keep their index, so live subscriptions stay; every
 * import is placed afresh.
 */
export function buildAccounts(
  opts: Readonly<Options>,
  router: AccountRouter,
  prev: Map<string, Account> | null = null,
): Map<string, Account> {
  const out = new Map<string, Account>();
  const configs: AccountConfig[] = [
    { name: GLOBAL_ACCOUNT, exports: [], imports: [] },
    ...opts.accounts,
  ];
  if (!opts.accounts.some((a) => a.name === opts.systemAccount)) {
    configs.push({ name: opts.systemAccount, exports: [], imports: [] });
  }
  const unplace = (subs: ImportSub[]) => {
    for (const { acc, sub, inserted, routed } of subs) {
      if (inserted) acc.sublist.remove(sub);
      if (routed) router.importInterest(acc, sub.subject, -1);
    }
  };
  for (const cfg of configs) {
    const old = prev?.get(cfg.name);
    if (old !== undefined) {
      unplace(old.importSubs);
      old.importSubs = [];
      if (JSON.stringify(old.config) !== JSON.stringify(cfg)) old.updated = new Date();
      old.config = cfg;
      out.set(cfg.name, old);
    } else {
      out.set(cfg.name, new Account(cfg.name, cfg));
    }
  }
  if (prev !== null) {
    // Imports of accounts that are gone, placed in accounts that stay.
    for (const [name, old] of prev) if (!out.has(name)) unplace(old.importSubs);
  }
  for (const acc of out.values()) {
    const place = (into: Account, on: string, target: MsgTarget | null, routed: boolean) => {
      const sub = new Subscription(on, null, on, target ?? NO_TARGET);
      if (target !== null) into.sublist.insert(sub);
      if (routed) router.importInterest(into, on, 1);
      acc.importSubs.push({ acc: into, sub, inserted: target !== null, routed });
    };
    for (const imp of acc.config.imports) {
      const exporter = out.get(imp.account);
      if (exporter === undefined) continue; // refused by validateOptions
      if (imp.kind === "stream") {
        const t = new ImportTarget(router, acc, imp.subject, imp.to, null);
        place(exporter, imp.subject, t, true);
      } else {
        const t = new ImportTarget(router, exporter, imp.to, imp.subject, acc);
        place(acc, imp.to, t, false);
        // Responses to this server's `_R_.` subjects come back over routes.
        place(exporter, REPLY_PREFIX + ">", null, true);
      }
    }
  }
  return out;
}

/** The target of interest that is only told to routes (never in an index). */
const NO_TARGET: MsgTarget = {
  kind: "Import",
  deliver() {},
};
