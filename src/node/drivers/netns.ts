// Bridge networking for tasks: each task gets a Linux network namespace of its own, wired by a
// veth pair to a node-wide bridge in the agent's namespace, with an address from the task subnet
// and a default route via the bridge's address (the gateway). Everything goes through iproute2's
// `ip`.
//
// Several agents may share one network namespace (tests and benches run many daemons on one
// host) and test-bed "hosts" are namespaces sharing one file system, so:
//   - the bridge is created idempotently (a step that fails is fine if its result is there
//     anyway: another agent won the race) and is never removed: it is node infrastructure, like
//     docker0;
//   - addresses are unique on the machine: an address is taken by creating the file
//     IPAM_DIR/<address> with O_EXCL; it names the task and its namespace. The namespace is
//     created before the reservation, so a reservation whose namespace is gone is stale (its
//     owner crashed) and is reclaimed by the next allocation;
//   - link names are derived from the (unique) address, so they never clash either.

import { execFile } from "node:child_process";
import {
  accessSync,
  closeSync,
  constants as fsConstants,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { delimiter, join } from "node:path";

/** The node-wide bridge the tasks' veths are attached to. */
export const BRIDGE_NAME = "shoal0";
/** The task subnet, 10.213.0.0/16: clear of the test bed's 10.77.0.0/16 and of Docker's 172.17/16. */
const SUBNET_16 = "10.213";
const PREFIX_LEN = 16;
/** The bridge's own address: the tasks' default gateway (and how they reach the node). */
export const BRIDGE_GATEWAY = `${SUBNET_16}.0.1`;
/** Address reservations, one file per address, shared by every agent on the machine. */
export const IPAM_DIR = "/run/shoal-ipam";
/** Where `ip netns add` puts its namespace handles. */
const NETNS_DIR = "/run/netns";
/** The task's end of the veth pair, inside its namespace. */
const TASK_IFNAME = "eth0";
/** A reservation still without content (being written) is left alone for this long. */
const FRESH_MS = 30_000;
const CMD_TIMEOUT_MS = 10_000;

/** What a task's network is made of; JSON-serialisable (kept in the driver's handle). */
export interface TaskNet {
  /** The network namespace (a name under /run/netns). */
  ns: string;
  /** The task's address on the bridge. */
  address: string;
  /** The node's end of the veth pair (on the bridge). */
  veth: string;
}

/** Where `ip` is: the first executable on PATH or in the usual sbin directories; "" if none. */
export function findIp(): string {
  return findTool("ip");
}

/** Where a system command is: the first executable on PATH or in the usual (s)bin directories; "" if none. */
export function findTool(name: string): string {
  const usual = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];
  const dirs = [...(process.env["PATH"] ?? "").split(delimiter), ...usual];
  for (const dir of dirs) {
    if (dir === "") continue;
    const p = join(dir, name);
    try {
      if (!statSync(p).isFile()) continue;
      accessSync(p, fsConstants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return "";
}

/** Why bridge networking cannot work here, or null when it can. */
export function bridgeUnsupportedReason(platform: string, uid: number, ip: string): string | null {
  if (platform !== "linux") {
    return `bridge networking needs Linux network namespaces (this is ${platform})`;
  }
  if (uid !== 0) return `bridge networking needs root (the agent runs as uid ${uid})`;
  let ok = ip !== "";
  try {
    if (ok) accessSync(ip, fsConstants.X_OK);
  } catch {
    ok = false;
  }
  if (!ok) return "bridge networking needs iproute2's `ip` command, which was not found";
  return null;
}

/** Runs `ip args...`; rejects with ip's own message. */
export function ipRun(ip: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(ip, args, { timeout: CMD_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) {
        const why = stderr.trim() || err.message;
        reject(new Error(`ip ${args.join(" ")}: ${why}`));
      } else {
        resolve(stdout);
      }
    });
  });
}

/**
 * Runs several `ip` commands in one process (`ip [global...] -batch -`, one command per line;
 * an argument with spaces in double quotes): one fork instead of one per command. Stops at the
 * first command that fails, and rejects naming it.
 */
