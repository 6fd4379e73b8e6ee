// The daemon's flags (init, join, daemon, up) turned into DaemonRunOptions, and the address a
// node advertises chosen as Docker chooses it: --advertise-addr (an IP, IP:PORT, [v6]:PORT or an
// interface name such as eth0); else the --listen-addr host when it is not a wildcard; else the
// machine's address (lib/netif.ts), which fails with Docker's words when there is no single one.
// `shoal up`, the one-machine quick start, falls back to 127.0.0.1 instead, and says so.

import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { defaultDataDir } from "../api/paths.js";
import {
  AddressError,
  formatHost,
  isWildcard,
  joinHostPort,
  parseHostPort,
  storeUsesTls,
} from "../lib/addr.js";
import { AdvertiseAddrError, systemAddress, type Interfaces } from "../lib/netif.js";
import { parseBytesFlag, parseCpusFlag, parseIntFlag } from "./args.js";
import { UsageError } from "./errors.js";
import { parseGoDuration } from "../lib/duration.js";
import type { DaemonRunOptions } from "../daemon/run.js";
import type { StoreTlsFiles } from "../daemon/store-tls.js";
import { resolve } from "node:path";

/** The daemon flags as commander gives them. */
export interface DaemonFlags {
  dataDir?: string;
  listenAddr?: string;
  advertiseAddr?: string;
  natsPort?: string;
  apiAddr?: string;
  apiTls?: boolean;
  publishAddr?: string;
  debug?: boolean;
  cpus?: string;
  memory?: string;
  monitorPort?: string;
  fencingMargin?: string;
  certExpiry?: string;
  defaultAddrPool?: string;
  defaultAddrPoolMaskLength?: string;
  consulAddr?: string;
  consulDnsAddr?: string;
  httpAddr?: string;
  httpAccessLog?: boolean;
  metricsAddr?: string;
  dashboardAddr?: string;
  store?: string;
  storeCacert?: string;
  storeCert?: string;
  storeKey?: string;
}

/** What the address choice reads from the machine (injected by tests). */
export interface MachineAddresses {
  interfaces(): Interfaces;
  /** The machine's address to advertise; throws AdvertiseAddrError when it cannot choose. */
  systemAddress(): string;
}

export const THIS_MACHINE: MachineAddresses = {
  interfaces: () => networkInterfaces(),
  systemAddress: () => systemAddress(),
};

export const DEFAULT_JOIN_PORT = 2377;

export interface HostAndPort {
  host: string;
  port: number | undefined;
}

/** The address of an interface, as Docker takes it: its one IPv4 address, else a global IPv6. */
export function interfaceAddress(name: string, ifaces: Interfaces): string {
  const list = ifaces[name] ?? [];
  const v4 = list.filter((a) => a.family === "IPv4");
  if (v4.length > 1)
    throw new UsageError(
      `interface ${name} has more than one IPv4 address (${v4[0]!.address} and ${v4[1]!.address})`,
    );
  if (v4.length === 1) return v4[0]!.address;
  const v6 = list.find((a) => a.family === "IPv6" && !/^fe80:/i.test(a.address));
  if (v6) return v6.address;
  throw new UsageError(`interface ${name} has no usable IPv4 or IPv6 address`);
}

/**
 * `<ip|interface>[:port]` (IPv6 with a port in brackets). `what` names the flag in errors; a
 * wildcard host is refused for the advertised address (other nodes cannot dial it).
 */
