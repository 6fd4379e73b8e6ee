// A test bed of several "machines" on one box, for shoal's multi-node tests. With root and
// iproute2, each host is a Linux network namespace with its own address on a private /24,
// wired to a bridge in the root namespace by a veth pair: hosts reach each other through the
// bridge, the test (in the root namespace) reaches every host's address, and a host can be
// killed (every process in its namespace, like pulling the plug) or cut off the network and
// healed. Without namespaces the bed falls back to hosts on 127.0.0.x addresses in this
// network stack ("loopback" mode), where cut()/heal() are not supported.
//
// Everything a bed creates (namespaces, links, a subnet reservation, maybe one iptables
// rule) is undone by cleanup(), by a rollback when creation fails halfway, by exit/signal
// handlers as a last resort, and by sweepStale() for runs that were killed outright: every
// name carries the owner's pid, so leftovers of dead owners can be recognised.
//
// Traffic only ever goes to loopback or to the bed's own addresses: the namespaces' default
// route points at the bridge address, and the root namespace does not forward for them.

import {
  execFile,
  execFileSync,
  spawn,
  type ChildProcess,
  type StdioOptions,
} from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { constants } from "node:os";
import type { TestContext } from "node:test";

/** The name prefix of everything shoal's test beds create (and sweepStale() removes). */
export const DEFAULT_PREFIX = "shl";
/** Beds take a /24 out of this /16: 10.77.<k>.0/24, k chosen per bed. */
const SUBNET_16 = "10.77";
/** Subnet reservations, one directory per /24, so concurrent beds never pick the same one. */
const RESERVATIONS = "/run/shoal-testbed";
/** Linux limits interface names to 15 characters (IFNAMSIZ - 1). */
const MAX_IFNAME = 15;
/** Host i (1-based) gets address .(HOST_BASE + i). */
const HOST_BASE = 10;
const CMD_TIMEOUT_MS = 10_000;
const WAIT_MS = 3_000;

export interface HostSpec {
  name: string;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  cwd?: string;
  stdio?: StdioOptions;
}

export interface ExecOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Kill the command (SIGKILL) after this long; its result then carries code 137. */
  timeoutMs?: number;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Host {
  name: string;
  /** The network namespace ("" in loopback mode). */
  ns: string;
  /** The host's address, e.g. "10.77.3.11" (or "127.0.0.11" in loopback mode). */
  addr: string;
  /** Spawns a process inside the host's namespace (ip netns exec NS cmd...), tracked for cleanup. */
  spawn(cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
  /** Runs a command to completion inside the namespace. */
  exec(cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** kill -9 every process in the namespace, like pulling the plug; resolves when they are gone. */
  kill(): Promise<void>;
  /** Cuts the host off the network (its veth down on both ends). Not in loopback mode. */
  cut(): Promise<void>;
  /** Brings a cut host back (links up, default route restored). Not in loopback mode. */
  heal(): Promise<void>;
}

export interface TestBed {
  /** Every namespace and link of the bed is named <id><kind><index> (kind b, v or n). */
  id: string;
  hosts: Host[];
  /** The root namespace's address on the bed's bridge ("127.0.0.1" in loopback mode). */
  bridgeAddr: string;
  mode: "netns" | "loopback";
  /** Kills every process and removes every namespace and link of the bed. Idempotent. */
  cleanup(): Promise<void>;
}

export interface TestBedOptions {
  /** Name prefix (1-4 of [a-z0-9]); DEFAULT_PREFIX unless given. */
  prefix?: string;
  /** "auto" (the default) uses namespaces when available; SHOAL_TESTBED=netns|loopback overrides it. */
  mode?: "auto" | "netns" | "loopback";
}

export type TestBedErrorCode =
  | "COMMAND_FAILED"
  | "NOT_SUPPORTED"
  | "BAD_NAME"
  | "NO_SUBNET"
  | "UNAVAILABLE"
  | "CLEANUP_INCOMPLETE";

export class TestBedError extends Error {
  override name = "TestBedError";
  constructor(
    readonly code: TestBedErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

// ---------------------------------------------------------------------------------------------
// Commands

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: "utf8", timeout: CMD_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) {
        const detail = stderr.trim() || err.message;
        reject(
          new TestBedError("COMMAND_FAILED", `${cmd} ${args.join(" ")}: ${detail}`, { cause: err }),
        );
      } else {
        resolve(stdout);
      }
    });
  });
}

