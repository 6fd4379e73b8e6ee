// The embedded DNS server over real UDP and TCP sockets on 127.0.0.1. Different source addresses
// of 127.0.0.0/8 (all loopback on Linux) stand for different tasks, so scoping is tested as a
// task would see it. A fake upstream (a small dns-packet responder on UDP and TCP) stands for
// the node's resolvers.

import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { createConnection, createServer, type Socket } from "node:net";
import { promises as dnsPromises } from "node:dns";
import packet, { type Answer, type DecodedPacket, type Packet, type RecordType } from "dns-packet";
import fc from "fast-check";
import {
  DnsServer,
  normalizeName,
  questionEnd,
  resolvConfServers,
  type DnsServerOptions,
} from "../../src/net/dns.js";
import type { DnsTable } from "../../src/api/dns.js";
import { SchemaError } from "../../src/api/errors.js";
import { joinHostPort } from "../../src/lib/addr.js";
import { defer } from "../helpers/defer.js";
import { checkFor } from "../helpers/servers.js";
import { propertyParams } from "../helpers/property.js";

const ON_A = "127.0.0.2"; // a task on network A
const ON_B = "127.0.0.3"; // a task on network B
const ON_AB = "127.0.0.4"; // a task on both
const NOWHERE = "127.0.0.5"; // not a task

function table(): DnsTable {
  return {
    networks: {
      A: {
        services: {
          web: {
            vip: "10.0.0.2",
            endpointMode: "vip",
            taskAddrs: ["10.0.0.3", "10.0.0.4"],
            aliases: ["www"],
          },
          db: {
            endpointMode: "dnsrr",
            taskAddrs: ["10.0.0.5", "10.0.0.6", "10.0.0.7"],
            aliases: [],
          },
        },
        tasks: { "web.1.abc": "10.0.0.3", "web.2.def": "10.0.0.4" },
      },
      B: {
        services: {
          secret: { vip: "10.1.0.2", endpointMode: "vip", taskAddrs: ["10.1.0.3"], aliases: [] },
          web: { vip: "10.1.0.9", endpointMode: "vip", taskAddrs: ["10.1.0.10"], aliases: [] },
        },
        tasks: { "secret.1.xyz": "10.1.0.3" },
      },
    },
    clients: { [ON_A]: ["A"], [ON_B]: ["B"], [ON_AB]: ["A", "B"] },
  };
}

async function startDns(t: TestContext, opts: Partial<DnsServerOptions> = {}): Promise<DnsServer> {
  const dns = new DnsServer({ host: "127.0.0.1", port: 0, upstreams: [], ...opts });
  await dns.listen();
  defer(t, () => dns.close());
  dns.setRecords(table());
  return dns;
}

/** A decoded answer (dns-packet decodes the rcode too; its types lack it). */
type Res = DecodedPacket & { rcode: string; size?: number };

const portOf = (dns: DnsServer) => dns.listening!.udp;

function query(name: string, type: RecordType = "A", extra: Partial<Packet> = {}): Buffer {
  return packet.encode({
    type: "query",
    id: Math.floor(Math.random() * 65536),
    flags: packet.RECURSION_DESIRED,
    questions: [{ type, name, class: "IN" }],
    ...extra,
  });
}

/** Sends raw bytes over UDP from `from` and resolves with the decoded answer. */
function askRaw(port: number, msg: Buffer, from = ON_A): Promise<Res> {
  return new Promise((resolve, reject) => {
    const sock = createSocket("udp4");
    const timer = setTimeout(() => {
      sock.close();
      reject(new Error("no answer in 3 s"));
    }, 3000);
    sock.on("message", (res) => {
      clearTimeout(timer);
      sock.close();
      resolve({ ...(packet.decode(res) as Res), size: res.length });
    });
    sock.on("error", reject);
    sock.bind({ address: from, port: 0 }, () => sock.send(msg, port, "127.0.0.1"));
  });
}

