// The cluster's certificate authority, as Swarm's: `init` makes a root CA (ECDSA P-256,
// self-signed, 20 years), and every node gets a certificate from it naming the node (CN = node
// id), its role (OU = swarm-manager | swarm-worker) and the cluster (O = cluster id). A node
// makes its own key and sends a certificate request (PKCS #10), so its key never leaves it; the
// manager signs what it decides (the subject and SANs come from the manager, never from the
// request). Join tokens carry the CA's digest: the SHA-256 of the CA certificate (DER) in 50
// base36 characters, so a joining node can check the manager's CA before it sends a secret.
//
// X.509 is done by @peculiar/x509 over Node's webcrypto (it needs the reflect-metadata polyfill
// that its dependency injection uses); certificates are read back with node:crypto.

import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createHash, randomBytes, webcrypto, X509Certificate } from "node:crypto";
import { chmod, mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { isIP } from "node:net";
import { writeFileDurable } from "../lib/durable.js";
import { base36, newId } from "./ids.js";
import type { NodeRole } from "../api/types.js";
import { certPaths } from "../api/paths.js";

/** The provider type @peculiar/x509 takes (the DOM's Crypto, which Node's webcrypto is). */
type ProviderCrypto = Extract<Parameters<typeof x509.cryptoProvider.set>[0], object>;
x509.cryptoProvider.set(webcrypto as unknown as ProviderCrypto);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/** Swarm's default node certificate lifetime (`--cert-expiry`). */
export const DEFAULT_CERT_EXPIRY_MS = 90 * 24 * 3600_000;
/** The root CA's lifetime (swarmkit's: 20 years). */
export const ROOT_CA_EXPIRY_MS = 20 * 365 * 24 * 3600_000;
/** The shortest node certificate lifetime `--cert-expiry` takes (Swarm refuses below 1h; shoal
 * takes less so that renewal can be seen in a test). */
export const MIN_CERT_EXPIRY_MS = 1000;

/** The OU of a node certificate, by role (Swarm's names). */
export const roleOu = (role: NodeRole) => (role === "manager" ? "swarm-manager" : "swarm-worker");

/** The cluster's CA as kept in the store (meta key `ca`): every manager can sign with it. */
export interface CaMeta {
  /** The cluster id: the O of every node certificate. */
  clusterId: string;
  certPem: string;
  keyPem: string;
  /** Node certificates' lifetime, ms (`--cert-expiry`). */
  certExpiryMs: number;
  /** During `swarm ca --rotate` (certPem/keyPem being the new root): the root it replaces,
   * still trusted, and the new root's certificate signed by the old root's key, which managers
   * serve after their own certificate so a node that trusts the old root only still verifies
   * them. Both go when every node has a certificate from the new root. */
  rotation?: { previousPem: string; crossSignedPem: string; startedAt: number };
}
export const CA_META = "ca";

export { certPaths };

export class CaError extends Error {
  readonly code = "ERR_CA";
  override readonly name = "CaError";
}

function pem(der: ArrayBuffer, tag: string): string {
  return x509.PemConverter.encode(der, tag);
}

async function importKey(keyPem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(keyPem);
  return webcrypto.subtle.importKey("pkcs8", der, ALG, false, ["sign"]) as Promise<CryptoKey>;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive
  return b.toString("hex");
}

const caExtensions = async (publicKey: CryptoKey) => [
  new x509.BasicConstraintsExtension(true, 1, true),
  new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
  await x509.SubjectKeyIdentifierExtension.create(publicKey),
];

/** A new self-signed root: its certificate and key (PEM). */
async function newRoot(now: Date): Promise<{ certPem: string; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: "CN=swarm-ca",
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + ROOT_CA_EXPIRY_MS),
    keys,
    signingAlgorithm: ALG,
    extensions: await caExtensions(keys.publicKey),
  });
  const key = await webcrypto.subtle.exportKey("pkcs8", keys.privateKey);
  return { certPem: cert.toString("pem"), keyPem: pem(key, "PRIVATE KEY") };
}

/** A new root CA for a cluster. */
export async function createRootCa(
  now: Date,
  certExpiryMs = DEFAULT_CERT_EXPIRY_MS,
): Promise<CaMeta> {
  return { clusterId: newId(), ...(await newRoot(now)), certExpiryMs };
}