export function ipBatch(ip: string, global: string[], lines: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      ip,
      [...global, "-batch", "-"],
      { timeout: CMD_TIMEOUT_MS },
      (err, _stdout, stderr) => {
        if (!err) return resolve();
        // iproute2 names the failed line: "Command failed -:3".
        const at = /Command failed -:(\d+)/.exec(stderr);
        const line = at ? lines[Number(at[1]) - 1] : undefined;
        const why = stderr.replace(/Command failed -:\d+\s*$/, "").trim() || err.message;
        reject(new Error(`ip ${[...global, line ?? "-batch"].join(" ")}: ${why}`));
      },
    );
    child.stdin?.end(lines.join("\n") + "\n");
  });
}

/** Runs `ip args...`, ignoring failure (for teardown of what may already be gone). */
export async function ipQuiet(ip: string, args: string[]): Promise<void> {
  await ipRun(ip, args).catch(() => {});
}

/**
 * Runs a step; when it fails, accepts the failure if `done()` says its result is there anyway
 * (another agent did the same step at the same time).
 */
export async function idempotent(step: () => Promise<unknown>, done: () => Promise<boolean>) {
  try {
    await step();
  } catch (err) {
    if (!(await done().catch(() => false))) throw err;
  }
}

/** Addresses (with their interface) in our namespace that fall into the task subnet. */
async function subnetAddrs(ip: string): Promise<Array<{ dev: string; cidr: string }>> {
  const out = await ipRun(ip, ["-o", "-4", "addr", "show"]);
  const found: Array<{ dev: string; cidr: string }> = [];
  for (const line of out.split("\n")) {
    const m = /^\d+:\s+(\S+)\s+inet\s+(\S+)/.exec(line);
    if (m && m[2]!.startsWith(`${SUBNET_16}.`)) found.push({ dev: m[1]!, cidr: m[2]! });
  }
  return found;
}

/** Creates the bridge with the gateway address, up, unless it is there already. */
export async function ensureBridge(ip: string): Promise<void> {
  const gw = `${BRIDGE_GATEWAY}/${PREFIX_LEN}`;
  const mine = async (): Promise<boolean> =>
    (await subnetAddrs(ip)).some((a) => a.dev === BRIDGE_NAME && a.cidr === gw);
  const clash = (await subnetAddrs(ip)).find((a) => a.dev !== BRIDGE_NAME);
  if (clash) {
    throw new Error(
      `the task subnet ${SUBNET_16}.0.0/${PREFIX_LEN} is already in use here (${clash.cidr} on ${clash.dev})`,
    );
  }
  if (await mine()) return;
  await idempotent(
    () => ipRun(ip, ["link", "add", BRIDGE_NAME, "type", "bridge"]),
    async () => (await ipRun(ip, ["-o", "link", "show", "dev", BRIDGE_NAME])) !== "",
  );
  await idempotent(() => ipRun(ip, ["addr", "add", gw, "dev", BRIDGE_NAME]), mine);
  await ipRun(ip, ["link", "set", BRIDGE_NAME, "up"]);
}

/** Where iptables is, or null (Debian's iptables package puts it in /usr/sbin). */
export function findIptables(): string | null {
  for (const dir of ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]) {
    if (existsSync(join(dir, "iptables"))) return join(dir, "iptables");
  }
  return null;
}

/** Runs `iptables -w args...`; rejects with iptables' own message. */
export function iptables(bin: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(bin, ["-w", ...args], { timeout: CMD_TIMEOUT_MS }, (err, _out, stderr) =>
      err
        ? reject(new Error(`iptables ${args.join(" ")}: ${stderr.trim() || err.message}`))
        : resolve(),
    );
  });
}

/** Adds a rule unless an identical one is there (`-C` checks, then `-A` or `-I` adds). */
async function ensureRule(bin: string, table: string, add: "-A" | "-I", rule: string[]) {
  const chain = rule[0]!;
  const rest = rule.slice(1);
  try {
    await iptables(bin, ["-t", table, "-C", chain, ...rest]);
  } catch {
    await iptables(bin, ["-t", table, add, chain, ...rest]);
  }
}

/**
 * Lets bridge tasks reach other machines, as Docker does for docker0: forwarding on in the
 * node's network namespace, bridge traffic accepted in FORWARD (a host firewall may drop it by
 * default), and traffic leaving the node masqueraded as the node's own address. Returns why
 * that could not be done (tasks then reach only this machine), or null.
 */
