// HTTP requests through shoal's router (a Host header of the test's choosing) and a task that
// says which task answered, for the router's daemon and cluster tests.

import { writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";

export interface Answer {
  status: number;
  body: string;
  setCookie: string[];
}

/** GET `path` from the router at addr:port with this Host header (and cookie). */
export function routedGet(
  port: number,
  host: string,
  cookie?: string,
  path = "/",
  addr = "127.0.0.1",
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: addr,
        port,
        path,
        headers: { Host: host, ...(cookie ? { Cookie: cookie } : {}) },
        agent: false,
      },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            body,
            setCookie: res.headers["set-cookie"] ?? [],
          }),
        );
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** The task answers `<task id> <pid> <x-forwarded-host>` and echoes WebSocket messages. */
export function routerTaskScript(dir: string): string {
  const ws = join(process.cwd(), "node_modules", "ws");
  const file = join(dir, "task.cjs");
  writeFileSync(
    file,
    `const http = require("http");
const { WebSocketServer } = require(${JSON.stringify(ws)});
const id = process.env.SHOAL_TASK_ID;
const s = http.createServer((q, r) => r.end(id + " " + process.pid + " " + (q.headers["x-forwarded-host"] || "")));
new WebSocketServer({ server: s }).on("connection", (c) => c.on("message", (m) => c.send("echo " + id + " " + m)));
// In a task of a network (the compose file's) the node's forwarder comes from outside the
// task's namespace: every address, not loopback.
s.listen(+process.env.PORT);
`,
  );
  return file;
}