/**
 * `swarm ca --rotate`: a new root that signs from now on, the old one still trusted, and the new
 * root cross-signed by the old (same subject and key, issued by the old root), so that a node
 * trusting only the old root verifies a certificate from the new one through it. Refused while
 * a rotation is under way (nodes may hold certificates from either root).
 */
export async function rotateRootCa(ca: CaMeta, now: Date): Promise<CaMeta> {
  if (ca.rotation) {
    throw new CaError(
      "a root CA rotation is already in progress: wait until every node has a certificate from the new root (shoal swarm ca shows the progress)",
    );
  }
  const next = await newRoot(now);
  const root = new x509.X509Certificate(next.certPem);
  const old = new x509.X509Certificate(ca.certPem);
  const cross = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: root.subject,
    issuer: old.subject,
    notBefore: root.notBefore,
    notAfter: old.notAfter < root.notAfter ? old.notAfter : root.notAfter,
    signingKey: await importKey(ca.keyPem),
    publicKey: root.publicKey,
    signingAlgorithm: ALG,
    extensions: [
      ...(await caExtensions(await root.publicKey.export())),
      await x509.AuthorityKeyIdentifierExtension.create(old),
    ],
  });
  return {
    ...ca,
    ...next,
    rotation: {
      previousPem: ca.certPem,
      crossSignedPem: cross.toString("pem"),
      startedAt: now.getTime(),
    },
  };
}

/** The roots a node should trust now, PEM (the signing root first, then a rotation's old one). */
export function trustPem(ca: CaMeta): string {
  return ca.rotation ? joinPem(ca.certPem, ca.rotation.previousPem) : ca.certPem;
}

/** PEM blocks as one bundle (each on its own lines). */
export function joinPem(...pems: string[]): string {
  return pems.map((p) => p.trim() + "\n").join("");
}

/** The digests of the roots a node should trust now, the signing root's first. */
export function trustDigests(ca: CaMeta): string[] {
  return splitPem(trustPem(ca)).map(caDigest);
}

/** The digest join tokens carry: the old root's during a rotation (a joining node finds it at
 * the end of the managers' chains), else the root's. */
export function tokenDigest(ca: CaMeta): string {
  return caDigest(ca.rotation?.previousPem ?? ca.certPem);
}

/** The certificates in a PEM bundle, each as PEM. */
export function splitPem(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
}

/** The digest of the root in `trust` (a PEM bundle) that issued `certPem`, or "" for none. */
export function issuerDigest(certPem: string, trust: string): string {
  const root = splitPem(trust).find((r) => signedBy(certPem, r));
  return root ? caDigest(root) : "";
}

/** What a node says of its certificates (Docker's TLSInfo): who issued its certificate and
 * which roots it trusts, as digests. */
export function tlsInfoOf(
  certPem: string,
  trust: string,
): { certIssuer: string; trustRoots: string[] } {
  return { certIssuer: issuerDigest(certPem, trust), trustRoots: splitPem(trust).map(caDigest) };
}

/** The CA's digest as a token carries it: SHA-256 of the certificate's DER, 50 base36 chars. */
export function caDigest(certPem: string): string {
  const der = new X509Certificate(certPem).raw;
  return base36(createHash("sha256").update(der).digest(), 50);
}

/** A node's new key and its certificate request (the CN is a placeholder: the manager names). */
export async function newKeyAndCsr(): Promise<{ keyPem: string; csrPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: "CN=shoal-node",
    keys,
    signingAlgorithm: ALG,
  });
  const key = await webcrypto.subtle.exportKey("pkcs8", keys.privateKey);
  return { keyPem: pem(key, "PRIVATE KEY"), csrPem: csr.toString("pem") };
}

export interface NodeCertRequest {
  nodeId: string;
  role: NodeRole;
  /** The node's addresses: IP addresses become IP SANs (host names are not named). */
  addrs: string[];
  now: Date;
}

/**
 * Signs a node certificate for a CSR: the subject and SANs are the manager's (CN node id, OU
 * role, O cluster id; DNS SANs the role and the node id, as swarmkit; IP SANs the node's
 * addresses), only the public key comes from the request, whose signature must verify.
 */