export async function ensureOutboundNat(bin = findIptables()): Promise<string | null> {
  if (bin === null) return "iptables is not installed";
  try {
    writeFileSync("/proc/sys/net/ipv4/ip_forward", "1");
    const subnet = `${SUBNET_16}.0.0/${PREFIX_LEN}`;
    await ensureRule(bin, "filter", "-I", ["FORWARD", "-i", BRIDGE_NAME, "-j", "ACCEPT"]);
    await ensureRule(bin, "filter", "-I", ["FORWARD", "-o", BRIDGE_NAME, "-j", "ACCEPT"]);
    const masq = ["POSTROUTING", "-s", subnet, "!", "-o", BRIDGE_NAME, "-j", "MASQUERADE"];
    await ensureRule(bin, "nat", "-A", masq);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

interface Reservation {
  taskId: string;
  ns: string;
}

function readReservation(file: string): Reservation | null {
  try {
    const r = JSON.parse(readFileSync(file, "utf8")) as Partial<Reservation>;
    if (typeof r.taskId === "string" && typeof r.ns === "string") {
      return { taskId: r.taskId, ns: r.ns };
    }
  } catch {
    // empty (being written) or garbage
  }
  return null;
}

/** Removes reservations whose namespace is gone (their owner died before releasing them). */
export function reclaimStale(dir = IPAM_DIR): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const file = join(dir, name);
    const r = readReservation(file);
    if (r !== null && existsSync(join(NETNS_DIR, r.ns))) continue;
    if (r === null) {
      try {
        if (Date.now() - statSync(file).mtimeMs < FRESH_MS) continue;
      } catch {
        continue;
      }
    }
    rmSync(file, { force: true });
  }
}

/** The address for host number n of the subnet (n in 2..65533; 1 is the gateway). */
function addressOf(n: number): string {
  return `${SUBNET_16}.${n >> 8}.${n & 255}`;
}

