// The embedded DNS server every node runs for the tasks on shoal's networks, as Docker's embedded
// DNS does for containers: a task asks by name and gets an answer scoped to the networks it is on.
//
// The answers come from a table (src/api/dns.ts) the caller replaces whole with `setRecords()`;
// the asking client's source address picks the networks it sees. On each network:
//   <service>                 the VIP (vip mode) or every task's address, shuffled (dnsrr)
//   tasks.<service>           every running task's address, shuffled
//   <alias>, tasks.<alias>    as the service the alias names
//   <service>.<slot>.<id>     that task's address
// A table may also give a service SRV records (target, port; the target's A record goes in the
// additional section) and a `*` client: the networks every other asking address sees (the
// Consul DNS interface, src/manager/consul/dns.ts, answers any client).
// Names match without regard to case, with or without the trailing dot, and with a configured
// domain (`domains`, `search`) stripped. A known name answers A queries with its addresses, with
// a short TTL (5 s: Swarm's 600 s keeps dead tasks in clients), and any other type with an empty
// NOERROR answer (as Docker answers AAAA for a name without an IPv6 address). A name the table
// does not know is forwarded to the upstream resolvers (UDP, retried over TCP when truncated)
// and their answer relayed; no upstream answering → SERVFAIL. An unknown `tasks.` name or a name
// under one of shoal's own `domains` → NXDOMAIN.
//
// UDP and TCP on one port (TCP: 2-byte length prefix, any number of queries per connection,
// answered as they complete, closed when idle). Malformed packets are counted and dropped.

import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { isIPv6 } from "node:net";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { randomInt } from "node:crypto";
import packet from "dns-packet";
import type { DecodedPacket, Packet, Question } from "dns-packet";
import { DnsTableSchema, type DnsTable } from "../api/dns.js";
import { check } from "../api/schema.js";
import { isLoopback, isWildcard, joinHostPort, parseHostPort } from "../lib/addr.js";
import { silentLogger, type Logger } from "../lib/log.js";

export interface DnsServerOptions {
  /** The address to listen on (UDP and TCP). */
  host: string;
  /** The port (UDP and TCP alike); 0 picks a free one. */
  port: number;
  /** The TTL of answers from the table, in seconds. */
  ttl: number;
  /** Upstream resolvers ("host" or "host:port"); undefined: the nameservers of /etc/resolv.conf
   * other than this server itself. */
  upstreams: string[] | undefined;
  /** How long one upstream may take to answer, in ms, before the next is tried. */
  forwardTimeoutMs: number;
  /** How many forwarded queries may be outstanding at once; more get SERVFAIL. */
  maxForwards: number;
  /** A TCP connection idle this long (ms) is closed. */
  tcpIdleTimeoutMs: number;
  /** shoal's own domains: stripped from names before lookup; an unknown name under one is
   * NXDOMAIN, never forwarded. */
  domains: string[];
  /** Search domains: stripped from names before lookup; an unknown name under one is forwarded. */
  search: string[];
  log: Logger;
}

export function defaultDnsOptions(): DnsServerOptions {
  return {
    host: "127.0.0.1",
    port: 53,
    ttl: 5,
    upstreams: undefined,
    forwardTimeoutMs: 2000,
    maxForwards: 1024,
    tcpIdleTimeoutMs: 10_000,
    domains: [],
    search: [],
    log: silentLogger,
  };
}

export interface DnsCounters {
  /** Well-formed queries received. */
  queries: number;
  /** Queries answered from the table (with addresses or an empty NOERROR). */
  answered: number;
  /** Queries answered with an upstream's answer. */
  forwarded: number;
  /** NXDOMAIN answers of our own. */
  nxdomain: number;
  /** SERVFAIL answers of our own (no upstream, upstreams failed, too many forwards). */
  servfail: number;
  /** Packets dropped as malformed (undecodable, a response, not one question). */
  malformed: number;
  /** Queries of an opcode other than QUERY, answered NOTIMP. */
  notimp: number;
  /** UDP answers cut short to fit (TC set). */
  truncated: number;
}

