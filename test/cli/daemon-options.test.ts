// Unit tests of the daemon flags and of the address a node advertises (Docker's rules), with the
// machine's interfaces and address choice injected.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { NetworkInterfaceInfo } from "node:os";
import {
  chooseAdvertise,
  daemonArgv,
  interfaceAddress,
  givenRunOptions,
  parseDaemonFlags,
  parseNodeAddr,
  runOptions,
  type MachineAddresses,
} from "../../src/cli/daemon-options.js";
import { AdvertiseAddrError, type Interfaces } from "../../src/lib/netif.js";
import { UsageError } from "../../src/cli/errors.js";

function addr(address: string, family: "IPv4" | "IPv6" = "IPv4"): NetworkInterfaceInfo {
  return family === "IPv4"
    ? {
        address,
        family,
        netmask: "255.255.255.0",
        mac: "00:00:00:00:00:00",
        internal: false,
        cidr: null,
      }
    : {
        address,
        family,
        netmask: "ffff::",
        mac: "00:00:00:00:00:00",
        internal: false,
        cidr: null,
        scopeid: 0,
      };
}

const IFACES: Interfaces = {
  lo: [{ ...addr("127.0.0.1"), internal: true }],
  eth0: [addr("10.0.0.5"), addr("fe80::1", "IPv6")],
  eth1: [addr("192.168.1.2"), addr("192.168.1.3")],
  v6only: [addr("fe80::2", "IPv6"), addr("2001:db8::7", "IPv6")],
  nothing: [addr("fe80::3", "IPv6")],
};

function machine(system: string | Error): MachineAddresses {
  return {
    interfaces: () => IFACES,
    systemAddress: () => {
      if (system instanceof Error) throw system;
      return system;
    },
  };
}

const AMBIGUOUS = new AdvertiseAddrError(
  "could not choose an IP address to advertise since this system has multiple addresses on different interfaces (10.0.0.5 on eth0 and 192.168.1.2 on eth1) - specify one with --advertise-addr",
);

test("--advertise-addr: IP, IP:PORT, [v6]:PORT, bare v6, an interface name", () => {
  assert.deepEqual(parseNodeAddr("10.1.2.3", "advertise", IFACES), {
    host: "10.1.2.3",
    port: undefined,
  });
  assert.deepEqual(parseNodeAddr("10.1.2.3:4000", "advertise", IFACES), {
    host: "10.1.2.3",
    port: 4000,
  });
  assert.deepEqual(parseNodeAddr("[::1]:2377", "advertise", IFACES), { host: "::1", port: 2377 });
  assert.deepEqual(parseNodeAddr("2001:db8::1", "advertise", IFACES), {
    host: "2001:db8::1",
    port: undefined,
  });
  assert.deepEqual(parseNodeAddr("eth0", "advertise", IFACES), {
    host: "10.0.0.5",
    port: undefined,
  });
  assert.deepEqual(parseNodeAddr("eth0:2400", "advertise", IFACES), {
    host: "10.0.0.5",
    port: 2400,
  });
  assert.deepEqual(parseNodeAddr("v6only", "advertise", IFACES), {
    host: "2001:db8::7",
    port: undefined,
  });
  const refused = (text: string, re: RegExp) =>
    assert.throws(
      () => parseNodeAddr(text, "advertise", IFACES),
      (e: unknown) => e instanceof UsageError && re.test(e.message),
    );
  refused(
    "0.0.0.0",
    /advertise address must be a non-zero IP address or network interface \(with optional port number\)/,
  );
  refused("eth9", /advertise address must be a non-zero IP address or network interface/);
  refused(":2377", /advertise address must be/);
  refused(
    "eth1",
    /interface eth1 has more than one IPv4 address \(192\.168\.1\.2 and 192\.168\.1\.3\)/,
  );
  refused("nothing", /interface nothing has no usable IPv4 or IPv6 address/);
  refused("[::1", /missing '\]'/);
  assert.equal(interfaceAddress("eth0", IFACES), "10.0.0.5");
});

