// The routing mesh: every published port listens on this node and forwards each new TCP
// connection to the next running task of the service (round robin), wherever it runs. The
// backends come from the manager's view of running tasks; `sync()` opens and closes listeners
// as services publish or drop ports.
//
// It counts per service (the service a backend says it belongs to; the port's number when none
// does) the connections it forwarded and the bytes each way: clients to tasks ("in") and tasks
// to clients ("out"). The node's /metrics exposes them (shoal_mesh_connections_total,
// shoal_mesh_bytes_total); the heartbeat takes the new connections since the last one for the
// autoscaler's requests per second (`takeConnectionCounts`): at L4 a request is not seen, so
// through the mesh one new connection counts as one request (docs/design.md, "Autoscaling").

import { createServer, createConnection, type Server, type Socket } from "node:net";
import type { Logger } from "../lib/log.js";
import { copyOf, readCopies } from "../lib/readinto.js";

export interface Backend {
  host: string;
  port: number;
  /** The service the backend is a task of (what the mesh counts under). */
  serviceId?: string;
  service?: string;
}

/** One service's figures in the mesh (cumulative since the node started, or the service came). */
export interface MeshTraffic {
  /** The service's id; for a port whose backends name none, `port:<n>`. */
  serviceId: string;
  service: string;
  connections: number;
  /** `connections` at the last `takeConnectionCounts`. */
  taken: number;
  bytesIn: number;
  bytesOut: number;
}

/** What this component logs through (the one Logger interface, src/lib/log.ts). */
export type MeshLogger = Pick<Logger, "info" | "warn" | "debug">;

interface Listener {
  server: Server;
  next: number;
}

/**
 * What one socket's reads land in, one read at a time on the event loop (src/lib/readinto.ts);
 * each read is copied out before the next, since a write may keep it past the callback.
 */
const READ_BUF = Buffer.allocUnsafe(64 * 1024);

/**
 * Sends bytes read from `from` on to `to`, pausing `from` while `to` is full; what `pipe` does,
 * without its per-chunk bookkeeping. `to` ends when `from` does.
 */
function relayTo(from: Socket, to: Socket, count: (n: number) => void): (d: Buffer) => void {
  to.on("drain", () => from.resume());
  from.on("end", () => to.end());
  return (d) => {
    count(d.length);
    if (!to.write(d)) from.pause();
  };
}

export class RoutingMesh {
  private readonly listeners = new Map<number, Listener>();
  private backends = new Map<number, Backend[]>();
  private readonly traffic = new Map<string, MeshTraffic>();

  constructor(
    private readonly log: MeshLogger,
    private readonly host = "0.0.0.0",
  ) {}

  /** Sets the backends of every published port; opens/closes listeners to match. */
  async sync(backends: Map<number, Backend[]>): Promise<void> {
    this.backends = backends;
    const keep = new Set<string>();
    for (const [port, list] of backends) keep.add(list[0]?.serviceId ?? `port:${port}`);
    for (const [key, t] of this.traffic) {
      if (!keep.has(key) && t.connections === t.taken) this.traffic.delete(key);
    }
    for (const [port, l] of this.listeners) {
      if (!backends.has(port)) {
        this.listeners.delete(port);
        l.server.close();
        this.log.info(`routing mesh: closed published port ${port}`);
      }
    }
    for (const port of backends.keys()) {
      if (this.listeners.has(port)) continue;
      const l: Listener = {
        server: createServer({ noDelay: true, pauseOnConnect: true }, (s) =>
          this.forward(port, l, s),
        ),
        next: 0,
      };
      this.listeners.set(port, l);
      try {
        await new Promise<void>((resolve, reject) => {
          l.server.once("error", reject);
          l.server.listen({ host: this.host, port }, () => {
            l.server.off("error", reject);
            resolve();
          });
        });
        this.log.info(`routing mesh: listening on published port ${port}`);
      } catch (err) {
        this.listeners.delete(port);
        this.log.warn(`routing mesh: cannot listen on port ${port}: ${(err as Error).message}`);
      }
    }
  }

  /** A new connection (accepted paused): to the next backend, both ways read through onread. */
  private forward(port: number, l: Listener, accepted: Socket): void {
    const list = this.backends.get(port) ?? [];
    if (list.length === 0) {
      accepted.destroy();
      return;
    }
    const b = list[l.next++ % list.length]!;
    const t = this.trafficOf(port, b);
    t.connections++;
    // Assigned below, before either socket can read (reads start on a later tick).
    let toUpstream: (d: Buffer) => void = () => {};
    let toClient: (d: Buffer) => void = () => {};
    const client = readCopies(accepted, READ_BUF, (d) => toUpstream(d));
    const upstream = createConnection({
      host: b.host,
      port: b.port,
      noDelay: true,
      onread: {
        buffer: READ_BUF,
        callback: (n: number, buf: Uint8Array) => {
          toClient(copyOf(buf.subarray(0, n)));
          return true;
        },
      },
    });
    client.on("error", () => upstream.destroy());
    upstream.on("error", (err) => {
      this.log.debug(`routing mesh: ${port} -> ${b.host}:${b.port}: ${err.message}`);
      client.destroy();
    });
    toUpstream = relayTo(client, upstream, (n) => (t.bytesIn += n));
    toClient = relayTo(upstream, client, (n) => (t.bytesOut += n));
  }

  private trafficOf(port: number, b: Backend): MeshTraffic {
    const key = b.serviceId ?? `port:${port}`;
    let t = this.traffic.get(key);
    if (t === undefined) {
      t = { serviceId: key, service: "", connections: 0, taken: 0, bytesIn: 0, bytesOut: 0 };
      this.traffic.set(key, t);
    }
    t.service = b.service ?? key;
    return t;
  }

  /** Every service's figures (the /metrics exposition reads them). */
  stats(): MeshTraffic[] {
    return [...this.traffic.values()];
  }

  /** New connections per service since the last call (services with none are left out). */
  takeConnectionCounts(): Array<{ serviceId: string; count: number }> {
    const out: Array<{ serviceId: string; count: number }> = [];
    for (const t of this.traffic.values()) {
      const n = t.connections - t.taken;
      if (n <= 0) continue;
      t.taken = t.connections;
      out.push({ serviceId: t.serviceId, count: n });
    }
    return out;
  }

  async close(): Promise<void> {
    const all = [...this.listeners.values()];
    this.listeners.clear();
    await Promise.all(all.map((l) => new Promise<void>((r) => l.server.close(() => r()))));
  }
}
