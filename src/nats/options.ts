// Options of the message server: typed, with nats-server's defaults, built from a parsed
// configuration file (conf.ts) and command-line flags (flags.ts), validated once and frozen.

import { OptionsError } from "./errors.js";
import { isValidSubject, patternIsSubsetOf, subjectHasWildcard } from "./subject.js";
import {
  isUsedVariable,
  parseConfigFile,
  parseDuration,
  parseSize,
  type ConfObject,
  type ConfValue,
} from "./conf.js";
import { loadClientTls, loadTls, parseTlsBlock, type TlsConfig } from "./tls.js";
import {
  DEFAULT_SYNC_INTERVAL_MS,
  parseResolver,
  readResolverDir,
  type ResolverConfig,
} from "./resolver.js";
import {
  accountFromJwt,
  checkActivation,
  decodeJwt,
  exportFor,
  readOperatorJwt,
  timeIssue,
  type JwtAccount,
  type TrustedOperator,
} from "./jwt.js";

export interface SubjectPermission {
  allow: string[];
  deny: string[];
}

/** allow_responses: a connection may publish to the reply subjects of messages it received. */
export interface ResponsePermission {
  /** Responses allowed per reply subject (nats-server's default 1). */
  maxMsgs: number;
  /** How long after receiving the request (nats-server's default 2 minutes). */
  expiresMs: number;
}

export interface Permissions {
  publish?: SubjectPermission;
  subscribe?: SubjectPermission;
  response?: ResponsePermission;
}

export interface User {
  user: string;
  password: string;
  permissions?: Permissions;
  /** The account the user belongs to (a name from `accounts {}`); unset: the global account $G. */
  account?: string;
}

/** A user known by its NKey (a public key starting with U), authenticated by signing a nonce. */
export interface NkeyUser {
  nkey: string;
  permissions?: Permissions;
  account?: string;
}

/** An account's export: subjects other accounts may import (all accounts, or those listed). */
export interface ExportConfig {
  kind: "stream" | "service";
  subject: string;
  /** The accounts allowed to import it; empty: every account. */
  accounts: string[];
  /** An account JWT's export that needs an activation token (jwt.ts checkActivation). */
  tokenReq?: boolean;
}

/**
 * An account's import: `subject` of `account`'s export seen here as `to` (stream: the messages
 * published there are delivered here on `to`; service: requests published here on `to` go there
 * on `subject`, and the responses come back).
 */
export interface ImportConfig {
  kind: "stream" | "service";
  account: string;
  subject: string;
  to: string;
}

/** An account of the `accounts {}` block (its users are in Options.users/nkeys, by name). */
export interface AccountConfig {
  name: string;
  exports: ExportConfig[];
  imports: ImportConfig[];
}

/** The account of users configured outside `accounts {}`, as nats-server names it. */
export const GLOBAL_ACCOUNT = "$G";
/** nats-server's default system account. */
export const DEFAULT_SYSTEM_ACCOUNT = "$SYS";

/** Operator mode (`operator`, `resolver: MEMORY`, `resolver_preload`): users are JWTs (jwt.ts). */
export interface OperatorOptions {
  operators: TrustedOperator[];
  /** `resolver`: "MEMORY", a directory resolver (FULL, CACHE), "URL", or "" when not configured. */
  resolver: "" | ResolverConfig["type"];
  /** A directory resolver's directory: its `<key>.jwt` files join `preload` at validation. */
  resolverDir: string;
  /** A URL resolver's base URL: accounts missing from `accounts` are fetched there (server.ts). */
  resolverUrl: string;
  /** A full resolver's `allow_delete` (claims.ts answers $SYS.REQ.CLAIMS.DELETE). */
  resolverAllowDelete: boolean;
  /** A full resolver's `interval`: how often it syncs its directory with the cluster's. */
  resolverIntervalMs: number;
  /** `resolver_preload`: account public key → account JWT. */
  preload: Record<string, string>;
  /**
   * Filled by validateOptions: the preloaded accounts signed by a trusted operator (their
   * AccountConfigs are in Options.accounts), and why others were left out (logged at start).
   */
  accounts: Map<string, JwtAccount>;
  problems: string[];
  /** Filled by validateOptions: imports allowed by an activation token that expires (seconds). */
  activationExpiries: { account: string; import: ImportConfig; expires: number }[];
}

export interface ClusterOptions {
  name: string;
  host: string;
  port: number;
  /** Explicit routes (nats://host:port URLs) to solicit. */
  routes: string[];
  /** Address advertised to other servers instead of the listen address. */
  advertise: string;
  /** Do not tell clients about other servers (connect_urls). */
  noAdvertise: boolean;
  /** For implicit (gossiped) routes: connect attempts before giving up; 0 means nats-server's default. */
  connectRetries: number;
  username: string;
  password: string;
  authTimeoutMs: number;
  /** Delay between reconnect attempts to a lost route. */
  connectBackoffMs: number;
  /** TLS on routes (both ways, always verified, as nats-server does). */
  tls: TlsConfig | null;
}

