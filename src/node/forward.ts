// A small TCP forwarder for bridge-networked tasks: the agent listens on a host port and pipes
// every connection to the task's address and target port inside its namespace. The routing
// mesh keeps sending to node address + host port, as for host networking.

import { connect, createServer, type Server, type Socket } from "node:net";

export interface ForwardTarget {
  host: string;
  port: number;
}

export class PortForwarder {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  /** Where connections go; null until the task's address is known (they are refused until then). */
  target: ForwardTarget | null = null;
  /** The host port, once listening. */
  port = 0;
  private closed = false;

  constructor(target: ForwardTarget | null = null) {
    this.target = target;
    // Half-open both ways: a client that is done sending still gets the whole answer.
    this.server = createServer({ allowHalfOpen: true }, (client) => this.pipe(client));
  }

  /** Listens on 0.0.0.0:port (0 = a free port the OS picks); resolves with the port. */
  listen(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, "0.0.0.0", () => {
        this.server.off("error", reject);
        const addr = this.server.address();
        this.port = typeof addr === "object" && addr ? addr.port : port;
        resolve(this.port);
      });
    });
  }

  private pipe(client: Socket): void {
    const t = this.target;
    if (t === null || this.closed) {
      client.destroy();
      return;
    }
    const upstream = connect({ port: t.port, host: t.host, allowHalfOpen: true });
    this.sockets.add(client);
    this.sockets.add(upstream);
    // A socket closes once both of its directions are done (or on error): then so is the pair.
    const done = (): void => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on("error", done).on("close", done);
    upstream.on("error", done).on("close", done);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Stops listening and drops the connections in flight. */
  close(): Promise<void> {
    this.closed = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    return new Promise((resolve) => {
      if (!this.server.listening) {
        resolve();
        return;
      }
      this.server.close(() => resolve());
    });
  }
}
