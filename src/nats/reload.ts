// Configuration reload (SIGHUP, `--signal reload`), as nats-server 2.9's reload.go. The options
// read again are compared with the running ones field by field, in the order of nats-server's
// Options struct (its diffOptions): the first that cannot change while running fails the reload
// with nats-server's message ("config reload not supported for Port: old=4222, new=4223") and
// nothing is applied; otherwise each change is logged in that order ("Reloaded: debug = true")
// and applied, users, accounts and permissions to live connections (Server.reloadUsers: a user
// removed or moved to another account is disconnected). nats-server never finds its users and
// accounts equal (they hold live state), so every reload says "Reloaded: authorization users" and
// "Reloaded: accounts"; in operator mode its resolver is a new object too, hence "accounts" once
// more (for a URL resolver only once it has fetched something or holds resolver_tls's config). Then, with a MEMORY resolver, as
// its reloadAuthorization: the new resolver_preload's expired JWTs are warned about, and each
// account the server holds is looked up in it again (debug lines; an account gone from it is
// deleted: `Reloaded: deleting account [removed]: "<key>"`). In operator mode every client that
// logged in with a user JWT and its nkey (as the official clients do) is closed without a word:
// nats-server looks that nkey up among the configured nkey users, finds none and takes the user
// for moved.

import { formatGoDuration, formatGoNanos } from "../lib/duration.js";
import { CloseReason, ReloadError } from "./errors.js";
import { GLOBAL_ACCOUNT, type Options } from "./options.js";
import type { Server } from "./server.js";
import { loadTls, type LoadedTls } from "./tls.js";
import { buildAccounts } from "./accounts.js";
import { decodeJwt, operatorClaimsText, timeIssue } from "./jwt.js";

/** The logger settings a reload may change (ServerLogger.configure). */
export interface ReloadableLogger {
  configure(o: { debug: boolean; trace: boolean; logtime: boolean }): void;
}