test("--listen-addr: wildcards and ports", () => {
  assert.deepEqual(parseNodeAddr(":2400", "listen", IFACES), { host: "0.0.0.0", port: 2400 });
  assert.deepEqual(parseNodeAddr("0.0.0.0:0", "listen", IFACES), { host: "0.0.0.0", port: 0 });
  assert.deepEqual(parseNodeAddr("[::]:2377", "listen", IFACES), { host: "::", port: 2377 });
  assert.throws(
    () => parseNodeAddr("example.com:2377", "listen", IFACES),
    /listen address must be/,
  );
});

test("the advertised address: the flag, else a specific listen host, else the machine's", () => {
  const choose = (
    flags: Parameters<typeof parseDaemonFlags>[0],
    system: string | Error,
    fallback: "error" | "loopback" = "error",
  ) => {
    const m = machine(system);
    return chooseAdvertise(parseDaemonFlags(flags, { natsPort: 4222 }, m), fallback, m);
  };
  assert.deepEqual(choose({}, "10.0.0.5"), { host: "10.0.0.5", port: 2377 });
  assert.deepEqual(choose({ listenAddr: "0.0.0.0:2400" }, "10.0.0.5"), {
    host: "10.0.0.5",
    port: 2400,
  });
  assert.deepEqual(choose({ listenAddr: "127.0.0.1:0" }, AMBIGUOUS), {
    host: "127.0.0.1",
    port: 0,
  });
  assert.deepEqual(choose({ advertiseAddr: "eth0" }, AMBIGUOUS), { host: "10.0.0.5", port: 2377 });
  assert.deepEqual(choose({ advertiseAddr: "[2001:db8::9]:2500" }, AMBIGUOUS), {
    host: "2001:db8::9",
    port: 2500,
  });
  // init and daemon: Docker's error when the machine has no single address.
  assert.throws(
    () => choose({}, AMBIGUOUS),
    (e: unknown) => e === AMBIGUOUS,
  );
  // up: 127.0.0.1, and a one-line notice that says why.
  const up = choose({}, AMBIGUOUS, "loopback");
  assert.equal(up.host, "127.0.0.1");
  assert.equal(up.port, 2377);
  assert.match(
    up.notice ?? "",
    /^shoal: could not choose an IP address to advertise since .*eth1\); advertising 127\.0\.0\.1 \(other machines cannot join; use --advertise-addr to choose\)$/,
  );
  assert.ok(!up.notice!.includes("\n"));
});

test("daemon flags: defaults, checks, and the argv init gives the daemon it starts", () => {
  const m = machine("10.0.0.5");
  const p = parseDaemonFlags({ dataDir: "/tmp/d" }, { natsPort: 4222, monitorPort: 8222 }, m);
  assert.equal(p.natsPort, 4222);
  assert.equal(p.monitorPort, 8222);
  assert.equal(p.cpus, undefined);
  const q = parseDaemonFlags(
    {
      dataDir: "/d",
      cpus: "1.5",
      memory: "2g",
      monitorPort: "0",
      natsPort: "-1",
      apiAddr: "127.0.0.1:2375",
      fencingMargin: "2.5s",
      defaultAddrPool: "10.20.0.0/16",
      defaultAddrPoolMaskLength: "26",
      debug: true,
    },
    { natsPort: 4222, monitorPort: 8222 },
    m,
  );
  assert.equal(q.fenceMarginMs, 2500);
  assert.equal(q.cpus, 1.5);
  assert.equal(q.memoryBytes, 2 * 1024 ** 3);
  assert.equal(q.monitorPort, undefined);
  assert.equal(q.natsPort, -1);
  const o = runOptions(q, { host: "::1", port: 2377 });
  assert.deepEqual(o, {
    dataDir: "/d",
    listenAddr: "0.0.0.0:2377",
    advertiseAddr: "[::1]:2377",
    natsPort: -1,
    apiTcp: "127.0.0.1:2375",
    publishHost: "0.0.0.0",
    debug: true,
    cpus: 1.5,
    memoryBytes: 2 * 1024 ** 3,
    fenceMarginMs: 2500,
    addrPool: { pool: "10.20.0.0/16", maskLength: 26 },
  });
  // What init passes to the daemon it starts parses back to the same options.
  const argv = daemonArgv(o);
  const flags: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i]!.slice(2).replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
    if (argv[i] === "--debug") flags[name] = true;
    else flags[name] = argv[++i]!;
  }
  const again = parseDaemonFlags(flags, { natsPort: 4222 }, m);
  assert.deepEqual(runOptions(again, chooseAdvertise(again, "error", m)), o);
  const bad = (f: Parameters<typeof parseDaemonFlags>[0], re: RegExp) =>
    assert.throws(() => parseDaemonFlags(f, { natsPort: 4222 }, m), re);
  bad({ cpus: "0" }, /invalid argument "0" for "--cpus" flag: must be more than 0/);
  bad({ cpus: "many" }, /invalid argument "many" for "--cpus" flag/);
  bad({ memory: "lots" }, /invalid argument "lots" for "--memory" flag: invalid size/);
  bad({ natsPort: "70000" }, /invalid argument "70000" for "--nats-port" flag: port out of range/);
  bad({ monitorPort: "x" }, /invalid argument "x" for "--monitor-port" flag/);
  bad({ apiAddr: "localhost" }, /invalid --api-addr "localhost": expected HOST:PORT/);
  bad({ fencingMargin: "soon" }, /invalid argument "soon" for "--fencing-margin" flag/);
  bad(
    { defaultAddrPool: "10.20.0.0" },
    /invalid argument "10.20.0.0" for "--default-addr-pool" flag/,
  );
  bad(
    { defaultAddrPoolMaskLength: "33" },
    /invalid argument "33" for "--default-addr-pool-mask-length" flag/,
  );
  // Fencing off: -1, and back through the argv init builds.
  const off = parseDaemonFlags({ dataDir: "/d", fencingMargin: "off" }, { natsPort: 4222 }, m);
  assert.equal(off.fenceMarginMs, -1);
  assert.deepEqual(daemonArgv(runOptions(off, { host: "10.0.0.5", port: 2377 })).slice(-4, -2), [
    "--fencing-margin",
    "off",
  ]);
});

