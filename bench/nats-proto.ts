// Just enough of the NATS client protocol for the load generators, spoken directly on a socket
// (no client library, so the client costs as little as possible): a handshake that sends CONNECT
// and waits for the PONG, and MsgScanner, which counts MSG/HMSG frames in the byte stream by
// reading each control line and skipping the payload by its length, never looking inside it.
import net from "node:net";
import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import tls from "node:tls";
import { WebSocket } from "ws";

const CONNECT = JSON.stringify({
  verbose: false,
  pedantic: false,
  tls_required: false,
  lang: "raw",
  version: "0.0.0",
  protocol: 1,
  headers: false,
  no_responders: false,
});

/** Longest control line we accept before declaring the stream broken (nats-server's limit). */
const MAX_CONTROL_LINE = 4096;

export interface Connection {
  socket: net.Socket;
  /** Bytes that arrived after the handshake's PONG, to be fed to the caller's parser. */
  rest: Buffer;
}

/**
 * Connects to 127.0.0.1:port, waits for INFO, sends CONNECT, then `extra` (e.g. a SUB) and a PING,
 * and resolves when the PONG arrives — so the server has processed everything sent before it.
 */
export function openConnection(
  port: number,
  name: string,
  extra = "",
  ws = false,
  /** A CA file: when INFO says tls_required, the connection upgrades to TLS (after INFO). */
  tlsCa?: string,
): Promise<Connection> {
  return new Promise((resolve, reject) => {
    let socket = ws ? wsSocket(port) : net.connect({ port, host: "127.0.0.1", noDelay: true });
    let buf = "";
    let sent = false;
    let settled = false;
    const finish = (err: Error | null) => {
      if (settled) return;
      settled = true;
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
      if (err) {
        socket.destroy();
        reject(err);
      } else resolve({ socket, rest: Buffer.from(buf, "latin1") });
    };
    const onError = (err: Error) => finish(err);
    const onClose = () => finish(new Error(`${name}: connection closed during handshake`));
    const onData = (chunk: Buffer) => {
      buf += chunk.toString("latin1");
      let nl: number;
      while (!settled && (nl = buf.indexOf("\r\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        if (line.startsWith("INFO ")) {
          if (!sent) {
            sent = true;
            const connect = CONNECT.replace("{", `{"name":${JSON.stringify(name)},`);
            const hello = `CONNECT ${connect}\r\n${extra}PING\r\n`;
            if (tlsCa !== undefined && !ws && /"tls_required":true/.test(line)) {
              socket.off("data", onData);
              socket.off("close", onClose);
              socket.off("error", onError);
              socket = tls.connect({ socket, ca: readFileSync(tlsCa), servername: "localhost" });
              socket.on("data", onData);
              socket.on("error", onError);
              socket.on("close", onClose);
            }
            socket.write(hello);
          }
        } else if (line === "PING") socket.write("PONG\r\n");
        else if (line === "PONG") finish(null);
        else if (line.startsWith("-ERR")) finish(new Error(`${name}: server said ${line}`));
      }
    };
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("close", onClose);
  });
}

/**
 * Counts messages in a NATS server→client byte stream, fed chunk by chunk. Per message it finds
 * the end of the `MSG <subject> <sid> [reply] <size>` line, reads <size> backwards from the line
 * end and skips that many payload bytes plus CRLF. A control line split across chunks is carried
 * over (copied, it is short); a payload split across chunks is skipped in the next one. Other
 * control lines (PING, PONG, INFO, +OK, -ERR) go to onControl.
 */
export class MsgScanner {
  count = 0;
  /** Payload (+CRLF) bytes still to skip at the start of the next chunk. */
  private skip = 0;
  /** An unfinished control line from the end of the previous chunk. */
  private partial: Buffer | null = null;

  constructor(
    private readonly onControl: (line: string) => void,
    /** Called for every MSG with its control line as buf[start, end) (CRLF excluded). */
    private readonly onMsg: ((buf: Buffer, start: number, end: number) => void) | null = null,
  ) {}

  push(chunk: Buffer): void {
    const n = chunk.length;
    let i = 0;
    if (this.partial !== null) {
      const lf = chunk.indexOf(10);
      if (lf < 0) {
        this.partial = Buffer.concat([this.partial, chunk]);
        if (this.partial.length > MAX_CONTROL_LINE) throw new Error("control line too long");
        return;
      }
      const line = Buffer.concat([this.partial, chunk.subarray(0, lf + 1)]);
      this.partial = null;
      this.skip = this.line(line, 0, line.length - 1);
      i = lf + 1;
    }
    for (;;) {
      if (this.skip > 0) {
        if (this.skip >= n - i) {
          this.skip -= n - i;
          return;
        }
        i += this.skip;
        this.skip = 0;
      }
      if (i >= n) return;
      let j = i;
      while (j < n && chunk[j] !== 10) j++;
      if (j === n) {
        this.partial = Buffer.from(chunk.subarray(i));
        return;
      }
      this.skip = this.line(chunk, i, j);
      i = j + 1;
    }
  }

  /** Handles the control line buf[start..lf] (lf is the index of its LF); returns bytes to skip. */
  private line(buf: Buffer, start: number, lf: number): number {
    const end = buf[lf - 1] === 13 ? lf - 1 : lf;
    const op = buf[start];
    if (op === 0x4d /* M */ || op === 0x48 /* H */) {
      // MSG subject sid [reply] size / HMSG subject sid [reply] hdr_size total_size:
      // the last token is the number of payload bytes that follow the line.
      let k = end - 1;
      let size = 0;
      let mul = 1;
      while (k > start) {
        const d = buf[k] - 48;
        if (d < 0 || d > 9) break;
        size += d * mul;
        mul *= 10;
        k--;
      }
      if (mul === 1) throw new Error(`bad MSG line: ${buf.toString("latin1", start, end)}`);
      this.count++;
      if (this.onMsg !== null) this.onMsg(buf, start, end);
      return size + 2;
    }
    this.onControl(buf.toString("latin1", start, end));
    return 0;
  }
}

/** process.hrtime in nanoseconds as a number: CLOCK_MONOTONIC, comparable across processes. */
export function nowNs(): number {
  return Number(process.hrtime.bigint());
}

/**
 * A WebSocket connection (binary frames, no compression) dressed as the net.Socket the load
 * generators use: `data`, `drain`, `close`, `error` events, and write() that says when to wait.
 */
class WsSocket extends EventEmitter {
  private readonly ws: WebSocket;
  private raw: net.Socket | null = null;

  constructor(port: number) {
    super();
    this.ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
    this.ws.on("open", () => {
      const raw = (this.ws as unknown as { _socket: net.Socket })._socket;
      raw.setNoDelay(true);
      raw.on("drain", () => this.emit("drain"));
      this.raw = raw;
    });
    this.ws.on("message", (d: Buffer) => this.emit("data", d));
    this.ws.on("close", () => this.emit("close"));
    this.ws.on("error", (err) => this.emit("error", err));
  }

  write(data: string | Buffer): boolean {
    this.ws.send(typeof data === "string" ? Buffer.from(data, "latin1") : data);
    return !(this.raw?.writableNeedDrain ?? false);
  }

  destroy(): void {
    this.ws.terminate();
  }
}

function wsSocket(port: number): net.Socket {
  return new WsSocket(port) as unknown as net.Socket;
}