export interface Options {
  serverName: string;
  host: string;
  /** Client port; -1 picks a random free port (as does 0). */
  port: number;
  clientAdvertise: string;
  /** Monitoring host; "" (the default): the client host for `shoal nats-server`, else 0.0.0.0. */
  httpHost: string;
  /** Monitoring port; 0 turns monitoring off, -1 picks a random port. */
  httpPort: number;
  debug: boolean;
  trace: boolean;
  logtime: boolean;
  logFile: string;
  pidFile: string;
  configFile: string;
  maxPayload: number;
  maxControlLine: number;
  maxPending: number;
  maxConnections: number;
  /** 0 = unlimited. */
  maxSubscriptions: number;
  pingIntervalMs: number;
  pingMax: number;
  writeDeadlineMs: number;
  authTimeoutMs: number;
  /** `authorization { timeout }` was given: TLS does not stretch authTimeoutMs then. */
  authTimeoutSet: boolean;
  lameDuckDurationMs: number;
  lameDuckGracePeriodMs: number;
  username: string;
  password: string;
  authToken: string;
  users: User[];
  /** Users known by NKey (`nkey: U...` in a users list). */
  nkeys: NkeyUser[];
  noAuthUser: string;
  /** The `accounts {}` block (users outside it are in $G). */
  accounts: AccountConfig[];
  /** `system_account` (nats-server's default $SYS, created when not configured). */
  systemAccount: string;
  /** Operator mode; null without `operator`. */
  operator: OperatorOptions | null;
  cluster: ClusterOptions | null;
  /** The `websocket {}` block; null when there is none (or its port is 0). */
  websocket: WebsocketOptions | null;
  /** TLS for clients (the top-level tls block); its certificate also serves https monitoring. */
  tls: TlsConfig | null;
  /** `resolver_tls`: the TLS of a URL resolver's HTTPS fetches (resolver.ts). */
  resolverTls?: TlsConfig;
  /** With tls: clients that do not start a handshake stay plain. */
  allowNonTls: boolean;
  /** Monitoring over https (with the tls certificate); 0 = off, -1 = random port. */
  httpsPort: number;
  /** `server_tags`: shown in /varz `tags` (nats-server lower-cases them). */
  serverTags: string[];
  /** `ports_file_dir`: where `nats-server_<pid>.ports` is written ("" = not written). */
  portsFileDir: string;
}

/** nats-server's `websocket {}` block. */
export interface WebsocketOptions {
  host: string;
  /** -1 picks a random free port. */
  port: number;
  advertise: string;
  noTls: boolean;
  /** A `tls {}` block was given (refused by validation until TLS is supported). */
  tls: boolean;
  compression: boolean;
  sameOrigin: boolean;
  allowedOrigins: string[];
  /** 0 = no handshake deadline (nats-server's default). */
  handshakeTimeoutMs: number;
  /** The block's own authorization, which replaces the server's for WebSocket clients. */
  username: string;
  password: string;
  token: string;
  /** null = the server's authorization timeout. */
  authTimeoutMs: number | null;
  noAuthUser: string;
}

export function defaultWebsocketOptions(): WebsocketOptions {
  return {
    host: "0.0.0.0",
    port: 0,
    advertise: "",
    noTls: false,
    tls: false,
    compression: false,
    sameOrigin: false,
    allowedOrigins: [],
    handshakeTimeoutMs: 0,
    username: "",
    password: "",
    token: "",
    authTimeoutMs: null,
    noAuthUser: "",
  };
}

export function defaultClusterOptions(): ClusterOptions {
  return {
    name: "",
    host: "0.0.0.0",
    port: 6222,
    routes: [],
    advertise: "",
    noAdvertise: false,
    connectRetries: 0,
    username: "",
    password: "",
    authTimeoutMs: 2000,
    connectBackoffMs: 1000,
    tls: null,
  };
}

export function defaultOptions(): Options {
  return {
    serverName: "",
    host: "0.0.0.0",
    port: 4222,
    clientAdvertise: "",
    httpHost: "",
    httpPort: 0,
    debug: false,
    trace: false,
    logtime: true,
    logFile: "",
    pidFile: "",
    configFile: "",
    maxPayload: 1024 * 1024,
    maxControlLine: 4096,
    maxPending: 64 * 1024 * 1024,
    maxConnections: 64 * 1024,
    maxSubscriptions: 0,
    pingIntervalMs: 2 * 60 * 1000,
    pingMax: 2,
    writeDeadlineMs: 10_000,
    authTimeoutMs: 2000,
    authTimeoutSet: false,
    lameDuckDurationMs: 2 * 60 * 1000,
    lameDuckGracePeriodMs: 10_000,
    username: "",
    password: "",
    authToken: "",
    users: [],
    nkeys: [],
    noAuthUser: "",
    accounts: [],
    systemAccount: DEFAULT_SYSTEM_ACCOUNT,
    operator: null,
    cluster: null,
    websocket: null,
    tls: null,
    allowNonTls: false,
    httpsPort: 0,
    serverTags: [],
    portsFileDir: "",
  };
}

/** Warnings collected while reading a config (nats-server prints them and starts anyway). */
export type Warn = (msg: string) => void;

function str(v: ConfValue, key: string): string {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  throw new OptionsError(`config: "${key}" must be a string`);
}

function num(v: ConfValue, key: string): number {
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string" && /^-?\d+$/.test(v)) return Number(v);
  throw new OptionsError(`config: "${key}" must be a number, got ${JSON.stringify(v)}`);
}

function bool(v: ConfValue, key: string): boolean {
  if (typeof v === "boolean") return v;
  throw new OptionsError(`config: "${key}" must be true or false, got ${JSON.stringify(v)}`);
}

function obj(v: ConfValue, key: string): ConfObject {
  if (typeof v === "object" && v !== null && !Array.isArray(v)) return v;
  throw new OptionsError(`config: "${key}" must be a block { ... }`);
}

function strList(v: ConfValue, key: string): string[] {
  if (Array.isArray(v)) return v.map((x) => str(x, key));
  if (typeof v === "string")
    return v
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  throw new OptionsError(`config: "${key}" must be a list of strings`);
}

/** A duration in ms; plain numbers are seconds (nats-server warns about them). */
function duration(v: ConfValue, key: string, warn: Warn): number {
  if (typeof v === "number") {
    warn(`${key} should be converted to a duration`);
    return v * 1000;
  }
  try {
    return parseDuration(v, key);
  } catch (err) {
    throw new OptionsError(`config: ${(err as Error).message}`, { cause: err });
  }
}