type Key = keyof Options;

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Go's %v of an option value (durations as Go prints them). */
function show(key: Key, v: unknown): string {
  // nats-server's auth timeout is a number of seconds.
  if (key === "authTimeoutMs" && typeof v === "number") return String(v / 1000);
  if (key.endsWith("Ms") && typeof v === "number") return formatGoDuration(v);
  if (v === null || v === undefined) return "<nil>";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/** What else than the options a reload compares (the server's state). */
export interface ReloadState {
  /** nats-server finds the TLS configuration changed (see tlsDiffers). */
  tlsChanged: boolean;
  /** The URL resolver fetched something since start or the last reload. */
  resolverUsed: boolean;
}

/**
 * nats-server's diffOptions: the "Reloaded: ..." lines of a reload from `cur` to `next`, in the
 * order of its Options struct. Throws ReloadError for the first option that cannot change.
 */
export function diffOptions(
  cur: Readonly<Options>,
  next: Readonly<Options>,
  state: ReloadState,
): string[] {
  const lines: string[] = [];
  const refuse = (name: string, old: string, now: string): never => {
    throw new ReloadError(`config reload not supported for ${name}: old=${old}, new=${now}`);
  };
  const fixed = (key: Key, name: string) => {
    if (!same(cur[key], next[key])) refuse(name, show(key, cur[key]), show(key, next[key]));
  };
  const logged = (key: Key, line: (v: string) => string) => {
    if (!same(cur[key], next[key])) lines.push(line(show(key, next[key])));
  };
  fixed("serverName", "ServerName");
  fixed("host", "Host");
  fixed("port", "Port");
  fixed("clientAdvertise", "ClientAdvertise");
  logged("trace", (v) => `trace = ${v}`);
  logged("debug", (v) => `debug = ${v}`);
  logged("logtime", (v) => `logtime = ${v}`);
  logged("maxConnections", (v) => `max_connections = ${v}`);
  fixed("maxSubscriptions", "MaxSubs");
  logged("nkeys", () => "authorization nkey users");
  lines.push("authorization users", "accounts");
  if (cur.noAuthUser !== next.noAuthUser) {
    // Only dropping no_auth_user along with its user passes (and says nothing).
    const kept = next.users.some((u) => u.user === cur.noAuthUser);
    if (cur.noAuthUser === "" || next.noAuthUser !== "" || kept) {
      refuse("NoAuthUser", cur.noAuthUser, next.noAuthUser);
    }
  }
  fixed("systemAccount", "SystemAccount");
  logged("username", () => "authorization username");
  logged("password", () => "authorization password");
  logged("authToken", () => "authorization token");
  logged("pingIntervalMs", (v) => `ping_interval = ${v}`);
  logged("pingMax", (v) => `ping_max = ${v}`);
  fixed("httpHost", "HTTPHost");
  fixed("httpPort", "HTTPPort");
  fixed("httpsPort", "HTTPSPort");
  logged("authTimeoutMs", (v) => `authorization timeout = ${v}`);
  // nats-server reloads max_control_line; shoal's parsers keep the one they started with.
  fixed("maxControlLine", "MaxControlLine");
  logged("maxPayload", (v) => `max_payload = ${v}`);
  fixed("maxPending", "MaxPending");
  fixed("cluster", "Cluster");
  fixed("websocket", "Websocket");
  // nats-server reloads these three; shoal does not yet.
  fixed("pidFile", "PidFile");
  fixed("portsFileDir", "PortsFileDir");
  fixed("logFile", "LogFile");
  if (state.tlsChanged) lines.push(`tls = ${next.tls ? "enabled" : "disabled"}`);
  fixed("allowNonTls", "AllowNonTLS");
  logged("writeDeadlineMs", (v) => `write_deadline = ${v}`);
  fixed("lameDuckDurationMs", "LameDuckDuration");
  fixed("lameDuckGracePeriodMs", "LameDuckGracePeriod");
  const claims = (o: Readonly<Options>) => (o.operator?.operators ?? []).map((x) => x.claims);
  if (!same(claims(cur), claims(next))) {
    const text = (o: Readonly<Options>) => `[${claims(o).map(operatorClaimsText).join(" ")}]`;
    refuse("TrustedOperators", text(cur), text(next));
  }
  const resolver = next.operator?.resolver ?? "";
  if (resolver !== (cur.operator?.resolver ?? "")) {
    // nats-server swaps the resolver; shoal's start wires one in (sync, fetches) for good.
    refuse("AccountResolver", cur.operator?.resolver ?? "<nil>", resolver || "<nil>");
  }
  // A URL resolver equals a fresh one until it fetches, or is given resolver_tls's config.
  const fresh = !state.resolverUsed && cur.resolverTls === undefined;
  if (resolver !== "" && (resolver !== "URL" || !fresh)) lines.push("accounts");
  // resolver_tls: its TLS configuration holds a certificate pool, never equal to a new one.
  if (cur.resolverTls || next.resolverTls) lines.push("accounts");
  logged("serverTags", () => "tags");
  return lines;
}

/**
 * The accounts a URL resolver fetched are in no config file: a reload keeps them (and what their
 * fetches added to the operator options), so their users are not cut.
 */
function keepFetched(cur: Readonly<Options>, next: Readonly<Options>): Readonly<Options> {
  const op = cur.operator;
  const nop = next.operator;
  if (op?.resolver !== "URL" || nop?.resolver !== "URL" || op.resolverUrl !== nop.resolverUrl) {
    return next;
  }
  const known = new Set(next.accounts.map((a) => a.name));
  const fetched = cur.accounts.filter((a) => !known.has(a.name) && op.accounts.has(a.name));
  return {
    ...next,
    accounts: [...next.accounts, ...fetched],
    operator: {
      ...nop,
      accounts: new Map([...op.accounts, ...nop.accounts]),
      problems: op.problems,
      activationExpiries: op.activationExpiries,
    },
  };
}

/** The first option that differs and cannot be reloaded, as nats-server words it; null if none. */
export function unsupportedChange(cur: Readonly<Options>, next: Readonly<Options>): string | null {
  try {
    diffOptions(cur, next, { tlsChanged: false, resolverUsed: false });
    return null;
  } catch (err) {
    if (err instanceof ReloadError) return err.message;
    throw err;
  }
}

/**
 * Applies re-read options to a running server. Throws ReloadError (and changes nothing) when an
 * option that cannot change at runtime differs. Returns the "Reloaded: ..." lines it logged.
 */
export function reloadServer(
  server: Server,
  next: Readonly<Options>,
  logger: ReloadableLogger | null,
): string[] {
  const cur = server.opts;
  next = keepFetched(cur, next);
  // The tls block's files are read again (a rotated certificate under the same name is a change,
  // as nats-server compares the loaded certificates); a bad file fails the reload before anything
  // is applied. New connections use the new certificate, live ones keep their session.
  const tls = next.tls ? loadTls(next.tls) : null;
  const tlsChanged = tlsDiffers(server, tls);
  server.clientTlsUsed = false;
  const lines = diffOptions(cur, next, { tlsChanged, resolverUsed: server.urlResolver.used });
  server.urlResolver.used = false;
  for (const line of lines) server.log.info(`Reloaded: ${line}`);
  if (
    logger &&
    (cur.trace !== next.trace || cur.debug !== next.debug || cur.logtime !== next.logtime)
  ) {
    logger.configure({ debug: next.debug, trace: next.trace, logtime: next.logtime });
  }
  // Every option the diff let through takes its new value; the rest stay as they run.
  const opts: Options = { ...cur };
  for (const key of [
    "trace",
    "debug",
    "logtime",
    "maxConnections",
    "pingIntervalMs",
    "pingMax",
    "authTimeoutMs",
    "maxPayload",
    "writeDeadlineMs",
    "serverTags",
    "username",
    "password",
    "authToken",
    "noAuthUser",
    "operator",
  ] as const) {
    (opts as unknown as Record<string, unknown>)[key] = next[key];
  }
  // resolver_tls: the URL resolver's fetches from now on use the block read again (its files
  // too, so a rotated certificate under the same name counts), as nats-server's.
  if (next.resolverTls) opts.resolverTls = next.resolverTls;
  else delete opts.resolverTls;
  const deleted = next.operator?.resolver === "MEMORY" ? reloadPreloads(server, cur, next) : [];
  const accountsChanged = !same(cur.accounts, next.accounts);
  if (accountsChanged) opts.accounts = next.accounts;
  if (tlsChanged) {
    opts.tls = next.tls;
    server.tls = tls;
  }
  server.opts = Object.freeze(opts);
  for (const name of deleted) server.loadedAccounts.delete(name);
  if (cur.pingIntervalMs !== next.pingIntervalMs) server.startPingTimer();
  // A full resolver asks for its peers' JWTs at the new interval from now on.
  const interval = next.operator?.resolverIntervalMs;
  if (interval !== undefined && interval !== cur.operator?.resolverIntervalMs) {
    server.claimsSync?.restartTimer(interval);
  }
  // Accounts that stay keep their subscriptions; imports are placed again.
  if (accountsChanged) server.accounts = buildAccounts(server.opts, server, server.accounts);
  if (next.operator) {
    for (const c of [...server.clients.values()]) {
      if (c.jwtUserWithNkey()) c.close(CloseReason.ClientClosed);
    }
  }
  // Every connection is checked again, as nats-server's reloadAuthorization does.
  server.reloadUsers(next.users, next.nkeys);
  server.configLoadTime = new Date();
  server.log.info("Reloaded server configuration");
  return lines;
}

/**
 * A MEMORY resolver's reload, as nats-server's reloadAuthorization: the new preloads are checked
 * (an expired JWT warned about), then each account the server holds is looked up in them. Returns
 * the held accounts that are gone.
 */
function reloadPreloads(server: Server, cur: Readonly<Options>, next: Readonly<Options>): string[] {
  const log = server.log;
  const nop = next.operator!;
  const nowSec = Math.floor(Date.now() / 1000);
  for (const [pub, token] of Object.entries(nop.preload)) {
    let issue: string | null;
    try {
      issue = timeIssue(decodeJwt(token, "account"), nowSec);
    } catch {
      log.error(`Preloaded account [${pub}] not valid`);
      continue;
    }
    if (issue !== null) {
      log.warn(`Account [${pub}] has validation issues:`);
      log.warn(`  - ${issue}`);
    }
  }
  const deleted: string[] = [];
  for (const name of server.accounts.keys()) {
    if (name === GLOBAL_ACCOUNT || !server.holdsAccount(name)) continue;
    const started = process.hrtime.bigint();
    const token = nop.preload[name];
    const acc = nop.accounts.get(name);
    log.debug(
      `Account [${name}] fetch took ${formatGoNanos(Number(process.hrtime.bigint() - started))}`,
    );
    if (token === undefined) log.warn("Account fetch failed: account missing");
    if (acc === undefined) {
      log.info(`Reloaded: deleting account [removed]: "${name}"`);
      deleted.push(name);
      continue;
    }
    if (cur.operator?.accounts.get(name)?.claims.jti === acc.claims.jti) {
      log.debug(`Requested account update for [${name}], same claims detected`);
    } else {
      log.debug(`Updating account claims: ${name}/${acc.claims.name ?? ""}`);
    }
  }
  return deleted;
}

/**
 * Does nats-server find its running TLS configuration unequal to the one read again? It does when
 * the block or its files differ, and also, for the same ones, when either has a CA pool (which
 * holds functions, never equal) or the running one has served a handshake since it was made (Go
 * stores session ticket keys in it then): it says "tls = enabled" again.
 */
function tlsDiffers(server: Server, next: LoadedTls | null): boolean {
  const cur = server.tls;
  if (!sameTls(cur, next)) return true;
  if (cur === null || next === null) return false;
  return cur.ca !== undefined || next.ca !== undefined || server.clientTlsUsed;
}

/** The same tls block with the same file contents. */
function sameTls(a: LoadedTls | null, b: LoadedTls | null): boolean {
  if (a === null || b === null) return a === b;
  const ca = (x: LoadedTls) => x.ca ?? Buffer.alloc(0);
  return same(a.cfg, b.cfg) && a.cert.equals(b.cert) && a.key.equals(b.key) && ca(a).equals(ca(b));
}
