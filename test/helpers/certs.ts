// Test certificates made at test time with `openssl` into a temporary directory: a CA, a server
// certificate for localhost/127.0.0.1 (usable for routes too: it is both a server and a client
// certificate), client certificates (one with an e-mail SAN, one with only a subject DN), and a
// certificate from another CA that the servers must refuse. `makeCerts()` returns the paths;
// `useCerts(t)` removes the directory when the test ends.

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { defer } from "./defer.js";

export interface Pair {
  cert: string;
  key: string;
}

export interface Certs {
  dir: string;
  ca: string;
  server: Pair;
  /** Subject CN=alice, SAN email:alice@example.com. */
  alice: Pair;
  /** Subject CN=bob,OU=eng,O=shoal (no SAN): maps by its RFC 2253 DN. */
  bob: Pair;
  /** Signed by a different CA (otherCa), CN=alice, for localhost/127.0.0.1 like the server's. */
  stranger: Pair;
  otherCa: string;
  /** The DN of bob's certificate as nats-server prints it (RFC 2253). */
  bobDn: string;
  remove(): void;
}

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

function makeCa(dir: string, name: string): void {
  openssl(dir, ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}-key.pem`]);
  openssl(dir, [
    "req",
    "-x509",
    "-new",
    "-key",
    `${name}-key.pem`,
    "-subj",
    `/CN=${name}`,
    "-days",
    "2",
    "-out",
    `${name}.pem`,
  ]);
}

function makeLeaf(dir: string, ca: string, name: string, subj: string, ext: string): Pair {
  openssl(dir, ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}-key.pem`]);
  openssl(dir, ["req", "-new", "-key", `${name}-key.pem`, "-subj", subj, "-out", `${name}.csr`]);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(dir, [
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    `${ca}.pem`,
    "-CAkey",
    `${ca}-key.pem`,
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    `${name}.ext`,
    "-out",
    `${name}.pem`,
  ]);
  return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}-key.pem`) };
}

const BOTH = "extendedKeyUsage=serverAuth,clientAuth\n";

export function makeCerts(): Certs {
  const dir = mkdtempSync(join(tmpdir(), "shoal-certs-"));
  try {
    makeCa(dir, "ca");
    makeCa(dir, "otherca");
    const server = makeLeaf(
      dir,
      "ca",
      "server",
      "/CN=localhost",
      `subjectAltName=DNS:localhost,IP:127.0.0.1\n${BOTH}`,
    );
    const alice = makeLeaf(
      dir,
      "ca",
      "alice",
      "/CN=alice",
      `subjectAltName=email:alice@example.com\n${BOTH}`,
    );
    const bob = makeLeaf(dir, "ca", "bob", "/O=shoal/OU=eng/CN=bob", BOTH);
    const stranger = makeLeaf(
      dir,
      "otherca",
      "stranger",
      "/CN=alice",
      `subjectAltName=DNS:localhost,IP:127.0.0.1\n${BOTH}`,
    );
    return {
      dir,
      ca: join(dir, "ca.pem"),
      server,
      alice,
      bob,
      stranger,
      otherCa: join(dir, "otherca.pem"),
      bobDn: "CN=bob,OU=eng,O=shoal",
      remove: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** makeCerts(), removed when the test ends. */
export function useCerts(t: TestContext): Certs {
  const c = makeCerts();
  defer(t, () => c.remove());
  return c;
}
