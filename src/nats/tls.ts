// TLS for the message server, as nats-server does it: the `tls { ... }` blocks of a
// configuration (clients, cluster routes, https monitoring) into a node:tls SecureContext, with
// nats-server's errors for bad certificate files (naming the file); the server side of a
// client's upgrade (after INFO, or before it with handshake_first; a plain client stays plain
// with allow_non_tls); the dial of a TLS route; and the identities of a client certificate that
// verify_and_map matches against the users list.

import { nodeCrypto } from "../lib/lazy.js";
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import type { SecureContext, TLSSocket } from "node:tls";
import { parseDuration, type ConfObject, type ConfValue } from "./conf.js";
import { OptionsError } from "./errors.js";

/** node:tls, loaded when first used: a server without TLS does without it (2 MiB at rest). */
const nodeTls = () => process.getBuiltinModule("node:tls");

export interface TlsConfig {
  certFile: string;
  keyFile: string;
  caFile: string;
  /** Require and verify a client certificate. */
  verify: boolean;
  /** Verify, and take the user from the certificate (verify_and_map). */
  verifyAndMap: boolean;
  /** Handshake timeout (nats-server's default is 2 s). */
  timeoutMs: number;
  /** The TLS handshake comes before INFO (nats-server 2.10's handshake_first). */
  handshakeFirst: boolean;
  /** Outgoing connections do not check the peer's certificate. */
  insecure: boolean;
}

export const DEFAULT_TLS_TIMEOUT_MS = 2000;

export function defaultTlsConfig(): TlsConfig {
  return {
    certFile: "",
    keyFile: "",
    caFile: "",
    verify: false,
    verifyAndMap: false,
    timeoutMs: DEFAULT_TLS_TIMEOUT_MS,
    handshakeFirst: false,
    insecure: false,
  };
}

function confString(v: ConfValue, key: string): string {
  if (typeof v === "string") return v;
  throw new OptionsError(`config: "${key}" must be a string`);
}

function confBool(v: ConfValue, key: string): boolean {
  if (typeof v === "boolean") return v;
  throw new OptionsError(`config: "${key}" must be true or false, got ${JSON.stringify(v)}`);
}

/** The keys nats-server accepts in a tls block that shoal takes without acting on them. */
const ACCEPTED = new Set([
  "cipher_suites",
  "curve_preferences",
  "min_version",
  "pinned_certs",
  "verify_cert_and_check_known_urls",
  "connection_rate_limit",
  "cert_store",
  "cert_match",
  "cert_match_by",
  "ocsp_peer",
]);

/** A `tls { ... }` block (key names it in errors: "tls", "cluster.tls", ...). */
export function parseTlsBlock(v: ConfValue, key: string, warn: (msg: string) => void): TlsConfig {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new OptionsError(`config: "${key}" must be a block { ... }`);
  }
  const t = defaultTlsConfig();
  for (const [k, val] of Object.entries(v as ConfObject)) {
    const lk = k.toLowerCase();
    const name = `${key}.${k}`;
    switch (lk) {
      case "cert_file":
        t.certFile = confString(val, name);
        break;
      case "key_file":
        t.keyFile = confString(val, name);
        break;
      case "ca_file":
        t.caFile = confString(val, name);
        break;
      case "verify":
        t.verify = confBool(val, name);
        break;
      case "verify_and_map":
        t.verifyAndMap = confBool(val, name);
        if (t.verifyAndMap) t.verify = true;
        break;
      case "insecure":
        t.insecure = confBool(val, name);
        break;
      case "handshake_first":
      case "first":
      case "immediate":
        // nats-server also takes a duration ("auto" fallback to plain): shoal takes true/false.
        t.handshakeFirst = confBool(val, name);
        break;
      case "timeout":
        if (typeof val === "number") t.timeoutMs = val * 1000;
        else {
          try {
            t.timeoutMs = parseDuration(val, name);
          } catch (err) {
            throw new OptionsError(`config: ${(err as Error).message}`, { cause: err });
          }
        }
        break;
      default:
        if (ACCEPTED.has(lk)) warn(`${name} is not supported by shoal and is ignored`);
        else throw new OptionsError(`config: unknown field "${k}" in ${key}`);
    }
  }
  return t;
}

/** A certificate file problem, with nats-server's text and the file it is about. */
export class TlsConfigError extends OptionsError {
  override readonly name = "TlsConfigError";
}

function readFile(file: string, what: string, prefix: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === "ENOENT" ? "no such file or directory" : e.message;
    throw new TlsConfigError(`${prefix}open ${file}: ${why} (${what})`, { cause: err });
  }
}

function pemBlocks(pem: Buffer, type: RegExp): string[] {
  const text = pem.toString("latin1");
  const out: string[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) if (type.test(m[1]!)) out.push(m[0]);
  return out;
}