function ask(port: number, name: string, type: RecordType = "A", from = ON_A) {
  return askRaw(port, query(name, type), from);
}

/** The A addresses of an answer. */
const addrs = (res: DecodedPacket) =>
  (res.answers ?? []).filter((a) => a.type === "A").map((a) => (a as { data: string }).data);

/** Sends every message over one TCP connection (from `from`) and collects as many answers. */
function askTcp(port: number, msgs: Buffer[], from = ON_A): Promise<Res[]> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ host: "127.0.0.1", port, localAddress: from });
    const out: Res[] = [];
    let buf: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`${out.length} of ${msgs.length} answers in 3 s`));
    }, 3000);
    sock.on("error", reject);
    sock.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        out.push(packet.decode(buf.subarray(2, 2 + buf.readUInt16BE(0))) as Res);
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (out.length === msgs.length) {
        clearTimeout(timer);
        sock.destroy();
        resolve(out);
      }
    });
    // Every query in one write, frames back to back: the server must split them itself.
    sock.write(
      Buffer.concat(
        msgs.flatMap((m) => {
          const len = Buffer.alloc(2);
          len.writeUInt16BE(m.length);
          return [len, m];
        }),
      ),
    );
  });
}

interface FakeUpstream {
  port: number;
  udpQueries: number;
  tcpQueries: number;
}

/**
 * A resolver on 127.0.0.1 (UDP and TCP, one port): `answer(question, tcp)` gives the reply's
 * rcode and A records, or "silent" to never answer.
 */