/** "host:port", ":port", "port" or a nats://host:port URL into its parts. */
export function splitHostPort(s: string, defaultHost: string): { host: string; port: number } {
  let rest = s.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "");
  const at = rest.lastIndexOf("@");
  if (at >= 0) rest = rest.slice(at + 1);
  rest = rest.replace(/\/$/, "");
  if (/^-?\d+$/.test(rest)) return { host: defaultHost, port: Number(rest) };
  const colon = rest.lastIndexOf(":");
  if (colon < 0) return { host: rest, port: -2 };
  const host = rest.slice(0, colon).replace(/^\[|\]$/g, "") || defaultHost;
  const port = Number(rest.slice(colon + 1));
  if (!Number.isInteger(port)) throw new OptionsError(`invalid port in "${s}"`);
  return { host, port };
}

/** A permission's subjects: one string or a list (not split on commas), each a valid subject or "subject queue". */
function subjects(v: ConfValue, key: string): string[] {
  const list = typeof v === "string" ? [v] : strList(v, key);
  for (const s of list) {
    if (isValidSubject(s)) continue;
    const parts = s.trim().split(/\s+/);
    const bad = parts.length !== 2 ? s : isValidSubject(parts[0]!) ? "" : parts[0]!;
    if (bad !== "")
      throw new OptionsError(`config: ${key}: subject "${bad}" is not a valid subject`);
  }
  return list;
}

function permission(v: ConfValue, key: string): SubjectPermission {
  if (typeof v === "string" || Array.isArray(v)) return { allow: subjects(v, key), deny: [] };
  const o = obj(v, key);
  const p: SubjectPermission = { allow: [], deny: [] };
  for (const [k, val] of Object.entries(o)) {
    const lk = k.toLowerCase();
    if (lk === "allow") p.allow = subjects(val, `${key}.allow`);
    else if (lk === "deny") p.deny = subjects(val, `${key}.deny`);
    else throw new OptionsError(`config: unknown field "${k}" in ${key}`);
  }
  return p;
}

/** nats-server's DEFAULT_ALLOW_RESPONSE_MAX_MSGS and DEFAULT_ALLOW_RESPONSE_EXPIRATION. */
const RESPONSE_DEFAULTS: ResponsePermission = { maxMsgs: 1, expiresMs: 2 * 60 * 1000 };

/** allow_responses: true, false, or { max, expires } (0 or missing take the defaults). */
function allowResponses(v: ConfValue, key: string, warn: Warn): ResponsePermission | undefined {
  if (typeof v === "boolean") return v ? { ...RESPONSE_DEFAULTS } : undefined;
  const o = obj(v, key);
  const r = { ...RESPONSE_DEFAULTS };
  for (const [k, val] of Object.entries(o)) {
    switch (k.toLowerCase()) {
      case "max":
      case "max_msgs":
      case "max_messages":
      case "max_responses":
        r.maxMsgs = num(val, `${key}.${k}`) || RESPONSE_DEFAULTS.maxMsgs;
        break;
      case "expires":
      case "expiration":
      case "ttl":
        r.expiresMs = duration(val, `${key}.${k}`, warn) || RESPONSE_DEFAULTS.expiresMs;
        break;
      default:
        throw new OptionsError(`config: unknown field "${k}" in ${key}`);
    }
  }
  return r;
}

function permissions(v: ConfValue, key: string, warn: Warn): Permissions {
  const o = obj(v, key);
  const p: Permissions = {};
  for (const [k, val] of Object.entries(o)) {
    const lk = k.toLowerCase();
    if (lk === "publish" || lk === "pub") p.publish = permission(val, `${key}.publish`);
    else if (lk === "subscribe" || lk === "sub") p.subscribe = permission(val, `${key}.subscribe`);
    else if (lk === "allow_responses" || lk === "allow_response") {
      const r = allowResponses(val, `${key}.allow_responses`, warn);
      if (r) p.response = r;
    } else throw new OptionsError(`config: unknown field "${k}" in ${key}`);
  }
  return p;
}

interface AuthBlock {
  username: string;
  password: string;
  token: string;
  users: User[];
  nkeys: NkeyUser[];
  timeoutMs: number | null;
}

/** A user public NKey: 'U' and 55 more base32 characters (nkeys.js checks the checksum). */
export function isUserNkey(s: string): boolean {
  return /^U[A-Z2-7]{55}$/.test(s);
}

/**
 * A `users [...]` list (of an authorization block or an account): `{user, password}` entries and
 * `{nkey}` entries, each with optional permissions.
 */
function userList(
  val: ConfValue,
  key: string,
  warn: Warn,
  account?: string,
): { users: User[]; nkeys: NkeyUser[] } {
  if (!Array.isArray(val)) throw new OptionsError(`config: ${key}.users must be a list`);
  const users: User[] = [];
  const nkeys: NkeyUser[] = [];
  val.forEach((u, i) => {
    const where = `${key}.users[${i}]`;
    const uo = obj(u, where);
    const user: User = { user: "", password: "" };
    let nkey = "";
    let named = "";
    for (const [uk, uv] of Object.entries(uo)) {
      const luk = uk.toLowerCase();
      if (luk === "user" || luk === "username") user.user = str(uv, "user");
      else if (luk === "pass" || luk === "password") user.password = str(uv, "password");
      else if (luk === "nkey") nkey = str(uv, "nkey");
      // nats-server takes the singular `permission` too.
      else if (luk === "permissions" || luk === "permission")
        user.permissions = permissions(uv, "permissions", warn);
      // `account: A` binds a user of the authorization block to an account (nats-server's).
      else if (luk === "account") named = str(uv, "account");
      else throw new OptionsError(`config: unknown field "${uk}" in ${where}`);
    }
    const acc = account ?? (named !== "" ? named : undefined);
    if (acc !== undefined) user.account = acc;
    if (nkey !== "") {
      // nats-server's words for both mistakes.
      if (user.user !== "" || user.password !== "") {
        throw new OptionsError(`config: ${where}: nkey users do not take usernames or passwords`);
      }
      if (!isUserNkey(nkey)) {
        throw new OptionsError(`config: ${where}: not a valid public nkey for a user: "${nkey}"`);
      }
      const n: NkeyUser = { nkey };
      if (user.permissions) n.permissions = user.permissions;
      if (acc !== undefined) n.account = acc;
      nkeys.push(n);
      return;
    }
    if (!user.user) throw new OptionsError(`config: ${where} has no user`);
    users.push(user);
  });
  return { users, nkeys };
}