export type DnsErrorCode = "ERR_DNS_TABLE" | "ERR_DNS_OPTIONS" | "ERR_DNS_LISTEN";

export class DnsError extends Error {
  constructor(
    readonly code: DnsErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "DnsError";
  }
}

const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const FLAG_RA = 0x0080;
/** The largest UDP answer to a client that did not say (RFC 1035). */
const UDP_MIN = 512;
/** The largest UDP answer we send whatever the client says (the DNS flag day's 1232). */
const UDP_MAX = 1232;

/** What a name resolves to on one network. */
interface Entry {
  /** IPv4 addresses as 32-bit numbers. */
  addrs: readonly number[];
  shuffle: boolean;
  srv?: readonly { target: string; addr: string; port: number }[];
}

const NONE: readonly number[] = [];
/** The length of an A record whose name points at the question's. */
const A_LEN = 16;
/** The length of an OPT record without options. */
const OPT_LEN = 11;

/** An IPv4 address (checked by the schema) as a 32-bit number. */
function ipv4Number(addr: string): number {
  const [a, b, c, d] = addr.split(".").map(Number);
  return ((a! << 24) >>> 0) + (b! << 16) + (c! << 8) + d!;
}

/**
 * The offset just past the first question of a query (its name written as plain labels, then
 * type and class), or -1 when the name is compressed or runs past the end.
 */
export function questionEnd(msg: Buffer): number {
  let o = 12;
  while (o < msg.length) {
    const len = msg[o]!;
    if (len === 0) return o + 5 <= msg.length ? o + 5 : -1;
    if ((len & 0xc0) !== 0) return -1;
    o += len + 1;
  }
  return -1;
}

/** The table, indexed for lookups: per network a map of lowercase names. */
interface Index {
  networks: Map<string, Map<string, Entry>>;
  clients: Map<string, Map<string, Entry>[]>;
}

/**
 * A name as the table matches it: lowercase, without the trailing dot, and without the first of
 * `suffixes` (lowercase, no dots at either end; longest first) it ends in. `owned` says whether
 * the stripped suffix was one of shoal's own domains.
 */
export function normalizeName(
  name: string,
  suffixes: readonly { domain: string; owned: boolean }[] = [],
): { name: string; owned: boolean } {
  let n = name.toLowerCase();
  if (n.endsWith(".")) n = n.slice(0, -1);
  for (const s of suffixes) {
    if (
      n.length > s.domain.length + 1 &&
      n.endsWith(s.domain) &&
      n[n.length - s.domain.length - 1] === "."
    ) {
      return { name: n.slice(0, n.length - s.domain.length - 1), owned: s.owned };
    }
  }
  return { name: n, owned: false };
}

/** The nameservers of a resolv.conf text, in order. */
export function resolvConfServers(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) out.push(m[1]!.replace(/%.*$/, ""));
  }
  return out;
}

function indexTable(table: DnsTable): Index {
  const networks = new Map<string, Map<string, Entry>>();
  for (const [net, n] of Object.entries(table.networks)) {
    const names = new Map<string, Entry>();
    // Precedence, lowest first (later writes win): task names, aliases, service names.
    for (const [task, addr] of Object.entries(n.tasks)) {
      names.set(normalizeName(task).name, { addrs: [ipv4Number(addr)], shuffle: false });
    }
    const services = Object.entries(n.services);
    const put = (name: string, svc: (typeof services)[number][1]) => {
      const tasks: Entry = {
        addrs: svc.taskAddrs.map(ipv4Number),
        shuffle: true,
        ...(svc.srv ? { srv: svc.srv } : {}),
      };
      const self: Entry =
        svc.endpointMode === "vip" && svc.vip !== undefined
          ? { addrs: [ipv4Number(svc.vip)], shuffle: false }
          : tasks;
      const key = normalizeName(name).name;
      names.set(key, self);
      names.set(`tasks.${key}`, tasks);
    };
    for (const [, svc] of services) for (const alias of svc.aliases) put(alias, svc);
    for (const [name, svc] of services) put(name, svc);
    networks.set(net, names);
  }
  const clients = new Map<string, Map<string, Entry>[]>();
  for (const [client, nets] of Object.entries(table.clients)) {
    const seen: Map<string, Entry>[] = [];
    for (const net of nets) {
      const names = networks.get(net);
      if (names === undefined) {
        throw new DnsError(
          "ERR_DNS_TABLE",
          `dns table: clients["${client}"] names network "${net}", which is not in networks`,
        );
      }
      seen.push(names);
    }
    clients.set(client, seen);
  }
  return { networks, clients };
}

