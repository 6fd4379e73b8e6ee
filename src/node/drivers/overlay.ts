// Overlay networks on a node: what the manager tells a node about the networks its tasks are on
// (NodeNetwork) made real with iproute2 and iptables, no daemon of its own.
//
// Per network: a Linux bridge carrying the node's own address on the network (its tasks' gateway
// and DNS server) and the network's virtual IPs (/32), and, for an overlay, a VXLAN device
// (id = the network's VNI, UDP 4789, no learning, no multicast) enslaved to it, with one
// all-zero forwarding entry per peer node: broadcast and unknown unicast are sent to every peer
// (head-end replication); the bridge learns which MACs sit behind the VXLAN port. The VXLAN
// port suppresses ARP for the bridge's own addresses (neigh_suppress), so a task asking for a
// virtual IP is answered by its own node only and the connection is balanced there. MTU 1450
// everywhere (VXLAN adds 50 bytes).
//
// A task joins with one veth pair per network into its namespace (eth0, eth1, ... inside).
// iptables, in chains of this daemon's own (SO-<TAG>-*): forwarding accepted in and out of the
// bridges but never between two of them (isolation) and never out of an internal network;
// outbound traffic of a non-internal network masqueraded; each virtual IP DNAT'ed to one of its
// backends at random with equal chances (`-m statistic`, as kube-proxy does — this kernel has no
// IPVS), and DNAT'ed traffic leaving on a bridge masqueraded as the node, so replies come back
// through it to be un-NAT'ed.
//
// Names carry a tag derived from the node's underlay address (several daemons may share one
// network namespace in tests): links sob<tag><vni> (bridge), sox<tag><vni> (VXLAN),
// sot<tag><hash of namespace and network> (a task's veth, its alias naming the namespace). A
// daemon restarted after kill -9 finds all of it by name, adopts what is still wanted and
// removes the rest; every step is idempotent.

import { createHash } from "node:crypto";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { NodeNetwork } from "../../api/bus.js";
import { findIp, idempotent, ipBatch, ipQuiet, ipRun, iptables } from "./netns.js";

/** VXLAN's IANA port. */
export const VXLAN_PORT = 4789;
/** 1500 minus VXLAN's 50 bytes of encapsulation (outer IPv4 + UDP + VXLAN + inner Ethernet). */
export const OVERLAY_MTU = 1450;
/** `ip netns exec NS` bind-mounts the files of /etc/netns/NS over /etc. */
const NETNS_ETC = "/etc/netns";
const NETNS_RUN = "/run/netns";
/** The links of the daemon's network namespace (`ip netns exec` mounts its own sysfs). */
const SYS_NET = "/sys/class/net";
/** First line of the resolv.conf files this daemon writes: how it recognises its own. */
const RESOLV_MARK = "# shoal overlay";
const CMD_TIMEOUT_MS = 10_000;

export const OverlayErrorCode = {
  BadNetwork: "ERR_OVERLAY_BAD_NETWORK",
  NotSynced: "ERR_OVERLAY_NOT_SYNCED",
  Command: "ERR_OVERLAY_COMMAND",
} as const;
export type OverlayErrorCode = (typeof OverlayErrorCode)[keyof typeof OverlayErrorCode];