test("--consul-addr and --consul-dns-addr: checked, passed on by init, best effort only for up's defaults", () => {
  const m = machine("10.0.0.5");
  const parse = (f: Record<string, string>) =>
    parseDaemonFlags({ dataDir: "/d", ...f }, { natsPort: 4222 }, m);
  const good: Array<[string, string]> = [
    ["", ""],
    [":8500", ":8500"],
    ["127.0.0.1:0", "127.0.0.1:0"],
    ["[::1]:8500", "[::1]:8500"],
    ["8500", "8500"], // a port alone
  ];
  for (const [given, want] of good) {
    assert.equal(parse({ consulAddr: given }).consulAddr, want, given);
    assert.equal(parse({ consulDnsAddr: given }).consulDnsAddr, want, given);
  }
  for (const bad of ["localhost:8500", "127.0.0.1", ":99999", "[::1"]) {
    assert.throws(
      () => parse({ consulAddr: bad }),
      (e: Error) => e instanceof UsageError && e.message.includes(`"--consul-addr"`),
      bad,
    );
  }
  const p = parse({ consulAddr: "", consulDnsAddr: "127.0.0.1:0" });
  const argv = daemonArgv(runOptions(p, { host: "10.0.0.5", port: 2377 }));
  assert.deepEqual(argv.slice(argv.indexOf("--consul-addr")), [
    "--consul-addr",
    "",
    "--consul-dns-addr",
    "127.0.0.1:0",
  ]);
  // Not given: init passes nothing (the daemon's defaults, :8500 and :8600, apply).
  assert.ok(
    !daemonArgv(runOptions(parse({}), { host: "10.0.0.5", port: 2377 })).includes("--consul-addr"),
  );
  // `up` on the defaults goes on without a taken address; given addresses must bind.
  assert.equal(givenRunOptions({}, parse({}), true).consulBestEffort, true);
  assert.equal(givenRunOptions({}, parse({}), false).consulBestEffort, undefined);
  const given = parse({ consulAddr: ":8500" });
  assert.equal(givenRunOptions({ consulAddr: ":8500" }, given, true).consulBestEffort, undefined);
});

