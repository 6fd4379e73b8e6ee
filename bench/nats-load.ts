// A NATS load generator that runs in its own process, forked by the nats bench suite so that the
// client side never competes with the suite's bookkeeping for an event loop. The parent sends
// {cmd: "start", job}; the worker connects and answers {type: "ready"}; then {cmd: "go"} starts
// a publisher or requester and {cmd: "finish", expected} tells subscribers how many messages to
// wait for. Results come back as {type: "result", ...}; any failure as {type: "error", message}.
// The worker exits when its parent goes away.
import type net from "node:net";
import { MsgScanner, nowNs, openConnection } from "./nats-proto.js";

/** Publishes `size`-byte messages as fast as the socket drains, for durationMs or maxMsgs. */
export interface PubJob {
  role: "pub";
  port: number;
  subject: string;
  size: number;
  durationMs: number;
  maxMsgs: number;
  /** Bytes per socket write: that many PUB frames are pre-built in one buffer. */
  writeBytes: number;
  /** Over WebSocket (port is then the server's WebSocket port). */
  ws?: boolean;
  /** Connect over TLS, trusting this CA file. */
  tlsCa?: string;
}

/** `conns` connections subscribed to `subject`, each counting what it receives. */
export interface SubJob {
  role: "sub";
  port: number;
  subject: string;
  conns: number;
  /** After "finish", give up once nothing has arrived for this long. */
  idleMs: number;
  /** After "finish", give up after this long in any case. */
  maxWaitMs: number;
  /** Over WebSocket (port is then the server's WebSocket port). */
  ws?: boolean;
  /** Connect over TLS, trusting this CA file. */
  tlsCa?: string;
}

/** Replies to every request on `subject` with a `size`-byte message. */
export interface ResponderJob {
  role: "responder";
  port: number;
  subject: string;
  size: number;
}

/** Sends one request at a time and times each round trip. */
export interface RequesterJob {
  role: "requester";
  port: number;
  subject: string;
  size: number;
  warmup: number;
  count: number;
}

/** Opens `conns` connections (CONNECT + PING/PONG each) and keeps them open, idle. */
export interface IdleJob {
  role: "idle";
  port: number;
  conns: number;
  /** How many handshakes run at once. */
  batch: number;
}

export type Job = PubJob | SubJob | ResponderJob | RequesterJob | IdleJob;

export interface PubResult {
  type: "result";
  sent: number;
  startNs: number;
  /** When the PONG for the PING sent after the last PUB arrived. */
  endNs: number;
}

export interface SubConnResult {
  count: number;
  firstNs: number;
  lastNs: number;
  /** Why the connection ended early (closed, -ERR), if it did. */
  error: string | null;
}

export interface SubResult {
  type: "result";
  conns: SubConnResult[];
}

export interface RequesterResult {
  type: "result";
  /** Round-trip times in microseconds, sorted ascending. */
  latenciesUs: number[];
}

export interface IdleReady {
  type: "ready";
  connected: number;
}

type Command = { cmd: "start"; job: Job } | { cmd: "go" } | { cmd: "finish"; expected: number };

const listeners: Array<(c: Command) => void> = [];

function send(msg: object): void {
  process.send?.(msg);
}

function nextCommand<K extends Command["cmd"]>(cmd: K): Promise<Extract<Command, { cmd: K }>> {
  return new Promise((resolve) => {
    const l = (c: Command) => {
      if (c.cmd !== cmd) return;
      listeners.splice(listeners.indexOf(l), 1);
      resolve(c as Extract<Command, { cmd: K }>);
    };
    listeners.push(l);
  });
}