function authorization(v: ConfValue, key: string, warn: Warn): AuthBlock {
  const o = obj(v, key);
  const a: AuthBlock = {
    username: "",
    password: "",
    token: "",
    users: [],
    nkeys: [],
    timeoutMs: null,
  };
  let defaultPerms: Permissions | undefined;
  for (const [k, val] of Object.entries(o)) {
    switch (k.toLowerCase()) {
      case "user":
      case "username":
        a.username = str(val, `${key}.user`);
        break;
      case "pass":
      case "password":
        a.password = str(val, `${key}.password`);
        break;
      case "token":
        a.token = str(val, `${key}.token`);
        break;
      case "timeout":
        a.timeoutMs = typeof val === "number" ? val * 1000 : duration(val, `${key}.timeout`, warn);
        break;
      case "permissions":
      case "default_permission":
      case "default_permissions":
        defaultPerms = permissions(val, `${key}.permissions`, warn);
        break;
      case "users": {
        const l = userList(val, key, warn);
        a.users = l.users;
        a.nkeys = l.nkeys;
        break;
      }
      default:
        throw new OptionsError(`config: unknown field "${k}" in ${key}`);
    }
  }
  if (defaultPerms) for (const u of [...a.users, ...a.nkeys]) u.permissions ??= defaultPerms;
  return a;
}

/** The account and subject of an import: `{account: A, subject: "foo.>"}`. */
function importSource(v: ConfValue, key: string): { account: string; subject: string } {
  const o = obj(v, key);
  let account = "";
  let subject = "";
  for (const [k, val] of Object.entries(o)) {
    const lk = k.toLowerCase();
    if (lk === "account") account = str(val, `${key}.account`);
    else if (lk === "subject") subject = str(val, `${key}.subject`);
    else throw new OptionsError(`config: unknown field "${k}" in ${key}`);
  }
  if (account === "") throw new OptionsError(`config: ${key} has no account`);
  if (!isValidSubject(subject)) {
    throw new OptionsError(`config: ${key}: subject "${subject}" is not a valid subject`);
  }
  return { account, subject };
}

function exportEntry(v: ConfValue, key: string, warn: Warn): ExportConfig {
  const o = obj(v, key);
  let e: ExportConfig | null = null;
  let accounts: string[] = [];
  for (const [k, val] of Object.entries(o)) {
    const lk = k.toLowerCase();
    if (lk === "stream" || lk === "service") {
      const subject = str(val, `${key}.${lk}`);
      if (!isValidSubject(subject)) {
        throw new OptionsError(`config: ${key}: subject "${subject}" is not a valid subject`);
      }
      e = { kind: lk, subject, accounts: [] };
    } else if (lk === "accounts") accounts = strList(val, `${key}.accounts`);
    else if (lk === "response_type" || lk === "response" || lk === "response_threshold") {
      warn(`${key}.${k} is not supported by shoal: responses are single (Singleton)`);
    } else throw new OptionsError(`config: unknown field "${k}" in ${key}`);
  }
  if (e === null) throw new OptionsError(`config: ${key} needs a stream or a service subject`);
  e.accounts = accounts;
  return e;
}

function importEntry(v: ConfValue, key: string): ImportConfig {
  const o = obj(v, key);
  let kind: "stream" | "service" | null = null;
  let src = { account: "", subject: "" };
  let prefix = "";
  let to = "";
  for (const [k, val] of Object.entries(o)) {
    const lk = k.toLowerCase();
    if (lk === "stream" || lk === "service") {
      kind = lk;
      src = importSource(val, `${key}.${lk}`);
    } else if (lk === "prefix") prefix = str(val, `${key}.prefix`);
    else if (lk === "to") to = str(val, `${key}.to`);
    else if (lk === "share") continue;
    else throw new OptionsError(`config: unknown field "${k}" in ${key}`);
  }
  if (kind === null) throw new OptionsError(`config: ${key} needs a stream or a service`);
  if (kind === "service" && prefix !== "") {
    throw new OptionsError(`config: ${key}: a service import takes "to", not "prefix"`);
  }
  const local = to !== "" ? to : prefix !== "" ? `${prefix}.${src.subject}` : src.subject;
  if (!isValidSubject(local)) {
    throw new OptionsError(`config: ${key}: subject "${local}" is not a valid subject`);
  }
  return { kind, account: src.account, subject: src.subject, to: local };
}

/** The `accounts {}` block: each account's users (returned apart), exports and imports. */
function accountsBlock(
  v: ConfValue,
  warn: Warn,
): { accounts: AccountConfig[]; users: User[]; nkeys: NkeyUser[] } {
  const o = obj(v, "accounts");
  const out = { accounts: [] as AccountConfig[], users: [] as User[], nkeys: [] as NkeyUser[] };
  for (const [name, val] of Object.entries(o)) {
    const key = `accounts.${name}`;
    const a: AccountConfig = { name, exports: [], imports: [] };
    for (const [k, av] of Object.entries(obj(val, key))) {
      switch (k.toLowerCase()) {
        case "users": {
          const l = userList(av, key, warn, name);
          out.users.push(...l.users);
          out.nkeys.push(...l.nkeys);
          break;
        }
        case "exports":
          if (!Array.isArray(av)) throw new OptionsError(`config: ${key}.exports must be a list`);
          a.exports = av.map((e, i) => exportEntry(e, `${key}.exports[${i}]`, warn));
          break;
        case "imports":
          if (!Array.isArray(av)) throw new OptionsError(`config: ${key}.imports must be a list`);
          a.imports = av.map((e, i) => importEntry(e, `${key}.imports[${i}]`));
          break;
        case "jetstream":
        case "mappings":
        case "limits":
        case "default_permissions":
          warn(`${key}.${k} is not supported by shoal and is ignored`);
          break;
        default:
          throw new OptionsError(`config: unknown field "${k}" in ${key}`);
      }
    }
    out.accounts.push(a);
  }
  return out;
}