const ip = (args: string[]) => run("ip", args);

/** Runs a command synchronously (exit handlers); returns its stdout, or null when it failed. */
function runSync(cmd: string, args: string[]): string | null {
  try {
    return execFileSync(cmd, args, {
      encoding: "utf8",
      timeout: CMD_TIMEOUT_MS,
      stdio: ["ignore", "pipe", "ignore"],
    });
  } catch {
    return null;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Whether pid names a live process (a zombie counts as dead). */
export function pidAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  // "pid (comm) S ...": the state follows the last ')', since comm may contain one.
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state !== "Z" && state !== "X";
}

function killPid(pid: number, signal: NodeJS.Signals | number = "SIGKILL"): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

function parsePids(out: string | null): number[] {
  if (out === null) return [];
  return out
    .split("\n")
    .map((l) => Number.parseInt(l, 10))
    .filter((p) => Number.isInteger(p) && p > 0 && p !== process.pid);
}

/** kill -9 everything in a namespace until `ip netns pids` lists nothing (processes may fork). */
async function killNamespace(ns: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const pids = parsePids(await ip(["netns", "pids", ns]).catch(() => null));
    if (pids.length === 0) return;
    if (Date.now() > deadline) {
      throw new TestBedError("CLEANUP_INCOMPLETE", `processes survive in ${ns}: ${pids.join(" ")}`);
    }
    for (const pid of pids) killPid(pid);
    await sleep(10);
  }
}

function killNamespaceSync(ns: string): void {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const pids = parsePids(runSync("ip", ["netns", "pids", ns]));
    if (pids.length === 0 || Date.now() > deadline) return;
    for (const pid of pids) killPid(pid);
    sleepSync(10);
  }
}

/** Live (not zombie) processes whose process group is pgid, read from /proc. */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited while we looked
    }
    // After "(comm) ": state ppid pgrp ...
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(pgrp) === pgid && state !== "Z" && state !== "X") members.push(Number(entry));
  }
  return members;
}

/** SIGKILL is delivered asynchronously: wait until no live member of the group is left. */
async function groupGone(pgid: number, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = groupMembers(pgid);
    if (left.length === 0) return;
    if (Date.now() > deadline) {
      throw new TestBedError("CLEANUP_INCOMPLETE", `group ${pgid} survives: ${left.join(" ")}`);
    }
    for (const pid of left) killPid(pid);
    await sleep(10);
  }
}

/** Resolves once the child has exited and been reaped, or after timeoutMs. */
function exited(child: ChildProcess, timeoutMs = WAIT_MS): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Host.exec for every kind of host: its spawn, no input, the output collected. */
function execOn(
  host: Pick<Host, "spawn">,
  cmd: string,
  args: string[],
  opts: ExecOptions,
): Promise<ExecResult> {
  const child = host.spawn(cmd, args, { env: opts.env, cwd: opts.cwd, stdio: "pipe" });
  child.stdin?.end();
  return collect(child, opts.timeoutMs);
}

function collect(child: ChildProcess, timeoutMs: number | undefined): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    let stdout = "";
    let stderr = "";
    child.stdout?.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer =
      timeoutMs === undefined ? undefined : setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      const sig = signal === null ? 0 : (constants.signals[signal] ?? 0);
      resolve({ code: code ?? 128 + sig, stdout, stderr });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Names: <prefix>-<pid base36>-<bed counter><kind>[<host index>], kind b = bridge, v = the
// root-side veth of host i, n = the namespace of host i, e.g. shl-2lgbq-3v1 (at most 15
// characters). Counter 0 is the availability probe.

let bedCounter = 0;

function checkPrefix(prefix: string): void {
  if (!/^[a-z0-9]{1,4}$/.test(prefix)) {
    throw new TestBedError("BAD_NAME", `test bed prefix must be 1-4 of [a-z0-9], got "${prefix}"`);
  }
}

function bedId(prefix: string, counter: number): string {
  return `${prefix}-${process.pid.toString(36)}-${counter}`;
}