export function parseNodeAddr(
  text: string,
  what: "advertise" | "listen",
  ifaces: Interfaces,
): HostAndPort {
  const bad = () =>
    new UsageError(
      `${what === "advertise" ? "advertise" : "listen"} address must be a non-zero IP address or network interface (with optional port number): "${text}"`,
    );
  let hp;
  try {
    hp = parseHostPort(text);
  } catch (err) {
    if (err instanceof AddressError) throw new UsageError(err.message);
    throw err;
  }
  if (hp.port !== undefined && (hp.port < 0 || (what === "advertise" && hp.port === 0))) {
    throw new UsageError(`invalid port in ${what} address "${text}"`);
  }
  let host = hp.host;
  if (host === "" && what === "listen") host = "0.0.0.0";
  if (host !== "" && !isIP(host)) {
    if (!ifaces[host]) throw bad();
    host = interfaceAddress(host, ifaces);
  }
  if (host === "" || (what === "advertise" && isWildcard(host))) throw bad();
  return { host, port: hp.port };
}

function portFlag(flag: string, v: string, allowRandom: boolean): number {
  const n = parseIntFlag(flag, v);
  if (n < (allowRandom ? -1 : 0) || n > 65535)
    throw new UsageError(`invalid argument "${v}" for "${flag}" flag: port out of range`);
  return n;
}

export interface ParsedDaemonFlags {
  dataDir: string;
  listen: { host: string; port: number };
  /** --advertise-addr, when given. */
  advertise: HostAndPort | undefined;
  natsPort: number;
  apiTcp: string;
  /** --api-tls: mutual TLS on a loopback TCP API too. */
  apiTls: boolean;
  publishHost: string;
  debug: boolean;
  cpus: number | undefined;
  memoryBytes: number | undefined;
  monitorPort: number | undefined;
  /** --fencing-margin in ms; -1 = off. */
  fenceMarginMs: number | undefined;
  /** --cert-expiry in ms (node certificates' lifetime, when this creates the swarm). */
  certExpiryMs: number | undefined;
  /** --default-addr-pool and its mask length (checked further by the daemon). */
  addrPool: { pool: string; maskLength: number } | undefined;
  /** --consul-addr and --consul-dns-addr when given ("" = off). */
  consulAddr: string | undefined;
  consulDnsAddr: string | undefined;
  /** --dashboard-addr when given ("" = off). */
  dashboardAddr: string | undefined;
  /** --metrics-addr when given ("" = off). */
  metricsAddr: string | undefined;
  /** --http-addr when given ("" = off), and --http-access-log. */
  httpAddr: string | undefined;
  httpAccessLog: boolean;
  /** --store: the etcd client URLs ("" given: the embedded store). */
  store: string[] | undefined;
  /** --store-cacert, --store-cert, --store-key (absolute paths): TLS to an external etcd. */
  storeTls: StoreTlsFiles | undefined;
}

/**
 * `--store etcd://HOST:PORT[,HOST:PORT...]` as etcd client URLs (http://); `etcds://` (or
 * https:// URLs, comma-separated) for TLS (https://); "" or "embedded": none.
 */
export function parseStoreFlag(text: string): string[] {
  const t = text.trim();
  if (t === "" || t === "embedded") return [];
  const scheme = /^(etcds?):\/\//.exec(t)?.[1] ?? (t.startsWith("https://") ? "https" : "");
  const body = scheme === "https" ? t : t.slice(`${scheme}://`.length);
  const bad = (why: string) =>
    new UsageError(
      `invalid argument "${text}" for "--store" flag: ${why}; expected etcd://HOST:PORT[,HOST:PORT...] (etcds:// for TLS)`,
    );
  if (scheme === "" || body === "") throw bad("not an etcd:// address");
  const url = scheme === "etcd" ? "http" : "https";
  return body.split(",").map((item) => {
    let h = item.trim();
    if (scheme === "https") {
      if (!h.startsWith("https://")) throw bad(`"${h}" is not an https:// URL`);
      h = h.slice("https://".length).replace(/\/$/, "");
    }
    let hp;
    try {
      hp = parseHostPort(h);
    } catch {
      throw bad(`"${h}" is not HOST:PORT`);
    }
    if (!hp.host || hp.port === undefined || hp.port <= 0 || hp.port > 65535)
      throw bad(`"${h}" is not HOST:PORT`);
    return `${url}://${joinHostPort(hp.host, hp.port)}`;
  });
}