export async function issueNodeCert(
  ca: CaMeta,
  csrPem: string,
  req: NodeCertRequest,
): Promise<string> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw new CaError(`invalid certificate request: ${(err as Error).message}`, { cause: err });
  }
  if (!(await csr.verify())) throw new CaError("invalid certificate request: bad signature");
  const caCert = new x509.X509Certificate(ca.certPem);
  const ou = roleOu(req.role);
  const ips = [...new Set(req.addrs.filter((a) => isIP(a) !== 0))];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${req.nodeId}, OU=${ou}, O=${ca.clusterId}`,
    issuer: caCert.subject,
    notBefore: new Date(req.now.getTime() - 60_000),
    notAfter: new Date(req.now.getTime() + ca.certExpiryMs),
    signingKey: await importKey(ca.keyPem),
    publicKey: csr.publicKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension(
        [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
        false,
      ),
      new x509.SubjectAlternativeNameExtension([
        { type: "dns", value: ou },
        { type: "dns", value: req.nodeId },
        ...ips.map((ip) => ({ type: "ip" as const, value: ip })),
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return cert.toString("pem");
}

/** What a node certificate says. */
export interface CertInfo {
  nodeId: string;
  role: NodeRole | null;
  clusterId: string;
  notBefore: number;
  notAfter: number;
}

export function certInfo(certPem: string): CertInfo {
  const c = new X509Certificate(certPem);
  const field = (k: string) =>
    c.subject
      .split("\n")
      .find((l) => l.startsWith(`${k}=`))
      ?.slice(k.length + 1) ?? "";
  const ou = field("OU");
  return {
    nodeId: field("CN"),
    role: ou === "swarm-manager" ? "manager" : ou === "swarm-worker" ? "worker" : null,
    clusterId: field("O"),
    notBefore: Date.parse(c.validFrom),
    notAfter: Date.parse(c.validTo),
  };
}

/** Whether `certPem` was signed by the CA `caPem`. */
export function signedBy(certPem: string, caPem: string): boolean {
  try {
    const c = new X509Certificate(certPem);
    const ca = new X509Certificate(caPem);
    return c.checkIssued(ca) && c.verify(ca.publicKey);
  } catch {
    return false;
  }
}

/** When a certificate should be renewed: at 80% of its lifetime (as swarmkit, roughly). */
export function renewAt(certPem: string): number {
  const { notBefore, notAfter } = certInfo(certPem);
  return notBefore + 0.8 * (notAfter - notBefore);
}

/** The RFC 2253 DN a node certificate maps to on the bus (verify_and_map). */
export function certUser(nodeId: string, role: NodeRole, clusterId: string): string {
  return `CN=${nodeId},OU=${roleOu(role)},O=${clusterId}`;
}

/**
 * Writes a node's CA, certificate and key, each readable by the owner only (an explicit chmod,
 * whatever the umask), in a directory only the owner may enter.
 */
export async function writeNodeCerts(
  dataDir: string,
  files: { caPem: string; certPem: string; keyPem: string },
): Promise<void> {
  const p = certPaths(dataDir);
  await mkdir(p.dir, { recursive: true, mode: 0o700 });
  await chmod(p.dir, 0o700);
  for (const [path, data] of [
    [p.ca, files.caPem],
    [p.key, files.keyPem],
    [p.cert, files.certPem],
  ] as const) {
    await writeFileDurable(path, data, { mode: 0o600 });
    await chmod(path, 0o600);
  }
  await chmod(dirname(p.cert), 0o700);
}

/** Writes a node's CA file alone (the roots it trusts), readable by the owner only, as
 * `writeNodeCerts` does: a manager that must trust a new root before it takes a certificate
 * from it (the managed etcd members, daemon/member-trust.ts). */
export async function writeNodeCa(dataDir: string, caPem: string): Promise<void> {
  const p = certPaths(dataDir);
  await writeFileDurable(p.ca, caPem, { mode: 0o600 });
  await chmod(p.ca, 0o600);
}

/** Whether each certificate of `chain` (PEM, leaf first) up to index `upTo` was signed by the
 * next one: the chain from the leaf reaches `chain[upTo]`. */
export function chainReaches(chain: string[], upTo: number): boolean {
  if (upTo < 1 || upTo >= chain.length) return false;
  for (let i = 0; i < upTo; i++) if (!signedBy(chain[i]!, chain[i + 1]!)) return false;
  return true;
}