/** The parts of a tls block checked and loaded: what createSecureContext takes. */
export interface LoadedTls {
  cfg: TlsConfig;
  context: SecureContext;
  /** The CA certificates of ca_file (for verifying peers), or undefined for the system's. */
  ca: Buffer | undefined;
  cert: Buffer;
  key: Buffer;
}

/**
 * Loads the files of a tls block into a SecureContext, failing as nats-server does (its texts,
 * plus the name of the file): a missing file, a file without PEM data, a key that does not match
 * the certificate, a CA file without a certificate.
 */
export function loadTls(cfg: TlsConfig): LoadedTls {
  if (cfg.certFile !== "" && cfg.keyFile === "") {
    throw new TlsConfigError("missing 'key_file' in TLS configuration");
  }
  if (cfg.certFile === "" && cfg.keyFile !== "") {
    throw new TlsConfigError("missing 'cert_file' in TLS configuration");
  }
  if (cfg.certFile === "") throw new TlsConfigError("missing 'cert_file' in TLS configuration");
  const pair = "error parsing X509 certificate/key pair: ";
  const cert = readFile(cfg.certFile, "cert_file", pair);
  const key = readFile(cfg.keyFile, "key_file", pair);
  const certs = pemBlocks(cert, /^CERTIFICATE$/);
  if (certs.length === 0) {
    throw new TlsConfigError(
      `${pair}tls: failed to find any PEM data in certificate input (cert_file ${cfg.certFile})`,
    );
  }
  if (pemBlocks(key, /PRIVATE KEY$/).length === 0) {
    throw new TlsConfigError(
      `${pair}tls: failed to find any PEM data in key input (key_file ${cfg.keyFile})`,
    );
  }
  try {
    new (nodeCrypto().X509Certificate)(certs[0]!);
  } catch (err) {
    throw new TlsConfigError(
      `error parsing certificate: ${(err as Error).message} (cert_file ${cfg.certFile})`,
      { cause: err },
    );
  }
  let ca: Buffer | undefined;
  if (cfg.caFile !== "") {
    ca = readFile(cfg.caFile, "ca_file", "");
    if (pemBlocks(ca, /^CERTIFICATE$/).length === 0) {
      throw new TlsConfigError(`failed to parse root ca certificate (ca_file ${cfg.caFile})`);
    }
  }
  let context: SecureContext;
  try {
    context = nodeTls().createSecureContext({ cert, key, ca, minVersion: "TLSv1.2" });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "ERR_OSSL_X509_KEY_VALUES_MISMATCH" || /key values mismatch/i.test(e.message)) {
      throw new TlsConfigError(
        `${pair}tls: private key does not match public key (cert_file ${cfg.certFile}, key_file ${cfg.keyFile})`,
        { cause: err },
      );
    }
    throw new TlsConfigError(
      `${pair}${e.message} (cert_file ${cfg.certFile}, key_file ${cfg.keyFile})`,
      {
        cause: err,
      },
    );
  }
  return { cfg, context, ca, cert, key };
}

/** The files of a tls block for outgoing HTTPS (resolver_tls): all optional. */
export interface ClientTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  insecure: boolean;
}

/**
 * Loads a tls block used by a client (resolver_tls): a certificate pair when one is given, and
 * ca_file to verify the server, with nats-server's errors (as loadTls).
 */
export function loadClientTls(cfg: TlsConfig): ClientTls {
  if (cfg.certFile !== "" || cfg.keyFile !== "") {
    const l = loadTls(cfg);
    return { ca: l.ca, cert: l.cert, key: l.key, insecure: cfg.insecure };
  }
  if (cfg.caFile === "") return { insecure: cfg.insecure };
  const ca = readFile(cfg.caFile, "ca_file", "");
  if (pemBlocks(ca, /^CERTIFICATE$/).length === 0) {
    throw new TlsConfigError(`failed to parse root ca certificate (ca_file ${cfg.caFile})`);
  }
  return { ca, insecure: cfg.insecure };
}

/** Why a handshake did not complete. */
export class TlsHandshakeError extends Error {
  readonly code = "TLS_HANDSHAKE";
  override readonly name = "TlsHandshakeError";
}

/**
 * The server side of a TLS handshake on an accepted socket (after INFO, or first). `head` is
 * what was already read from the socket (a peeked ClientHello). Resolves with the secure socket;
 * rejects on a handshake error or after the timeout (the socket is then destroyed).
 */