async function fakeUpstream(
  t: TestContext,
  answer: (
    q: { name: string; type: string },
    tcp: boolean,
  ) => { rcode?: number; a?: string[]; tc?: boolean } | "silent",
): Promise<FakeUpstream> {
  const up: FakeUpstream = { port: 0, udpQueries: 0, tcpQueries: 0 };
  const reply = (msg: Buffer, tcp: boolean): Buffer | undefined => {
    const q = packet.decode(msg);
    const question = q.questions![0]!;
    const a = answer(question, tcp);
    if (a === "silent") return undefined;
    const answers: Answer[] = (a.a ?? []).map((data) => ({
      type: "A",
      name: question.name,
      ttl: 60,
      data,
    }));
    return packet.encode({
      type: "response",
      id: q.id,
      flags: (a.rcode ?? 0) | (a.tc ? packet.TRUNCATED_RESPONSE : 0) | packet.RECURSION_AVAILABLE,
      questions: q.questions,
      answers,
    });
  };
  let udp: ReturnType<typeof createSocket> | undefined;
  const conns = new Set<Socket>();
  const tcp = createServer((s) => {
    conns.add(s);
    s.on("error", () => {});
    let buf: Buffer = Buffer.alloc(0);
    s.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        up.tcpQueries++;
        const res = reply(msg, true);
        if (res) {
          const len = Buffer.alloc(2);
          len.writeUInt16BE(res.length);
          s.write(Buffer.concat([len, res]));
        }
      }
    });
  });
  // One port for UDP and TCP: a UDP port whose TCP twin is taken is given up for another.
  for (let attempt = 0; ; attempt++) {
    const sock = createSocket("udp4");
    udp = sock;
    sock.on("message", (msg, rinfo) => {
      up.udpQueries++;
      const res = reply(msg, false);
      if (res) sock.send(res, rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => sock.bind({ address: "127.0.0.1", port: 0 }, r));
    up.port = sock.address().port;
    const listened = await new Promise<boolean>((resolve) => {
      tcp.once("error", () => resolve(false));
      tcp.listen({ host: "127.0.0.1", port: up.port }, () => resolve(true));
    });
    if (listened) break;
    sock.close();
    if (attempt >= 20) throw new Error("no port free for both UDP and TCP");
  }
  defer(t, async () => {
    for (const c of conns) c.destroy();
    await new Promise<void>((r) => tcp.close(() => r()));
    await new Promise<void>((r) => udp?.close(() => r()));
  });
  return up;
}

// ---- answers from the table --------------------------------------------------------------------

test("<service> in vip mode answers its VIP, with the configured short TTL", async (t) => {
  const dns = await startDns(t, { ttl: 7 });
  const res = await ask(portOf(dns), "web");
  assert.equal(res.rcode, "NOERROR");
  assert.deepEqual(addrs(res), ["10.0.0.2"]);
  assert.equal((res.answers![0] as { ttl: number }).ttl, 7);
  assert.equal(res.answers![0]!.name, "web", "the name as asked");
  assert.equal(dns.counters.answered, 1);
});

test("the default TTL is 5 s", async (t) => {
  const dns = await startDns(t);
  const res = await ask(portOf(dns), "web");
  assert.equal((res.answers![0] as { ttl: number }).ttl, 5);
});

test("<service> in dnsrr mode answers every task's address, in shuffled order", async (t) => {
  const dns = await startDns(t);
  const orders = new Set<string>();
  for (let i = 0; i < 40 && orders.size < 2; i++) {
    const res = await ask(portOf(dns), "db");
    assert.deepEqual([...addrs(res)].sort(), ["10.0.0.5", "10.0.0.6", "10.0.0.7"]);
    orders.add(addrs(res).join(","));
  }
  assert.ok(orders.size >= 2, "40 answers in one order: not shuffled");
});

test("tasks.<service> answers every running task's address, in vip mode too", async (t) => {
  const dns = await startDns(t);
  assert.deepEqual([...addrs(await ask(portOf(dns), "tasks.web"))].sort(), [
    "10.0.0.3",
    "10.0.0.4",
  ]);
  assert.deepEqual([...addrs(await ask(portOf(dns), "tasks.db"))].sort(), [
    "10.0.0.5",
    "10.0.0.6",
    "10.0.0.7",
  ]);
});

test("a network-scoped alias answers as its service, tasks.<alias> too", async (t) => {
  const dns = await startDns(t);
  assert.deepEqual(addrs(await ask(portOf(dns), "www")), ["10.0.0.2"]);
  assert.deepEqual([...addrs(await ask(portOf(dns), "tasks.www"))].sort(), [
    "10.0.0.3",
    "10.0.0.4",
  ]);
  const other = await ask(portOf(dns), "www", "A", ON_B);
  assert.deepEqual(addrs(other), [], "the alias is on network A only");
});

test("<service>.<slot>.<task-id> answers that task", async (t) => {
  const dns = await startDns(t);
  assert.deepEqual(addrs(await ask(portOf(dns), "web.2.def")), ["10.0.0.4"]);
});

test("names match without regard to case or the trailing dot, and the domain is stripped", async (t) => {
  const dns = await startDns(t, { domains: ["shoal.internal"], search: ["corp.example"] });
  for (const name of [
    "WEB",
    "web.",
    "Web.Shoal.Internal",
    "web.shoal.internal.",
    "web.corp.example",
    "TASKS.Web.",
  ]) {
    const res = await ask(portOf(dns), name);
    assert.equal(res.rcode, "NOERROR", name);
    assert.ok(addrs(res).length > 0, `${name}: no addresses`);
  }
});

test("AAAA and other types of a known name: an empty NOERROR answer, as Docker's", async (t) => {
  const dns = await startDns(t);
  for (const type of ["AAAA", "MX", "TXT"] as const) {
    const res = await ask(portOf(dns), "web", type);
    assert.equal(res.rcode, "NOERROR", type);
    assert.deepEqual(res.answers, [], type);
  }
  assert.equal(dns.counters.forwarded + dns.counters.servfail, 0, "nothing forwarded");
});

test("node's own resolver (c-ares) resolves through the server", async (t) => {
  const dns = await startDns(t);
  const r = new dnsPromises.Resolver({ timeout: 2000, tries: 1 });
  r.setServers([`127.0.0.1:${portOf(dns)}`]);
  r.setLocalAddress(ON_A);
  assert.deepEqual(await r.resolve4("web"), ["10.0.0.2"]);
  assert.deepEqual((await r.resolve4("tasks.db")).sort(), ["10.0.0.5", "10.0.0.6", "10.0.0.7"]);
  await assert.rejects(r.resolve6("web"), { code: "ENODATA" });
});

// ---- scoping -----------------------------------------------------------------------------------

test("a task sees the names of its own networks only", async (t) => {
  const up = await fakeUpstream(t, () => ({ rcode: 3 }));
  const dns = await startDns(t, { upstreams: [`127.0.0.1:${up.port}`] });
  const port = portOf(dns);
  assert.deepEqual(addrs(await ask(port, "secret", "A", ON_B)), ["10.1.0.2"]);
  const hidden = await ask(port, "secret", "A", ON_A);
  assert.equal(hidden.rcode, "NXDOMAIN", "network B's service is not in A's answers");
  assert.equal(up.udpQueries, 1, "it went upstream, as any unknown name");
  assert.equal((await ask(port, "tasks.secret", "A", ON_A)).rcode, "NXDOMAIN");
  assert.equal((await ask(port, "secret.1.xyz", "A", ON_A)).rcode, "NXDOMAIN");
  assert.equal((await ask(port, "web", "A", NOWHERE)).rcode, "NXDOMAIN", "not a task: no names");
  // The same name on two networks: each side gets its own; a task on both gets its first.
  assert.deepEqual(addrs(await ask(port, "web", "A", ON_B)), ["10.1.0.9"]);
  assert.deepEqual(addrs(await ask(port, "web", "A", ON_AB)), ["10.0.0.2"]);
  assert.deepEqual(addrs(await ask(port, "secret", "A", ON_AB)), ["10.1.0.2"]);
});

test("scoping holds over TCP too", async (t) => {
  const dns = await startDns(t);
  const [onB, onA] = [
    (await askTcp(portOf(dns), [query("secret")], ON_B))[0]!,
    (await askTcp(portOf(dns), [query("secret")], ON_A))[0]!,
  ];
  assert.deepEqual(addrs(onB), ["10.1.0.2"]);
  assert.deepEqual(addrs(onA), []);
  assert.equal(onA.rcode, "SERVFAIL", "unknown, and no upstream");
});

test("a table change takes effect at once: a removed task is in no answer", async (t) => {
  const dns = await startDns(t);
  const port = portOf(dns);
  assert.deepEqual([...addrs(await ask(port, "db"))].sort(), ["10.0.0.5", "10.0.0.6", "10.0.0.7"]);
  const next = table();
  next.networks["A"]!.services["db"]!.taskAddrs = ["10.0.0.5", "10.0.0.7"];
  next.networks["A"]!.services["web"]!.taskAddrs = ["10.0.0.3"];
  delete next.networks["A"]!.tasks["web.2.def"];
  dns.setRecords(next);
  for (let i = 0; i < 10; i++) {
    assert.deepEqual([...addrs(await ask(port, "db"))].sort(), ["10.0.0.5", "10.0.0.7"]);
    assert.deepEqual(addrs(await ask(port, "tasks.web")), ["10.0.0.3"]);
  }
  assert.equal((await ask(port, "web.2.def")).rcode, "SERVFAIL", "unknown now (no upstream)");
  // A task that leaves network A sees none of its names.
  next.clients[ON_A] = [];
  dns.setRecords(next);
  assert.deepEqual(addrs(await ask(port, "web")), []);
});

test("setRecords refuses a bad table with a message naming the problem, and keeps the old one", async (t) => {
  const dns = await startDns(t);
  const bad = table() as unknown as { networks: { A: { services: { web: { vip: string } } } } };
  bad.networks.A.services.web.vip = "10.0.0.300";
  assert.throws(
    () => dns.setRecords(bad as unknown as DnsTable),
    (err: unknown) => {
      assert.ok(err instanceof SchemaError);
      assert.match(err.message, /networks\.A\.services\.web\.vip/);
      return true;
    },
  );
  const dangling = table();
  dangling.clients[ON_A] = ["A", "C"];
  assert.throws(() => dns.setRecords(dangling), { code: "ERR_DNS_TABLE", message: /network "C"/ });
  assert.deepEqual(addrs(await ask(portOf(dns), "web")), ["10.0.0.2"], "the old table answers");
});

// ---- NXDOMAIN, forwarding, SERVFAIL --------------------------------------------------------------

test("an unknown tasks. name, or a name under shoal's own domain: NXDOMAIN, not forwarded", async (t) => {
  const up = await fakeUpstream(t, () => ({ a: ["192.0.2.1"] }));
  const dns = await startDns(t, { domains: ["shoal"], upstreams: [`127.0.0.1:${up.port}`] });
  for (const name of ["tasks.nope", "nope.shoal", "NOPE.shoal."]) {
    const res = await ask(portOf(dns), name);
    assert.equal(res.rcode, "NXDOMAIN", name);
    assert.ok(res.flag_aa, "authoritative");
  }
  assert.equal(dns.counters.nxdomain, 3);
  assert.equal(up.udpQueries, 0);
});

test("other names are forwarded upstream and its answer relayed, over UDP and TCP", async (t) => {
  const up = await fakeUpstream(t, (q) =>
    q.name === "example.com" ? { a: ["192.0.2.1", "192.0.2.2"] } : { rcode: 3 },
  );
  const dns = await startDns(t, { upstreams: [`127.0.0.1:${up.port}`] });
  const msg = query("example.com");
  const res = await askRaw(portOf(dns), msg);
  assert.equal(res.id, msg.readUInt16BE(0), "the client's id");
  assert.deepEqual(addrs(res), ["192.0.2.1", "192.0.2.2"]);
  assert.equal((await ask(portOf(dns), "missing.example")).rcode, "NXDOMAIN", "relayed as is");
  const [overTcp] = await askTcp(portOf(dns), [query("example.com")]);
  assert.deepEqual(addrs(overTcp!), ["192.0.2.1", "192.0.2.2"]);
  assert.equal(up.tcpQueries, 1, "a TCP question goes upstream over TCP");
  assert.equal(dns.counters.forwarded, 3);
});

test("a truncated upstream answer is retried over TCP, and the full answer relayed", async (t) => {
  const up = await fakeUpstream(t, (_q, tcp) =>
    tcp ? { a: ["192.0.2.7", "192.0.2.8"] } : { tc: true, a: [] },
  );
  const dns = await startDns(t, { upstreams: [`127.0.0.1:${up.port}`] });
  const res = await ask(portOf(dns), "big.example");
  assert.deepEqual(addrs(res), ["192.0.2.7", "192.0.2.8"]);
  assert.equal(res.flag_tc, false);
  assert.deepEqual([up.udpQueries, up.tcpQueries], [1, 1]);
});

test("an upstream answer too long for the client's UDP is cut down with TC set", async (t) => {
  const many = Array.from({ length: 60 }, (_, i) => `192.0.2.${i + 1}`);
  const up = await fakeUpstream(t, (_q, tcp) => (tcp ? { a: many } : { tc: true }));
  const dns = await startDns(t, { upstreams: [`127.0.0.1:${up.port}`] });
  const res = await ask(portOf(dns), "huge.example");
  assert.equal(res.flag_tc, true);
  assert.ok(addrs(res).length > 0 && addrs(res).length < 60, `${addrs(res).length} answers`);
  const [full] = await askTcp(portOf(dns), [query("huge.example")]);
  assert.equal(addrs(full!).length, 60, "over TCP: the whole answer");
});

test("a long answer of our own is cut to 512 bytes over UDP (TC), whole over TCP", async (t) => {
  const dns = await startDns(t);
  const big = table();
  big.networks["A"]!.services["db"]!.taskAddrs = Array.from(
    { length: 100 },
    (_, i) => `10.0.1.${i}`,
  );
  dns.setRecords(big);
  const msg = query("tasks.db");
  const res = await askRaw(portOf(dns), msg);
  assert.equal(res.flag_tc, true);
  assert.ok(res.size! <= 512 && res.size! > 400, `${res.size} bytes`);
  assert.ok(addrs(res).length > 0);
  assert.equal(dns.counters.truncated, 1);
  const [full] = await askTcp(portOf(dns), [msg]);
  assert.equal(addrs(full!).length, 100);
  // A client that says (EDNS) it takes 1232 bytes gets up to that, and an OPT record back.
  const edns = await askRaw(
    portOf(dns),
    query("tasks.db", "A", {
      additionals: [
        {
          type: "OPT",
          name: ".",
          udpPayloadSize: 1232,
          extendedRcode: 0,
          ednsVersion: 0,
          flags: 0,
          flag_do: false,
          options: [],
        },
      ],
    }),
  );
  assert.equal(edns.flag_tc, true);
  assert.ok(edns.size! <= 1232 && edns.size! > 1100, `${edns.size} bytes`);
  assert.deepEqual(
    edns.additionals?.map((a) => a.type),
    ["OPT"],
  );
});

test("questionEnd: past a plain question; -1 for a compressed or cut name", () => {
  const msg = query("web.example");
  assert.equal(questionEnd(msg), msg.length);
  const compressed = Buffer.from(msg);
  compressed.writeUInt16BE(0xc00c, 12);
  assert.equal(questionEnd(compressed), -1);
  assert.equal(questionEnd(msg.subarray(0, msg.length - 1)), -1);
  assert.equal(questionEnd(msg.subarray(0, 12)), -1);
});

test("the next upstream is tried when one fails, refuses or is silent", async (t) => {
  const servfail = await fakeUpstream(t, () => ({ rcode: 2 }));
  const refused = await fakeUpstream(t, () => ({ rcode: 5 }));
  const silent = await fakeUpstream(t, () => "silent");
  const good = await fakeUpstream(t, () => ({ a: ["192.0.2.9"] }));
  const dns = await startDns(t, {
    forwardTimeoutMs: 200,
    upstreams: [servfail, refused, silent, good].map((u) => `127.0.0.1:${u.port}`),
  });
  assert.deepEqual(addrs(await ask(portOf(dns), "example.org")), ["192.0.2.9"]);
  assert.deepEqual(
    [servfail, refused, silent, good].map((u) => u.udpQueries),
    [1, 1, 1, 1],
  );
});

test("SERVFAIL when no upstream is configured, or none answers", async (t) => {
  const none = await startDns(t);
  assert.equal((await ask(portOf(none), "example.org")).rcode, "SERVFAIL");
  assert.equal(none.counters.servfail, 1);
  const silent = await fakeUpstream(t, () => "silent");
  const failing = await fakeUpstream(t, () => ({ rcode: 2 }));
  const dns = await startDns(t, {
    forwardTimeoutMs: 100,
    upstreams: [`127.0.0.1:${silent.port}`, `127.0.0.1:${failing.port}`],
  });
  const res = await ask(portOf(dns), "example.org");
  assert.equal(res.rcode, "SERVFAIL");
  assert.equal(dns.counters.servfail, 1);
  assert.equal(dns.counters.forwarded, 0);
});

// ---- robustness and TCP ------------------------------------------------------------------------

test("malformed packets are counted and dropped; the server keeps answering", async (t) => {
  const dns = await startDns(t);
  const port = portOf(dns);
  const sock = createSocket("udp4");
  defer(t, () => new Promise<void>((r) => sock.close(() => r())));
  const response = packet.encode({
    type: "response",
    id: 1,
    questions: [{ type: "A", name: "web" }],
  });
  const noQuestion = packet.encode({ type: "query", id: 2, questions: [] });
  const bad = [
    Buffer.from("hello"),
    Buffer.alloc(0),
    query("web").subarray(0, 20),
    response,
    noQuestion,
  ];
  for (const b of bad) sock.send(b, port, "127.0.0.1");
  await checkFor(3000, () => dns.counters.malformed === bad.length);
  // Over TCP: a bad frame between two good ones.
  const answers = await askTcp(port, [query("web"), query("db")]);
  assert.equal(answers.length, 2);
  const withBad = createConnection({ host: "127.0.0.1", port, localAddress: ON_A });
  defer(t, () => withBad.destroy());
  withBad.write(Buffer.from([0, 3, 1, 2, 3]));
  await checkFor(3000, () => dns.counters.malformed === bad.length + 1);
  assert.deepEqual(addrs(await ask(port, "web")), ["10.0.0.2"]);
});

test("TCP: several queries on one connection, written at once, answered each", async (t) => {
  const up = await fakeUpstream(t, () => ({ a: ["192.0.2.1"] }));
  const dns = await startDns(t, { upstreams: [`127.0.0.1:${up.port}`] });
  const msgs = [
    query("web"),
    query("example.com"),
    query("tasks.db"),
    query("web.1.abc"),
    query("www", "AAAA"),
  ];
  const answers = await askTcp(portOf(dns), msgs);
  const byId = new Map(answers.map((a) => [a.id, a]));
  assert.equal(byId.size, msgs.length);
  const get = (i: number) => byId.get(msgs[i]!.readUInt16BE(0))!;
  assert.deepEqual(addrs(get(0)), ["10.0.0.2"]);
  assert.deepEqual(addrs(get(1)), ["192.0.2.1"]);
  assert.equal(addrs(get(2)).length, 3);
  assert.deepEqual(addrs(get(3)), ["10.0.0.3"]);
  assert.equal(get(4).rcode, "NOERROR");
});

test("TCP: an idle connection is closed", async (t) => {
  const dns = await startDns(t, { tcpIdleTimeoutMs: 50 });
  const sock = createConnection({ host: "127.0.0.1", port: portOf(dns) });
  defer(t, () => sock.destroy());
  await new Promise<void>((resolve, reject) => {
    sock.on("close", () => resolve());
    sock.on("error", reject);
  });
  assert.ok(sock.destroyed);
});

test("NOTIMP for an opcode other than QUERY", async (t) => {
  const dns = await startDns(t);
  const msg = query("web");
  msg.writeUInt16BE(msg.readUInt16BE(2) | (2 << 11), 2); // STATUS
  const res = await askRaw(portOf(dns), msg);
  assert.equal(res.rcode, "NOTIMP");
  assert.equal(dns.counters.notimp, 1);
});

test("listening gives the bound ports; listen fails clearly on a taken port", async (t) => {
  const dns = await startDns(t);
  const { udp, tcp } = dns.listening!;
  assert.equal(udp, tcp);
  assert.ok(udp > 0);
  const again = new DnsServer({ host: "127.0.0.1", port: udp, upstreams: [] });
  await assert.rejects(again.listen(), { code: "ERR_DNS_LISTEN", message: new RegExp(`:${udp}`) });
  await again.close();
});

test("bad options are refused with the option's name", () => {
  assert.throws(() => new DnsServer({ ttl: -1 }), { code: "ERR_DNS_OPTIONS", message: /ttl/ });
  assert.throws(() => new DnsServer({ forwardTimeoutMs: 0 }), { message: /forwardTimeoutMs/ });
  assert.throws(() => new DnsServer({ port: 70000 }), { message: /port/ });
});

// ---- pure parts --------------------------------------------------------------------------------

test("resolvConfServers: the nameserver lines, in order", () => {
  const text =
    "# c\nsearch corp.example\nnameserver 10.0.0.1\n  nameserver   fe80::1%eth0\noptions ndots:1\nnameserver 127.0.0.53\n";
  assert.deepEqual(resolvConfServers(text), ["10.0.0.1", "fe80::1", "127.0.0.53"]);
});

test("upstreams default to resolv.conf's nameservers", async (t) => {
  const dns = await startDns(t, { upstreams: undefined });
  const { readFileSync } = await import("node:fs");
  const expected = resolvConfServers(readFileSync("/etc/resolv.conf", "utf8")).map((ns) =>
    joinHostPort(ns, 53),
  );
  assert.deepEqual(dns.upstreamServers, expected);
});

const label = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,10}$/);
const name = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join("."));
const randomCase = (s: string, flips: boolean[]) =>
  [...s].map((c, i) => (flips[i % Math.max(1, flips.length)] ? c.toUpperCase() : c)).join("");