/** --store-cacert, --store-cert, --store-key: paths made absolute; the certificate and key go
 * together, and TLS needs the CA (etcdctl's --cacert, --cert, --key). */
export function parseStoreTlsFlags(
  f: DaemonFlags,
  store: string[] | undefined,
): StoreTlsFiles | undefined {
  const { storeCacert: ca, storeCert: cert, storeKey: key } = f;
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError('"--store-cert" and "--store-key" go together: give both or neither');
  }
  if (ca === undefined) {
    if (cert !== undefined) {
      throw new UsageError(
        '"--store-cert" needs "--store-cacert": the CA that signed the etcd members\' certificates',
      );
    }
    if (store && storeUsesTls(store)) {
      throw new UsageError(
        'an etcds:// (TLS) store needs "--store-cacert": the CA that signed the etcd members\' certificates',
      );
    }
    return undefined;
  }
  return {
    cacert: resolve(ca),
    ...(cert !== undefined && key !== undefined ? { cert: resolve(cert), key: resolve(key) } : {}),
  };
}

/** A --consul-addr / --consul-dns-addr / --http-addr / --metrics-addr / --dashboard-addr value: "" (off)
 * or [host]:port. */
function serviceAddrFlag(flag: string, v: string | undefined): string | undefined {
  if (v === undefined || v === "") return v;
  let hp;
  try {
    hp = parseHostPort(v);
  } catch (err) {
    if (err instanceof AddressError)
      throw new UsageError(`invalid argument "${v}" for "${flag}" flag: ${err.message}`);
    throw err;
  }
  if (hp.port === undefined || hp.port < 0 || hp.port > 65535 || (hp.host !== "" && !isIP(hp.host)))
    throw new UsageError(
      `invalid argument "${v}" for "${flag}" flag: expected [IP]:PORT (PORT 0: any free port), or "" for off`,
    );
  return v;
}