/** The owner pid encoded in a name made by a bed with this prefix, or null if it is not one. */
function ownerPid(prefix: string, name: string): number | null {
  if (!name.startsWith(`${prefix}-`)) return null;
  const m = /^([0-9a-z]+)-\d+[bvn]\d*$/.exec(name.slice(prefix.length + 1));
  return m ? Number.parseInt(m[1]!, 36) : null;
}

function isStale(prefix: string, name: string): boolean {
  const pid = ownerPid(prefix, name);
  return pid !== null && pid !== process.pid && !pidAlive(pid);
}

// ---------------------------------------------------------------------------------------------
// Availability

let unavailable: string | null | undefined;

/** Why network namespaces cannot be used here, or null when they can (probed once). */
function netnsUnavailableReason(): string | null {
  if (unavailable !== undefined) return unavailable;
  unavailable = probe();
  return unavailable;
}

function probe(): string | null {
  if (process.platform !== "linux") return `platform is ${process.platform}`;
  if (process.getuid?.() !== 0) return "not root";
  if (runSync("ip", ["netns", "list"]) === null) return "`ip netns` does not work (iproute2?)";
  const id = bedId(DEFAULT_PREFIX, 0);
  const ok =
    runSync("ip", ["netns", "add", `${id}n`]) !== null &&
    runSync("ip", ["link", "add", `${id}b`, "type", "bridge"]) !== null;
  runSync("ip", ["link", "del", `${id}b`]);
  runSync("ip", ["netns", "del", `${id}n`]);
  return ok ? null : "cannot create namespaces or bridges (missing capabilities?)";
}

/** Whether this process can build namespace test beds (root, and `ip netns` works). */
export function netnsAvailable(): boolean {
  return netnsUnavailableReason() === null;
}

// ---------------------------------------------------------------------------------------------
// Subnets