test("property: normalising ignores case and the trailing dot, and is idempotent", () => {
  fc.assert(
    fc.property(name, fc.array(fc.boolean(), { minLength: 1 }), fc.boolean(), (n, flips, dot) => {
      const asked = randomCase(n, flips) + (dot ? "." : "");
      const norm = normalizeName(asked).name;
      assert.equal(norm, n);
      assert.equal(normalizeName(norm).name, norm);
    }),
    propertyParams(300),
  );
});

test("property: a configured domain is stripped once, never down to nothing", () => {
  fc.assert(
    fc.property(name, name, fc.boolean(), fc.boolean(), (n, domain, owned, dot) => {
      const suffixes = [{ domain, owned }];
      const got = normalizeName(`${n}.${domain.toUpperCase()}${dot ? "." : ""}`, suffixes);
      assert.deepEqual(got, { name: n, owned });
      const bare = normalizeName(domain + (dot ? "." : ""), suffixes);
      assert.deepEqual(bare, { name: domain, owned: false }, "the domain itself is not stripped");
    }),
    propertyParams(300),
  );
});

test("a `*` client and SRV records (the Consul DNS table): any address asks; SRV targets come with their A", async (t) => {
  const dns = new DnsServer({
    host: "127.0.0.1",
    port: 0,
    upstreams: [],
    domains: ["service.consul", "consul"],
  });
  await dns.listen();
  defer(t, () => dns.close());
  dns.setRecords({
    networks: {
      consul: {
        services: {
          web: {
            endpointMode: "dnsrr",
            taskAddrs: ["10.0.0.3"],
            aliases: ["_web._tcp"],
            srv: [
              { target: "0a000003.addr.dc1.consul", addr: "10.0.0.3", port: 31001 },
              { target: "0a000003.addr.dc1.consul", addr: "10.0.0.3", port: 31002 },
            ],
          },
        },
        tasks: { "0a000003.addr.dc1": "10.0.0.3" },
      },
    },
    clients: { "*": ["consul"] },
  });
  const port = portOf(dns);
  assert.deepEqual(addrs(await ask(port, "web.service.consul", "A", NOWHERE)), ["10.0.0.3"]);
  assert.deepEqual(addrs(await ask(port, "0a000003.addr.dc1.consul", "A", ON_B)), ["10.0.0.3"]);
  for (const name of ["web.service.consul", "_web._tcp.service.consul"]) {
    const res = await ask(port, name, "SRV", NOWHERE);
    assert.equal(res.rcode, "NOERROR");
    assert.ok(res.flags! & packet.AUTHORITATIVE_ANSWER);
    const srv = (res.answers ?? []).map(
      (a) => (a as { data: { port: number; target: string } }).data,
    );
    assert.deepEqual(srv.map((s) => s.port).sort(), [31001, 31002], name);
    assert.ok(srv.every((s) => s.target === "0a000003.addr.dc1.consul"));
    assert.deepEqual(
      (res.additionals ?? [])
        .filter((a) => a.type === "A")
        .map((a) => (a as { data: string }).data),
      ["10.0.0.3", "10.0.0.3"],
    );
  }
  // An unknown name under an owned domain: NXDOMAIN, never forwarded.
  assert.equal((await ask(port, "db.service.consul", "A", NOWHERE)).rcode, "NXDOMAIN");
});
