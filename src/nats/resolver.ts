// The account resolver of operator mode (`resolver:` in a config), as nats-server's: `MEMORY`
// (the accounts of `resolver_preload`), or a directory resolver — `resolver { type: full, dir }`
// or `type: cache` — whose directory holds one `<account public key>.jwt` file per account, as
// nats-server's DirJWTStore writes them (unsharded). shoal reads the directory when the options
// are validated, at start and on a reload (reload.ts applies what changed); a full resolver takes
// the $SYS.REQ.CLAIMS requests (claims.ts) and, every `interval`, syncs its directory with the
// other servers of its cluster (claimsync.ts). Or `URL(<base>)`: an account's JWT is fetched by
// GET <base><account public key> when first needed (fetchAccountJwt), as nats-server's
// URLAccResolver does, and kept.

import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { ConfValue } from "./conf.js";
import { parseGoDuration } from "../lib/duration.js";
import { AccountFetchError, OptionsError } from "./errors.js";
import type { ClientTls } from "./tls.js";

export interface ResolverConfig {
  type: "MEMORY" | "FULL" | "CACHE" | "URL";
  /** The directory of a FULL or CACHE resolver ("" otherwise). */
  dir: string;
  /** The base URL of a URL resolver, ending in "/" ("" otherwise). */
  url: string;
  /** A full resolver's `allow_delete`: it answers $SYS.REQ.CLAIMS.DELETE (claims.ts). */
  allowDelete: boolean;
  /** How often a full resolver asks the cluster for the JWTs it lacks (claimsync.ts). */
  intervalMs: number;
}

/** A full resolver's sync interval when `interval` is missing, zero or negative (nats-server's). */
export const DEFAULT_SYNC_INTERVAL_MS = 60_000;

/** How long a URL resolver waits for an account JWT (nats-server's http.Client timeout). */
export const ACCOUNT_FETCH_TIMEOUT_MS = 2000;

/** An account's public key. */
export const ACCOUNT_KEY = /^A[A-Z2-7]{55}$/;

/**
 * `resolver` (or `account_resolver`, `accounts_resolver`) of a config: `MEM`/`MEMORY`, or a
 * `{ type, dir, ... }` block, or `URL(<base url>)`, checked as nats-server checks them.
 */