function clusterBlock(v: ConfValue, warn: Warn): ClusterOptions {
  const o = obj(v, "cluster");
  const c = defaultClusterOptions();
  for (const [k, val] of Object.entries(o)) {
    switch (k.toLowerCase()) {
      case "name":
        c.name = str(val, "cluster.name");
        break;
      case "listen": {
        const hp = splitHostPort(str(val, "cluster.listen"), c.host);
        c.host = hp.host;
        if (hp.port !== -2) c.port = hp.port;
        break;
      }
      case "host":
      case "net":
        c.host = str(val, "cluster.host");
        break;
      case "port":
        c.port = num(val, "cluster.port");
        break;
      case "routes":
        c.routes = strList(val, "cluster.routes");
        break;
      case "advertise":
      case "cluster_advertise":
        c.advertise = str(val, "cluster.advertise");
        break;
      case "no_advertise":
        c.noAdvertise = bool(val, "cluster.no_advertise");
        break;
      case "connect_retries":
        c.connectRetries = num(val, "cluster.connect_retries");
        break;
      case "authorization": {
        const a = authorization(val, "cluster.authorization", warn);
        c.username = a.username;
        c.password = a.password;
        if (a.timeoutMs !== null) c.authTimeoutMs = a.timeoutMs;
        break;
      }
      case "tls":
        c.tls = parseTlsBlock(val, "cluster.tls", warn);
        break;
      case "pool_size":
      case "compression":
        warn(`cluster.${k} is not supported and is ignored`);
        break;
      default:
        throw new OptionsError(`config: unknown field "${k}" in cluster`);
    }
  }
  return c;
}

/** The `websocket {}` (or `ws {}`) block, as nats-server's parseWebsocket reads it. */
function websocketBlock(v: ConfValue, warn: Warn): WebsocketOptions {
  const o = obj(v, "websocket");
  const w = defaultWebsocketOptions();
  for (const [k, val] of Object.entries(o)) {
    switch (k.toLowerCase()) {
      case "listen": {
        const hp = splitHostPort(str(val, "websocket.listen"), w.host);
        w.host = hp.host;
        if (hp.port !== -2) w.port = hp.port;
        break;
      }
      case "host":
      case "net":
        w.host = str(val, "websocket.host");
        break;
      case "port":
        w.port = num(val, "websocket.port");
        break;
      case "advertise":
        w.advertise = str(val, "websocket.advertise");
        break;
      case "no_tls":
        w.noTls = bool(val, "websocket.no_tls");
        break;
      case "tls":
        obj(val, "websocket.tls");
        w.tls = true;
        break;
      case "compression":
        w.compression = bool(val, "websocket.compression");
        break;
      case "same_origin":
        w.sameOrigin = bool(val, "websocket.same_origin");
        break;
      case "allowed_origins":
      case "allowed_origin":
      case "allow_origins":
      case "allow_origin":
      case "origins":
      case "origin":
        w.allowedOrigins = strList(val, "websocket.allowed_origins");
        break;
      case "handshake_timeout":
        w.handshakeTimeoutMs =
          typeof val === "number" ? val * 1000 : duration(val, "websocket.handshake_timeout", warn);
        break;
      case "authorization":
      case "authentication": {
        const a = authorization(val, "websocket.authorization", warn);
        if (a.users.length + a.nkeys.length > 0) {
          throw new OptionsError(
            "config: websocket.authorization: users are not supported in the websocket block, only user/password or token",
          );
        }
        w.username = a.username;
        w.password = a.password;
        w.token = a.token;
        w.authTimeoutMs = a.timeoutMs;
        break;
      }
      case "no_auth_user":
        w.noAuthUser = str(val, "websocket.no_auth_user");
        break;
      case "jwt_cookie":
        warn(`websocket.${k} is not supported by shoal and is ignored`);
        break;
      default:
        throw new OptionsError(`config: unknown field "${k}" in websocket`);
    }
  }
  return w;
}

/** nats-server's validateWebsocketOptions, and what shoal does not support yet. */
function validateWebsocket(opts: Options): void {
  const w = opts.websocket;
  if (w === null || w.port === 0) return;
  if (!Number.isInteger(w.port) || w.port < -1 || w.port > 65535) {
    throw new OptionsError(
      `invalid websocket port ${w.port}: must be 0..65535, or -1 for a random port`,
    );
  }
  if (w.tls) {
    throw new OptionsError(
      "websocket: tls {} is not supported by shoal yet; set no_tls: true (and no tls block) to serve WebSocket without TLS",
    );
  }
  if (!w.noTls) throw new OptionsError("websocket requires TLS configuration");
  for (const ao of w.allowedOrigins) {
    if (!URL.canParse(ao)) {
      throw new OptionsError(`unable to parse allowed origin: ${JSON.stringify(ao)}`);
    }
  }
  if (w.noAuthUser && !opts.users.some((u) => u.user === w.noAuthUser)) {
    throw new OptionsError(`no_auth_user: "${w.noAuthUser}" not present as user`);
  }
  if (opts.users.length + opts.nkeys.length > 0) {
    if (w.username) {
      throw new OptionsError(
        "websocket authentication username not compatible with presence of users/nkeys",
      );
    }
    if (w.token) {
      throw new OptionsError(
        "websocket authentication token not compatible with presence of users/nkeys",
      );
    }
  }
}

