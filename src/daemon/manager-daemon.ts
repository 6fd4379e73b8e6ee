// `shoal daemon`: the composition root. One process per machine runs the embedded message
// server (the control bus), the store and manager (on managers), the agent with its drivers, the
// routing mesh for published ports, and the HTTP API the CLI talks to.

import { hostname } from "node:os";
import { join } from "node:path";
import { mkdirSync, writeFileSync, rmSync, readFileSync, existsSync, renameSync } from "node:fs";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { Server as NatsServer } from "../nats/server.js";
import { defaultClusterOptions, defaultOptions, validateOptions } from "../nats/options.js";
import { ServerLogger, type Logger } from "../nats/log.js";
import { openEmbeddedStore } from "../store/embedded.js";
import type { ReadTx, Store, StoreEvent, WriteTx } from "../store/store.js";
import {
  DEFAULT_HEARTBEAT_MS,
  DEMOTE_QUORUM_LOSS,
  Manager,
  defaultManagerOptions,
  demoteKeepsQuorum,
} from "../manager/manager.js";
import { Api } from "../manager/api.js";
import { Dispatcher } from "../manager/dispatcher.js";
import { JoinError, JoinServer, tlsOptions, type ClusterMeta } from "../manager/join.js";
import { apiPeerRefusal, peerOf } from "../manager/api-tls.js";
import { AGENT_USER, APP_USER } from "../api/bus.js";
import {
  agentPassword,
  appAccountOf,
  appAccountPlan,
  busUsers,
  eventsPassword,
  shareLabelValues,
} from "../manager/bus-users.js";
import type { AccountConfig, User } from "../nats/options.js";
import { leaderEvent } from "../manager/events/derive.js";
import { EVENTS_SUBJECT_PREFIX, EVENTS_USER } from "../api/events.js";
import { ManagerError } from "../manager/errors.js";
import {
  NODE_SECRETS,
  makeToken,
  newId,
  newSecret,
  secretDigest,
  type NodeSecrets,
} from "../manager/ids.js";
import {
  CA_META,
  certPaths,
  certUser,
  createRootCa,
  issueNodeCert,
  joinPem,
  newKeyAndCsr,
  renewAt,
  tlsInfoOf,
  tokenDigest,
  trustDigests,
  trustPem,
  writeNodeCa,
  writeNodeCerts,
  type CaMeta,
} from "../manager/ca.js";
import { finishCaRotation } from "../manager/ca-rotation.js";
import { readStoreTls, storeEndpoints, type StoreTlsFiles } from "./store-tls.js";
import { defaultTlsConfig } from "../nats/tls.js";
import { checkPool } from "../manager/ipam.js";
import {
  isTerminal,
  type Node,
  type NodeTlsInfo,
  type ServiceSpec,
  type Task,
} from "../api/types.js";
import { nodeDrivers } from "../node/node-drivers.js";
import { NodeRuntime } from "../node/runtime.js";
import { NodeTaskDns } from "./task-dns.js";
import { startConsul, type RunningConsul } from "./consul.js";
import { NodeEdge } from "./edge.js";
import { Autoscaler } from "../manager/autoscale/autoscaler.js";
import { autoscaleEvent } from "../manager/events/derive.js";
import { startMetricsServer, type RunningMetrics } from "./metrics-server.js";
import { prometheusTargets } from "../manager/prometheus-sd.js";
import { Dashboard } from "../manager/dashboard/server.js";
import { SHOAL_VERSION } from "../lib/version.js";
import { isWildcard, joinHostPort, parseHostPort } from "../lib/addr.js";
import { fencingOf, forgetSwarm } from "./state.js";
import { apiTcpNeedsTls, socketPath } from "../api/paths.js";
import type { Server as TlsServer } from "node:https";
import type { EtcdJoin, Info, JoinResponse, SwarmSettings } from "../api/http.js";
import { etcdClient, type EtcdStore } from "../store/etcd.js";
import { EtcdTlsSource } from "../store/etcd-tls.js";
import type { EmbeddedStore } from "../store/embedded.js";
import { moveStateToEtcd } from "../store/move-to-etcd.js";
import {
  ETCD_INSTALL_HINT,
  EtcdMember,
  EtcdMemberError,
  addEtcdMember,
  findEtcd,
  listEtcdMembers,
  memberClientUrl,
  memberPeerUrl,
  readEtcdTls,
  removeEtcdMember,
  removeEtcdMemberId,
  managedStoreLimits,
  type EtcdMemberOptions,
  type EtcdStart,
} from "./etcd-member.js";
import {
  membersToRemove,
  notePeers,
  peerUrls,
  readPeers,
  removedMemberVerdict,
} from "./demoted-member.js";
import { MemberTrust, mayTakeCertFrom, reportedTrustRoots } from "./member-trust.js";
import { readLeaderId } from "../store/leader.js";
import {
  ETCD_JOIN_FILE,
  ETCD_PEERS_FILE,
  MOVED_STORE_DIR,
  patchSettings,
  readEtcdJoin,
} from "./state.js";
import { FORWARDED_HEADER } from "../manager/api.js";
import {
  Leadership,
  MANAGERS_META,
  NO_LEADER,
  isApiWrite,
  openManagersStore,
  type ForwardReply,
  type ForwardRequest,
  type ManagersMeta,
} from "./managers.js";
import { createHash } from "node:crypto";

export interface DaemonOptions {
  dataDir: string;
  /** Address the join listener binds (Swarm's --listen-addr, default 0.0.0.0:2377). */
  listenAddr: string;
  /** Address other nodes reach this one on. */
  advertiseAddr: string;
  /** Client port of the embedded message server (-1 = random): applications and this
   * manager's own clients, no certificate. */
  natsPort: number;
  /** The port of the message server's listener for nodes, mutual TLS with their certificates
   * (default: the client port + 1, random when that is random). */
  busPort?: number;
  /** Node certificates' lifetime when this daemon creates the cluster (`--cert-expiry`). */
  certExpiryMs?: number;
  /** HTTP monitoring port of the embedded message server (0 = off, -1 = random). */
  monitorPort?: number;
  /** Also serve the API on TCP host:port ("" = unix socket only); off loopback with mutual TLS. */
  apiTcp: string;
  /** Mutual TLS on the TCP API on loopback too (`--api-tls`). */
  apiTls?: boolean;
  /** Bind address of published ports. */
  publishHost: string;
  /** The pool networks get subnets from, when this daemon creates the cluster
   * (`--default-addr-pool`, `--default-addr-pool-mask-length`). */
  addrPool?: { pool: string; maskLength: number };
  /** Overrides of the CPUs and memory the node reports. */
  cpus?: number;
  memoryBytes?: number;
  /** Fencing's margin, ms; -1: no fencing (`--fencing-margin off`). */
  fenceMarginMs?: number;
  /** The Consul-compatible API's host:port (`--consul-addr`, default :8500) and its DNS
   * interface's (`--consul-dns-addr`, default :8600); "" = off. */
  consulAddr?: string;
  consulDnsAddr?: string;
  /** A Consul address that cannot be bound is a warning, not a failed start (`shoal up`). */
  consulBestEffort?: boolean;
  /** The HTTP router's [host]:port ("" or undefined: off), and its access log. */
  httpAddr?: string;
  httpAccessLog?: boolean;
  /** The node's /metrics and the swarm's Prometheus discovery (`--metrics-addr`, default
   * :9323); "" = off. */
  metricsAddr?: string;
  /** The web dashboard's host:port (`--dashboard-addr`); "" or absent = off. */
  dashboardAddr?: string;
  /** etcd client URLs of the cluster store (`--store etcd://h1:2379,...`): several managers,
   * one leader. Absent or empty: the embedded store (one manager). */
  store?: string[];
  /** The state lives in etcd members the managers run themselves (managed): this manager
   * starts and supervises its own (`etcd-member.ts`). Set once a second manager joined. */
  managedEtcd?: boolean;
  /** Client TLS to an external etcd (store-tls.ts). */
  storeTls?: StoreTlsFiles;
  /** With the etcd store: the message server's cluster port, routes between managers (default
   * the client port + 2, random when the client port is). */
  routePort?: number;
  log: Logger;
}