export function parseResolver(
  v: ConfValue,
  key: string,
  warn: (msg: string) => void,
): ResolverConfig {
  if (typeof v === "string") {
    const r = v.trim();
    const none = { dir: "", url: "", allowDelete: false, intervalMs: DEFAULT_SYNC_INTERVAL_MS };
    if (/^MEM(ORY)?$/i.test(r)) return { ...none, type: "MEMORY" };
    const m = /^URL\((.*)\)$/i.exec(r);
    if (m !== null) {
      const raw = m[1]!.trim().replace(/^"(.*)"$/, "$1");
      return { ...none, type: "URL", url: resolverUrl(raw, key) };
    }
    throw new OptionsError(`config: ${key}: unknown resolver ${JSON.stringify(v)}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new OptionsError(`config: ${key}: expected MEMORY, URL(...) or a { type, dir } block`);
  }
  let dir = "";
  let type = "";
  let allowDelete = false;
  let intervalMs = DEFAULT_SYNC_INTERVAL_MS;
  for (const [k, val] of Object.entries(v)) {
    switch (k.toLowerCase()) {
      case "dir":
        if (typeof val !== "string") throw new OptionsError(`config: ${key}.dir must be a string`);
        dir = val;
        break;
      case "type":
        if (typeof val !== "string") throw new OptionsError(`config: ${key}.type must be a string`);
        type = val.toUpperCase();
        break;
      case "limit":
      case "ttl":
      case "timeout":
        // Bounds on the cache and on fetches from other servers: nothing to bound in shoal,
        // which reads the directory once.
        break;
      case "interval": {
        // A Go duration string, as nats-server's time.ParseDuration reads it.
        if (typeof val !== "string") {
          throw new OptionsError(`config: ${key}.interval must be a duration such as "2m"`);
        }
        const ms = parseGoDuration(val);
        if (ms === undefined) {
          throw new OptionsError(`config: ${key}.interval: time: invalid duration "${val}"`);
        }
        if (ms > 0) intervalMs = ms;
        break;
      }
      case "allow_delete":
        if (typeof val !== "boolean") {
          throw new OptionsError(`config: ${key}.allow_delete must be true or false`);
        }
        allowDelete = val;
        break;
      case "hard_delete":
        // nats-server 2.9.10 does not read it: a deleted JWT is renamed to <key>.jwt.deleted.
        warn(`${key}.hard_delete is ignored, as by nats-server 2.9: deleted JWTs are renamed`);
        break;
      default:
        throw new OptionsError(`config: ${key}: unknown field "${k}"`);
    }
  }
  if (dir === "") {
    throw new OptionsError(`config: ${key}: dir has no value and needs to point to a directory`);
  }
  if (type !== "FULL" && type !== "CACHE") {
    throw new OptionsError(
      `config: ${key}.type: expected full or cache, got ${JSON.stringify(type.toLowerCase())}`,
    );
  }
  if (type === "CACHE" && allowDelete) {
    throw new OptionsError(`config: ${key}: CACHE does not accept allow_delete`);
  }
  return { type, dir, url: "", allowDelete, intervalMs };
}

/** The base URL of `URL(...)`: http or https, given a trailing "/" as nats-server does. */
function resolverUrl(raw: string, key: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new OptionsError(`config: ${key}: URL resolver: invalid URL ${JSON.stringify(raw)}`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new OptionsError(
      `config: ${key}: URL resolver: expected an http or https URL, got ${JSON.stringify(raw)}`,
    );
  }
  return raw.endsWith("/") ? raw : `${raw}/`;
}

/**
 * GET <base><account public key>: the account's JWT (the body, trimmed), as nats-server's
 * URLAccResolver.Fetch, with its error words. Fails after `timeoutMs`. An https base uses `tls`
 * (resolver_tls: client certificate, CA) when given.
 */
export async function fetchAccountJwt(
  base: string,
  pub: string,
  timeoutMs: number = ACCOUNT_FETCH_TIMEOUT_MS,
  tls?: ClientTls,
): Promise<string> {
  const url = base + pub;
  let res: { status: number; statusText: string; text: () => Promise<string> };
  try {
    res =
      tls !== undefined && url.startsWith("https:")
        ? await httpsGet(url, tls, timeoutMs)
        : await fetchText(url, timeoutMs);
  } catch (err) {
    const e = err as Error;
    const why = e.name === "TimeoutError" ? "timeout awaiting response" : (e.cause ?? e).toString();
    throw new AccountFetchError(`could not fetch <${JSON.stringify(url)}>: ${why}`);
  }
  if (res.status !== 200) {
    throw new AccountFetchError(
      `could not fetch <${JSON.stringify(url)}>: ${res.status} ${res.statusText}`,
    );
  }
  return (await res.text()).trim();
}

async function fetchText(url: string, timeoutMs: number) {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (res.status !== 200) await res.body?.cancel();
  return res;
}

/** A GET over node:https with resolver_tls's certificate and CA (fetch takes neither). */
function httpsGet(
  url: string,
  tls: ClientTls,
  timeoutMs: number,
): Promise<{ status: number; statusText: string; text: () => Promise<string> }> {
  const https = process.getBuiltinModule("node:https");
  return new Promise((resolve, reject) => {
    const req = https.get(
      url,
      {
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        rejectUnauthorized: !tls.insecure,
        signal: AbortSignal.timeout(timeoutMs),
      },
      (res) => {
        const chunks: Buffer[] = [];
        const body = new Promise<string>((ok, fail) => {
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => ok(Buffer.concat(chunks).toString("utf8")));
          res.on("error", fail);
        });
        if (res.statusCode !== 200) res.resume();
        resolve({
          status: res.statusCode ?? 0,
          statusText: res.statusMessage ?? "",
          text: () => body,
        });
      },
    );
    req.on("error", (err: Error) =>
      reject(
        err.name === "AbortError"
          ? Object.assign(new Error("timeout"), { name: "TimeoutError" })
          : err,
      ),
    );
  });
}

/**
 * The account JWTs of a directory resolver: each `<account key>.jwt` file of `dir` (created when
 * missing, as nats-server does). Other files are skipped.
 */
export function readResolverDir(dir: string): Record<string, string> {
  try {
    mkdirSync(dir, { recursive: true });
    if (!statSync(dir).isDirectory()) throw new Error("not a directory");
  } catch (err) {
    throw new OptionsError(
      `config: resolver dir ${dir} needs to point to an accessible directory: ${(err as Error).message}`,
    );
  }
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir)) {
    const pub = name.replace(/\.jwt$/, "");
    if (pub === name || !ACCOUNT_KEY.test(pub)) continue;
    out[pub] = readFileSync(join(dir, name), "utf8").trim();
  }
  return out;
}
