// The account resolver of operator mode (`resolver:` in a config), as nats-server's: `MEMORY`
// (the accounts of `resolver_preload`), or a directory resolver — `resolver { type: full, dir }`
// or `type: cache` — whose directory holds one `<account public key>.jwt` file per account, as
// nats-server's DirJWTStore writes them (unsharded). shoal reads the directory when the options
// are validated at start (a reload does not yet apply changed files); it does not answer
// $SYS.REQ.CLAIMS.UPDATE/LOOKUP nor sync with other servers. The URL resolver is refused at
// config load.

import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { ConfValue } from "./conf.js";
import { OptionsError } from "./errors.js";

export interface ResolverConfig {
  type: "MEMORY" | "FULL" | "CACHE";
  /** The directory of a FULL or CACHE resolver ("" for MEMORY). */
  dir: string;
}

const ACCOUNT_KEY = /^A[A-Z2-7]{55}$/;

/**
 * `resolver` (or `account_resolver`, `accounts_resolver`) of a config: `MEM`/`MEMORY`, or a
 * `{ type, dir, ... }` block, checked as nats-server checks it. `URL(...)` is refused: shoal does
 * not fetch account JWTs over HTTP.
 */
export function parseResolver(
  v: ConfValue,
  key: string,
  warn: (msg: string) => void,
): ResolverConfig {
  if (typeof v === "string") {
    const r = v.trim();
    if (/^MEM(ORY)?$/i.test(r)) return { type: "MEMORY", dir: "" };
    if (/^URL\b/i.test(r)) {
      throw new OptionsError(
        `config: ${key}: the URL resolver (${r}) is not supported by shoal: use MEMORY with resolver_preload, or resolver { type: full, dir: <directory of account JWTs> }`,
      );
    }
    throw new OptionsError(`config: ${key}: unknown resolver ${JSON.stringify(v)}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new OptionsError(`config: ${key}: expected MEMORY, URL(...) or a { type, dir } block`);
  }
  let dir = "";
  let type = "";
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
      case "interval":
        warn(`${key}.interval: shoal does not sync account JWTs with other servers`);
        break;
      case "allow_delete":
      case "hard_delete":
        if (val === true) {
          throw new OptionsError(
            `config: ${key}.${k}: shoal does not serve $SYS.REQ.CLAIMS.DELETE, so it deletes no account JWT`,
          );
        }
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
  return { type, dir };
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