test("--http-addr and --http-access-log: checked, passed on by init and join's daemon", () => {
  const m = machine("10.0.0.5");
  const parse = (f: Record<string, string | boolean>) =>
    parseDaemonFlags({ dataDir: "/d", ...f }, { natsPort: 4222 }, m);
  for (const given of ["", ":80", "127.0.0.1:0", "[::1]:8080"]) {
    assert.equal(parse({ httpAddr: given }).httpAddr, given);
  }
  for (const bad of ["example.com:80", "127.0.0.1", ":70000"]) {
    assert.throws(
      () => parse({ httpAddr: bad }),
      (e: Error) => e instanceof UsageError && e.message.includes(`"--http-addr"`),
      bad,
    );
  }
  const p = parse({ httpAddr: "127.0.0.1:8081", httpAccessLog: true });
  const argv = daemonArgv(runOptions(p, { host: "10.0.0.5", port: 2377 }));
  assert.deepEqual(argv.slice(argv.indexOf("--http-addr")), [
    "--http-addr",
    "127.0.0.1:8081",
    "--http-access-log",
  ]);
  const off = parse({});
  assert.equal(off.httpAddr, undefined, "not given: the daemon's default (:80) applies");
  assert.ok(!daemonArgv(runOptions(off, { host: "10.0.0.5", port: 2377 })).includes("--http-addr"));
  assert.equal(givenRunOptions({ httpAddr: "" }, parse({ httpAddr: "" }), false).httpAddr, "");
});

test("--metrics-addr: checked, passed on by init and by daemon/up, off with an empty value", () => {
  const m = machine("10.0.0.5");
  const parse = (f: Record<string, string>) =>
    parseDaemonFlags({ dataDir: "/d", ...f }, { natsPort: 4222 }, m);
  for (const [given, want] of [
    ["", ""],
    [":9323", ":9323"],
    ["127.0.0.1:0", "127.0.0.1:0"],
  ] as const) {
    assert.equal(parse({ metricsAddr: given }).metricsAddr, want, given);
  }
  assert.throws(
    () => parse({ metricsAddr: "nowhere:9323" }),
    (e: Error) => e instanceof UsageError && e.message.includes(`"--metrics-addr"`),
  );
  const p = parse({ metricsAddr: "" });
  const argv = daemonArgv(runOptions(p, { host: "10.0.0.5", port: 2377 }));
  assert.deepEqual(argv.slice(argv.indexOf("--metrics-addr")), ["--metrics-addr", ""]);
  assert.equal(givenRunOptions({ metricsAddr: "" }, p, false).metricsAddr, "");
  // Not given: nothing passed (the daemon's saved setting or its default, :9323, applies).
  assert.ok(
    !daemonArgv(runOptions(parse({}), { host: "10.0.0.5", port: 2377 })).includes("--metrics-addr"),
  );
});

test("--dashboard-addr: checked like the other addresses, passed on by init and daemon", () => {
  const m = machine("10.0.0.5");
  const parse = (f: Record<string, string>) =>
    parseDaemonFlags({ dataDir: "/d", ...f }, { natsPort: 4222 }, m);
  for (const good of ["", "127.0.0.1:8080", ":8080", "0.0.0.0:0", "[::1]:8080"])
    assert.equal(parse({ dashboardAddr: good }).dashboardAddr, good);
  for (const bad of ["localhost:8080", "127.0.0.1", ":70000"]) {
    assert.throws(
      () => parse({ dashboardAddr: bad }),
      (e: Error) => e instanceof UsageError && e.message.includes(`"--dashboard-addr"`),
      bad,
    );
  }
  const p = parse({ dashboardAddr: "10.0.0.5:9000" });
  const argv = daemonArgv(runOptions(p, { host: "10.0.0.5", port: 2377 }));
  assert.deepEqual(
    argv.slice(argv.indexOf("--dashboard-addr"), argv.indexOf("--dashboard-addr") + 2),
    ["--dashboard-addr", "10.0.0.5:9000"],
  );
  assert.equal(
    givenRunOptions({ dashboardAddr: "" }, parse({ dashboardAddr: "" }), false).dashboardAddr,
    "",
  );
  // Not given: nothing passed, the daemon's default (127.0.0.1:8080) or its saved setting applies.
  assert.ok(
    !daemonArgv(runOptions(parse({}), { host: "10.0.0.5", port: 2377 })).includes(
      "--dashboard-addr",
    ),
  );
  assert.equal(givenRunOptions({}, parse({}), true).dashboardAddr, undefined);
});