/** Applies a parsed configuration file to options (nats-server's processConfigFileLine). */
export function applyConfig(opts: Options, conf: ConfObject, warn: Warn): void {
  // The users of `accounts {}`, added to the authorization block's once both are read.
  let accountUsers: User[] = [];
  let accountNkeys: NkeyUser[] = [];
  for (const [key, v] of Object.entries(conf)) {
    // `PORT = 4222` used later as `$PORT` is a variable, not a setting.
    if (isUsedVariable(conf, key)) continue;
    switch (key.toLowerCase()) {
      case "listen": {
        const hp = splitHostPort(str(v, key), opts.host);
        opts.host = hp.host;
        if (hp.port !== -2) opts.port = hp.port;
        break;
      }
      case "host":
      case "net":
        opts.host = str(v, key);
        break;
      case "port":
        opts.port = num(v, key);
        break;
      case "server_name":
        opts.serverName = str(v, key);
        break;
      case "client_advertise":
        opts.clientAdvertise = str(v, key);
        break;
      case "http":
      case "monitor": {
        const hp = splitHostPort(str(v, key), opts.httpHost);
        opts.httpHost = hp.host;
        if (hp.port !== -2) opts.httpPort = hp.port;
        break;
      }
      case "http_port":
      case "monitor_port":
        opts.httpPort = num(v, key);
        break;
      case "https": {
        const hp = splitHostPort(str(v, key), opts.httpHost);
        opts.httpHost = hp.host;
        if (hp.port !== -2) opts.httpsPort = hp.port;
        break;
      }
      case "https_port":
        opts.httpsPort = num(v, key);
        break;
      case "tls":
        opts.tls = parseTlsBlock(v, key, warn);
        break;
      case "allow_non_tls":
        opts.allowNonTls = bool(v, key);
        break;
      case "debug":
        opts.debug = bool(v, key);
        break;
      case "trace":
        opts.trace = bool(v, key);
        break;
      case "logtime":
        opts.logtime = bool(v, key);
        break;
      case "log_file":
      case "logfile":
        opts.logFile = str(v, key);
        break;
      case "pid_file":
      case "pidfile":
        opts.pidFile = str(v, key);
        break;
      case "max_payload":
        opts.maxPayload = sizeOf(v, key);
        break;
      case "max_control_line":
        opts.maxControlLine = sizeOf(v, key);
        break;
      case "max_pending":
        opts.maxPending = sizeOf(v, key);
        break;
      case "max_connections":
      case "max_conn":
        opts.maxConnections = num(v, key);
        break;
      case "max_subscriptions":
      case "max_subs":
        opts.maxSubscriptions = num(v, key);
        break;
      case "ping_interval":
        opts.pingIntervalMs = duration(v, key, warn);
        break;
      case "ping_max":
        opts.pingMax = num(v, key);
        break;
      case "write_deadline":
        opts.writeDeadlineMs = duration(v, key, warn);
        break;
      case "lame_duck_duration":
        opts.lameDuckDurationMs = duration(v, key, warn);
        break;
      case "lame_duck_grace_period":
        opts.lameDuckGracePeriodMs = duration(v, key, warn);
        break;
      case "authorization": {
        const a = authorization(v, key, warn);
        opts.username = a.username;
        opts.password = a.password;
        opts.authToken = a.token;
        opts.users = a.users;
        opts.nkeys = a.nkeys;
        if (a.timeoutMs !== null) {
          opts.authTimeoutMs = a.timeoutMs;
          opts.authTimeoutSet = true;
        }
        break;
      }
      case "no_auth_user":
        opts.noAuthUser = str(v, key);
        break;
      case "cluster":
        opts.cluster = clusterBlock(v, warn);
        break;
      case "websocket":
      case "ws":
        opts.websocket = websocketBlock(v, warn);
        break;
      case "server_tags":
        for (const t of typeof v === "string" ? [v] : strList(v, key)) {
          const tag = t.trim().toLowerCase();
          if (tag !== "" && !opts.serverTags.includes(tag)) opts.serverTags.push(tag);
        }
        break;
      case "ports_file_dir":
        opts.portsFileDir = str(v, key);
        break;
      case "jetstream":
        // `jetstream: enabled`, `jetstream: true`, `jetstream { ... }`: all accepted, none obeyed.
        if (v !== false && v !== "disabled" && v !== "false") {
          warn("JetStream is not supported by shoal: the jetstream settings are ignored");
        }
        break;
      case "leafnodes":
      case "leaf":
        obj(v, key);
        warn("Leaf nodes are not supported by shoal: the leafnodes block is ignored");
        break;
      case "accounts": {
        const a = accountsBlock(v, warn);
        opts.accounts = a.accounts;
        accountUsers = a.users;
        accountNkeys = a.nkeys;
        break;
      }
      case "system_account":
      case "system":
        opts.systemAccount = str(v, key);
        break;
      case "operator":
      case "operators":
      case "root":
      case "roots":
      case "root_operator":
      case "root_operators": {
        const list = typeof v === "string" ? [v] : strList(v, key);
        operatorOptions(opts).operators = list.map((f) => {
          try {
            return readOperatorJwt(f);
          } catch (err) {
            throw new OptionsError(`config: error parsing operator JWT: ${(err as Error).message}`);
          }
        });
        break;
      }
      case "resolver":
      case "account_resolver":
      case "accounts_resolver": {
        const r = parseResolver(v, key, warn);
        operatorOptions(opts).resolver = r.type;
        operatorOptions(opts).resolverDir = r.dir;
        operatorOptions(opts).resolverUrl = r.url;
        operatorOptions(opts).resolverAllowDelete = r.allowDelete;
        operatorOptions(opts).resolverIntervalMs = r.intervalMs;
        break;
      }
      case "resolver_tls":
        opts.resolverTls = parseTlsBlock(v, key, warn);
        break;
      case "resolver_preload": {
        if (typeof v !== "object" || v === null || Array.isArray(v)) {
          throw new OptionsError(
            "config: preload should be a map of account_public_key:account_jwt",
          );
        }
        const preload = operatorOptions(opts).preload;
        for (const [pub, token] of Object.entries(v)) {
          if (typeof token !== "string") {
            throw new OptionsError(
              `config: resolver_preload.${pub}: preload map value should be a string JWT`,
            );
          }
          try {
            decodeJwt(token, "account");
          } catch (err) {
            throw new OptionsError(
              `config: resolver_preload.${pub}: invalid account JWT: ${(err as Error).message}`,
            );
          }
          preload[pub] = token;
        }
        break;
      }
      case "gateway":
      case "mqtt":
        warn(`"${key}" is not supported by shoal and is ignored`);
        break;
      default:
        throw new OptionsError(`config: unknown field "${key}"`);
    }
  }
  opts.users.push(...accountUsers);
  opts.nkeys.push(...accountNkeys);
}