function ipToInt(addr: string): number {
  const p = addr.split(".").map(Number);
  return (((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0) as number;
}

function overlaps(a: string, alen: number, b: string, blen: number): boolean {
  const len = Math.min(alen, blen);
  if (len === 0) return true;
  const mask = len === 32 ? 0xffffffff : ~(0xffffffff >>> len) >>> 0;
  return (ipToInt(a) & mask) >>> 0 === (ipToInt(b) & mask) >>> 0;
}

/** IPv4 prefixes in use on this machine: addresses and routes (except the default route). */
async function usedPrefixes(): Promise<Array<[string, number]>> {
  const out: Array<[string, number]> = [];
  const addrs = JSON.parse(await ip(["-4", "-j", "addr", "show"])) as Array<{
    addr_info?: Array<{ local?: string; prefixlen?: number }>;
  }>;
  for (const link of addrs) {
    for (const a of link.addr_info ?? []) {
      if (a.local !== undefined) out.push([a.local, a.prefixlen ?? 32]);
    }
  }
  const routes = JSON.parse(await ip(["-4", "-j", "route", "show", "table", "all"])) as Array<{
    dst?: string;
  }>;
  for (const r of routes) {
    if (r.dst === undefined || r.dst === "default") continue;
    const [net, len] = r.dst.split("/");
    if (net !== undefined && /^\d+\.\d+\.\d+\.\d+$/.test(net)) out.push([net, Number(len ?? 32)]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Resources and teardown

type Resource =
  | { kind: "reservation"; dir: string }
  | { kind: "link"; name: string }
  | { kind: "netns"; name: string }
  | { kind: "forward"; bridge: string };

function forwardRule(bridge: string, op: "-I" | "-D"): string[] {
  return [op, "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"];
}

function undoCommand(r: Resource): [string, string[]] | null {
  switch (r.kind) {
    case "link":
      return ["ip", ["link", "del", r.name]];
    case "netns":
      return ["ip", ["netns", "del", r.name]];
    case "forward":
      return ["iptables", forwardRule(r.bridge, "-D")];
    case "reservation":
      rmSync(r.dir, { recursive: true, force: true });
      return null;
  }
}

/**
 * With br_netfilter loaded and bridge-nf-call-iptables on, bridged frames go through the
 * iptables FORWARD chain, which a docker host sets to DROP. Then the bed adds one ACCEPT rule
 * for frames that enter and leave its own bridge, and removes it again on cleanup.
 */
async function forwardRuleNeeded(): Promise<boolean> {
  let callIptables: string;
  try {
    callIptables = readFileSync("/proc/sys/net/bridge/bridge-nf-call-iptables", "utf8").trim();
  } catch {
    return false;
  }
  if (callIptables !== "1") return false;
  const chain = await run("iptables", ["-S", "FORWARD"]).catch(() => null);
  return chain !== null && chain.trim() !== "-P FORWARD ACCEPT";
}

// The beds not yet cleaned up, for the exit and signal handlers.
const live = new Set<{ cleanupSync(): void }>();
let handlersInstalled = false;

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const cleanupAll = () => {
    for (const bed of [...live]) bed.cleanupSync();
  };
  process.on("exit", cleanupAll);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = () => {
      cleanupAll();
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

// ---------------------------------------------------------------------------------------------
// Namespace mode

class NetnsHost implements Host {
  readonly children = new Set<ChildProcess>();

  constructor(
    readonly name: string,
    readonly ns: string,
    readonly addr: string,
    readonly veth: string,
    private readonly gateway: string,
  ) {}

  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn("ip", ["netns", "exec", this.ns, cmd, ...args], {
      env: { ...process.env, ...opts.env },
      cwd: opts.cwd,
      stdio: opts.stdio ?? "pipe",
    });
    track(this.children, child);
    return child;
  }

  exec(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return execOn(this, cmd, args, opts);
  }

  async kill(): Promise<void> {
    // A child still inside `ip netns exec` has not entered the namespace yet: kill it by pid.
    for (const child of this.children) if (child.pid !== undefined) killPid(child.pid);
    await killNamespace(this.ns);
    await Promise.all([...this.children].map((c) => exited(c)));
  }

  killSync(): void {
    for (const child of this.children) if (child.pid !== undefined) killPid(child.pid);
    killNamespaceSync(this.ns);
  }

  async cut(): Promise<void> {
    await ip(["link", "set", this.veth, "down"]);
    await ip(["-n", this.ns, "link", "set", "eth0", "down"]);
  }

  async heal(): Promise<void> {
    await ip(["link", "set", this.veth, "up"]);
    await ip(["-n", this.ns, "link", "set", "eth0", "up"]);
    // Taking the link down removed the default route; the connected route comes back by itself.
    await ip(["-n", this.ns, "route", "replace", "default", "via", this.gateway]);
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const inside = JSON.parse(await ip(["-n", this.ns, "-j", "link", "show", "eth0"])) as Array<{
        operstate?: string;
      }>;
      const outside = JSON.parse(await ip(["-j", "link", "show", this.veth])) as Array<{
        operstate?: string;
      }>;
      if (inside[0]?.operstate === "UP" && outside[0]?.operstate === "UP") return;
      if (Date.now() > deadline) {
        throw new TestBedError("COMMAND_FAILED", `${this.name}: link did not come back up`);
      }
      await sleep(10);
    }
  }
}

function track(set: Set<ChildProcess>, child: ChildProcess): void {
  set.add(child);
  const forget = () => set.delete(child);
  child.once("exit", forget);
  child.once("error", forget);
}

class NetnsBed implements TestBed {
  readonly mode = "netns" as const;
  hosts: NetnsHost[] = [];
  bridgeAddr = "";
  /** Everything created so far (recorded once it exists, never before), undone last-first. */
  private readonly resources: Resource[] = [];
  private cleaning: Promise<void> | null = null;
  private done = false;

  /** When the bed was made: task namespaces its hosts left behind are newer (orphanTaskNamespaces). */
  private readonly since = Date.now();

  constructor(readonly id: string) {}

  created(r: Resource): void {
    this.resources.push(r);
  }

  cleanup(): Promise<void> {
    this.cleaning ??= this.teardown();
    return this.cleaning;
  }

  private async teardown(): Promise<void> {
    let failure: unknown = null;
    for (const h of this.hosts) await h.kill().catch((err: unknown) => (failure ??= err));
    // Namespaces that were created but whose host object was not (creation failed midway).
    for (const r of this.resources) {
      if (r.kind === "netns")
        await killNamespace(r.name).catch((err: unknown) => (failure ??= err));
    }
    for (const r of [...this.resources].reverse()) {
      const c = undoCommand(r);
      if (c) await run(c[0], c[1]).catch(() => undefined); // absent already is fine
    }
    removeOrphanTaskNamespaces(this.since);
    this.done = true;
    live.delete(this);
    const left = await this.leftovers();
    if (left.length > 0) {
      failure ??= new TestBedError("CLEANUP_INCOMPLETE", `test bed left ${left.join(", ")}`);
    }
    if (failure !== null) throw failure;
  }

  /** Names of this bed's namespaces and links that still exist. */
  async leftovers(): Promise<string[]> {
    const names = new Set([...(await listNamespaces()), ...(await listLinks())]);
    return this.resources
      .filter((r) => r.kind === "link" || r.kind === "netns")
      .map((r) => (r as { name: string }).name)
      .filter((n) => names.has(n));
  }

  cleanupSync(): void {
    if (this.done) return;
    this.done = true;
    live.delete(this);
    for (const h of this.hosts) h.killSync();
    for (const r of this.resources) if (r.kind === "netns") killNamespaceSync(r.name);
    for (const r of [...this.resources].reverse()) {
      const c = undoCommand(r);
      if (c) runSync(c[0], c[1]);
    }
  }
}

async function listNamespaces(): Promise<string[]> {
  const out = await ip(["netns", "list"]).catch(() => "");
  return out
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((n) => n !== "");
}

async function listLinks(): Promise<string[]> {
  const links = JSON.parse(await ip(["-j", "link", "show"])) as Array<{ ifname: string }>;
  return links.map((l) => l.ifname);
}

/** Reserves a free 10.77.<k>.0/24 (not reserved by another bed, not used on this machine). */
async function reserveSubnet(bed: NetnsBed, counter: number): Promise<string> {
  mkdirSync(RESERVATIONS, { recursive: true });
  const used = await usedPrefixes();
  const start = (process.pid * 7 + counter * 13) % 254;
  for (let i = 0; i < 254; i++) {
    const k = ((start + i) % 254) + 1;
    const net = `${SUBNET_16}.${k}`;
    if (used.some(([a, len]) => overlaps(a, len, `${net}.0`, 24))) continue;
    const dir = `${RESERVATIONS}/${net}`;
    try {
      mkdirSync(dir);
    } catch {
      continue; // another bed holds it (or a dead one did: sweepStale() frees those)
    }
    bed.created({ kind: "reservation", dir });
    writeFileSync(`${dir}/owner`, `${bed.id}\n`);
    return net;
  }
  throw new TestBedError("NO_SUBNET", `no free /24 left in ${SUBNET_16}.0.0/16`);
}

let swept = false;

async function createNetnsBed(specs: HostSpec[], prefix: string): Promise<NetnsBed> {
  const counter = ++bedCounter;
  const id = bedId(prefix, counter);
  const longest = `${id}v${specs.length}`;
  if (longest.length > MAX_IFNAME) {
    throw new TestBedError("BAD_NAME", `link name ${longest} is longer than ${MAX_IFNAME}`);
  }
  if (!swept) {
    swept = true;
    await sweepStale(DEFAULT_PREFIX);
    if (prefix !== DEFAULT_PREFIX) await sweepStale(prefix);
  }
  const bed = new NetnsBed(id);
  live.add(bed);
  installHandlers();
  try {
    const net = await reserveSubnet(bed, counter);
    const bridge = `${id}b`;
    bed.bridgeAddr = `${net}.1`;
    await ip(["link", "add", bridge, "type", "bridge"]);
    bed.created({ kind: "link", name: bridge });
    await ip(["addr", "add", `${bed.bridgeAddr}/24`, "dev", bridge]);
    await ip(["link", "set", bridge, "up"]);
    if (await forwardRuleNeeded()) {
      await run("iptables", forwardRule(bridge, "-I"));
      bed.created({ kind: "forward", bridge });
    }
    for (const [i, spec] of specs.entries()) {
      const ns = `${id}n${i + 1}`;
      const veth = `${id}v${i + 1}`;
      const addr = `${net}.${HOST_BASE + i + 1}`;
      await ip(["netns", "add", ns]);
      bed.created({ kind: "netns", name: ns });
      await ip(["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns]);
      bed.created({ kind: "link", name: veth });
      await ip(["link", "set", veth, "master", bridge, "up"]);
      await ip(["-n", ns, "link", "set", "lo", "up"]);
      await ip(["-n", ns, "addr", "add", `${addr}/24`, "dev", "eth0"]);
      await ip(["-n", ns, "link", "set", "eth0", "up"]);
      await ip(["-n", ns, "route", "add", "default", "via", bed.bridgeAddr]);
      bed.hosts.push(new NetnsHost(spec.name, ns, addr, veth, bed.bridgeAddr));
    }
  } catch (err) {
    await bed.cleanup().catch(() => undefined);
    throw err;
  }
  return bed;
}

/**
 * Removes what beds of earlier runs left behind when their process died without cleaning up
 * (SIGKILL, a crash): namespaces, links, iptables rules and subnet reservations whose names
 * start with prefix and whose owner pid is dead. Returns the names it removed.
 */
export async function sweepStale(prefix: string = DEFAULT_PREFIX): Promise<string[]> {
  checkPrefix(prefix);
  if (netnsUnavailableReason() !== null) return [];
  const removed: string[] = [];
  const namespaces = (await listNamespaces()).filter((n) => isStale(prefix, n));
  for (const ns of namespaces) await killNamespace(ns).catch(() => undefined);
  const chain = await run("iptables", ["-S", "FORWARD"]).catch(() => "");
  for (const line of chain.split("\n")) {
    const m = /^-A FORWARD -i (\S+) -o (\S+) -j ACCEPT$/.exec(line.trim());
    if (m && m[1] === m[2] && isStale(prefix, m[1]!)) {
      await run("iptables", forwardRule(m[1]!, "-D")).catch(() => undefined);
      removed.push(`iptables:${m[1]}`);
    }
  }
  // Veths before bridges (v sorts after b, so reverse), then the namespaces.
  const links = (await listLinks())
    .filter((n) => isStale(prefix, n))
    .sort()
    .reverse();
  for (const link of links) {
    await ip(["link", "del", link]).catch(() => undefined);
    removed.push(link);
  }
  for (const ns of namespaces) {
    await ip(["netns", "del", ns]).catch(() => undefined);
    removed.push(ns);
  }
  let reservations: string[] = [];
  try {
    reservations = readdirSync(RESERVATIONS);
  } catch {
    // none yet
  }
  for (const r of reservations) {
    let owner: string;
    try {
      owner = readFileSync(`${RESERVATIONS}/${r}/owner`, "utf8").trim();
    } catch {
      continue; // being created right now, or not ours
    }
    if (isStale(prefix, `${owner}b`)) {
      rmSync(`${RESERVATIONS}/${r}`, { recursive: true, force: true });
      removed.push(`${RESERVATIONS}/${r}`);
    }
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------
// Loopback mode

const notSupported = (what: string, reason: string) =>
  new TestBedError(
    "NOT_SUPPORTED",
    `${what} is not supported in loopback mode (network namespaces unavailable: ${reason})`,
  );

class LoopbackHost implements Host {
  readonly ns = "";
  readonly children = new Set<ChildProcess>();

  constructor(
    readonly name: string,
    readonly addr: string,
    private readonly reason: string,
  ) {}

  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    // Its own process group, so kill() takes the whole process tree down.
    const child = spawn(cmd, args, {
      env: { ...process.env, ...opts.env },
      cwd: opts.cwd,
      stdio: opts.stdio ?? "pipe",
      detached: true,
    });
    track(this.children, child);
    return child;
  }

  exec(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return execOn(this, cmd, args, opts);
  }

  async kill(): Promise<void> {
    const children = [...this.children];
    this.killSync();
    await Promise.all(children.map((c) => exited(c)));
    await Promise.all(children.flatMap((c) => (c.pid === undefined ? [] : [groupGone(c.pid)])));
  }

  killSync(): void {
    for (const child of this.children) {
      if (child.pid === undefined) continue;
      killPid(-child.pid);
      killPid(child.pid);
    }
  }

  cut(): Promise<void> {
    return Promise.reject(notSupported("cut()", this.reason));
  }

  heal(): Promise<void> {
    return Promise.reject(notSupported("heal()", this.reason));
  }
}

class LoopbackBed implements TestBed {
  readonly mode = "loopback" as const;
  readonly bridgeAddr = "127.0.0.1";
  private done = false;

  constructor(
    readonly id: string,
    readonly hosts: LoopbackHost[],
  ) {}

  async cleanup(): Promise<void> {
    live.delete(this);
    this.done = true;
    await Promise.all(this.hosts.map((h) => h.kill()));
  }

  cleanupSync(): void {
    if (this.done) return;
    this.done = true;
    live.delete(this);
    for (const h of this.hosts) h.killSync();
  }
}

/**
 * The task namespaces a killed host left: a shoal daemon on a host of the bed makes its tasks'
 * namespaces (`ip netns add shoal-<task>`, and /etc/netns/shoal-<task> for an overlay's DNS) in
 * the host's own mount namespace, so when the host is killed without stopping its tasks, the
 * root's /run/netns keeps an empty file that is no namespace (no mount on it) and /etc/netns a
 * folder. Those made since `since` are removed; a namespace that is mounted (a daemon running
 * outside the bed) is left alone.
 */
function removeOrphanTaskNamespaces(since: number): void {
  const run = "/run/netns";
  let names: string[];
  try {
    names = readdirSync(run).filter((n) => n.startsWith("shoal-"));
  } catch {
    return;
  }
  if (names.length === 0) return;
  const mounted = new Set(
    readFileSync("/proc/self/mountinfo", "utf8")
      .split("\n")
      .map((line) => line.split(" ")[4])
      .filter((m): m is string => m !== undefined && m.startsWith(`${run}/`)),
  );
  for (const n of names) {
    const file = `${run}/${n}`;
    try {
      if (mounted.has(file) || statSync(file).mtimeMs < since) continue;
      rmSync(file, { force: true });
      rmSync(`/etc/netns/${n}`, { recursive: true, force: true });
    } catch {
      // gone meanwhile
    }
  }
}

let fallbackAnnounced = false;

// ---------------------------------------------------------------------------------------------

/**
 * Creates a bed of n hosts (named n1..nN) or of the given hosts. Uses network namespaces when
 * this process may (see netnsAvailable()), otherwise hosts on 127.0.0.11, .12, ... and says so
 * in one line of output. Call cleanup() when done (useTestBed() does it for you).
 */
export async function createTestBed(
  n: number | HostSpec[],
  opts: TestBedOptions = {},
): Promise<TestBed> {
  const specs =
    typeof n === "number" ? Array.from({ length: n }, (_, i) => ({ name: `n${i + 1}` })) : n;
  if (specs.length < 1 || specs.length > 200) {
    throw new TestBedError("BAD_NAME", `a test bed has 1 to 200 hosts, not ${specs.length}`);
  }
  // SHOAL_TESTBED_PREFIX: a run that must keep its names apart from other runs' (several at
  // once on one machine) names its beds itself.
  const prefix = opts.prefix ?? process.env["SHOAL_TESTBED_PREFIX"] ?? DEFAULT_PREFIX;
  checkPrefix(prefix);
  const env = process.env["SHOAL_TESTBED"];
  const wanted =
    opts.mode && opts.mode !== "auto"
      ? opts.mode
      : env === "netns" || env === "loopback"
        ? env
        : "auto";
  const reason =
    wanted === "loopback"
      ? opts.mode === "loopback"
        ? "loopback mode requested"
        : "SHOAL_TESTBED=loopback"
      : netnsUnavailableReason();
  if (reason === null) return createNetnsBed(specs, prefix);
  if (wanted === "netns") {
    throw new TestBedError("UNAVAILABLE", `network namespaces are not available: ${reason}`);
  }
  if (opts.mode !== "loopback" && !fallbackAnnounced) {
    fallbackAnnounced = true;
    console.log(
      `# shoal test bed: network namespaces unavailable (${reason}); using the loopback ` +
        `fallback (hosts on 127.0.0.x, cut()/heal() unsupported)`,
    );
  }
  const hosts = specs.map(
    (s, i) => new LoopbackHost(s.name, `127.0.0.${HOST_BASE + i + 1}`, reason),
  );
  const bed = new LoopbackBed(bedId(prefix, ++bedCounter), hosts);
  live.add(bed);
  installHandlers();
  return bed;
}

/** createTestBed() whose cleanup runs when the test ends, pass or fail. */
export async function useTestBed(
  t: TestContext,
  n: number | HostSpec[],
  opts: TestBedOptions = {},
): Promise<TestBed> {
  const bed = await createTestBed(n, opts);
  t.after(() => bed.cleanup());
  return bed;
}
