// An `Overlays` instance (src/node/drivers/overlay.ts) running inside a test-bed host's network
// namespace, as a node daemon would: a small agent process that takes one JSON call per line on
// stdin ({ id, op, args } → `await overlays[op](...args)`) and answers { id, ok, err? } on
// stdout. Used by the overlay tests and the network bench.

import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Host } from "../cluster/netns.js";

const overlayJs = fileURLToPath(new URL("../../src/node/drivers/overlay.js", import.meta.url));
const netnsJs = fileURLToPath(new URL("../../src/node/drivers/netns.js", import.meta.url));

/** The agent: an Overlays instance for the underlay address argv[1], one JSON call per line. */
const AGENT = `
import { Overlays } from ${JSON.stringify(overlayJs)};
import { findIp, findIptables } from ${JSON.stringify(netnsJs)};
import { createInterface } from "node:readline";
const ov = new Overlays({ ipPath: findIp(), iptablesPath: findIptables(), underlay: process.argv[1],
  log: { info() {}, warn(m) { process.stderr.write(m + "\\n"); } } });
createInterface({ input: process.stdin }).on("line", async (line) => {
  const { id, op, args } = JSON.parse(line);
  try { await ov[op](...args); console.log(JSON.stringify({ id, ok: true })); }
  catch (e) { console.log(JSON.stringify({ id, ok: false, err: e.message })); }
});
console.log(JSON.stringify({ id: 0, ok: true }));
`;

interface Answer {
  id: number;
  ok: boolean;
  err?: string;
}

/** An Overlays instance in a host's namespace (the host's address is its underlay). */
export class OverlayAgent {
  private next = 1;
  private readonly waiting = new Map<number, (r: Answer) => void>();
  private exit: Error | null = null;
  readonly child: ChildProcess;
  readonly ready: Promise<void>;

  constructor(host: Host) {
    this.child = host.spawn(process.execPath, ["--input-type=module", "-e", AGENT, host.addr]);
    this.child.stderr?.on("data", (d: Buffer) => process.stderr.write(`agent ${host.name}: ${d}`));
    let up: () => void;
    let down: (err: Error) => void;
    this.ready = new Promise((resolve, reject) => {
      up = resolve;
      down = reject;
    });
    this.ready.catch(() => undefined); // reported to whoever calls
    this.child.once("exit", (code, signal) => {
      this.exit = new Error(`overlay agent on ${host.name} exited (${signal ?? `code ${code}`})`);
      down(this.exit);
      for (const w of this.waiting.values()) w({ id: -1, ok: false, err: this.exit.message });
      this.waiting.clear();
    });
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      const r = JSON.parse(line) as Answer;
      if (r.id === 0) up();
      this.waiting.get(r.id)?.(r);
      this.waiting.delete(r.id);
    });
  }

  /** Calls `overlays[op](...args)` in the agent; rejects with the agent's error message. */
  async call(op: string, ...args: unknown[]): Promise<void> {
    await this.ready;
    if (this.exit) throw this.exit;
    const id = this.next++;
    const r = await new Promise<Answer>((resolve) => {
      this.waiting.set(id, resolve);
      this.child.stdin!.write(`${JSON.stringify({ id, op, args })}\n`);
    });
    if (!r.ok) throw new Error(`${op}: ${r.err}`);
  }

  kill9(): Promise<void> {
    return new Promise((resolve) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) return resolve();
      this.child.once("exit", () => resolve());
      this.child.kill("SIGKILL");
    });
  }
}