export function acceptTls(
  socket: Socket,
  tls: LoadedTls,
  requestCert: boolean,
  head?: Buffer,
): Promise<TLSSocket> {
  if (head !== undefined && head.length > 0) socket.unshift(head);
  const t = new (nodeTls().TLSSocket)(socket, {
    isServer: true,
    secureContext: tls.context,
    requestCert,
    rejectUnauthorized: requestCert,
  });
  return handshake(t, socket, tls.cfg.timeoutMs, "secure", requestCert);
}

/** Dials host:port and does the client side of a handshake (routes: verified, with our cert). */
export function dialTls(socket: Socket, tls: LoadedTls, servername: string): Promise<TLSSocket> {
  const t = nodeTls().connect({
    socket,
    secureContext: tls.context,
    ca: tls.ca,
    host: servername,
    servername: /^[\d.]+$|:/.test(servername) ? undefined : servername,
    ...(tls.cfg.insecure ? { checkServerIdentity: () => undefined } : {}),
    rejectUnauthorized: !tls.cfg.insecure,
  });
  return handshake(t, socket, tls.cfg.timeoutMs, "secureConnect", false);
}

function handshake(
  t: TLSSocket,
  raw: Socket,
  timeoutMs: number,
  event: "secure" | "secureConnect",
  verifyPeer: boolean,
): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      clearTimeout(timer);
      t.off(event, done);
      t.destroy();
      raw.destroy();
      reject(new TlsHandshakeError(err.message, { cause: err }));
    };
    const done = () => {
      // A server-side TLSSocket (unlike tls.Server) leaves the verdict on the peer to its user.
      if (verifyPeer) {
        const why = peerVerifyError(t);
        if (why !== null) {
          fail(new Error(why));
          return;
        }
      }
      clearTimeout(timer);
      t.off("error", fail);
      t.off("close", closed);
      resolve(t);
    };
    const closed = () => fail(new Error("EOF"));
    const timer = setTimeout(() => fail(new Error("timeout")), timeoutMs);
    timer.unref();
    t.once(event, done);
    t.once("error", fail);
    t.once("close", closed);
  });
}

/**
 * Why the peer's certificate did not verify against our CAs, or null when it did. Node checks
 * the chain during the handshake and keeps the result on the socket's handle (where tls.Server
 * reads it); without that handle, the certificate must be issued and signed by one of the CAs.
 */
function peerVerifyError(t: TLSSocket): string | null {
  const handle = (t as unknown as { _handle?: { verifyError?: () => Error | null } })._handle;
  if (typeof handle?.verifyError === "function") {
    const err = handle.verifyError();
    return err === null ? null : err.message;
  }
  const peer = t.getPeerX509Certificate();
  if (peer === undefined) return "client didn't provide a certificate";
  return "unable to verify the client certificate";
}

/** The first byte of a TLS ClientHello (a handshake record). */
export const TLS_HANDSHAKE_RECORD = 0x16;

/**
 * What verify_and_map matches against user names, in nats-server's order: the certificate's
 * e-mail addresses, DNS names and URIs (subject alternative names), then its subject as an
 * RFC 2253 DN ("CN=bob,OU=eng,O=shoal": the certificate's order reversed).
 */
export function certIdentities(raw: Buffer): string[] {
  const cert = new (nodeCrypto().X509Certificate)(raw);
  const san = splitSan(cert.subjectAltName ?? "");
  const pick = (kind: string) => san.filter((e) => e.kind === kind).map((e) => e.value);
  const out = [...pick("email"), ...pick("DNS"), ...pick("URI")];
  const rdns = cert.subject.split("\n").filter(Boolean);
  out.push(rdns.reverse().map(escapeRdn).join(","));
  return out;
}

/** Whether a user name written as a DN names the same subject as `dn` (RDNs in any order). */
export function sameDn(name: string, dn: string): boolean {
  if (!name.includes("=")) return false;
  const norm = (s: string) =>
    splitDn(s)
      .map((r) => r.trim().replace(/^([^=]+)=/, (_m, a: string) => `${a.toUpperCase()}=`))
      .sort()
      .join(",");
  return norm(name) === norm(dn);
}

function splitDn(s: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === "\\" && i + 1 < s.length) {
      cur += ch + s[++i]!;
    } else if (ch === ",") {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

function escapeRdn(rdn: string): string {
  const eq = rdn.indexOf("=");
  if (eq < 0) return rdn;
  const value = rdn.slice(eq + 1).replace(/([,+"\\<>;])/g, "\\$1");
  return `${rdn.slice(0, eq)}=${value}`;
}

function splitSan(s: string): { kind: string; value: string }[] {
  const out: { kind: string; value: string }[] = [];
  for (const part of s.split(/,\s*/)) {
    const colon = part.indexOf(":");
    if (colon < 0) continue;
    out.push({ kind: part.slice(0, colon).trim(), value: part.slice(colon + 1).trim() });
  }
  return out;
}
