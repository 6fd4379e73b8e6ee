// Configuration reload (SIGHUP, `--signal reload`), as nats-server's reload.go: the options read
// again are compared with the running ones; when one that cannot change while running differs,
// nothing is applied and the reload fails with nats-server's message ("config reload not
// supported for Port: old=4222, new=4223"). Otherwise each change is applied and logged
// ("Reloaded: debug = true"), users, accounts and permissions to live connections (Server.reloadUsers: a user removed
// or moved to another account is disconnected).

import { formatGoDuration } from "../lib/duration.js";
import { ReloadError } from "./errors.js";
import type { Options } from "./options.js";
import type { Server } from "./server.js";
import { loadTls, type LoadedTls } from "./tls.js";
import { buildAccounts } from "./accounts.js";

/** The logger settings a reload may change (ServerLogger.configure). */
export interface ReloadableLogger {
  configure(o: { debug: boolean; trace: boolean; logtime: boolean }): void;
}

type Key = keyof Options;

/**
 * Options that a reload refuses to change, by nats-server's Options field name, in the order of
 * its Options struct (the first difference found is the one reported).
 */
const FIXED: Array<[Key, string]> = [
  ["serverName", "ServerName"],
  ["host", "Host"],
  ["port", "Port"],
  ["clientAdvertise", "ClientAdvertise"],
  ["maxControlLine", "MaxControlLine"],
  ["maxPending", "MaxPending"],
  ["cluster", "Cluster"],
  ["pingIntervalMs", "PingInterval"],
  ["httpHost", "HTTPHost"],
  ["httpPort", "HTTPPort"],
  ["httpsPort", "HTTPSPort"],
  ["websocket", "Websocket"],
  ["logFile", "LogFile"],
  ["pidFile", "PidFile"],
  ["portsFileDir", "PortsFileDir"],
  ["allowNonTls", "AllowNonTLS"],
  ["operator", "TrustedOperators"],
];

/** Options applied at once by assigning them (read where they are used). */
const PLAIN: Array<[Key, string]> = [
  ["authTimeoutMs", "authorization timeout"],
  ["maxPayload", "max_payload"],
  ["maxConnections", "max_connections"],
  ["maxSubscriptions", "max_subscriptions"],
  ["pingMax", "ping_max"],
  ["writeDeadlineMs", "write_deadline"],
  ["lameDuckDurationMs", "lame_duck_duration"],
  ["lameDuckGracePeriodMs", "lame_duck_grace_period"],
  ["serverTags", "server_tags"],
];

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
  for (const [key, name] of FIXED) {
    if (!same(cur[key], next[key])) {
      return `config reload not supported for ${name}: old=${show(key, cur[key])}, new=${show(key, next[key])}`;
    }
  }
  return null;
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
  const refused = unsupportedChange(cur, next);
  if (refused !== null) throw new ReloadError(refused);
  // The tls block's files are read again (a rotated certificate under the same name is a change,
  // as nats-server compares the loaded certificates); a bad file fails the reload before anything
  // is applied. New connections use the new certificate, live ones keep their session.
  const tls = next.tls ? loadTls(next.tls) : null;
  const tlsChanged = !sameTls(server.tls, tls);
  const done: string[] = [];
  const note = (msg: string) => {
    done.push(msg);
    server.log.info(`Reloaded: ${msg}`);
  };
  const opts: Options = { ...cur };
  for (const key of ["trace", "debug", "logtime"] as const) {
    if (cur[key] !== next[key]) {
      opts[key] = next[key];
      note(`${key} = ${next[key]}`);
    }
  }
  if (
    logger &&
    (cur.trace !== next.trace || cur.debug !== next.debug || cur.logtime !== next.logtime)
  ) {
    logger.configure({ debug: next.debug, trace: next.trace, logtime: next.logtime });
  }
  for (const [key, name] of PLAIN) {
    if (!same(cur[key], next[key])) {
      (opts as unknown as Record<string, unknown>)[key] = next[key];
      note(`${name} = ${show(key, next[key])}`);
    }
  }
  // resolver_tls: the URL resolver's fetches from now on use the block read again (its files
  // too, so a rotated certificate under the same name counts), as nats-server's; it logs nothing.
  if (next.resolverTls) opts.resolverTls = next.resolverTls;
  else delete opts.resolverTls;
  const authChanged: string[] = [];
  if (cur.username !== next.username) authChanged.push("authorization username");
  if (cur.password !== next.password) authChanged.push("authorization password");
  if (cur.authToken !== next.authToken) authChanged.push("authorization token");
  if (!same(cur.users, next.users)) authChanged.push("authorization users");
  if (!same(cur.nkeys, next.nkeys)) authChanged.push("authorization nkeys");
  if (cur.noAuthUser !== next.noAuthUser) authChanged.push(`no_auth_user = ${next.noAuthUser}`);
  opts.username = next.username;
  opts.password = next.password;
  opts.authToken = next.authToken;
  opts.noAuthUser = next.noAuthUser;
  const accountsChanged =
    !same(cur.accounts, next.accounts) || cur.systemAccount !== next.systemAccount;
  if (accountsChanged) {
    opts.accounts = next.accounts;
    opts.systemAccount = next.systemAccount;
    authChanged.push("accounts");
  }
  if (tlsChanged) {
    opts.tls = next.tls;
    server.tls = tls;
    note(`tls = ${tls ? "enabled" : "disabled"}`);
  }
  server.opts = Object.freeze(opts);
  // Accounts that stay keep their subscriptions; imports are placed again.
  if (accountsChanged) server.accounts = buildAccounts(server.opts, server, server.accounts);
  for (const msg of authChanged) note(msg);
  // Every connection is checked again, as nats-server's reloadAuthorization does (also when the
  // tls block changed, since verify_and_map decides how certificate users are found).
  if (authChanged.length > 0 || tlsChanged) server.reloadUsers(next.users, next.nkeys);
  server.configLoadTime = new Date();
  server.log.info("Reloaded server configuration");
  return done;
}

/** The same tls block with the same file contents. */
function sameTls(a: LoadedTls | null, b: LoadedTls | null): boolean {
  if (a === null || b === null) return a === b;
  const ca = (x: LoadedTls) => x.ca ?? Buffer.alloc(0);
  return same(a.cfg, b.cfg) && a.cert.equals(b.cert) && a.key.equals(b.key) && ca(a).equals(ca(b));
}