/** Checks and parses the daemon flags; `defaults` differ between `up` and the others. */
export function parseDaemonFlags(
  f: DaemonFlags,
  defaults: { natsPort: number; monitorPort?: number },
  machine: MachineAddresses = THIS_MACHINE,
): ParsedDaemonFlags {
  const ifaces = machine.interfaces();
  const listen = parseNodeAddr(f.listenAddr ?? `0.0.0.0:${DEFAULT_JOIN_PORT}`, "listen", ifaces);
  let cpus: number | undefined;
  if (f.cpus !== undefined) {
    cpus = parseCpusFlag("--cpus", f.cpus);
    if (cpus === 0)
      throw new UsageError(`invalid argument "${f.cpus}" for "--cpus" flag: must be more than 0`);
  }
  let memoryBytes: number | undefined;
  if (f.memory !== undefined) {
    memoryBytes = parseBytesFlag("--memory", f.memory);
    if (memoryBytes === 0)
      throw new UsageError(
        `invalid argument "${f.memory}" for "--memory" flag: must be more than 0`,
      );
  }
  let fenceMarginMs: number | undefined;
  if (f.fencingMargin !== undefined) {
    fenceMarginMs = f.fencingMargin === "off" ? -1 : parseGoDuration(f.fencingMargin);
    if (fenceMarginMs === undefined || fenceMarginMs < -1)
      throw new UsageError(
        `invalid argument "${f.fencingMargin}" for "--fencing-margin" flag: expected a duration like 5s, or off`,
      );
  }
  let certExpiryMs: number | undefined;
  if (f.certExpiry !== undefined) {
    certExpiryMs = parseGoDuration(f.certExpiry);
    if (certExpiryMs === undefined || certExpiryMs < 1000)
      throw new UsageError(
        `invalid argument "${f.certExpiry}" for "--cert-expiry" flag: expected a duration of at least 1s, like 2160h`,
      );
  }
  let addrPool: ParsedDaemonFlags["addrPool"];
  if (f.defaultAddrPool !== undefined || f.defaultAddrPoolMaskLength !== undefined) {
    const pool = f.defaultAddrPool ?? "10.0.0.0/8";
    if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(pool))
      throw new UsageError(
        `invalid argument "${pool}" for "--default-addr-pool" flag: expected an IPv4 CIDR like 10.20.0.0/16`,
      );
    const mask = f.defaultAddrPoolMaskLength ?? "24";
    if (!/^\d{1,2}$/.test(mask) || Number(mask) > 29)
      throw new UsageError(
        `invalid argument "${mask}" for "--default-addr-pool-mask-length" flag: expected a prefix length up to 29`,
      );
    addrPool = { pool, maskLength: Number(mask) };
  }
  let monitorPort = defaults.monitorPort;
  if (f.monitorPort !== undefined) {
    const p = portFlag("--monitor-port", f.monitorPort, true);
    monitorPort = p === 0 ? undefined : p; // 0: no monitoring
  }
  if (f.apiAddr !== undefined) {
    const a = parseHostPort(f.apiAddr);
    if (a.port === undefined)
      throw new UsageError(`invalid --api-addr "${f.apiAddr}": expected HOST:PORT`);
  }
  const store = f.store !== undefined ? parseStoreFlag(f.store) : undefined;
  return {
    dataDir: f.dataDir ?? defaultDataDir(),
    listen: { host: listen.host, port: listen.port ?? DEFAULT_JOIN_PORT },
    advertise:
      f.advertiseAddr !== undefined
        ? parseNodeAddr(f.advertiseAddr, "advertise", ifaces)
        : undefined,
    natsPort:
      f.natsPort !== undefined ? portFlag("--nats-port", f.natsPort, true) : defaults.natsPort,
    apiTcp: f.apiAddr ?? "",
    apiTls: !!f.apiTls,
    publishHost: f.publishAddr ?? "0.0.0.0",
    debug: !!f.debug,
    cpus,
    memoryBytes,
    monitorPort,
    fenceMarginMs,
    certExpiryMs,
    addrPool,
    consulAddr: serviceAddrFlag("--consul-addr", f.consulAddr),
    consulDnsAddr: serviceAddrFlag("--consul-dns-addr", f.consulDnsAddr),
    httpAddr: serviceAddrFlag("--http-addr", f.httpAddr),
    httpAccessLog: !!f.httpAccessLog,
    store,
    storeTls: parseStoreTlsFlags(f, store),
    metricsAddr: serviceAddrFlag("--metrics-addr", f.metricsAddr),
    dashboardAddr: serviceAddrFlag("--dashboard-addr", f.dashboardAddr),
  };
}

export interface Advertised {
  host: string;
  port: number;
  /** Said to the user when the address is a fallback. */
  notice?: string;
}

/** The address this manager tells other nodes to join on (see the file header). */
export function chooseAdvertise(
  p: ParsedDaemonFlags,
  fallback: "error" | "loopback",
  machine: MachineAddresses = THIS_MACHINE,
): Advertised {
  if (p.advertise) return { host: p.advertise.host, port: p.advertise.port ?? p.listen.port };
  if (!isWildcard(p.listen.host)) return { host: p.listen.host, port: p.listen.port };
  try {
    return { host: machine.systemAddress(), port: p.listen.port };
  } catch (err) {
    if (!(err instanceof AdvertiseAddrError) || fallback === "error") throw err;
    return {
      host: "127.0.0.1",
      port: p.listen.port,
      notice: `shoal: ${err.message.replace(/ - specify one with --advertise-addr$/, "")}; advertising 127.0.0.1 (other machines cannot join; use --advertise-addr to choose)`,
    };
  }
}