export class Daemon {
  store!: Store;
  manager!: Manager;
  runtime!: NodeRuntime;
  nats!: NatsServer;
  api!: Api;
  dispatcher!: Dispatcher;
  autoscaler: Autoscaler | undefined;
  joinPort = 0;
  join!: JoinServer;
  edge!: NodeEdge;
  consul: RunningConsul | undefined;
  metrics: RunningMetrics | undefined;
  dashboard: Dashboard | undefined;
  /** The dashboard's port (0: none), named when a service wants to publish it. */
  private dashboardPort = 0;
  /** Where the dashboard listens, when it does. */
  dashboardUrl: string | undefined;
  nodeId = "";
  private stopping = false;
  /** What the bus's users and accounts were made from (nodes' roles, services' accounts). */
  private busSig = "";
  /** The warnings of the last accounts built (imports left out), each logged once. */
  private busWarnings = new Set<string>();
  /** The port of the nodes' listener (mutual TLS). */
  busPort = 0;
  private renewTimer: NodeJS.Timeout | undefined;
  /** The TCP API's server when it has mutual TLS (its certificate is renewed with the node's). */
  private apiTls: TlsServer | undefined;
  private unwatchNodes: (() => void) | null = null;
  /** With the etcd store: the election, the leader's duties, writes forwarded to the leader. */
  leadership: Leadership | null = null;
  /** The etcd client URLs of the store (null: the embedded store). */
  private etcdEndpoints: string[] | null = null;
  /** This manager's own etcd member (managed etcd). */
  member: EtcdMember | null = null;
  /** The TLS of this manager's etcd client (managed etcd): it follows the certificate files. */
  private etcdTls: EtcdTlsSource | null = null;
  /** Restarts the member when the roots the swarm trusts change (member-trust.ts). */
  private memberTrust: MemberTrust | null = null;
  /** The start is over: CA changes are followed from then on (`onCaChange`). */
  private started = false;
  /** A `followCa` under way, and whether the CA changed again meanwhile. */
  private following: Promise<void> | null = null;
  private followAgain = false;
  /** Writes of this manager's certificate files, one at a time. */
  private tlsChain: Promise<void> = Promise.resolve();
  /** The state is moving to etcd (a second manager joins). */
  private moving = false;
  /** Set when this daemon stopped to come back at once with these options, or as a worker
   * (demoted; its join.json written), in this process (run.ts). */
  restartWith: (Partial<DaemonOptions> & { worker?: boolean }) | null = null;
  /** The other managers' etcd client URLs last noted in etcd-peers.json (joined). */
  private peersNoted: string | undefined;
  /** This manager was demoted and is becoming a worker. */
  private demoting = false;
  /** Writes are unfenced until this manager campaigns (it registers itself first). */
  private bootstrapping = true;
  readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(readonly opts: DaemonOptions) {
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  async start(): Promise<void> {
    const { dataDir, log } = this.opts;
    const listen = parseHostPort(this.opts.listenAddr);
    mkdirSync(dataDir, { recursive: true });
    const idFile = join(dataDir, "node-id");
    // A node with an identity has a store: if it is gone, refuse rather than start a new cluster.
    const tls = this.opts.storeTls;
    const external =
      this.opts.store && this.opts.store.length > 0
        ? storeEndpoints(this.opts.store, tls !== undefined)
        : null;
    if (this.opts.managedEtcd) {
      if (!existsSync(idFile)) {
        throw new ManagerError("ERR_INVALID", "managed etcd store without a node id");
      }
      this.nodeId = readFileSync(idFile, "utf8").trim();
      try {
        this.member = await this.startMember();
      } catch (err) {
        if (!(err instanceof EtcdMemberError) || err.code !== "ERR_ETCD_REMOVED") throw err;
        // Demoted while it was down: the leader took its member out.
        await this.comeBackRemoved();
        return;
      }
      this.member.on("removed", () => void this.onMemberRemoved());
      this.etcdEndpoints = [this.member.clientUrl];
      this.etcdTls = new EtcdTlsSource(this.member.clientTls());
      try {
        this.store = await openManagersStore(this.etcdEndpoints, () => this.fence(), log, {
          tls: this.etcdTls,
          ...managedStoreLimits(),
        });
      } catch (err) {
        await this.member.stop();
        throw err;
      }
    } else if (external) {
      this.etcdEndpoints = external;
    }
    const etcd = this.etcdEndpoints;
    if (etcd && !this.member) {
      this.store = await openManagersStore(
        etcd,
        () => this.fence(),
        log,
        tls ? { tls: readStoreTls(tls) } : undefined,
      );
    }
    if (etcd) {
      if (existsSync(idFile) && !this.store.view((tx) => tx.getMeta("cluster"))) {
        await this.store.close();
        throw new ManagerError(
          "ERR_INVALID",
          `the etcd store at ${etcd.join(", ")} holds no swarm, but this node belongs to one: start it with the store it was created with`,
        );
      }
    } else {
      this.store = await openEmbeddedStore(join(dataDir, "store"), {
        onWarning: (msg: string) => log.warn(`store: ${msg}`),
        requireExisting: existsSync(idFile),
      });
    }
    this.nodeId = existsSync(idFile) ? readFileSync(idFile, "utf8").trim() : newId();
    const now = Date.now();
    if (this.opts.addrPool) checkPool(this.opts.addrPool);
    // The cluster's root CA, made once, at init (in the store, where every manager finds it).
    const newCa = this.store.view((tx) => tx.getMeta<CaMeta>(CA_META))
      ? null
      : await createRootCa(new Date(now), this.opts.certExpiryMs);
    await this.store.update((tx) => {
      if (newCa && !tx.getMeta<CaMeta>(CA_META)) tx.putMeta(CA_META, newCa);
      if (!tx.getMeta<ClusterMeta>("cluster")) {
        tx.putMeta("cluster", {
          secret: newSecret(),
          workerSecret: newSecret(),
          managerSecret: newSecret(),
          createdAt: now,
          ...(this.opts.addrPool ? { addrPool: this.opts.addrPool } : {}),
        });
      }
      const cur = tx.getNode(this.nodeId);
      const node: Node = {
        id: this.nodeId,
        hostname: hostname(),
        role: "manager",
        availability: cur?.availability ?? "active",
        status: "ready",
        addr: this.advertiseHost(),
        labels: cur?.labels ?? {},
        // Resources, drivers and limits come with the node runtime's heartbeats.
        resources: cur?.resources ?? { nanoCpus: 0, memoryBytes: 0 },
        engineVersion: SHOAL_VERSION,
        ...(cur?.drivers ? { drivers: cur.drivers } : {}),
        ...(cur?.limits ? { limits: cur.limits } : {}),
        lastSeen: now,
        createdAt: cur?.createdAt ?? now,
        updatedAt: now,
      };
      tx.putNode(node);
      // A promoted worker is a manager now: its worker certificate's bus user can go.
      const promoting = tx.getMeta<Record<string, true>>(PROMOTING_META);
      if (promoting?.[this.nodeId]) {
        const { [this.nodeId]: _done, ...rest } = promoting;
        tx.putMeta(PROMOTING_META, rest);
      }
    });
    // Only once the store holds the cluster, so an identity never comes without state.
    writeFileSync(idFile, this.nodeId);

    this.consul = await startConsul(this.store, {
      addr: this.opts.consulAddr ?? "",
      dnsAddr: this.opts.consulDnsAddr ?? "",
      bestEffort: this.opts.consulBestEffort ?? false,
      nodeId: this.nodeId,
      advertiseHost: () => this.advertiseHost(),
      log: log.child("consul"),
    });

    const meta = this.store.view((tx) => tx.getMeta<ClusterMeta>("cluster"))!;
    const ca = this.store.view((tx) => tx.getMeta<CaMeta>(CA_META))!;
    // This manager's own certificate, new at every start (and renewed before it expires); with
    // an etcd member that does not trust the signing root yet (a rotation began while this
    // manager was down), once the member does (`followCa`, at the end of the start).
    if (this.certMayMove()) await this.issueOwnCert();
    const certs = certPaths(dataDir);
    // The control bus: reachable where joins are. Its client port takes applications (the
    // default user, kept out of $SHOAL.>) and this manager's own clients (the agent user);
    // nodes connect to its nodes' port with their certificates, each mapped to the user of its
    // node (bus-users.ts).
    const natsOpts = validateOptions({
      ...defaultOptions(),
      host: listen.host || "0.0.0.0",
      port: this.opts.natsPort,
      httpPort: this.opts.monitorPort ?? 0,
      serverName: `shoal-${this.nodeId.slice(0, 12)}`,
      ...this.busAuth(meta.secret, ca.clusterId)!,
      ...(etcd ? { cluster: await this.clusterOptions(meta.secret, ca.clusterId) } : {}),
    });
    this.nats = new NatsServer(natsOpts, log.debugEnabled ? log : quiet(log));
    await this.nats.startServer();
    const busPort =
      this.opts.busPort ?? (this.nats.port > 0 && this.opts.natsPort > 0 ? this.nats.port + 1 : -1);
    this.busPort = await this.nats.listenMapped(listen.host || "0.0.0.0", busPort, {
      ...defaultTlsConfig(),
      certFile: certs.cert,
      keyFile: certs.key,
      caFile: certs.ca,
    });
    // A joined node's user exists before its join is answered (the watchers run inside the
    // commit); a removed node's connections are cut off at once. Connected nodes learn every
    // manager's nodes' port (a manager that joined after them, one that left) from an INFO.
    const nodesPorts = () => this.busUrls().nodes.map((u) => new URL(u).host);
    this.nats.setMappedConnectUrls(nodesPorts());
    this.unwatchNodes = this.store.watch((events) => {
      if (events.some((e) => e.kind === "meta" && e.id === CA_META)) this.onCaChange();
      // The nodes' certificates may all be from the new root now (their heartbeats say so).
      if (this.isLeader() && events.some((e) => e.kind === "node")) {
        void finishCaRotation(this.store).catch((err: Error) =>
          log.warn(`ending the root CA rotation: ${err.message}`),
        );
      }
      const bus = (e: StoreEvent) =>
        e.kind === "node" || e.kind === "service" || (e.kind === "meta" && e.id === "settings");
      if (events.some(bus)) {
        const self = events.find((e) => e.kind === "node" && e.id === this.nodeId)?.value as
          Node | null | undefined;
        if (self?.role === "worker" && this.etcdEndpoints && !this.demoting) {
          void this.becomeWorker();
        }
        const auth = this.busAuth(meta.secret, ca.clusterId);
        if (auth) this.nats.reloadAuth(auth.users, auth.accounts, auth.noAuthUser);
      }
      if (events.some((e) => e.kind === "node" || (e.kind === "meta" && e.id === MANAGERS_META)))
        this.nats.setMappedConnectUrls(nodesPorts());
      if (this.member && events.some((e) => e.kind === "node")) this.notePeers();
    });
    if (etcd) await this.registerAddrs();
    if (this.member) {
      this.notePeers();
      const member = this.member;
      this.memberTrust = new MemberTrust({
        member,
        nodeId: this.nodeId,
        wanted: () => trustPem(this.store.view((tx) => tx.getMeta<CaMeta>(CA_META))!),
        endpoints: () => [
          member.clientUrl,
          ...peerUrls(
            this.store.view((tx) => tx.listNodes()),
            this.nodeId,
          ),
        ],
        tls: () => readEtcdTls(certPaths(dataDir)),
        recovered: () => this.etcdRecovered(),
        log: log.child("etcd"),
      });
    }

    this.manager = new Manager(this.store, log.child("manager"), defaultManagerOptions());
    this.manager.leading = () => this.isLeader();
    this.manager.onDemote = (tx, node) => this.demoteIn(tx, node);
    if (this.member) this.manager.afterDemote = () => this.removeDownMembers();
    this.manager.onPromote = (tx, node) => {
      // On the embedded store the promotion moves the state into an etcd member of this
      // manager's: without etcd here it could never finish (and could not be undone by a
      // demotion, which needs etcd): refused at once.
      if (!etcd && findEtcd() === null) {
        throw new ManagerError(
          "ERR_INVALID",
          `a second manager needs the managed etcd store, and etcd is not installed on the manager ${this.advertiseHost()}: install it there (and on every manager) with ${ETCD_INSTALL_HINT}; node ${node.id} stays a worker`,
        );
      }
      promoteIn(tx, node);
    };
    this.manager.storeMember = (node) => this.storeMember(node);
    this.manager.onRemoveManager = (tx, node) => forgetManagerIn(tx, node.id);
    this.dispatcher = new Dispatcher(this.manager, {
      natsUrl: `${this.localNatsUrl()}`,
      clusterSecret: meta.secret,
      leading: () => this.isLeader(),
      trustRoots: () => this.trustRoots(),
    });
    this.join = new JoinServer(
      this.manager,
      () => this.busUrls(),
      () => this.manager.heartbeatMs(),
      undefined,
      {
        store: () => etcd,
        ...(etcd ? {} : { moveToEtcd: () => this.moveToEtcd() }),
        ...(this.member
          ? { addMember: (id: string, addr: string) => this.addMember(id, addr) }
          : {}),
        notLeader: () => {
          if (this.isLeader()) return null;
          const id = this.leadership?.leaderId();
          const addr = id
            ? this.store.view((tx) => tx.getMeta<ManagersMeta>(MANAGERS_META))?.[id]?.join
            : undefined;
          return addr
            ? `this manager is not the leader: join through the leader, at ${addr}`
            : NO_LEADER;
        },
      },
    );
    const joinPort = listen.port ?? 2377;
    const joinHost = listen.host || "0.0.0.0";
    this.joinPort = await this.join.listen(joinHost, joinPort, this.ownTls());
    this.scheduleRenewal();
    log.info(`Listening for joins on ${joinHost}:${this.joinPort}`);
    this.edge = new NodeEdge({
      publishHost: this.opts.publishHost,
      httpAddr: this.opts.httpAddr,
      httpAccessLog: this.opts.httpAccessLog ?? false,
      ownHost: this.advertiseHost(),
      log,
    });
    await this.edge.start();
    // The API is up before the first reconcile pass: a pass that fails or takes long must not
    // keep the operator from inspecting or fixing the cluster.
    this.api = new Api(this.manager, {
      info: () => this.info(),
      joinToken: (role, rotate) => this.joinToken(role, rotate),
      logs: (task, o, write) => this.taskLogs(task, o, write),
      checkPortsFree: (spec, id) => this.checkPortsFree(spec, id),
      leave: async (force) => {
        if (!force) {
          throw new ManagerError(
            "ERR_INVALID",
            "You are attempting to leave the swarm on a node that is participating as a manager. Use `--force` to ignore this message.",
          );
        }
        setImmediate(() => void this.stop(true));
      },
      ...(etcd
        ? {
            forward: (req: ForwardRequest) => this.leadership!.forward(req),
            isWrite: isApiWrite,
          }
        : {}),
      eventCredentials: () => ({
        urls: [`nats://${joinHostPort(this.advertiseHost(), this.nats.port)}`],
        user: EVENTS_USER,
        password: eventsPassword(meta.secret),
        subject: `${EVENTS_SUBJECT_PREFIX}.>`,
      }),
    });
    await this.api.listenUnix(socketPath(dataDir));
    if (this.opts.apiTcp) await this.listenApiTcp(this.opts.apiTcp, ca.clusterId);
    await this.startDashboard();
    this.manager.start();
    // The autoscaler reads what the nodes measured and what the routers counted (the metrics
    // book); each change of a count it makes is a cluster event.
    this.autoscaler = new Autoscaler(this.manager, {
      metrics: this.manager.metrics,
      log: log.child("autoscaler"),
      onDecision: (d) => {
        if (!d.scaled) return;
        this.manager.events.emit(
          autoscaleEvent({ id: d.serviceId, name: d.serviceName }, d.current, d.desired, d.reason),
        );
      },
    });
    await this.dispatcher.start();
    if (etcd) {
      // Several managers: the leader's duties start when this manager is elected.
      this.leadership = new Leadership({
        client: (this.store as EtcdStore).client,
        store: this.store as EtcdStore,
        nodeId: this.nodeId,
        natsUrl: this.localNatsUrl(),
        agentPass: agentPassword(meta.secret),
        answer: (req) => this.answerForwarded(req),
        onLead: async (leading) => this.onLead(leading),
        onPreviousLeaderSilent: ({ nodeId, heardAt }) => {
          this.manager.liveness.endGrace(nodeId, heardAt);
          this.manager.markDirty();
        },
        log,
      });
      this.bootstrapping = false;
      await this.leadership.start();
    } else {
      this.autoscaler.start();
      // One manager: it leads from its start.
      this.manager.events.emit(leaderEvent({ id: this.nodeId, hostname: hostname() }));
    }
    // This machine's node runtime: a client of its own control bus, over loopback, like any
    // worker's.
    this.runtime = new NodeRuntime({
      nodeId: this.nodeId,
      hostname: hostname(),
      dataDir,
      busUrls: [this.localNatsUrl()],
      bus: { user: AGENT_USER, pass: agentPassword(meta.secret) },
      heartbeatMs: this.manager.heartbeatMs(),
      natsUrl: this.localNatsUrl(),
      drivers: await nodeDrivers(log, this.advertiseHost()),
      dns: new NodeTaskDns(log.child("dns")),
      cpus: this.opts.cpus,
      memoryBytes: this.opts.memoryBytes,
      ...fencingOf(this.opts.fenceMarginMs),
      onEndpoints: (eps) => this.edge.endpoints(eps),
      onRoutes: (table) => this.edge.routes(table),
      requests: () => this.edge.takeRequestCounts(),
      traffic: () => this.edge.traffic(),
      tlsInfo: () => this.reportedTlsInfo(),
      log,
    });
    this.metrics = await startMetricsServer({
      addr: this.opts.metricsAddr ?? "",
      metrics: this.runtime.metrics,
      sd: () =>
        this.store.view((tx) =>
          prometheusTargets(tx, (id) => this.manager.metrics.metricsPortOf(id)),
        ),
      log: log.child("metrics"),
    });
    this.runtime.metricsPort = this.metrics.port;
    await this.runtime.start();

    writeFileSync(join(dataDir, "daemon.pid"), String(process.pid));
    log.info(
      `shoal daemon ${SHOAL_VERSION} ready: node ${this.nodeId}, API unix://${socketPath(dataDir)}, NATS ${this.localNatsUrl()}`,
    );
    // What changed while this manager was down (its member's trust, its certificate).
    this.started = true;
    this.onCaChange();
  }

  /** The API on TCP (`--api-addr`): plain on loopback; off loopback (or with `--api-tls`) with
   * mutual TLS, where only a manager's certificate from the swarm's CA may call it. */
  private async listenApiTcp(addr: string, clusterId: string): Promise<void> {
    const tcp = parseHostPort(addr);
    const [h, p] = [tcp.host || "127.0.0.1", tcp.port ?? 0];
    if (!apiTcpNeedsTls(addr, this.opts.apiTls)) {
      const port = await this.api.listenTcp(h, p);
      this.opts.log.info(`API listening on tcp://${joinHostPort(h, port)}`);
      return;
    }
    this.apiTls = await this.api.listenTls(
      h,
      p,
      { ...tlsOptions(this.ownTls()), requestCert: true },
      (req) =>
        apiPeerRefusal(peerOf(req), clusterId, (id) => this.store.view((tx) => tx.getNode(id))),
    );
    const a = this.apiTls.address();
    const port = typeof a === "object" && a ? a.port : p;
    this.opts.log.info(
      `API listening on tcp://${joinHostPort(h, port)} (mutual TLS: a manager's certificate from the swarm's CA)`,
    );
  }

  /** The web dashboard on --dashboard-addr; an address it cannot bind is a warning. */
  private async startDashboard(): Promise<void> {
    const addr = this.opts.dashboardAddr ?? "";
    if (addr === "") return;
    const hp = parseHostPort(addr);
    const log = this.opts.log;
    const d = new Dashboard(this.manager, {
      host: hp.host || "0.0.0.0",
      port: hp.port ?? 8080,
      logs: (task, o, write) => this.taskLogs(task, o, write),
    });
    try {
      const port = await d.listen();
      this.dashboardPort = port;
      this.dashboard = d;
      this.dashboardUrl = d.url(port);
      log.info(`Dashboard listening on ${this.dashboardUrl}`);
    } catch (err) {
      await d.close();
      log.warn(
        `dashboard: cannot listen on ${addr} (${(err as Error).message}); going on without it`,
      );
    }
  }

  /** The embedded message server as this machine reaches it. */
  localNatsUrl(): string {
    const h = this.nats.opts.host;
    return `nats://${joinHostPort(isWildcard(h) ? "127.0.0.1" : h, this.nats.port)}`;
  }

  private info(): Info {
    return this.store.view((tx) => {
      const tasks = tx.listTasks();
      return {
        nodeId: this.nodeId,
        ...(this.leaderId() !== undefined ? { leaderId: this.leaderId() } : {}),
        advertiseAddr: this.advertiseAddr(),
        version: SHOAL_VERSION,
        dataDir: this.opts.dataDir,
        natsUrl: `${this.localNatsUrl()}`,
        managers: tx.listNodes().filter((n) => n.role === "manager").length,
        nodes: tx.listNodes().length,
        services: tx.listServices().length,
        tasks: tasks.length,
        running: tasks.filter((t) => t.status.state === "running").length,
        heartbeats: this.dispatcher.heartbeats,
        passes: this.manager.passes,
        invalidServices: this.manager.invalidServices(),
        pid: process.pid,
      };
    });
  }

  private async joinToken(role: "worker" | "manager", rotate: boolean): Promise<string> {
    const read = (tx: ReadTx) => tx.getMeta<ClusterMeta>("cluster")!;
    const meta = !rotate
      ? this.store.view(read)
      : await this.store.update((tx) => {
          const m = read(tx);
          const next = {
            ...m,
            [role === "worker" ? "workerSecret" : "managerSecret"]: newSecret(),
          };
          tx.putMeta("cluster", next);
          return next;
        });
    const ca = this.store.view((tx) => tx.getMeta<CaMeta>(CA_META))!;
    return makeToken(tokenDigest(ca), role === "worker" ? meta.workerSecret : meta.managerSecret);
  }

  /** A task's log lines, from the node that ran it (this one too) over the bus. */
  private async taskLogs(
    task: Task,
    o: { tail: number; follow: boolean; signal: AbortSignal },
    write: (l: string) => void,
  ): Promise<void> {
    const node = this.store.view((tx) => tx.getNode(task.nodeId));
    const prefix = `${task.serviceName}.${task.slot}.${task.id.slice(0, 12)}@${node?.hostname ?? task.nodeId}    | `;
    if (o.follow && !isTerminal(task.status.state)) {
      const w = (l: string) => write(prefix + l);
      return this.dispatcher.followLogs(task.nodeId, task.id, o.tail, o.signal, w);
    }
    const lines = await this.dispatcher.fetchLogs(task.nodeId, task.id, o.tail);
    for (const l of lines) write(prefix + l);
  }

  /** What of this daemon's own listens on `port`, as a hint for the error. */
  private ownUse(port: number): string {
    const own: Array<[number | undefined, string]> = [
      [this.dashboardPort, "the dashboard (--dashboard-addr)"],
      [this.edge?.httpPort, "the HTTP router (--http-addr)"],
      [this.consul?.httpPort, "the Consul-compatible API (--consul-addr)"],
      [this.metrics?.port, "the metrics (--metrics-addr)"],
    ];
    const hit = own.find(([p]) => p === port);
    return hit ? `: ${hit[1]} of this shoal daemon listens there` : "";
  }

  private async checkPortsFree(spec: ServiceSpec, serviceId: string): Promise<void> {
    const ours = this.store.view((tx) => {
      const s = serviceId ? tx.getService(serviceId) : undefined;
      return new Set(s?.spec.ports.map((p) => p.published) ?? []);
    });
    for (const p of spec.ports) {
      if (ours.has(p.published)) continue;
      const taken = this.store.view((tx) =>
        tx.listServices().some((s) => s.spec.ports.some((o) => o.published === p.published)),
      );
      if (taken) continue; // the manager reports which service holds it
      await new Promise<void>((resolve, reject) => {
        const s = createNetServer();
        s.once("error", (err: NodeJS.ErrnoException) =>
          reject(
            new ManagerError(
              "ERR_PORT_IN_USE",
              `published port ${p.published} is already in use on this node (${err.code ?? err.message})${this.ownUse(p.published)}`,
            ),
          ),
        );
        s.listen({ host: this.opts.publishHost, port: p.published }, () =>
          s.close(() => resolve()),
        );
      });
    }
  }

  /** Where other nodes join this manager: the advertise address, with the join port the
   * daemon got when it has none of its own (a listen port of 0). */
  advertiseAddr(): string {
    const a = parseHostPort(this.opts.advertiseAddr);
    return a.port !== undefined ? this.opts.advertiseAddr : joinHostPort(a.host, this.joinPort);
  }

  /** The message server's users and accounts for the nodes and services in the store (each
   * node and each service has a user of its own, a service in its stack's account, which
   * exports and imports what its services' labels say); what they
   * depend on is remembered in busSig: null when that has not changed since the last call. */
  private busAuth(
    secret: string,
    clusterId: string,
  ): { users: User[]; accounts: AccountConfig[]; noAuthUser: string } | null {
    return this.store.view((tx) => {
      // A promoted worker keeps its worker certificate's user until it runs as a manager: it
      // learns of its promotion over the bus.
      const promoting = tx.getMeta<Record<string, true>>(PROMOTING_META) ?? {};
      const nodes = tx.listNodes().flatMap((n) =>
        n.role === "manager" && promoting[n.id]
          ? [
              { id: n.id, role: n.role },
              { id: n.id, role: "worker" as const },
            ]
          : [{ id: n.id, role: n.role }],
      );
      const services = tx
        .listServices()
        .map((s) => ({ id: s.id, spec: { labels: s.spec.labels } }));
      const anonymous = tx.getMeta<Partial<SwarmSettings>>("settings")?.natsAnonymous === true;
      const sig = JSON.stringify([
        nodes,
        services.map((s) => [s.id, appAccountOf(s), shareLabelValues(s)]),
        anonymous,
      ]);
      if (sig === this.busSig) return null;
      this.busSig = sig;
      // Exports and imports between stacks' accounts: an import of what is not exported (yet)
      // is left out and said once; it is placed when the exporter's labels or stack come.
      const plan = appAccountPlan(services);
      for (const w of plan.warnings) if (!this.busWarnings.has(w)) this.opts.log.warn(`bus: ${w}`);
      this.busWarnings = new Set(plan.warnings);
      return {
        users: busUsers(secret, clusterId, nodes, services, anonymous),
        accounts: plan.accounts,
        noAuthUser: anonymous ? APP_USER : "",
      };
    });
  }

  /** Issues this manager's own certificate (a new key) and writes the files, 0600. */
  private async issueOwnCert(): Promise<void> {
    const ca = this.store.view((tx) => tx.getMeta<CaMeta>(CA_META))!;
    const { keyPem, csrPem } = await newKeyAndCsr();
    const listen = parseHostPort(this.opts.listenAddr).host;
    const certPem = await issueNodeCert(ca, csrPem, {
      nodeId: this.nodeId,
      role: "manager",
      addrs: [this.advertiseHost(), listen, "127.0.0.1", "::1"].filter((a) => !isWildcard(a)),
      now: new Date(),
    });
    // During a root CA rotation the certificate is from the new root, followed by the new root
    // cross-signed by the old, so that nodes trusting the old root only still verify it.
    await writeNodeCerts(this.opts.dataDir, {
      caPem: trustPem(ca),
      certPem: ca.rotation ? joinPem(certPem, ca.rotation.crossSignedPem) : certPem,
      keyPem,
    });
    this.ownTlsMemo = undefined;
  }

  private ownTlsMemo: NodeTlsInfo | undefined;
  private trustMemo: { for: string; digests: string[] } | undefined;

  /** Who issued this manager's certificate and which roots its listeners trust. */
  private ownTlsInfo(): NodeTlsInfo {
    if (!this.ownTlsMemo) {
      const t = this.ownTls();
      this.ownTlsMemo = tlsInfoOf(t.certPem, t.caPem);
    }
    return this.ownTlsMemo;
  }

  private memberRootsMemo: { pem: string; info: NodeTlsInfo; roots: string[] } | undefined;

  /** What this manager's heartbeats say of its TLS: `ownTlsInfo`, and the roots its etcd member
   * still trusts (it reads them at its start only: member-trust.ts). */
  private reportedTlsInfo(): NodeTlsInfo {
    const own = this.ownTlsInfo();
    if (!this.member) return own;
    const pem = this.member.trustedPem;
    const memo = this.memberRootsMemo;
    if (memo?.pem !== pem || memo.info !== own) {
      this.memberRootsMemo = { pem, info: own, roots: reportedTrustRoots(own.trustRoots, pem) };
    }
    return { ...own, trustRoots: this.memberRootsMemo!.roots };
  }

  /** The digests of the roots nodes should trust, the signing one first. */
  private trustRoots(): string[] {
    const ca = this.store.view((tx) => tx.getMeta<CaMeta>(CA_META));
    if (!ca) return [];
    const key = trustPem(ca);
    if (this.trustMemo?.for !== key) this.trustMemo = { for: key, digests: trustDigests(ca) };
    return this.trustMemo.digests;
  }

  /** The CA meta changed (a rotation began or ended): this manager follows (`followCa`), one
   * pass at a time, again when it changed during a pass. */
  private onCaChange(): void {
    if (!this.started || this.stopping) return;
    if (this.following) {
      this.followAgain = true;
      void this.memberTrust?.settle(); // a wait under way reads the roots wanted again
      return;
    }
    this.following = (async () => {
      do {
        this.followAgain = false;
        try {
          await this.followCa();
        } catch (err) {
          this.opts.log.warn(`following the swarm's root CA: ${(err as Error).message}`);
        }
      } while (this.followAgain && !this.stopping);
    })().finally(() => (this.following = null));
  }

  /**
   * This manager's trust and certificate follow the CA meta, for the join endpoint, the nodes'
   * listener, the routes, the TCP API and its etcd client. With a managed etcd member, trust
   * first (member-trust.ts): the CA file gets the roots the swarm trusts now, the member restarts
   * on it (one member at a time in the swarm), and only then does the certificate move to the
   * signing root.
   */
  private async followCa(): Promise<void> {
    const ca = this.store.view((tx) => tx.getMeta<CaMeta>(CA_META));
    if (!ca) return;
    const roots = this.trustRoots();
    const mine = this.ownTlsInfo();
    const renew = mine.certIssuer !== roots[0] || mine.trustRoots.join() !== roots.join();
    if (this.memberTrust) {
      await this.serialTls(async () => {
        if (this.ownTlsInfo().trustRoots.join() === roots.join()) return;
        await writeNodeCa(this.opts.dataDir, trustPem(ca));
        this.ownTlsMemo = undefined;
        this.reloadOwnTls();
      });
      // Also when the certificate is current: a member started on an older CA file.
      await this.memberTrust.settle();
      if (this.stopping || !this.certMayMove()) return;
    }
    if (!renew) return;
    clearTimeout(this.renewTimer);
    this.opts.log.info("the swarm's root CA changed: renewing this manager's certificate");
    this.scheduleRenewal(0, true);
  }

  /** Resolves once this manager's store reads from etcd again and a leader is known (after its
   * member restarted), or after MEMBER_RECOVERY_MS, saying so. */
  private async etcdRecovered(): Promise<void> {
    const deadline = Date.now() + MEMBER_RECOVERY_MS;
    while (!this.stopping) {
      try {
        await (this.store as EtcdStore).sync();
        if (this.leaderId() !== undefined) return;
      } catch {
        // not yet
      }
      if (Date.now() > deadline) {
        this.opts.log.warn(
          `this manager's store or the election is not back ${MEMBER_RECOVERY_MS / 1000} s after its etcd member restarted`,
        );
        return;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Whether this manager may take a certificate from the signing root now (member-trust.ts). */
  private certMayMove(): boolean {
    const ca = this.store.view((tx) => tx.getMeta<CaMeta>(CA_META))!;
    return mayTakeCertFrom(ca.certPem, this.member?.trustedPem);
  }

  /** Runs `fn`, which writes this manager's certificate files, after those under way. */
  private serialTls(fn: () => Promise<void>): Promise<void> {
    const run = this.tlsChain.then(fn);
    this.tlsChain = run.catch(() => {});
    return run;
  }

  /** This manager's certificate files changed: new connections use them. */
  private reloadOwnTls(): void {
    const p = certPaths(this.opts.dataDir);
    this.join.setTls(this.ownTls());
    this.apiTls?.setSecureContext(tlsOptions(this.ownTls()));
    const files = { ...defaultTlsConfig(), certFile: p.cert, keyFile: p.key, caFile: p.ca };
    this.nats.reloadMappedTls(files);
    // Routes between managers: a manager started after a CA rotation has only the new root's
    // certificate and trust; the others must take theirs for the routes it makes or accepts.
    this.nats.reloadRouteTls({ ...files, verify: true });
    // The etcd client (the store's and the election's): its next connections.
    try {
      this.etcdTls?.set(readEtcdTls(p));
    } catch (err) {
      this.opts.log.warn(`the etcd client keeps its TLS: ${(err as Error).message}`);
    }
  }

  /** The join endpoint's certificate: this manager's, from its files. */
  private ownTls() {
    const p = certPaths(this.opts.dataDir);
    return {
      certPem: readFileSync(p.cert, "utf8"),
      keyPem: readFileSync(p.key, "utf8"),
      caPem: readFileSync(p.ca, "utf8"),
    };
  }

  /** Renews this manager's certificate at 80% of its lifetime; the join endpoint and the
   * nodes' listener take the new one for new connections. */
  private scheduleRenewal(retryMs = 0, now = false): void {
    const cert = readFileSync(certPaths(this.opts.dataDir).cert, "utf8");
    const wait = now ? 0 : Math.max(retryMs, renewAt(cert) - Date.now());
    this.renewTimer = setTimeout(
      () => {
        void this.serialTls(async () => {
          try {
            await this.issueOwnCert();
            this.reloadOwnTls();
            this.opts.log.info("node certificate renewed");
            if (!this.stopping) this.scheduleRenewal();
          } catch (err) {
            this.opts.log.warn(`node certificate renewal failed: ${(err as Error).message}`);
            if (!this.stopping) this.scheduleRenewal(5000);
          }
        });
      },
      Math.min(wait, 2 ** 31 - 1),
    );
    this.renewTimer.unref();
  }

  /** The options of this manager's etcd member. */
  private memberOptions(): EtcdMemberOptions {
    return {
      nodeId: this.nodeId,
      dataDir: this.opts.dataDir,
      addr: this.advertiseHost(),
      log: this.opts.log.child("etcd"),
    };
  }

  /** Starts this manager's etcd member: again from its data, or joining the members its join
   * answer named (etcd-join.json, written by `shoal join`, kept until the member is promoted
   * from learner: a start that stopped before that promotes it on the next). */
  private async startMember(): Promise<EtcdMember> {
    const dir = this.opts.dataDir;
    const joinFile = join(dir, ETCD_JOIN_FILE);
    const note = existsSync(joinFile) ? readEtcdJoin(joinFile) : undefined;
    const promotion = { memberId: note?.memberId, endpoints: note?.endpoints };
    let how: EtcdStart;
    if (existsSync(join(dir, "etcd", "member"))) how = { mode: "restart", ...promotion };
    else if (note !== undefined) {
      if (note.initialCluster === "") {
        throw new ManagerError("ERR_INVALID", `${joinFile} names no etcd members to join`);
      }
      how = { mode: "join", initialCluster: note.initialCluster, ...promotion };
    } else {
      throw new ManagerError(
        "ERR_INVALID",
        `this manager runs on the managed etcd store but has no etcd member data in ${join(dir, "etcd")}: remove the node (shoal node rm) and join it again`,
      );
    }
    const m = await EtcdMember.start(this.memberOptions(), how);
    rmSync(joinFile, { force: true });
    return m;
  }

  /**
   * A manager joins a swarm on the embedded store: its state moves to an etcd member this
   * manager starts ("new"), and the daemon comes back on it, in this process (run.ts). The move
   * runs in the embedded store's commit loop (`handOver`): no write lands between its snapshot
   * and its end, and every write after it is refused until the daemon runs on etcd, so nothing
   * acknowledged is lost. Tasks are not touched: the node runtime stops without stopping them
   * and adopts them again. Always throws a JoinError: why the move failed (the swarm stays on
   * its embedded store, unharmed), or that the joining manager should try again in a moment.
   */
  private async moveToEtcd(): Promise<never> {
    const retry = new JoinError(
      "this swarm's state is moving to etcd to take a second manager: try again in a few seconds",
      503,
    );
    if (this.moving) throw retry;
    if (findEtcd() === null) {
      throw new JoinError(
        `a second manager needs the managed etcd store, and etcd is not installed on the manager ${this.advertiseHost()}: install it there (and on every manager) with ${ETCD_INSTALL_HINT}; this swarm stays on its embedded store`,
        400,
      );
    }
    this.moving = true;
    const log = this.opts.log;
    const etcdDir = join(this.opts.dataDir, "etcd");
    let member: EtcdMember | null = null;
    try {
      // Anything there is what an earlier failed move left (this node runs embedded).
      rmSync(etcdDir, { recursive: true, force: true });
      member = await EtcdMember.start(this.memberOptions(), { mode: "new" });
      const client = etcdClient({ endpoints: [member.clientUrl], tls: member.clientTls() });
      try {
        await (this.store as EmbeddedStore).handOver(async (snap) => {
          const r = await moveStateToEtcd(
            { snapshot: () => snap },
            { client, ...managedStoreLimits() },
          );
          // Before any write is refused: a restart from here on comes back on etcd.
          patchSettings(this.opts.dataDir, { managedEtcd: true });
          log.info(
            `the state moved to etcd (${r.objects} objects, revision ${r.seq}) for a second manager`,
          );
        });
      } finally {
        client.close();
      }
      await member.stop();
    } catch (err) {
      await member?.stop().catch(() => {});
      rmSync(etcdDir, { recursive: true, force: true });
      this.moving = false;
      log.error(`moving the state to etcd failed: ${(err as Error).message}`);
      throw new JoinError(
        `cannot move this swarm's state to etcd for a second manager: ${(err as Error).message}; the swarm stays on its embedded store`,
        500,
      );
    }
    this.restartWith = { managedEtcd: true };
    setImmediate(() => void this.stop(false));
    throw retry;
  }

  /**
   * In the batch that demotes `node` (the leader's): it gets a node secret (the digest in the
   * node secrets, the secret itself under DEMOTED_META for that node's daemon to read, as only
   * managers read the store) to rejoin as a worker with, and leaves the managers' addresses.
   * A node promoted but not running as a manager yet (still a worker daemon, asking) is only
   * unmarked: it keeps its worker's secret, and stops asking when refused. On the embedded
   * store that is the only demotion there is.
   */
  private demoteIn(tx: WriteTx, node: Node): void {
    const promoting = tx.getMeta<Record<string, true>>(PROMOTING_META) ?? {};
    if (promoting[node.id]) {
      forgetManagerIn(tx, node.id);
      return;
    }
    if (!this.etcdEndpoints) {
      throw new ManagerError(
        "ERR_UNSUPPORTED",
        "demoting a manager needs several managers on an etcd store (managers that joined with the manager token)",
      );
    }
    if (this.member) {
      // Its etcd member goes: the members left that are up must still be a majority.
      const members = tx
        .listNodes()
        .filter((n) => (n.role === "manager" && !promoting[n.id]) || n.id === node.id);
      if (!demoteKeepsQuorum(members, node.id)) {
        throw new ManagerError("ERR_INVALID", DEMOTE_QUORUM_LOSS);
      }
    }
    const secret = newSecret();
    const secrets = tx.getMeta<NodeSecrets>(NODE_SECRETS) ?? {};
    tx.putMeta(NODE_SECRETS, { ...secrets, [node.id]: secretDigest(secret) });
    const demoted = tx.getMeta<Record<string, string>>(DEMOTED_META) ?? {};
    tx.putMeta(DEMOTED_META, { ...demoted, [node.id]: secret });
    const { [node.id]: _gone, ...rest } = tx.getMeta<ManagersMeta>(MANAGERS_META) ?? {};
    tx.putMeta(MANAGERS_META, rest);
  }

  /**
   * This manager was demoted (its node is a worker in the store): it writes the join.json a
   * worker daemon rejoins with (the worker token, its node secret, the other managers' bus
   * URLs), takes its etcd member out of the cluster through the other members, stops its
   * components and comes back as a worker daemon, in this process (run.ts). Tasks keep running:
   * the worker's node runtime adopts them, as at any restart.
   */
  private async becomeWorker(): Promise<void> {
    this.demoting = true;
    const { dataDir, log } = this.opts;
    log.info(`this manager (${this.nodeId}) was demoted: becoming a worker`);
    try {
      const leader = this.leaderId();
      const r = this.store.view((tx) => ({
        join: demotedJoin(tx, this.nodeId, readFileSync(certPaths(dataDir).cert, "utf8"), leader),
        managers: tx.listNodes().filter((n) => n.role === "manager" && n.id !== this.nodeId),
      }));
      writeFileSync(join(dataDir, "join.json"), JSON.stringify(r.join), { mode: 0o600 });
      patchSettings(dataDir, { managedEtcd: false });
      // Through the other members: this one leaves the cluster and exits. (On an external
      // etcd there is no member: the role alone changed.) A leader resigns first: once its
      // member is out it can no longer revoke its lease, and the others would wait for it to
      // expire. (Should the removal fail, it stays out of the election: it is no manager now.)
      if (this.member) {
        await this.leadership?.stop();
        await this.removeOwnMember(r.managers);
      }
    } catch (err) {
      log.error(`becoming a worker failed: ${(err as Error).message}`);
      rmSync(join(dataDir, "join.json"), { force: true });
      if (this.member) patchSettings(dataDir, { managedEtcd: true });
      this.demoting = false;
      return;
    }
    this.restartWith = { worker: true };
    await this.stop(false);
  }

  /**
   * At start, this manager's etcd member refused to start: it was removed from the cluster while
   * this machine was down (the leader takes a down manager's member out when it demotes it, as
   * swarmkit removes an unreachable manager's raft member). Its node a worker in the store (read
   * through the other managers' members, `demotedJoinThroughPeers`), it comes back as one, as a
   * demoted manager that was up does: join.json, then a worker daemon in this process (run.ts),
   * its member already gone and its etcd data removed, so a later promotion starts a clean
   * member. Anything else fails the start, saying what to do.
   */
  private async comeBackRemoved(): Promise<void> {
    const { dataDir, log } = this.opts;
    log.warn(
      `this manager's etcd member was removed from the cluster while it was down: asking the other managers what node ${this.nodeId} is now`,
    );
    const note = await this.demotedJoinThroughPeers(
      `etcd member ${this.nodeId} was removed from the cluster while this machine was down`,
    );
    writeFileSync(join(dataDir, "join.json"), JSON.stringify(note), { mode: 0o600 });
    patchSettings(dataDir, { managedEtcd: false });
    rmSync(join(dataDir, "etcd"), { recursive: true, force: true });
    rmSync(join(dataDir, ETCD_PEERS_FILE), { force: true });
    log.info(`this manager (${this.nodeId}) was demoted while it was down: becoming a worker`);
    this.restartWith = { worker: true };
    this.stopping = true;
    this.resolveDone();
  }

  /**
   * This manager's running etcd member exited, removed from the cluster, without this manager
   * leaving or being demoted through its own store: it was cut off (up, but marked down) when it
   * was demoted, and its member learnt of its removal once it could reach its peers again. Its
   * store is gone with its member: as at a start (`comeBackRemoved`), its node is read through
   * the other managers' members and, a worker, it stops its components and comes back as a
   * worker daemon in this process. Otherwise it says why and runs on without a store.
   */
  private async onMemberRemoved(): Promise<void> {
    if (this.demoting || this.stopping) return;
    this.demoting = true;
    const { dataDir, log } = this.opts;
    log.warn(
      `this manager's etcd member was removed from the cluster: asking the other managers what node ${this.nodeId} is now`,
    );
    try {
      const note = await this.demotedJoinThroughPeers(
        `etcd member ${this.nodeId} was removed from the cluster`,
      );
      writeFileSync(join(dataDir, "join.json"), JSON.stringify(note), { mode: 0o600 });
      patchSettings(dataDir, { managedEtcd: false });
    } catch (err) {
      log.error(`this manager has no store any more: ${(err as Error).message}`);
      this.demoting = false;
      return;
    }
    log.info(`this manager (${this.nodeId}) was demoted while it was cut off: becoming a worker`);
    this.restartWith = { worker: true };
    await this.stop(false);
  }

  /**
   * The join.json of this node as a demoted manager, from the store read (read-only) through the
   * other managers' etcd members (`etcd-peers.json`; client TLS with the node's certificate),
   * when its own member was removed. Throws EtcdMemberError ERR_ETCD_REMOVED, starting with
   * `what`, saying what to do when its node is not a demoted worker or no other member is known.
   */
  private async demotedJoinThroughPeers(what: string): Promise<DemotedJoin> {
    const { dataDir, log } = this.opts;
    const endpoints = readPeers(dataDir);
    if (endpoints.length === 0) {
      throw new EtcdMemberError(
        "ERR_ETCD_REMOVED",
        `${what}, and no other manager's etcd member is known (${join(dataDir, ETCD_PEERS_FILE)}) to read this node from: run \`shoal swarm leave --force\` on this machine and join it again`,
      );
    }
    let store: EtcdStore;
    try {
      store = await openManagersStore(endpoints, () => null, log, {
        tls: readEtcdTls(certPaths(dataDir)),
        ...managedStoreLimits(),
      });
    } catch (err) {
      throw new EtcdMemberError(
        "ERR_ETCD_REMOVED",
        `${what}, and this node cannot be read through the other managers' members: ${(err as Error).message}`,
        { cause: err },
      );
    }
    try {
      const leader = await readLeaderId(store.client).catch(() => undefined);
      const cert = readFileSync(certPaths(dataDir).cert, "utf8");
      return store.view((tx) => {
        const verdict = removedMemberVerdict(
          this.nodeId,
          tx.getNode(this.nodeId),
          tx.getMeta<Record<string, string>>(DEMOTED_META)?.[this.nodeId],
        );
        if (!verdict.worker) {
          throw new EtcdMemberError("ERR_ETCD_REMOVED", `${what}; ${verdict.reason}`);
        }
        return demotedJoin(tx, this.nodeId, cert, leader);
      });
    } finally {
      await store.close();
    }
  }

  /**
   * The leader takes out the etcd members of demoted managers that are down (`membersToRemove`),
   * through its own member: after a demotion commits, and when it starts leading (a demotion
   * whose leader died first). A member already gone is fine; a failure is logged (the next
   * demotion or election tries again) and does not undo the demotion.
   */
  private async removeDownMembers(): Promise<void> {
    if (!this.member || !this.isLeader()) return;
    const { log } = this.opts;
    try {
      const client = (this.store as EtcdStore).client;
      // Never the last member: the leader's own, a manager's, is never among them.
      const gone = membersToRemove(
        await listEtcdMembers(client),
        this.store.view((tx) => tx.listNodes()),
      );
      for (const m of gone) {
        const label =
          m.name !== "" ? m.name : `${m.ID} (never started, at ${m.peerURLs.join(",")})`;
        if (await removeEtcdMemberId(client, m.ID, label)) {
          log.info(`etcd member ${label} removed: its manager was demoted while down`);
        }
      }
    } catch (err) {
      log.warn(
        `removing the etcd members of demoted managers that are down: ${(err as Error).message}`,
      );
    }
  }

  /** Notes the other managers' etcd client URLs (`etcd-peers.json`) when they changed. */
  private notePeers(): void {
    const urls = peerUrls(
      this.store.view((tx) => tx.listNodes()),
      this.nodeId,
    );
    if (urls.join() === this.peersNoted) return;
    try {
      notePeers(this.opts.dataDir, urls);
      this.peersNoted = urls.join();
    } catch (err) {
      this.opts.log.warn(`noting the other managers' etcd members: ${(err as Error).message}`);
    }
  }

  /** Takes this manager's etcd member out of the cluster through the other managers' members
   * (demoted, or leaving): it exits, and the quorum counts the others only. */
  private async removeOwnMember(others: Node[]): Promise<void> {
    const endpoints = others.map((n) => memberClientUrl(n.addr));
    if (endpoints.length === 0) throw new Error("no other manager's etcd member is known");
    const client = etcdClient({ endpoints, tls: this.member!.clientTls() });
    try {
      await removeEtcdMember(client, this.nodeId);
    } finally {
      client.close();
    }
  }

  /**
   * Whether `node` (a manager) is still a member of the store's cluster, for `node rm`: on
   * managed etcd, whether etcd lists its member; on an external etcd (no members of ours),
   * whether it is up; with the embedded store, whether it is this manager (another is a
   * promoted worker that never took over).
   */
  private async storeMember(node: Node): Promise<boolean> {
    if (!this.etcdEndpoints) return node.id === this.nodeId;
    if (!this.member) return node.status !== "down";
    const peerUrl = memberPeerUrl(node.addr);
    const members = await listEtcdMembers((this.store as EtcdStore).client);
    return members.some((m) => m.name === node.id || m.peerURLs.includes(peerUrl));
  }

  /** Adds a joining manager's etcd member, a learner it promotes (through this leader's member). */
  private async addMember(nodeId: string, addr: string): Promise<EtcdJoin> {
    const peerUrl = memberPeerUrl(addr);
    const r = await addEtcdMember((this.store as EtcdStore).client, nodeId, peerUrl);
    this.opts.log.info(`etcd member ${nodeId} (${peerUrl}) added as a learner`);
    return r;
  }

  /** With the etcd store: the store's fence (none while registering, before campaigning). */
  private fence() {
    if (this.bootstrapping) return undefined;
    return this.leadership ? this.leadership.fence() : null;
  }

  /** Whether this manager does the leader's work (always, with the embedded store). */
  isLeader(): boolean {
    if (!this.etcdEndpoints) return true;
    return this.leadership?.isLeader() ?? false;
  }

  /** The leading manager's id (this one, with the embedded store); undefined: none. */
  leaderId(): string | undefined {
    return this.leadership ? this.leadership.leaderId() : this.nodeId;
  }

  /** This manager started or stopped leading: the leader's duties follow. */
  private async onLead(leading: boolean): Promise<void> {
    if (!leading) {
      this.autoscaler?.stop();
      return;
    }
    // Nodes whose bus connection was on the old leader's machine need time to reach ours (the
    // old leader's own node too, until it is found silent for good: onPreviousLeaderSilent).
    this.manager.liveness.restart(Date.now());
    this.manager.events.emit(leaderEvent({ id: this.nodeId, hostname: hostname() }));
    this.manager.markDirty();
    this.dispatcher.lead();
    this.autoscaler?.start();
    // A demotion whose leader died before it took the member of a down manager out.
    if (this.member) void this.removeDownMembers();
  }

  /** A write a follower forwarded: handled by this manager's API as a local call. */
  private async answerForwarded(req: ForwardRequest): Promise<ForwardReply> {
    if (!this.isLeader()) {
      // Deposed since the follower asked (or etcd is lost): say so rather than try.
      const body = { message: NO_LEADER, code: "ERR_NO_LEADER" };
      return { status: 503, contentType: "application/json", body: JSON.stringify(body) };
    }
    const res = await this.api.app.inject({
      method: req.method as "POST",
      url: req.url,
      headers: {
        [FORWARDED_HEADER]: "1",
        ...(req.body !== undefined ? { "content-type": "application/json" } : {}),
      },
      ...(req.body !== undefined ? { payload: JSON.stringify(req.body) } : {}),
    });
    return {
      status: res.statusCode,
      contentType: String(res.headers["content-type"] ?? "application/json"),
      body: res.body,
    };
  }

  /** The message server's cluster (routes to the other managers, their route URLs from the
   * store), with mutual TLS on the node certificates and a password only managers know. */
  private async clusterOptions(secret: string, clusterId: string) {
    const certs = certPaths(this.opts.dataDir);
    let port = this.opts.routePort ?? (this.opts.natsPort > 0 ? this.opts.natsPort + 2 : -1);
    if (port <= 0) port = await freePort(parseHostPort(this.opts.listenAddr).host || "0.0.0.0");
    const others = this.store.view((tx) => tx.getMeta<ManagersMeta>(MANAGERS_META)) ?? {};
    const routes = Object.entries(others)
      .filter(([id]) => id !== this.nodeId)
      .map(([, a]) => a.route);
    return {
      ...defaultClusterOptions(),
      name: `shoal-${clusterId.slice(0, 16)}`,
      host: parseHostPort(this.opts.listenAddr).host || "0.0.0.0",
      port,
      routes,
      advertise: joinHostPort(this.advertiseHost(), port),
      // Workers get the managers' bus URLs from their join, not the client ports.
      noAdvertise: true,
      username: "shoal-route",
      password: createHash("sha256").update(`${secret}:route`).digest("base64url"),
      connectBackoffMs: 250,
      tls: {
        ...defaultTlsConfig(),
        certFile: certs.cert,
        keyFile: certs.key,
        caFile: certs.ca,
        verify: true,
      },
    };
  }

  /** Records where this manager's message server is reached (the `managers` meta key). */
  private async registerAddrs(): Promise<void> {
    const host = this.advertiseHost();
    const addrs = {
      bus: `nats://${joinHostPort(host, this.busPort)}`,
      app: `nats://${joinHostPort(host, this.nats.port)}`,
      route: `nats://${joinHostPort(host, this.nats.clusterPort())}`,
      join: this.advertiseAddr(),
    };
    await this.store.update((tx) => {
      const cur = tx.getMeta<ManagersMeta>(MANAGERS_META) ?? {};
      tx.putMeta(MANAGERS_META, { ...cur, [this.nodeId]: addrs });
    });
  }

  /** The message servers a node is given at its join, and learns while connected: every live
   * manager's (this one's first); a manager marked down is left out until it is back. */
  private busUrls(): { nodes: string[]; apps: string[] } {
    const own = {
      nodes: [`nats://${joinHostPort(this.advertiseHost(), this.busPort)}`],
      apps: [`nats://${joinHostPort(this.advertiseHost(), this.nats.port)}`],
    };
    const all = this.store.view((tx) => tx.getMeta<ManagersMeta>(MANAGERS_META)) ?? {};
    const managers = new Set(
      this.store.view((tx) =>
        tx
          .listNodes()
          .filter((n) => n.role === "manager" && n.status !== "down")
          .map((n) => n.id),
      ),
    );
    for (const [id, a] of Object.entries(all)) {
      if (id === this.nodeId || !managers.has(id)) continue;
      own.nodes.push(a.bus);
      own.apps.push(a.app);
    }
    return own;
  }

  private advertiseHost(): string {
    return parseHostPort(this.opts.advertiseAddr).host;
  }

  /** Stops the daemon; `leaving` also stops every task and forgets the swarm (its store, node
   * id and settings), otherwise the tasks are adopted at the next start. */
  async stop(leaving: boolean): Promise<void> {
    if (this.stopping) return this.done;
    this.stopping = true;
    clearTimeout(this.renewTimer);
    this.memberTrust?.stop();
    // A manager leaving (`swarm leave --force`) leaves the store's cluster, as a swarmkit
    // manager leaves raft: the other managers, read before the store closes, take its member out.
    const others =
      leaving && this.member && !this.demoting
        ? this.store.view((tx) =>
            tx.listNodes().filter((n) => n.role === "manager" && n.id !== this.nodeId),
          )
        : [];
    await this.runtime?.stop(leaving);
    await this.leadership?.stop();
    this.unwatchNodes?.();
    await this.dispatcher?.stop();
    await this.join?.close();
    this.autoscaler?.stop();
    await this.manager?.stop();
    await this.api?.close();
    await this.dashboard?.close();
    await this.consul?.close();
    await this.metrics?.close();
    await this.edge?.close();
    await this.nats?.shutdown();
    await this.store?.close();
    if (leaving && this.member) {
      await this.removeOwnMember(others).then(
        () => this.opts.log.info(`etcd member ${this.nodeId} left the cluster`),
        (err: Error) =>
          this.opts.log.warn(
            `this manager's etcd member could not leave the cluster: ${err.message}`,
          ),
      );
    }
    await this.member?.stop();
    const dir = this.opts.dataDir;
    if (this.restartWith?.worker) {
      rmSync(join(dir, "etcd"), { recursive: true, force: true });
      rmSync(join(dir, ETCD_PEERS_FILE), { force: true });
    }
    if (this.restartWith?.managedEtcd && existsSync(join(dir, "store"))) {
      // Kept for the record, never opened again: the state lives in etcd now.
      rmSync(join(dir, MOVED_STORE_DIR), { recursive: true, force: true });
      renameSync(join(dir, "store"), join(dir, MOVED_STORE_DIR));
    }
    rmSync(join(dir, "daemon.pid"), { force: true });
    rmSync(socketPath(dir), { force: true });
    if (leaving) forgetSwarm(dir);
    this.opts.log.info("shoal daemon stopped");
    this.resolveDone();
  }
}

/** How long a manager that restarted its etcd member waits to be back on etcd before the next
 * manager may restart its own. */
const MEMBER_RECOVERY_MS = 20_000;

/** A demoted manager's node secret, for its daemon to rejoin as a worker (by node id). */
const DEMOTED_META = "demoted";

/** The join.json a demoted manager's worker daemon starts from. */
interface DemotedJoin {
  token: string;
  managerAddr: string;
  answer: JoinResponse;
}

/**
 * What demoted node `id` rejoins as a worker with (its join.json): the worker token, the node
 * secret its demotion left, the other managers' bus URLs, and the join address of the leader
 * (`leaderId`), else another manager's. `cert` is its current (manager's) certificate. Throws
 * when there is no secret or no other manager.
 */
function demotedJoin(
  tx: ReadTx,
  id: string,
  cert: string,
  leaderId: string | undefined,
): DemotedJoin {
  const meta = tx.getMeta<ClusterMeta>("cluster")!;
  const ca = tx.getMeta<CaMeta>(CA_META)!;
  const secret = tx.getMeta<Record<string, string>>(DEMOTED_META)?.[id];
  if (!secret) throw new Error("the leader left no node secret for this node");
  const addrs = tx.getMeta<ManagersMeta>(MANAGERS_META) ?? {};
  const managers = tx.listNodes().filter((n) => n.role === "manager" && n.id !== id);
  const others = managers.flatMap((n) => (addrs[n.id] ? [addrs[n.id]!] : []));
  const via =
    (leaderId !== undefined && leaderId !== id ? addrs[leaderId] : undefined) ?? others[0];
  if (!via) throw new Error("no other manager's address is known");
  const answer: JoinResponse = {
    nodeId: id,
    role: "worker",
    caCert: ca.certPem,
    cert,
    natsUrls: others.map((a) => a.bus),
    appNatsUrls: others.map((a) => a.app),
    busUser: certUser(id, "worker", ca.clusterId),
    heartbeatMs: tx.getMeta<SwarmSettings>("settings")?.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
    nodeSecret: secret,
  };
  return { token: makeToken(tokenDigest(ca), meta.workerSecret), managerAddr: via.join, answer };
}
/** Promoted workers not yet running as managers (by node id). */
const PROMOTING_META = "promoting";

/** In the batch that promotes `node`: it is promoting until its manager daemon registers. */
function promoteIn(tx: WriteTx, node: Node): void {
  const cur = tx.getMeta<Record<string, true>>(PROMOTING_META) ?? {};
  tx.putMeta(PROMOTING_META, { ...cur, [node.id]: true });
}

/** In the batch that removes a manager (it left): its addresses and marks go too. */
function forgetManagerIn(tx: WriteTx, id: string): void {
  for (const key of [MANAGERS_META, PROMOTING_META, DEMOTED_META]) {
    const cur = tx.getMeta<Record<string, unknown>>(key);
    if (cur?.[id] === undefined) continue;
    const { [id]: _gone, ...rest } = cur;
    tx.putMeta(key, rest);
  }
}

/** A free TCP port on `host` (the route port must be known before the server starts: it is
 * advertised to the other managers). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once("error", reject);
    s.listen({ host, port: 0 }, () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** The embedded message server logs only warnings and errors unless the daemon debugs. */
function quiet(log: Logger): Logger {
  const q: Logger = {
    debugEnabled: false,
    traceEnabled: false,
    info() {},
    debug() {},
    trace() {},
    warn: (m) => log.warn(m),
    error: (m) => log.error(m),
    fatal: (m) => log.fatal(m),
    child: (name) => quiet(log.child(name)),
  };
  return q;
}

export { ServerLogger };