function operatorOptions(opts: Options): OperatorOptions {
  return (opts.operator ??= {
    operators: [],
    resolver: "",
    resolverDir: "",
    resolverUrl: "",
    resolverAllowDelete: false,
    resolverIntervalMs: DEFAULT_SYNC_INTERVAL_MS,
    preload: {},
    accounts: new Map(),
    problems: [],
    activationExpiries: [],
  });
}

/**
 * nats-server's validateTrustedOperators, then the preloaded accounts: those signed by a trusted
 * operator key become the configuration's accounts (imports of exports they may not use are left
 * out, as nats-server skips them); the others are left out with the reason, so that their users
 * are refused. The system account must be among them (unless `reload`).
 */
function validateOperator(opts: Options, nowMs: number, reload: boolean): void {
  const op = opts.operator;
  if (op === null) return;
  if (op.operators.length === 0) {
    throw new OptionsError("config: resolver and resolver_preload need an operator");
  }
  if (op.resolver === "") {
    throw new OptionsError("operators require an account resolver to be configured");
  }
  if (opts.accounts.length > 0) {
    throw new OptionsError("operators do not allow Accounts to be configured directly");
  }
  if (opts.users.length + opts.nkeys.length > 0) {
    throw new OptionsError("operators do not allow users to be configured directly");
  }
  if (opts.username !== "" || opts.authToken !== "") {
    throw new OptionsError("operators do not allow a user or token to be configured directly");
  }
  const trusted = new Set(op.operators.flatMap((o) => [o.pub, ...o.signingKeys]));
  if (opts.systemAccount === DEFAULT_SYSTEM_ACCOUNT && op.operators.length === 1) {
    opts.systemAccount = op.operators[0]!.systemAccount || DEFAULT_SYSTEM_ACCOUNT;
  }
  op.accounts = new Map();
  op.problems = [];
  op.activationExpiries = [];
  const rejected = new Map<string, string>();
  const tokens = op.resolverDir !== "" ? readResolverDir(op.resolverDir) : {};
  Object.assign(tokens, op.preload);
  for (const [pub, token] of Object.entries(tokens)) {
    let acc: JwtAccount;
    try {
      acc = accountFromJwt(pub, token);
    } catch (err) {
      rejected.set(pub, (err as Error).message);
      continue;
    }
    if (!trusted.has(acc.claims.iss)) {
      rejected.set(pub, "account validation failed: not signed by a trusted operator");
      continue;
    }
    const t = timeIssue(acc.claims, Math.floor(nowMs / 1000));
    // nats-server's two lines (its checkResolvePreloads lists each issue).
    if (t !== null) op.problems.push(`Account [${pub}] has validation issues:`, `  - ${t}`);
    op.accounts.set(pub, acc);
  }
  for (const [pub, why] of rejected) op.problems.push(`Account [${pub}] is left out: ${why}`);
  // A URL resolver fetches a missing system account when the server starts.
  const fetched = op.resolver === "URL";
  if (
    !reload &&
    opts.systemAccount !== DEFAULT_SYSTEM_ACCOUNT &&
    !op.accounts.has(opts.systemAccount) &&
    !(fetched && !rejected.has(opts.systemAccount))
  ) {
    const why = rejected.get(opts.systemAccount) ?? "account missing";
    throw new OptionsError(`error resolving system account: ${why}`);
  }
  const nowSec = Math.floor(nowMs / 1000);
  for (const acc of op.accounts.values()) opts.accounts.push(jwtAccountConfig(op, acc, nowSec));
}

/**
 * The AccountConfig of a trusted account JWT: its imports of exports it may not use (or of
 * accounts not known) are left out with the reason in `op.problems`, as nats-server skips them;
 * imports allowed by an expiring activation token join `op.activationExpiries`.
 */
export function jwtAccountConfig(
  op: OperatorOptions,
  acc: JwtAccount,
  nowSec: number,
): AccountConfig {
  const imports = acc.config.imports.filter((imp, i) => {
    const claim = acc.importClaims[i]!;
    const from = op.accounts.get(imp.account);
    if (from === undefined) {
      op.problems.push(
        `Can't locate account [${imp.account}] for import of [${claim.subject}] ${imp.kind} (account missing)`,
      );
      return false;
    }
    const e = exportFor(from, claim.kind, claim.subject);
    let ok = e !== undefined && !e.tokenReq;
    if (e?.tokenReq) {
      const act = checkActivation(from, e, acc.pub, claim, nowSec);
      ok = act.ok;
      if (act.ok && act.expires !== null) {
        op.activationExpiries.push({ account: acc.pub, import: imp, expires: act.expires });
      }
    }
    if (!ok) {
      op.problems.push(
        `Error adding ${imp.kind} import to account [${acc.pub}]: ${imp.kind} import not authorized`,
      );
    }
    return ok;
  });
  return { ...acc.config, imports };
}