/** Takes a free address for the task: O_EXCL-creates its reservation file. */
export function reserveAddress(r: Reservation, dir = IPAM_DIR): string {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  reclaimStale(dir);
  const used = new Set(readdirSync(dir));
  const size = 1 << (32 - PREFIX_LEN);
  // Start at a random place, so concurrent agents rarely try the same addresses.
  const start = 2 + Math.floor(Math.random() * (size - 4));
  for (let i = 0; i < size; i++) {
    const n = 2 + ((start - 2 + i) % (size - 4));
    // Skip .0 and .255 host parts: valid in a /16, but some software dislikes them.
    if ((n & 255) === 0 || (n & 255) === 255) continue;
    const addr = addressOf(n);
    if (used.has(addr)) continue;
    let fd: number;
    try {
      fd = openSync(join(dir, addr), "wx", 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") continue;
      throw err;
    }
    try {
      writeSync(fd, JSON.stringify(r));
    } finally {
      closeSync(fd);
    }
    return addr;
  }
  throw new Error(`no free address left in ${SUBNET_16}.0.0/${PREFIX_LEN}`);
}

/** Releases the task's reservation (only if it is still the task's). */
export function releaseAddress(address: string, taskId: string, dir = IPAM_DIR): void {
  const file = join(dir, address);
  const r = readReservation(file);
  if (r !== null && r.taskId === taskId) rmSync(file, { force: true });
}

/** The namespace name for a task (a file name under /run/netns). */
export function nsName(taskId: string): string {
  return `shoal-${taskId.replace(/[^A-Za-z0-9_.-]/g, "_")}`;
}

/** The node's end of the veth pair for an address: "shv" + the host part in hex (≤ 15 chars). */
function vethName(address: string): string {
  const [, , c, d] = address.split(".").map(Number);
  return `shv${((c! << 8) | d!).toString(16).padStart(4, "0")}`;
}

/**
 * Creates the task's namespace, reserves its address and wires it to the bridge: a veth pair,
 * the task's end named eth0 with the address, lo up, a default route via the gateway. Undoes
 * everything when a step fails.
 */
export async function setupTaskNet(ip: string, taskId: string): Promise<TaskNet> {
  await ensureBridge(ip);
  const ns = nsName(taskId);
  await teardownLeftoverNet(ip, taskId);
  await ipRun(ip, ["netns", "add", ns]);
  let net: TaskNet = { ns, address: "", veth: "" };
  try {
    const address = reserveAddress({ taskId, ns });
    net = { ns, address, veth: vethName(address) };
    const inNs = (args: string[]): Promise<string> => ipRun(ip, ["-n", ns, ...args]);
    await ipRun(ip, [
      "link",
      "add",
      net.veth,
      "type",
      "veth",
      "peer",
      "name",
      TASK_IFNAME,
      "netns",
      ns,
    ]);
    await ipRun(ip, ["link", "set", net.veth, "master", BRIDGE_NAME, "up"]);
    await inNs(["addr", "add", `${address}/${PREFIX_LEN}`, "dev", TASK_IFNAME]);
    await inNs(["link", "set", TASK_IFNAME, "up"]);
    await inNs(["link", "set", "lo", "up"]);
    await inNs(["route", "add", "default", "via", BRIDGE_GATEWAY]);
    return net;
  } catch (err) {
    await teardownTaskNet(ip, taskId, net);
    throw err;
  }
}

/**
 * Creates a bare namespace for a task on user-defined networks (the overlay driver adds its
 * interfaces), with lo up. Undoes it when a step fails.
 */
export async function createTaskNamespace(ip: string, taskId: string): Promise<TaskNet> {
  const ns = nsName(taskId);
  await teardownLeftoverNet(ip, taskId);
  await ipRun(ip, ["netns", "add", ns]);
  const net: TaskNet = { ns, address: "", veth: "" };
  try {
    await ipRun(ip, ["-n", ns, "link", "set", "lo", "up"]);
    return net;
  } catch (err) {
    await teardownTaskNet(ip, taskId, net);
    throw err;
  }
}

/** Removes the namespace a task's earlier, interrupted start left (if any); its veth goes with
 * it and its address reservation is reclaimed as stale. */
export async function teardownLeftoverNet(ip: string, taskId: string): Promise<void> {
  const ns = nsName(taskId);
  if (existsSync(join(NETNS_DIR, ns)))
    await teardownTaskNet(ip, taskId, { ns, address: "", veth: "" });
}

/**
 * Removes the task's network: kills whatever still runs in its namespace (a process that left
 * the task's process group would keep the namespace alive), deletes the veth pair and the
 * namespace, releases the address. Safe to call again, and for parts that were never made.
 */
export async function teardownTaskNet(ip: string, taskId: string, net: TaskNet): Promise<void> {
  if (existsSync(join(NETNS_DIR, net.ns))) {
    const pids = await ipRun(ip, ["netns", "pids", net.ns]).catch(() => "");
    for (const p of pids.split(/\s+/)) {
      if (!/^\d+$/.test(p)) continue;
      try {
        process.kill(Number(p), "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
  // Deleting one end of a veth pair deletes both.
  if (net.veth !== "") await ipQuiet(ip, ["link", "del", net.veth]);
  if (existsSync(join(NETNS_DIR, net.ns))) await ipQuiet(ip, ["netns", "del", net.ns]);
  if (net.address !== "") releaseAddress(net.address, taskId);
}

/** Validates a TaskNet read back from JSON. */
export function asTaskNet(x: unknown): TaskNet | null {
  const n = x as Partial<TaskNet> | null | undefined;
  if (
    n &&
    typeof n.ns === "string" &&
    n.ns.startsWith("shoal-") &&
    typeof n.address === "string" &&
    typeof n.veth === "string"
  ) {
    return { ns: n.ns, address: n.address, veth: n.veth };
  }
  return null;
}

/** Rewrites each URL of a comma-separated list of message server URLs (`fn` returns null to
 * keep one as it is; one that does not parse is kept too). */
function mapNatsUrls(url: string, fn: (u: URL) => URL | null): string {
  return url
    .split(",")
    .map((one) => {
      const s = one.trim();
      let u: URL;
      try {
        u = new URL(s.includes("://") ? s : `nats://${s}`);
      } catch {
        return s;
      }
      return fn(u)?.toString() ?? s;
    })
    .join(",");
}

/**
 * The message server's URL as a bridge task reaches it: loopback inside the task's namespace is
 * its own, so a loopback host becomes the gateway (the node itself); any other host is reached
 * through the default route and stays. Comma-separated lists are rewritten one by one.
 */
export function natsUrlForBridge(url: string, gateway = BRIDGE_GATEWAY): string {
  return mapNatsUrls(url, (u) => {
    const h = u.hostname.replace(/^\[|\]$/g, "");
    if (!(h === "localhost" || h === "::1" || /^127\./.test(h))) return null;
    u.hostname = gateway;
    return u;
  });
}

/** The message server's URLs with a user and password in each (percent-encoded). */
export function natsUrlWithUser(url: string, user: string, password: string): string {
  return mapNatsUrls(url, (u) => {
    u.username = user;
    u.password = password;
    return u;
  });
}
