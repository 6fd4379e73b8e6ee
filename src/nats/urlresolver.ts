// The URL account resolver of operator mode (`resolver: URL(<base>)`), as nats-server's
// URLAccResolver with its lookupAccount: an account the server does not know yet is fetched (GET
// <base><account public key>, resolver.ts fetchAccountJwt) when a user of it connects, or at start
// for the system account; its JWT is verified like a preloaded one (signed by a trusted operator,
// the accounts it imports from fetched too) and the account is kept for the server's lifetime.

import { accountFromJwt, timeIssue, type JwtAccount } from "./jwt.js";
import {
  jwtAccountConfig,
  type AccountConfig,
  type ImportConfig,
  type OperatorOptions,
  type Options,
} from "./options.js";
import { ACCOUNT_KEY, fetchAccountJwt } from "./resolver.js";
import { AccountFetchError } from "./errors.js";
import type { Logger } from "./log.js";
import { loadClientTls, type ClientTls, type TlsConfig } from "./tls.js";

/** What the resolver needs of the server. */
export interface AccountHost {
  readonly opts: Readonly<Options>;
  readonly log: Logger;
  /** Adds (or replaces) an account; `expiries` are its imports allowed by expiring tokens. */
  addAccount(
    cfg: AccountConfig,
    expiries: { account: string; import: ImportConfig; expires: number }[],
  ): void;
}

export class UrlResolver {
  /** Fetches under way, by account key: a second user of the account waits for the same one. */
  private readonly pending = new Map<string, Promise<void>>();
  /**
   * A fetch was made since start or since a reload cleared it: nats-server's resolver (its HTTP
   * client) is then no longer equal to a fresh one, and its reload says "accounts" once more.
   */
  used = false;

  constructor(
    private readonly host: AccountHost,
    private readonly nowMs: () => number = Date.now,
  ) {}

  /**
   * At start, as nats-server's SetSystemAccount: the system account is fetched unless known.
   * Rejects with the reason the server does not start.
   */
  async start(system: string): Promise<void> {
    if (this.missing(system)) {
      await this.resolve(system).catch((err: Error) => {
        throw new Error(`Can't set system account: ${err.message}`, { cause: err });
      });
    }
  }

  /** The account must be fetched: the server has a URL resolver and does not know it. */
  missing(pub: string): boolean {
    const op = this.host.opts.operator;
    return op?.resolver === "URL" && ACCOUNT_KEY.test(pub) && !op.accounts.has(pub);
  }

  /**
   * Fetches account `pub` and adds it to the server. Rejects (AccountFetchError) when it cannot
   * be fetched or is not trusted; the account then stays unknown and its users are refused.
   */
  resolve(pub: string): Promise<void> {
    let p = this.pending.get(pub);
    if (p === undefined) {
      p = this.fetch(pub).finally(() => this.pending.delete(pub));
      this.pending.set(pub, p);
    }
    return p;
  }

  /** resolver_tls, loaded on first use (validateOptions checked its files). */
  private tls(): ClientTls | undefined {
    const cfg = this.host.opts.resolverTls;
    if (cfg === undefined) return undefined;
    if (this.loadedTls?.cfg !== cfg) this.loadedTls = { cfg, tls: loadClientTls(cfg) };
    return this.loadedTls!.tls;
  }

  private loadedTls: { cfg: TlsConfig; tls: ClientTls } | undefined;

  private async fetch(pub: string): Promise<void> {
    this.used = true;
    const op = this.host.opts.operator!;
    const started = this.nowMs();
    const token = await fetchAccountJwt(op.resolverUrl, pub, undefined, this.tls());
    this.host.log.debug(`Account [${pub}] fetch took ${this.nowMs() - started}ms`);
    if (op.accounts.has(pub)) return;
    let acc;
    try {
      acc = accountFromJwt(pub, token);
    } catch (err) {
      throw new AccountFetchError(`account validation failed: ${(err as Error).message}`);
    }
    if (!trustedIssuer(op, acc.claims.iss)) {
      throw new AccountFetchError("account validation failed: not signed by a trusted operator");
    }
    // Known before its imports are fetched: an account importing from it back finds it.
    op.accounts.set(pub, acc);
    // The accounts it imports from, so that its imports can be checked (nats-server looks them up).
    for (const imp of acc.config.imports) {
      if (this.missing(imp.account)) {
        await this.resolve(imp.account).catch((err: Error) =>
          this.host.log.debug(`Account JWT lookup error: ${err.message}`),
        );
      }
    }
    installAccount(this.host, acc, this.nowMs());
  }
}

/** Did a trusted operator (or one of its signing keys) issue the account JWT? */
export function trustedIssuer(op: OperatorOptions, iss: string): boolean {
  return op.operators.some((o) => o.pub === iss || o.signingKeys.includes(iss));
}

/**
 * A trusted account JWT becomes one of the server's accounts (or replaces it), as a preloaded one
 * would: its time issues and left-out imports are logged as warnings.
 */
export function installAccount(host: AccountHost, acc: JwtAccount, nowMs: number): void {
  const op = host.opts.operator!;
  const nowSec = Math.floor(nowMs / 1000);
  const t = timeIssue(acc.claims, nowSec);
  if (t !== null) host.log.warn(`Account [${acc.pub}] has validation issues: ${t}`);
  op.accounts.set(acc.pub, acc);
  const problems = op.problems.length;
  const expiries = op.activationExpiries.length;
  const cfg = jwtAccountConfig(op, acc, nowSec);
  for (const p of op.problems.slice(problems)) host.log.warn(p);
  host.addAccount(cfg, op.activationExpiries.slice(expiries));
}