/** Accounts, their users, imports and exports hang together (nats-server's checks). */
function validateAccounts(opts: Options, reload: boolean): void {
  const names = new Set<string>();
  for (const a of opts.accounts) {
    if (a.name === GLOBAL_ACCOUNT) {
      throw new OptionsError(
        `config: account "${GLOBAL_ACCOUNT}" is reserved for users outside accounts`,
      );
    }
    names.add(a.name);
  }
  for (const u of [...opts.users, ...opts.nkeys]) {
    const a = u.account;
    if (a !== undefined && a !== GLOBAL_ACCOUNT && a !== opts.systemAccount && !names.has(a)) {
      const who = "user" in u ? u.user : u.nkey;
      throw new OptionsError(`config: user "${who}" is bound to unknown account "${u.account}"`);
    }
  }
  const seen = new Set<string>();
  for (const u of opts.users) {
    if (seen.has(u.user)) throw new OptionsError(`config: duplicate user "${u.user}" detected`);
    seen.add(u.user);
  }
  for (const n of opts.nkeys) {
    if (seen.has(n.nkey)) throw new OptionsError(`config: duplicate nkey "${n.nkey}" detected`);
    seen.add(n.nkey);
  }
  // A URL resolver's system account may be fetched when the server starts; a running server's
  // operator-mode reload may lose it (reload.ts deletes it, as nats-server does).
  const unresolved = opts.operator?.resolver === "URL" || (reload && opts.operator !== null);
  if (
    opts.systemAccount !== DEFAULT_SYSTEM_ACCOUNT &&
    !names.has(opts.systemAccount) &&
    !unresolved
  ) {
    throw new OptionsError(
      `config: system_account "${opts.systemAccount}" is not a configured account`,
    );
  }
  for (const a of opts.accounts) {
    for (const imp of a.imports) {
      const from = opts.accounts.find((x) => x.name === imp.account);
      if (from === undefined) {
        throw new OptionsError(
          `config: account "${a.name}" imports ${imp.kind} "${imp.subject}" from unknown account "${imp.account}"`,
        );
      }
      const exp = from.exports.find(
        (e) =>
          e.kind === imp.kind &&
          patternIsSubsetOf(imp.subject, e.subject) &&
          (e.accounts.length === 0 || e.accounts.includes(a.name)),
      );
      if (exp === undefined) {
        throw new OptionsError(
          `config: account "${a.name}" imports ${imp.kind} "${imp.subject}" which account "${imp.account}" does not export to it`,
        );
      }
      if (
        imp.kind === "service" &&
        subjectHasWildcard(imp.to) !== subjectHasWildcard(imp.subject)
      ) {
        throw new OptionsError(
          `config: account "${a.name}": service import "${imp.to}" and "${imp.subject}" must both be literal or both have wildcards`,
        );
      }
    }
  }
}

function sizeOf(v: ConfValue, key: string): number {
  try {
    return parseSize(v, key);
  } catch (err) {
    throw new OptionsError(`config: ${(err as Error).message}`, { cause: err });
  }
}

/** Reads a configuration file into options (errors carry file:line:col from the parser). */
export function loadConfigFile(opts: Options, file: string, warn: Warn): void {
  let conf: ConfObject;
  try {
    conf = parseConfigFile(file);
  } catch (err) {
    throw new OptionsError((err as Error).message, { cause: err });
  }
  opts.configFile = file;
  applyConfig(opts, conf, warn);
}

/**
 * Checks the options hang together; returns them frozen. `reload`: options read again for a
 * running server, whose system account need not resolve (nats-server resolves it at start only;
 * a reload whose system account JWT is gone deletes the account, reload.ts).
 */
export function validateOptions(opts: Options, reload = false): Readonly<Options> {
  const port = (n: number, what: string) => {
    if (!Number.isInteger(n) || n < -1 || n > 65535) {
      throw new OptionsError(`invalid ${what} ${n}: must be 0..65535, or -1 for a random port`);
    }
  };
  port(opts.port, "port");
  port(opts.httpPort, "http port");
  port(opts.httpsPort, "https port");
  if (opts.httpPort !== 0 && opts.httpsPort !== 0) {
    throw new OptionsError(
      `can't specify both HTTP (${opts.httpPort}) and HTTPs (${opts.httpsPort}) ports`,
    );
  }
  if (opts.httpsPort !== 0 && opts.tls === null) {
    throw new OptionsError("https_port requires a tls block: the monitor serves its certificate");
  }
  // The certificate files are read now, so that a bad file stops the server (and -t) at once.
  if (opts.tls) loadTls(opts.tls);
  // As nats-server: with TLS, a client has the handshake's time and one second more to CONNECT.
  if (opts.tls && !opts.authTimeoutSet) opts.authTimeoutMs = opts.tls.timeoutMs + 1000;
  if (opts.resolverTls) loadClientTls(opts.resolverTls);
  if (opts.cluster?.tls) loadTls(opts.cluster.tls);
  if (opts.cluster) port(opts.cluster.port, "cluster port");
  if (opts.maxPayload <= 0) throw new OptionsError("max_payload must be positive");
  if (opts.maxPayload > 64 * 1024 * 1024) {
    throw new OptionsError("max_payload cannot exceed 64MB (nats-server's limit)");
  }
  if (opts.maxPending > 0 && opts.maxPayload > opts.maxPending) {
    throw new OptionsError(
      `max_payload (${opts.maxPayload}) cannot be higher than max_pending (${opts.maxPending})`,
    );
  }
  if (opts.maxControlLine <= 0) throw new OptionsError("max_control_line must be positive");
  if (opts.users.length + opts.nkeys.length > 0 && (opts.username || opts.authToken)) {
    throw new OptionsError("can not have a single user/pass or token and a users array");
  }
  if (opts.username && opts.authToken) {
    throw new OptionsError("can not have a token and a user/pass");
  }
  if (opts.noAuthUser && !opts.users.some((u) => u.user === opts.noAuthUser)) {
    throw new OptionsError(`no_auth_user: "${opts.noAuthUser}" not present as user`);
  }
  validateOperator(opts, Date.now(), reload);
  validateAccounts(opts, reload);
  validateWebsocket(opts);
  if (opts.websocket !== null && opts.websocket.port === 0) opts.websocket = null;
  // Not set by a config or flags (see parseFlags, where it follows the client host as in
  // nats-server): every interface, as the servers embedded in the daemons expect.
  if (opts.httpHost === "") opts.httpHost = "0.0.0.0";
  if (opts.cluster) Object.freeze(opts.cluster);
  if (opts.websocket) Object.freeze(opts.websocket);
  return Object.freeze(opts);
}