export class OverlayError extends Error {
  override name = "OverlayError";
  constructor(
    readonly code: OverlayErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface OverlayOptions {
  ipPath: string;
  /** null: no iptables here (no isolation, masquerading or virtual IPs; said once in the log). */
  iptablesPath: string | null;
  /** This node's underlay address (the VXLAN source). */
  underlay: string;
  log: { info(m: string): void; warn(m: string): void };
}

const hash = (s: string) => createHash("sha256").update(s).digest("hex");

/** The per-daemon tag in every name: 5 hex digits of the underlay address's hash. */
export function overlayTag(underlay: string): string {
  return hash(underlay).slice(0, 5);
}

/** The names of everything a daemon with this tag makes. */
export function overlayNames(tag: string) {
  const vni = (v: number) => v.toString(16).padStart(6, "0");
  const T = tag.toUpperCase();
  return {
    bridge: (v: number) => `sob${tag}${vni(v)}`,
    vxlan: (v: number) => `sox${tag}${vni(v)}`,
    veth: (ns: string, netId: string) => `sot${tag}${hash(`${ns}\0${netId}`).slice(0, 6)}`,
    /** Every link of the daemon starts with one of these. */
    linkPrefixes: [`sob${tag}`, `sox${tag}`, `sot${tag}`],
    bridgePrefix: `sob${tag}`,
    vethPrefix: `sot${tag}`,
    /** Every chain of the daemon starts with this. */
    chainPrefix: `SO-${T}-`,
    natPre: `SO-${T}-PRE`,
    natPost: `SO-${T}-POST`,
    filterFwd: `SO-${T}-FWD`,
    vipChain: (netId: string, vip: string) =>
      `SO-${T}-V${hash(`${netId}\0${vip}`).slice(0, 8).toUpperCase()}`,
    /** The alias of a task's veth: names the namespace it leads into. */
    vethAlias: (ns: string) => `shoal-overlay ${tag} ${ns}`,
  };
}

/** A locally administered MAC from an IPv4 address (02:42:a.b.c.d, as Docker does): an address
 * reused by another task keeps its MAC, so no neighbour cache anywhere goes stale. */
function macOf(addr: string): string {
  return ["02", "42", ...addr.split(".").map((n) => Number(n).toString(16).padStart(2, "0"))].join(
    ":",
  );
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function isIpv4(s: string): boolean {
  const m = IPV4.exec(s);
  return m !== null && m.slice(1).every((p) => Number(p) <= 255);
}

/** "10.0.1.2/24" → ["10.0.1.2", 24]; throws OverlayError naming `what` otherwise. */
function parseCidr(s: string, what: string): [string, number] {
  const [a, len, ...rest] = s.split("/");
  const n = Number(len);
  if (rest.length > 0 || !isIpv4(a ?? "") || !/^\d+$/.test(len ?? "") || n < 1 || n > 32) {
    throw new OverlayError(OverlayErrorCode.BadNetwork, `${what}: "${s}" is not an IPv4 CIDR`);
  }
  return [a!, n];
}

function checkNetwork(n: NodeNetwork): void {
  const what = `network ${n.name} (${n.id})`;
  if (!Number.isInteger(n.vni) || n.vni < 1 || n.vni > 16_777_215) {
    throw new OverlayError(OverlayErrorCode.BadNetwork, `${what}: bad VNI ${n.vni}`);
  }
  parseCidr(n.subnet, `${what} subnet`);
  parseCidr(n.nodeAddr, `${what} node address`);
  for (const p of n.peers) {
    if (!isIpv4(p)) throw new OverlayError(OverlayErrorCode.BadNetwork, `${what}: bad peer ${p}`);
  }
  for (const v of n.vips) {
    for (const a of [v.addr, ...v.backends]) {
      if (!isIpv4(a)) {
        throw new OverlayError(OverlayErrorCode.BadNetwork, `${what}: bad virtual IP entry ${a}`);
      }
    }
  }
}

interface LinkInfo {
  ifname: string;
  master?: string;
  ifalias?: string;
  mtu?: number;
  address?: string;
  linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string } };
  addr_info?: Array<{ family?: string; local?: string; prefixlen?: number }>;
}

function run(bin: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(bin, args, { timeout: CMD_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) {
        reject(
          new OverlayError(
            OverlayErrorCode.Command,
            `${bin} ${args.join(" ")}: ${stderr.trim() || err.message}`,
            { cause: err },
          ),
        );
      } else {
        resolve(stdout);
      }
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** A sibling of `ip` (bridge) or of iptables (iptables-save, iptables-restore). */
function sibling(path: string, name: string): string {
  const p = join(dirname(path), name);
  if (existsSync(p)) return p;
  for (const dir of ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]) {
    if (existsSync(join(dir, name))) return join(dir, name);
  }
  return p;
}

/** The jumps from the built-in chains into ours: [table, built-in chain, our chain, -I or -A]. */
type Jump = [string, string, string, "-I" | "-A"];

export class Overlays {
  private readonly ip: string;
  private readonly bridgeBin: string;
  private readonly names: ReturnType<typeof overlayNames>;
  private readonly tag: string;
  /** Settles when every sync queued so far has. */
  private queue: Promise<unknown> = Promise.resolve();
  private warnedNoIptables = false;
  /** The veths attach calls are making now (a sync running beside them leaves them alone). */
  private readonly attaching = new Set<string>();
  /** While a sync runs: every veth an attach was making since it started (its snapshot of the
   * links may show one without its bridge even after the attach is done). */
  private busyVeths: Set<string> | null = null;

  constructor(private readonly opts: OverlayOptions) {
    this.ip = opts.ipPath;
    this.bridgeBin = sibling(opts.ipPath, "bridge");
    this.tag = overlayTag(opts.underlay);
    this.names = overlayNames(this.tag);
  }

  /**
   * Runs a call that changes the networks themselves (bridges, VXLAN, rules) alone: after every
   * sync queued before it, and before any queued after it.
   */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Makes this node's side of exactly these networks (see the file header); idempotent. */
  sync(networks: NodeNetwork[]): Promise<void> {
    return this.exclusive(() => this.doSync(networks));
  }

  /**
   * Wires the task namespace `ns` into its networks (synced before): eth0, eth1, ... A call
   * about one task's namespace (its own veths and resolv.conf) runs at once, beside other
   * tasks' and beside a sync (which leaves the veths being made alone): a stack's tasks are
   * wired while its VIP backends are synced. Only a network whose bridge is not there yet waits
   * for the syncs queued before.
   */
  attach(ns: string, nets: Array<{ network: NodeNetwork; addr: string }>): Promise<void> {
    return this.doAttach(ns, nets, false);
  }

  /** Removes the task's veths and its resolv.conf (at once, as attach). */
  detach(ns: string): Promise<void> {
    return this.doDetach(ns);
  }

  /** Removes everything this daemon made (`shoal leave`). */
  removeAll(): Promise<void> {
    return this.exclusive(() => this.doSync([]));
  }

  // ---- links ------------------------------------------------------------------------------

  private async links(): Promise<LinkInfo[]> {
    const out = await ipRun(this.ip, ["-j", "-d", "addr", "show"]);
    return (JSON.parse(out || "[]") as LinkInfo[]).filter((l) =>
      this.names.linkPrefixes.some((p) => l.ifname.startsWith(p)),
    );
  }

  private async doSync(networks: NodeNetwork[]): Promise<void> {
    networks.forEach(checkNetwork);
    const seen = new Set<number>();
    for (const n of networks) {
      if (seen.has(n.vni)) {
        throw new OverlayError(OverlayErrorCode.BadNetwork, `two networks with VNI ${n.vni}`);
      }
      seen.add(n.vni);
    }
    if (networks.length > 0) writeFileSync("/proc/sys/net/ipv4/ip_forward", "1");
    const busy = new Set(this.attaching);
    this.busyVeths = busy;
    try {
      await this.syncLinks(networks, busy);
    } finally {
      this.busyVeths = null;
    }
    await this.syncRules(networks);
    this.sweepResolvConf(networks.length === 0);
  }

  /** Removes the links no longer wanted (but the veths in `busy`), makes the wanted ones. */
  private async syncLinks(networks: NodeNetwork[], busy: Set<string>): Promise<void> {
    let links = await this.links();
    const wanted = new Set<string>();
    for (const n of networks) {
      wanted.add(this.names.bridge(n.vni));
      if (n.driver === "overlay") wanted.add(this.names.vxlan(n.vni));
    }
    // Take down what is no longer wanted first: a removed network's VNI may come back as
    // another network (the links are named by VNI).
    for (const l of links) {
      const isVeth = l.ifname.startsWith(this.names.vethPrefix);
      // A veth an attach is making has no master for a moment: it is not an orphan.
      const orphan =
        isVeth && !busy.has(l.ifname) ? l.master === undefined || !wanted.has(l.master) : false;
      if ((!isVeth && !wanted.has(l.ifname)) || orphan) {
        await ipQuiet(this.ip, ["link", "del", l.ifname]);
        this.opts.log.info(`overlay: removed ${l.ifname}`);
      }
    }
    links = await this.links();
    const byName = new Map(links.map((l) => [l.ifname, l]));
    for (const n of networks) await this.syncNetwork(n, byName);
  }

  private async syncNetwork(n: NodeNetwork, byName: Map<string, LinkInfo>): Promise<void> {
    const br = this.names.bridge(n.vni);
    const [gw] = parseCidr(n.nodeAddr, "node address");
    let bl = byName.get(br);
    if (bl === undefined) {
      await idempotent(
        () =>
          ipRun(this.ip, [
            "link",
            "add",
            br,
            "mtu",
            String(OVERLAY_MTU),
            "address",
            macOf(gw),
            "type",
            "bridge",
          ]),
        async () => (await ipRun(this.ip, ["-o", "link", "show", "dev", br])) !== "",
      );
      this.opts.log.info(`overlay: network ${n.name} (VNI ${n.vni}) on bridge ${br}`);
      bl = { ifname: br, addr_info: [] };
    }
    // Addresses: the node's own (with the prefix) and the virtual IPs (/32).
    const want = new Set([n.nodeAddr, ...n.vips.map((v) => `${v.addr}/32`)]);
    const have = new Set(
      (bl.addr_info ?? [])
        .filter((a) => a.family === "inet")
        .map((a) => `${a.local ?? ""}/${a.prefixlen ?? 32}`),
    );
    for (const a of have) if (!want.has(a)) await ipQuiet(this.ip, ["addr", "del", a, "dev", br]);
    for (const a of want) if (!have.has(a)) await ipRun(this.ip, ["addr", "add", a, "dev", br]);
    if (bl.mtu !== OVERLAY_MTU) {
      await ipRun(this.ip, ["link", "set", br, "mtu", String(OVERLAY_MTU)]);
    }
    await ipRun(this.ip, ["link", "set", br, "up"]);
    if (n.driver !== "overlay") return;

    const vx = this.names.vxlan(n.vni);
    const vl = byName.get(vx);
    const d = vl?.linkinfo?.info_data;
    if (vl !== undefined && (d?.id !== n.vni || d.local !== this.opts.underlay)) {
      await ipQuiet(this.ip, ["link", "del", vx]);
    }
    if (vl === undefined || d?.id !== n.vni || d.local !== this.opts.underlay) {
      await ipRun(this.ip, [
        "link",
        "add",
        vx,
        "mtu",
        String(OVERLAY_MTU),
        "type",
        "vxlan",
        "id",
        String(n.vni),
        "local",
        this.opts.underlay,
        "dstport",
        String(VXLAN_PORT),
        "nolearning",
      ]);
    }
    if (vl?.master !== br) await ipRun(this.ip, ["link", "set", vx, "master", br]);
    await ipRun(this.ip, ["link", "set", vx, "mtu", String(OVERLAY_MTU), "up"]);
    await run(this.bridgeBin, ["link", "set", "dev", vx, "neigh_suppress", "on"]);
    await this.syncFdb(
      vx,
      n.peers.filter((p) => p !== this.opts.underlay),
    );
  }

  /** Exactly one all-zero forwarding entry per peer. */
  private async syncFdb(vx: string, peers: string[]): Promise<void> {
    const out = await run(this.bridgeBin, ["-j", "fdb", "show", "dev", vx]);
    const entries = JSON.parse(out || "[]") as Array<{ mac?: string; dst?: string }>;
    const have = new Set(
      entries.filter((e) => e.mac === "00:00:00:00:00:00" && e.dst).map((e) => e.dst!),
    );
    const want = new Set(peers);
    const zero = "00:00:00:00:00:00";
    for (const p of have) {
      if (!want.has(p)) await run(this.bridgeBin, ["fdb", "del", zero, "dev", vx, "dst", p]);
    }
    for (const p of want) {
      if (!have.has(p)) await run(this.bridgeBin, ["fdb", "append", zero, "dev", vx, "dst", p]);
    }
  }

  // ---- iptables ---------------------------------------------------------------------------

  private jumps(): Jump[] {
    const n = this.names;
    return [
      ["filter", "FORWARD", n.filterFwd, "-I"],
      // First, before Docker's DNAT of local addresses (the virtual IPs are local here).
      ["nat", "PREROUTING", n.natPre, "-I"],
      ["nat", "OUTPUT", n.natPre, "-I"],
      ["nat", "POSTROUTING", n.natPost, "-A"],
    ];
  }

  /** Our chains that exist now, per table. */
  private async existingChains(bin: string): Promise<{ filter: string[]; nat: string[] }> {
    const save = sibling(bin, "iptables-save");
    const found = { filter: [] as string[], nat: [] as string[] };
    for (const table of ["filter", "nat"] as const) {
      const out = await run(save, ["-t", table]);
      for (const line of out.split("\n")) {
        const m = /^:(\S+) /.exec(line);
        if (m && m[1]!.startsWith(this.names.chainPrefix)) found[table].push(m[1]!);
      }
    }
    return found;
  }

  private async syncRules(networks: NodeNetwork[]): Promise<void> {
    const bin = this.opts.iptablesPath;
    if (bin === null) {
      if (networks.length > 0 && !this.warnedNoIptables) {
        this.warnedNoIptables = true;
        this.opts.log.warn(
          "overlay: iptables is not installed: networks are not isolated, not masqueraded, and virtual IPs do not balance",
        );
      }
      return;
    }
    const n = this.names;
    const existing = await this.existingChains(bin);
    if (networks.length === 0) {
      for (const [table, from, to] of this.jumps()) {
        if (!existing[table as "nat" | "filter"].includes(to)) continue;
        // Every copy of the jump (a crashed daemon may have added one twice).
        for (;;) {
          try {
            await iptables(bin, ["-t", table, "-D", from, "-j", to]);
          } catch {
            break;
          }
        }
      }
      if (existing.filter.length + existing.nat.length > 0) {
        await this.dropChains(bin, existing);
        this.opts.log.info("overlay: removed the firewall rules");
      }
      return;
    }

    const filter: string[] = [`:${n.filterFwd} - [0:0]`];
    const nat: string[] = [`:${n.natPre} - [0:0]`, `:${n.natPost} - [0:0]`];
    const allBridges = "sob+";
    const mine = `${n.bridgePrefix}+`;
    for (const net of networks) {
      const br = n.bridge(net.vni);
      filter.push(`-A ${n.filterFwd} -i ${br} -o ${br} -j ACCEPT`);
    }
    // Never from one network's bridge to another's, whoever made them.
    filter.push(`-A ${n.filterFwd} -i ${allBridges} -o ${allBridges} -j DROP`);
    for (const net of networks) {
      if (!net.internal) continue;
      const br = n.bridge(net.vni);
      filter.push(`-A ${n.filterFwd} -i ${br} -j DROP`, `-A ${n.filterFwd} -o ${br} -j DROP`);
    }
    filter.push(`-A ${n.filterFwd} -i ${mine} -j ACCEPT`, `-A ${n.filterFwd} -o ${mine} -j ACCEPT`);

    const vipChains: string[] = [];
    for (const net of networks) {
      const br = n.bridge(net.vni);
      const [subnet, len] = parseCidr(net.subnet, "subnet");
      if (!net.internal) {
        nat.push(`-A ${n.natPost} -s ${subnet}/${len} ! -o ${br} -j MASQUERADE`);
      }
      for (const vip of net.vips) {
        if (vip.backends.length === 0) continue;
        const chain = n.vipChain(net.id, vip.addr);
        vipChains.push(chain);
        nat.push(`:${chain} - [0:0]`);
        nat.push(`-A ${n.natPre} -d ${vip.addr}/32 -j ${chain}`);
        const k = vip.backends.length;
        vip.backends.forEach((b, i) => {
          // The i-th rule takes 1/(k-i) of what the earlier ones left: 1/k each.
          const pick =
            i < k - 1
              ? `-m statistic --mode random --probability ${(1 / (k - i)).toFixed(5)} `
              : "";
          nat.push(`-A ${chain} ${pick}-j DNAT --to-destination ${b}`);
        });
      }
    }
    // Replies to DNAT'ed connections must come back through this node to be un-NAT'ed.
    nat.push(`-A ${n.natPost} -o ${mine} -m conntrack --ctstate DNAT -j MASQUERADE`);
    await this.restore(bin, ["*filter", ...filter, "COMMIT", "*nat", ...nat, "COMMIT"]);
    for (const [table, from, to, op] of this.jumps()) {
      try {
        await iptables(bin, ["-t", table, "-C", from, "-j", to]);
      } catch {
        await iptables(bin, ["-t", table, op, from, "-j", to]);
      }
    }
    const keep = new Set([n.filterFwd, n.natPre, n.natPost, ...vipChains]);
    await this.dropChains(bin, {
      filter: existing.filter.filter((c) => !keep.has(c)),
      nat: existing.nat.filter((c) => !keep.has(c)),
    });
  }

  /** Empties, then deletes chains nothing jumps to any more (two steps: nft refuses one). */
  private async dropChains(bin: string, chains: { filter: string[]; nat: string[] }) {
    const script = (line: (c: string) => string) =>
      (["filter", "nat"] as const).flatMap((t) =>
        chains[t].length === 0 ? [] : [`*${t}`, ...chains[t].map(line), "COMMIT"],
      );
    if (chains.filter.length + chains.nat.length === 0) return;
    await this.restore(
      bin,
      script((c) => `:${c} - [0:0]`),
    );
    await this.restore(
      bin,
      script((c) => `-X ${c}`),
    );
  }

  /** Applies rules with iptables-restore --noflush: each chain declared is replaced whole. */
  private async restore(bin: string, lines: string[]): Promise<void> {
    await run(sibling(bin, "iptables-restore"), ["-w", "--noflush"], `${lines.join("\n")}\n`);
  }

  // ---- tasks ------------------------------------------------------------------------------

  private async doAttach(
    ns: string,
    nets: Array<{ network: NodeNetwork; addr: string }>,
    waited: boolean,
  ): Promise<void> {
    if (!existsSync(join(NETNS_RUN, ns))) {
      throw new OverlayError(OverlayErrorCode.BadNetwork, `no network namespace ${ns}`);
    }
    // The links of this namespace, looked up in its sysfs (no `ip` process per task).
    const link = (name: string) => existsSync(join(SYS_NET, name));
    for (const { network, addr } of nets) {
      checkNetwork(network);
      parseCidr(addr, `address on ${network.name}`);
      if (!link(this.names.bridge(network.vni))) {
        if (!waited) {
          // A sync queued before may be making it.
          await this.queue;
          return this.doAttach(ns, nets, true);
        }
        throw new OverlayError(
          OverlayErrorCode.NotSynced,
          `network ${network.name} (${network.id}) is not set up on this node (sync first)`,
        );
      }
    }
    // Two `ip` processes whatever the number of networks: the host's side (each veth made, its
    // peer moved into the namespace, the veth on its bridge), then the namespace's side.
    const made: string[] = [];
    const host: string[] = [];
    const inside: string[] = [];
    try {
      const mtu = String(OVERLAY_MTU);
      for (const [i, { network, addr }] of nets.entries()) {
        const veth = this.names.veth(ns, network.id);
        const dev = `eth${i}`;
        const [a] = parseCidr(addr, "task address");
        // A veth left by an earlier attach of the same task goes, with its peer.
        if (link(veth)) await ipQuiet(this.ip, ["link", "del", veth]);
        made.push(veth);
        this.attaching.add(veth);
        this.busyVeths?.add(veth);
        host.push(
          `link add ${veth} mtu ${mtu} type veth peer name ${dev} mtu ${mtu} address ${macOf(a)} netns ${ns}`,
          `link set ${veth} alias "${this.names.vethAlias(ns)}"`,
          `link set ${veth} master ${this.names.bridge(network.vni)} up`,
        );
        inside.push(`addr add ${addr} dev ${dev}`, `link set ${dev} up`);
      }
      inside.push("link set lo up");
      const out = nets.find((x) => !x.network.internal);
      if (out !== undefined) {
        const [gw] = parseCidr(out.network.nodeAddr, "node address");
        inside.push(`route replace default via ${gw} dev eth${nets.indexOf(out)}`);
      }
      if (host.length > 0) await ipBatch(this.ip, [], host);
      await ipBatch(this.ip, ["-n", ns], inside);
      if (nets.length > 0) {
        const [dns] = parseCidr(nets[0]!.network.nodeAddr, "node address");
        const dir = join(NETNS_ETC, ns);
        mkdirSync(dir, { recursive: true, mode: 0o755 });
        writeFileSync(
          join(dir, "resolv.conf"),
          `${RESOLV_MARK} ${this.tag}\nnameserver ${dns}\noptions ndots:0\n`,
        );
      }
    } catch (err) {
      for (const v of made) await ipQuiet(this.ip, ["link", "del", v]);
      this.removeResolvConf(ns);
      throw err;
    } finally {
      for (const v of made) this.attaching.delete(v);
    }
  }

  private async doDetach(ns: string): Promise<void> {
    const alias = this.names.vethAlias(ns);
    for (const l of await this.links()) {
      if (l.ifname.startsWith(this.names.vethPrefix) && l.ifalias === alias) {
        await ipQuiet(this.ip, ["link", "del", l.ifname]);
      }
    }
    this.removeResolvConf(ns);
  }

  /** Removes /etc/netns/<ns>/resolv.conf if this daemon wrote it, and the folder if empty. */
  private removeResolvConf(ns: string): void {
    const dir = join(NETNS_ETC, ns);
    const file = join(dir, "resolv.conf");
    try {
      if (!readFileSync(file, "utf8").startsWith(`${RESOLV_MARK} ${this.tag}\n`)) return;
    } catch {
      return;
    }
    rmSync(file, { force: true });
    try {
      if (readdirSync(dir).length === 0) rmSync(dir, { recursive: true, force: true });
    } catch {
      // gone already
    }
  }

  /** Removes the resolv.conf files of namespaces that are gone (or all of ours). */
  private sweepResolvConf(all: boolean): void {
    let names: string[];
    try {
      names = readdirSync(NETNS_ETC);
    } catch {
      return;
    }
    for (const ns of names) {
      if (all || !existsSync(join(NETNS_RUN, ns))) this.removeResolvConf(ns);
    }
  }
}

/**
 * Why overlay networks cannot work here (not Linux, not root, no `ip`, no VXLAN in the kernel),
 * or null. Creates and removes a throwaway VXLAN device to find out.
 */
export async function overlayUnsupportedReason(
  platform: string = process.platform,
  uid: number = process.getuid?.() ?? -1,
  ip: string = findIp(),
): Promise<string | null> {
  if (platform !== "linux") return `overlay networks need Linux (this is ${platform})`;
  if (uid !== 0) return `overlay networks need root (the agent runs as uid ${uid})`;
  if (ip === "") return "overlay networks need iproute2's `ip` command, which was not found";
  const probe = `soprobe${process.pid.toString(36).slice(-7)}`;
  try {
    await ipRun(ip, [
      "link",
      "add",
      probe,
      "type",
      "vxlan",
      "id",
      // Any VNI will do; a random one rarely meets a network's device on the same port.
      String(1 + Math.floor(Math.random() * 16_777_214)),
      "dstport",
      String(VXLAN_PORT),
      "nolearning",
    ]);
  } catch (err) {
    return `overlay networks need VXLAN support in the kernel: ${(err as Error).message}`;
  } finally {
    await ipQuiet(ip, ["link", "del", probe]);
  }
  return null;
}