function shuffled(addrs: readonly number[]): number[] {
  const a = [...addrs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** The client's address as the table writes it (IPv4-mapped IPv6 as plain IPv4). */
function clientAddr(addr: string): string {
  return addr.startsWith("::ffff:") && addr.includes(".") ? addr.slice(7) : addr;
}

interface Upstream {
  host: string;
  port: number;
}

/** How one query came in, and how to send its answer back. */
interface Origin {
  client: string;
  tcp: boolean;
  send: (answer: Buffer) => void;
}

export class DnsServer {
  readonly counters: DnsCounters = {
    queries: 0,
    answered: 0,
    forwarded: 0,
    nxdomain: 0,
    servfail: 0,
    malformed: 0,
    notimp: 0,
    truncated: 0,
  };
  private readonly opts: DnsServerOptions;
  private readonly suffixes: { domain: string; owned: boolean }[];
  private index: Index = { networks: new Map(), clients: new Map() };
  private udp: UdpSocket | undefined;
  private tcp: Server | undefined;
  private readonly conns = new Set<Socket>();
  private upstreams: Upstream[] = [];
  private outstanding = 0;

  constructor(options: Partial<DnsServerOptions> = {}) {
    const o = { ...defaultDnsOptions(), ...options };
    if (!Number.isInteger(o.ttl) || o.ttl < 0 || o.ttl > 2 ** 31 - 1) {
      throw new DnsError(
        "ERR_DNS_OPTIONS",
        `dns: ttl must be a whole number of seconds, not ${o.ttl}`,
      );
    }
    if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) {
      throw new DnsError("ERR_DNS_OPTIONS", `dns: port must be 0-65535, not ${o.port}`);
    }
    for (const [k, v] of [
      ["forwardTimeoutMs", o.forwardTimeoutMs],
      ["tcpIdleTimeoutMs", o.tcpIdleTimeoutMs],
      ["maxForwards", o.maxForwards],
    ] as const) {
      if (!(v > 0)) throw new DnsError("ERR_DNS_OPTIONS", `dns: ${k} must be > 0, not ${v}`);
    }
    const clean = (d: string) => d.toLowerCase().replace(/^\.+|\.+$/g, "");
    this.suffixes = [
      ...o.domains.map((d) => ({ domain: clean(d), owned: true })),
      ...o.search.map((d) => ({ domain: clean(d), owned: false })),
    ]
      .filter((s) => s.domain !== "")
      .sort((a, b) => b.domain.length - a.domain.length);
    this.opts = Object.freeze(o);
  }

  /** Replaces the whole table; answers use it from the next query on. Throws a SchemaError or a
   * DnsError naming the problem, and keeps the old table, when `table` is not a valid one. */
  setRecords(table: DnsTable): void {
    check(DnsTableSchema, table, "", "dns table");
    this.index = indexTable(table);
  }

  /** The bound ports (the same for UDP and TCP); undefined before listen(). */
  get listening(): { udp: number; tcp: number } | undefined {
    const u = this.udp?.address();
    const t = this.tcp?.address();
    if (u === undefined || t === undefined || t === null || typeof t === "string") return undefined;
    return { udp: u.port, tcp: t.port };
  }

  /** The upstream resolvers in use, as "host:port". */
  get upstreamServers(): string[] {
    return this.upstreams.map((u) => joinHostPort(u.host, u.port));
  }

  /** Binds UDP and TCP on one port (with port 0: the first free port both can have). */
  async listen(): Promise<{ udp: number; tcp: number }> {
    const { host, port } = this.opts;
    let lastErr: unknown;
    for (let attempt = 0; attempt < (port === 0 ? 20 : 1); attempt++) {
      const udp = createSocket({ type: isIPv6(host) ? "udp6" : "udp4" });
      try {
        await new Promise<void>((resolve, reject) => {
          udp.once("error", reject);
          udp.bind({ address: host, port, exclusive: true }, () => {
            udp.off("error", reject);
            resolve();
          });
        });
      } catch (err) {
        udp.close();
        throw new DnsError(
          "ERR_DNS_LISTEN",
          `dns: cannot listen on udp ${host}:${port}: ${(err as Error).message}`,
          { cause: err },
        );
      }
      const bound = udp.address().port;
      const tcp = createServer((s) => this.onConnection(s));
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once("error", reject);
          tcp.listen({ host, port: bound }, () => {
            tcp.off("error", reject);
            resolve();
          });
        });
      } catch (err) {
        udp.close();
        lastErr = err;
        continue; // port 0: the UDP port is taken on TCP; try another
      }
      udp.on("message", (msg, rinfo) => this.onDatagram(udp, msg, rinfo));
      udp.on("error", (err) => this.opts.log.warn(`dns: udp: ${err.message}`));
      tcp.on("error", (err) => this.opts.log.warn(`dns: tcp: ${err.message}`));
      this.udp = udp;
      this.tcp = tcp;
      this.upstreams = this.resolveUpstreams(bound);
      return { udp: bound, tcp: bound };
    }
    throw new DnsError(
      "ERR_DNS_LISTEN",
      `dns: cannot listen on tcp ${host}:${port}: ${(lastErr as Error).message}`,
      { cause: lastErr },
    );
  }

  async close(): Promise<void> {
    const udp = this.udp;
    const tcp = this.tcp;
    this.udp = undefined;
    this.tcp = undefined;
    for (const c of this.conns) c.destroy();
    this.conns.clear();
    await Promise.all([
      udp ? new Promise<void>((r) => udp.close(() => r())) : undefined,
      tcp ? new Promise<void>((r) => tcp.close(() => r())) : undefined,
    ]);
  }

  private resolveUpstreams(boundPort: number): Upstream[] {
    let list = this.opts.upstreams;
    if (list === undefined) {
      let text = "";
      try {
        text = readFileSync("/etc/resolv.conf", "utf8");
      } catch (err) {
        this.opts.log.warn(`dns: cannot read /etc/resolv.conf: ${(err as Error).message}`);
      }
      const { host } = this.opts;
      // Not this server itself: its own address, or loopback when it listens on every address.
      list = resolvConfServers(text).filter(
        (ns) => boundPort !== 53 || (ns !== host && !(isWildcard(host) && isLoopback(ns))),
      );
    }
    return list.map((text) => {
      const hp = parseHostPort(text);
      if (hp.host === "")
        throw new DnsError("ERR_DNS_OPTIONS", `dns: upstream "${text}" names no host`);
      return { host: hp.host, port: hp.port ?? 53 };
    });
  }

  // ---- transports -------------------------------------------------------------------------------

  private onDatagram(udp: UdpSocket, msg: Buffer, rinfo: RemoteInfo): void {
    this.handle(msg, {
      client: clientAddr(rinfo.address),
      tcp: false,
      send: (answer) => {
        if (this.udp === udp) udp.send(answer, rinfo.port, rinfo.address);
      },
    });
  }

  private onConnection(sock: Socket): void {
    this.conns.add(sock);
    sock.setTimeout(this.opts.tcpIdleTimeoutMs, () => sock.destroy());
    sock.on("close", () => this.conns.delete(sock));
    sock.on("error", () => sock.destroy());
    const origin: Origin = {
      client: clientAddr(sock.remoteAddress ?? ""),
      tcp: true,
      send: (answer) => {
        if (sock.destroyed || answer.length > 0xffff) return;
        const len = Buffer.allocUnsafe(2);
        len.writeUInt16BE(answer.length);
        sock.write(Buffer.concat([len, answer]));
      },
    };
    let buf: Buffer = Buffer.alloc(0);
    sock.on("data", (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const n = buf.readUInt16BE(0);
        if (buf.length < 2 + n) break;
        const frame = buf.subarray(2, 2 + n);
        buf = buf.subarray(2 + n);
        this.handle(frame, origin);
      }
    });
  }

  // ---- queries ----------------------------------------------------------------------------------

  private handle(msg: Buffer, origin: Origin): void {
    let query: DecodedPacket;
    try {
      query = packet.decode(msg);
    } catch {
      this.counters.malformed++;
      return;
    }
    // One question, written without compression (as every stub resolver writes it): the answer
    // copies it verbatim and points its records' names at it.
    const qEnd = questionEnd(msg);
    if (query.type !== "query" || query.questions?.length !== 1 || qEnd < 0) {
      this.counters.malformed++;
      return;
    }
    this.counters.queries++;
    const q = query.questions[0]!;
    const opcode = ((query.flags ?? 0) >> 11) & 0xf;
    if (opcode !== 0) {
      this.counters.notimp++;
      origin.send(this.reply(msg, qEnd, query, RCODE.NOTIMP, NONE, false, origin));
      return;
    }
    const { name, owned } = normalizeName(q.name, this.suffixes);
    const entry = (q.class ?? "IN") === "IN" ? this.lookup(origin.client, name) : undefined;
    if (entry !== undefined && q.type === "SRV" && entry.srv !== undefined) {
      this.counters.answered++;
      origin.send(this.srvReply(query, q, entry.srv, origin));
      return;
    }
    if (entry !== undefined) {
      this.counters.answered++;
      const addrs = q.type !== "A" ? NONE : entry.shuffle ? shuffled(entry.addrs) : entry.addrs;
      origin.send(this.reply(msg, qEnd, query, RCODE.NOERROR, addrs, true, origin));
      return;
    }
    if (owned || name.startsWith("tasks.")) {
      this.counters.nxdomain++;
      origin.send(this.reply(msg, qEnd, query, RCODE.NXDOMAIN, NONE, true, origin));
      return;
    }
    void this.forward(msg, qEnd, query, q, origin);
  }

  /** What `name` (normalised) is on the first of the client's networks that knows it. */
  private lookup(client: string, name: string): Entry | undefined {
    const nets = this.index.clients.get(client) ?? this.index.clients.get("*");
    if (nets === undefined) return undefined;
    for (const names of nets) {
      const e = names.get(name);
      if (e !== undefined) return e;
    }
    return undefined;
  }

  /** The largest UDP answer `query`'s client takes. */
  private static udpLimit(query: Packet): number {
    const opt = query.additionals?.find((a) => a.type === "OPT");
    const size = opt !== undefined && "udpPayloadSize" in opt ? opt.udpPayloadSize : 0;
    return Math.min(Math.max(size, UDP_MIN), UDP_MAX);
  }

  /**
   * Our answer to `msg` (whose question ends at qEnd), written directly: the query's header and
   * question, then one A record per address (its name a pointer to the question's), then an OPT
   * record when the query had one. Over UDP, cut to the client's size with TC set.
   */
  private reply(
    msg: Buffer,
    qEnd: number,
    query: DecodedPacket,
    rcode: number,
    addrs: readonly number[],
    authoritative: boolean,
    origin: Origin,
  ): Buffer {
    const edns = query.additionals?.some((a) => a.type === "OPT") === true;
    let flags =
      FLAG_QR | ((query.flags ?? 0) & FLAG_RD) | FLAG_RA | (authoritative ? FLAG_AA : 0) | rcode;
    const base = qEnd + (edns ? OPT_LEN : 0);
    let n = addrs.length;
    const limit = origin.tcp ? 0xffff : DnsServer.udpLimit(query);
    if (base + n * A_LEN > limit) {
      n = Math.max(0, Math.floor((limit - base) / A_LEN));
      if (!origin.tcp) {
        flags |= FLAG_TC;
        this.counters.truncated++;
      }
    }
    const out = Buffer.allocUnsafe(base + n * A_LEN);
    msg.copy(out, 0, 0, qEnd);
    out.writeUInt16BE(flags, 2);
    out.writeUInt16BE(1, 4); // QDCOUNT
    out.writeUInt16BE(n, 6); // ANCOUNT
    out.writeUInt16BE(0, 8); // NSCOUNT
    out.writeUInt16BE(edns ? 1 : 0, 10); // ARCOUNT
    let o = qEnd;
    for (let i = 0; i < n; i++) {
      out.writeUInt16BE(0xc00c, o); // the question's name
      out.writeUInt16BE(1, o + 2); // A
      out.writeUInt16BE(1, o + 4); // IN
      out.writeUInt32BE(this.opts.ttl, o + 6);
      out.writeUInt16BE(4, o + 10);
      out.writeUInt32BE(addrs[i]!, o + 12);
      o += A_LEN;
    }
    if (edns) {
      out.writeUInt8(0, o); // root
      out.writeUInt16BE(41, o + 1); // OPT
      out.writeUInt16BE(UDP_MAX, o + 3);
      out.writeUInt32BE(0, o + 5); // extended rcode, version, flags
      out.writeUInt16BE(0, o + 9); // no options
    }
    return out;
  }

  /** An SRV answer: one record per target (shuffled), each target's A record as additional. */
  private srvReply(
    query: DecodedPacket,
    q: Question,
    srv: readonly { target: string; addr: string; port: number }[],
    origin: Origin,
  ): Buffer {
    const edns = query.additionals?.some((a) => a.type === "OPT") === true;
    const order = shuffled(srv.map((_, i) => i));
    const res: Packet = {
      type: "response",
      id: query.id ?? 0,
      flags: FLAG_QR | FLAG_AA | ((query.flags ?? 0) & FLAG_RD) | FLAG_RA,
      questions: [q],
      answers: order.map((i) => ({
        type: "SRV" as const,
        name: q.name,
        class: "IN" as const,
        ttl: this.opts.ttl,
        data: { priority: 1, weight: 1, port: srv[i]!.port, target: srv[i]!.target },
      })),
      additionals: [
        ...order.map((i) => ({
          type: "A" as const,
          name: srv[i]!.target,
          class: "IN" as const,
          ttl: this.opts.ttl,
          data: srv[i]!.addr,
        })),
        ...(edns
          ? [
              {
                type: "OPT" as const,
                name: ".",
                udpPayloadSize: UDP_MAX,
                extendedRcode: 0,
                ednsVersion: 0,
                flags: 0,
                flag_do: false,
                options: [],
              },
            ]
          : []),
      ],
    };
    return this.fit(res, origin.tcp ? 0xffff : DnsServer.udpLimit(query));
  }

  /** `res` encoded within `limit` bytes: answers dropped from the end, TC set, until it fits. */
  private fit(res: Packet, limit: number): Buffer {
    if (packet.encodingLength(res) <= limit) return packet.encode(res);
    this.counters.truncated++;
    const answers = [...(res.answers ?? [])];
    const cut: Packet = { ...res, flags: (res.flags ?? 0) | FLAG_TC, answers, authorities: [] };
    while (answers.length > 0 && packet.encodingLength(cut) > limit) answers.pop();
    return packet.encode(cut);
  }

  // ---- forwarding -------------------------------------------------------------------------------

  private async forward(
    msg: Buffer,
    qEnd: number,
    query: DecodedPacket,
    q: Question,
    origin: Origin,
  ): Promise<void> {
    if (this.upstreams.length === 0 || this.outstanding >= this.opts.maxForwards) {
      this.counters.servfail++;
      origin.send(this.reply(msg, qEnd, query, RCODE.SERVFAIL, NONE, false, origin));
      return;
    }
    this.outstanding++;
    let answer: Buffer | undefined;
    try {
      for (const up of this.upstreams) {
        try {
          let res = origin.tcp ? await this.exchangeTcp(up, msg) : await this.exchangeUdp(up, msg);
          if (!origin.tcp && (res.readUInt16BE(2) & FLAG_TC) !== 0)
            res = await this.exchangeTcp(up, msg);
          const rcode = res.readUInt16BE(2) & 0xf;
          if (rcode === RCODE.SERVFAIL || rcode === RCODE.REFUSED) {
            this.opts.log.debug(
              `dns: ${up.host}:${up.port} answered rcode ${rcode} for ${q.name}; next upstream`,
            );
            continue;
          }
          answer = res;
          break;
        } catch (err) {
          this.opts.log.debug(
            `dns: forwarding ${q.name} to ${up.host}:${up.port}: ${(err as Error).message}`,
          );
        }
      }
    } finally {
      this.outstanding--;
    }
    if (answer === undefined) {
      this.counters.servfail++;
      origin.send(this.reply(msg, qEnd, query, RCODE.SERVFAIL, NONE, false, origin));
      return;
    }
    answer.writeUInt16BE(query.id ?? 0, 0);
    const limit = DnsServer.udpLimit(query);
    if (!origin.tcp && answer.length > limit) {
      // Too long for the client's UDP: cut it down (it retries over TCP on the TC bit).
      try {
        const decoded = packet.decode(answer);
        answer = this.fit({ ...decoded, type: "response", additionals: [] }, limit);
      } catch {
        this.counters.servfail++;
        origin.send(this.reply(msg, qEnd, query, RCODE.SERVFAIL, NONE, false, origin));
        return;
      }
    }
    this.counters.forwarded++;
    origin.send(answer);
  }

  /** `msg` under a fresh id, and the check that an answer is to it. */
  private static relabel(msg: Buffer): { out: Buffer; id: number } {
    const out = Buffer.from(msg);
    const id = randomInt(0x10000);
    out.writeUInt16BE(id, 0);
    return { out, id };
  }

  private static isAnswerTo(res: Buffer, id: number): boolean {
    return res.length >= 12 && res.readUInt16BE(0) === id && (res.readUInt16BE(2) & FLAG_QR) !== 0;
  }

  private exchangeUdp(up: Upstream, msg: Buffer): Promise<Buffer> {
    const { out, id } = DnsServer.relabel(msg);
    return new Promise((resolve, reject) => {
      const sock = createSocket(isIPv6(up.host) ? "udp6" : "udp4");
      let settled = false;
      const done = (err: Error | undefined, res?: Buffer) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sock.close();
        if (err) reject(err);
        else resolve(res!);
      };
      const timer = setTimeout(
        () => done(new Error(`no answer in ${this.opts.forwardTimeoutMs} ms`)),
        this.opts.forwardTimeoutMs,
      );
      sock.on("error", (err) => done(err));
      sock.on("message", (res, rinfo) => {
        if (rinfo.port === up.port && DnsServer.isAnswerTo(res, id)) done(undefined, res);
      });
      sock.send(out, up.port, up.host, (err) => {
        if (err) done(err);
      });
    });
  }

  private exchangeTcp(up: Upstream, msg: Buffer): Promise<Buffer> {
    const { out, id } = DnsServer.relabel(msg);
    return new Promise((resolve, reject) => {
      const sock = createConnection({ host: up.host, port: up.port });
      let buf: Buffer = Buffer.alloc(0);
      let settled = false;
      const done = (err: Error | undefined, res?: Buffer) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sock.destroy();
        if (err) reject(err);
        else resolve(res!);
      };
      const timer = setTimeout(
        () => done(new Error(`no answer over tcp in ${this.opts.forwardTimeoutMs} ms`)),
        this.opts.forwardTimeoutMs,
      );
      sock.on("error", (err) => done(err));
      sock.on("close", () => done(new Error("connection closed before an answer")));
      sock.on("data", (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const res = buf.subarray(2, 2 + buf.readUInt16BE(0));
          buf = buf.subarray(2 + res.length);
          if (DnsServer.isAnswerTo(res, id)) return done(undefined, Buffer.from(res));
        }
      });
      const len = Buffer.allocUnsafe(2);
      len.writeUInt16BE(out.length);
      sock.write(Buffer.concat([len, out]));
    });
  }
}