/** Options with every address and port decided (what `init` and `join` start a daemon with). */
export type FullRunOptions = DaemonRunOptions &
  Required<
    Pick<DaemonRunOptions, "listenAddr" | "advertiseAddr" | "natsPort" | "apiTcp" | "publishHost">
  >;

export function runOptions(
  p: ParsedDaemonFlags,
  adv: { host: string; port: number },
): FullRunOptions {
  return {
    dataDir: p.dataDir,
    listenAddr: joinHostPort(p.listen.host, p.listen.port),
    // Port 0 (a random join port): the daemon adds the port it gets.
    advertiseAddr: adv.port === 0 ? formatHost(adv.host) : joinHostPort(adv.host, adv.port),
    natsPort: p.natsPort,
    apiTcp: p.apiTcp,
    ...(p.apiTls ? { apiTls: true } : {}),
    publishHost: p.publishHost,
    debug: p.debug,
    ...(p.cpus !== undefined ? { cpus: p.cpus } : {}),
    ...(p.memoryBytes !== undefined ? { memoryBytes: p.memoryBytes } : {}),
    ...(p.fenceMarginMs !== undefined ? { fenceMarginMs: p.fenceMarginMs } : {}),
    ...(p.certExpiryMs !== undefined ? { certExpiryMs: p.certExpiryMs } : {}),
    ...(p.addrPool !== undefined ? { addrPool: p.addrPool } : {}),
    ...(p.monitorPort !== undefined ? { monitorPort: p.monitorPort } : {}),
    ...(p.consulAddr !== undefined ? { consulAddr: p.consulAddr } : {}),
    ...(p.consulDnsAddr !== undefined ? { consulDnsAddr: p.consulDnsAddr } : {}),
    ...(p.httpAddr !== undefined ? { httpAddr: p.httpAddr } : {}),
    ...(p.httpAccessLog ? { httpAccessLog: true } : {}),
    ...(p.metricsAddr !== undefined ? { metricsAddr: p.metricsAddr } : {}),
    ...(p.dashboardAddr !== undefined ? { dashboardAddr: p.dashboardAddr } : {}),
    ...(p.store !== undefined ? { store: p.store } : {}),
    ...(p.storeTls !== undefined ? { storeTls: p.storeTls } : {}),
  };
}

/**
 * `shoal daemon` / `shoal up`: only what the flags say (`up` also its quick-start ports). The
 * daemon takes the rest from the settings it saved at its last start, or its defaults, so a
 * restart with `--data-dir` alone comes back on the same addresses.
 */
export function givenRunOptions(
  f: DaemonFlags,
  p: ParsedDaemonFlags,
  up: boolean,
): DaemonRunOptions {
  return {
    dataDir: p.dataDir,
    debug: p.debug,
    ...(f.listenAddr !== undefined
      ? { listenAddr: joinHostPort(p.listen.host, p.listen.port) }
      : {}),
    ...(p.advertise
      ? { advertiseAddr: joinHostPort(p.advertise.host, p.advertise.port ?? p.listen.port) }
      : {}),
    ...(f.natsPort !== undefined || up ? { natsPort: p.natsPort } : {}),
    ...(f.apiAddr !== undefined ? { apiTcp: p.apiTcp } : {}),
    ...(f.apiTls !== undefined ? { apiTls: p.apiTls } : {}),
    ...(f.publishAddr !== undefined ? { publishHost: p.publishHost } : {}),
    ...(p.cpus !== undefined ? { cpus: p.cpus } : {}),
    ...(p.memoryBytes !== undefined ? { memoryBytes: p.memoryBytes } : {}),
    ...(p.fenceMarginMs !== undefined ? { fenceMarginMs: p.fenceMarginMs } : {}),
    ...(p.certExpiryMs !== undefined ? { certExpiryMs: p.certExpiryMs } : {}),
    ...(p.addrPool !== undefined ? { addrPool: p.addrPool } : {}),
    ...(f.monitorPort !== undefined || up ? { monitorPort: p.monitorPort ?? 0 } : {}),
    ...(p.consulAddr !== undefined ? { consulAddr: p.consulAddr } : {}),
    ...(p.consulDnsAddr !== undefined ? { consulDnsAddr: p.consulDnsAddr } : {}),
    ...(p.httpAddr !== undefined ? { httpAddr: p.httpAddr } : {}),
    ...(f.httpAccessLog !== undefined ? { httpAccessLog: p.httpAccessLog } : {}),
    ...(p.metricsAddr !== undefined ? { metricsAddr: p.metricsAddr } : {}),
    ...(p.dashboardAddr !== undefined ? { dashboardAddr: p.dashboardAddr } : {}),
    ...(p.store !== undefined ? { store: p.store } : {}),
    ...(p.storeTls !== undefined ? { storeTls: p.storeTls } : {}),
    // `up` on the default Consul addresses: a taken port is a warning, not a failed start.
    ...(up && p.consulAddr === undefined && p.consulDnsAddr === undefined
      ? { consulBestEffort: true }
      : {}),
  };
}