/** A failure inside a socket callback: report it and stop this worker. */
function die(err: unknown): never {
  send({ type: "error", message: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}

/** Answers server PINGs and turns -ERR or an unexpected close into a worker failure. */
function controlHandler(socket: net.Socket, name: string, onPong?: () => void) {
  return (line: string) => {
    if (line === "PING") socket.write("PONG\r\n");
    else if (line === "PONG") onPong?.();
    else if (line.startsWith("-ERR")) die(`${name}: server said ${line}`);
  };
}

/** An error or close on a connection that must stay up ends the worker with that message. */
function dieOnClose(socket: net.Socket, what: string): void {
  socket.on("error", (err) => die(`${what} (${err.message})`));
  socket.on("close", () => die(what));
}

function frame(head: string, size: number): Buffer {
  return Buffer.from(`${head} ${size}\r\n${"x".repeat(size)}\r\n`, "latin1");
}

async function runPub(job: PubJob): Promise<void> {
  const { socket, rest } = await openConnection(job.port, "bench-pub", "", job.ws, job.tlsCa);
  let pong: (() => void) | null = null;
  const scanner = new MsgScanner(controlHandler(socket, "pub", () => pong?.()));
  socket.on("data", (c: Buffer) => scanner.push(c));
  dieOnClose(socket, "pub: connection closed by server");
  scanner.push(rest);

  const one = frame(`PUB ${job.subject}`, job.size);
  const perWrite = Math.max(1, Math.floor(job.writeBytes / one.length));
  const block = Buffer.allocUnsafe(perWrite * one.length);
  for (let k = 0; k < perWrite; k++) one.copy(block, k * one.length);

  send({ type: "ready" });
  await nextCommand("go");

  const startNs = nowNs();
  const deadline = startNs + job.durationMs * 1e6;
  let sent = 0;
  await new Promise<void>((resolve) => {
    const pump = () => {
      for (;;) {
        if (sent >= job.maxMsgs || nowNs() >= deadline) return resolve();
        const n = Math.min(perWrite, job.maxMsgs - sent);
        const ok = socket.write(n === perWrite ? block : block.subarray(0, n * one.length));
        sent += n;
        if (!ok) {
          socket.once("drain", pump);
          return;
        }
      }
    };
    pump();
  });
  await new Promise<void>((resolve) => {
    pong = resolve;
    socket.write("PING\r\n");
  });
  const result: PubResult = { type: "result", sent, startNs, endNs: nowNs() };
  send(result);
}

async function runSub(job: SubJob): Promise<void> {
  const states: SubConnResult[] = [];
  let lastActivity = 0;
  const conns = await Promise.all(
    Array.from({ length: job.conns }, (_, k) =>
      openConnection(job.port, `bench-sub-${k}`, `SUB ${job.subject} 1\r\n`, job.ws, job.tlsCa),
    ),
  );
  for (const { socket, rest } of conns) {
    const st: SubConnResult = { count: 0, firstNs: 0, lastNs: 0, error: null };
    states.push(st);
    const scanner = new MsgScanner((line) => {
      if (line === "PING") socket.write("PONG\r\n");
      else if (line.startsWith("-ERR")) st.error ??= line;
    });
    const onData = (c: Buffer) => {
      const before = scanner.count;
      scanner.push(c);
      if (scanner.count !== before) {
        const t = nowNs();
        if (st.firstNs === 0) st.firstNs = t;
        st.lastNs = t;
        st.count = scanner.count;
        lastActivity = t;
      }
    };
    socket.on("data", onData);
    socket.on("close", () => {
      st.error ??= "connection closed by server";
    });
    socket.on("error", (err) => {
      st.error ??= err.message;
    });
    onData(rest);
  }
  send({ type: "ready" });

  const fin = await nextCommand("finish");
  const expected = fin.expected;
  const finishAt = nowNs();
  lastActivity = Math.max(lastActivity, finishAt);
  await new Promise<void>((resolve) => {
    const check = () => {
      const t = nowNs();
      const allDone = states.every((s) => s.count >= expected || s.error !== null);
      if (allDone || t - lastActivity > job.idleMs * 1e6 || t - finishAt > job.maxWaitMs * 1e6) {
        clearInterval(timer);
        resolve();
      }
    };
    const timer = setInterval(check, 20);
    check();
  });
  const result: SubResult = { type: "result", conns: states };
  send(result);
}

async function runResponder(job: ResponderJob): Promise<void> {
  const { socket, rest } = await openConnection(
    job.port,
    "bench-responder",
    `SUB ${job.subject} 1\r\n`,
  );
  const payload = `${"x".repeat(job.size)}\r\n`;
  const scanner = new MsgScanner(controlHandler(socket, "responder"), (buf, start, end) => {
    // MSG <subject> <sid> <reply> <size>
    const tokens = buf.toString("latin1", start, end).split(" ");
    if (tokens.length !== 5) return;
    socket.write(`PUB ${tokens[3]} ${job.size}\r\n${payload}`);
  });
  socket.on("data", (c: Buffer) => scanner.push(c));
  dieOnClose(socket, "responder: connection closed by server");
  scanner.push(rest);
  send({ type: "ready" });
}

async function runRequester(job: RequesterJob): Promise<void> {
  const inbox = `_INBOX.bench.${process.pid}`;
  const { socket, rest } = await openConnection(job.port, "bench-requester", `SUB ${inbox} 1\r\n`);
  const request = frame(`PUB ${job.subject} ${inbox}`, job.size);
  const total = job.warmup + job.count;
  const latencies = new Float64Array(job.count);
  let done = 0;
  let t0 = 0;
  let finished: (() => void) | null = null;
  const scanner = new MsgScanner(controlHandler(socket, "requester"), () => {
    const t1 = nowNs();
    if (done >= job.warmup) latencies[done - job.warmup] = (t1 - t0) / 1000;
    done++;
    if (done < total) {
      t0 = nowNs();
      socket.write(request);
    } else finished?.();
  });
  socket.on("data", (c: Buffer) => scanner.push(c));
  dieOnClose(socket, "requester: connection closed by server");
  scanner.push(rest);
  send({ type: "ready" });
  await nextCommand("go");
  await new Promise<void>((resolve) => {
    finished = resolve;
    t0 = nowNs();
    socket.write(request);
  });
  const result: RequesterResult = {
    type: "result",
    latenciesUs: Array.from(latencies).sort((a, b) => a - b),
  };
  send(result);
}

async function runIdle(job: IdleJob): Promise<void> {
  const sockets: net.Socket[] = [];
  for (let k = 0; k < job.conns; k += job.batch) {
    const n = Math.min(job.batch, job.conns - k);
    const batch = await Promise.all(
      Array.from({ length: n }, (_, m) => openConnection(job.port, `bench-idle-${k + m}`)),
    );
    for (const { socket, rest } of batch) {
      const scanner = new MsgScanner(controlHandler(socket, "idle"));
      socket.on("data", (c: Buffer) => scanner.push(c));
      dieOnClose(socket, "idle: a connection was closed by the server");
      scanner.push(rest);
      sockets.push(socket);
    }
  }
  const ready: IdleReady = { type: "ready", connected: sockets.length };
  send(ready);
}

async function main(job: Job): Promise<void> {
  switch (job.role) {
    case "pub":
      return runPub(job);
    case "sub":
      return runSub(job);
    case "responder":
      return runResponder(job);
    case "requester":
      return runRequester(job);
    case "idle":
      return runIdle(job);
  }
}

if (process.send) {
  process.on("disconnect", () => process.exit(0));
  process.on("message", (c: Command) => {
    if (c.cmd === "start") main(c.job).catch(die);
    else for (const l of [...listeners]) l(c);
  });
}