/** The `shoal daemon` flags that give a daemon these options (what `init` spawns). */
export function daemonArgv(o: FullRunOptions): string[] {
  return [
    "--data-dir",
    o.dataDir,
    "--listen-addr",
    o.listenAddr,
    "--advertise-addr",
    o.advertiseAddr,
    "--nats-port",
    String(o.natsPort),
    "--publish-addr",
    o.publishHost,
    ...(o.apiTcp ? ["--api-addr", o.apiTcp] : []),
    ...(o.apiTls ? ["--api-tls"] : []),
    ...(o.debug ? ["--debug"] : []),
    ...(o.cpus !== undefined ? ["--cpus", String(o.cpus)] : []),
    ...(o.memoryBytes !== undefined ? ["--memory", String(o.memoryBytes)] : []),
    ...(o.fenceMarginMs !== undefined
      ? ["--fencing-margin", o.fenceMarginMs < 0 ? "off" : `${o.fenceMarginMs}ms`]
      : []),
    ...(o.certExpiryMs !== undefined ? ["--cert-expiry", `${o.certExpiryMs}ms`] : []),
    ...(o.addrPool !== undefined
      ? [
          "--default-addr-pool",
          o.addrPool.pool,
          "--default-addr-pool-mask-length",
          String(o.addrPool.maskLength),
        ]
      : []),
    ...(o.monitorPort !== undefined
      ? ["--monitor-port", String(o.monitorPort)]
      : ["--monitor-port", "0"]),
    ...(o.consulAddr !== undefined ? ["--consul-addr", o.consulAddr] : []),
    ...(o.consulDnsAddr !== undefined ? ["--consul-dns-addr", o.consulDnsAddr] : []),
    ...(o.httpAddr !== undefined ? ["--http-addr", o.httpAddr] : []),
    ...(o.httpAccessLog ? ["--http-access-log"] : []),
    ...(o.metricsAddr !== undefined ? ["--metrics-addr", o.metricsAddr] : []),
    ...(o.dashboardAddr !== undefined ? ["--dashboard-addr", o.dashboardAddr] : []),
    ...(o.store && o.store.length > 0
      ? [
          "--store",
          `${storeUsesTls(o.store) ? "etcds" : "etcd"}://${o.store.map((u) => u.replace(/^https?:\/\//, "")).join(",")}`,
        ]
      : []),
    ...storeTlsArgv(o.storeTls),
  ];
}

/** --store-cacert, --store-cert, --store-key for the daemon's argv (none without TLS). */
export function storeTlsArgv(tls: StoreTlsFiles | undefined): string[] {
  return [
    ...(tls ? ["--store-cacert", tls.cacert] : []),
    ...(tls?.cert !== undefined ? ["--store-cert", tls.cert] : []),
    ...(tls?.key !== undefined ? ["--store-key", tls.key] : []),
  ];
}
