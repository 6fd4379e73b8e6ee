// goweb: the walkthrough's small web app. A user logs in, every page view is counted, and each
// page says which task answered. The session lives in Redis, not in the task, so when the
// task's machine dies and another task answers, the user is still logged in and the count goes
// on. Configuration by environment: PORT (the port to listen on, shoal sets it), REDIS_URL
// (default redis://redis:6379, the redis service's name on the stack's network).

import { createServer } from "node:http";
import { randomBytes } from "node:crypto";
import { hostname, networkInterfaces } from "node:os";
import { createClient } from "redis";

const PORT = Number(process.env.PORT ?? 8080);
const REDIS_URL = process.env.REDIS_URL ?? "redis://redis:6379";
const COOKIE = "goweb_session";
const SESSION_TTL_S = 24 * 3600;
const TASK = process.env.SHOAL_TASK_NAME ?? hostname();
const NODE = process.env.SHOAL_NODE_HOSTNAME ?? hostname();
const NODE_ID = process.env.SHOAL_NODE_ID ?? "";

/** This task's addresses other than loopback (where it answers on its networks). */
function addresses() {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && a.family === "IPv4" && !a.internal)
    .map((a) => a.address);
}

const redis = createClient({
  url: REDIS_URL,
  socket: { reconnectStrategy: (n) => Math.min(100 * 2 ** n, 2000) },
});
redis.on("error", (err) => console.error(`redis: ${err.message}`));

function sessionOf(req) {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const [k, v] = part.trim().split("=");
    if (k === COOKIE && /^[0-9a-f]{32}$/.test(v ?? "")) return v;
  }
  return undefined;
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
      if (body.length > 4096) reject(new Error("form too large"));
    });
    req.on("end", () => resolve(new URLSearchParams(body)));
    req.on("error", reject);
  });
}

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, { "Content-Type": type, "Cache-Control": "no-store", ...headers });
  res.end(body);
}

function page(title, inner) {
  return `<!doctype html><html lang="en"><meta charset="utf-8"><title>${title}</title>
<body style="font-family:sans-serif;max-width:40em;margin:2em auto">${inner}</body></html>\n`;
}

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function handle(req, res) {
  const url = new URL(req.url ?? "/", "http://goweb");
  const json = url.searchParams.has("json") || (req.headers.accept ?? "").includes("json");
  if (url.pathname === "/health") {
    const ok = redis.isReady && (await redis.ping()) === "PONG";
    return send(res, ok ? 200 : 503, "text/plain", ok ? "ok\n" : "redis unreachable\n");
  }
  if (url.pathname === "/login" && req.method === "POST") {
    const form = await readForm(req);
    const user = (form.get("user") ?? "").trim().slice(0, 64);
    if (!user) return send(res, 400, "text/plain", "user is required\n");
    const id = randomBytes(16).toString("hex");
    await redis.hSet(`session:${id}`, { user, views: "0" });
    await redis.expire(`session:${id}`, SESSION_TTL_S);
    return send(res, 303, "text/plain", "logged in\n", {
      Location: "/",
      "Set-Cookie": `${COOKIE}=${id}; Path=/; HttpOnly; SameSite=Lax`,
    });
  }
  if (url.pathname === "/logout") {
    const id = sessionOf(req);
    if (id) await redis.del(`session:${id}`);
    return send(res, 303, "text/plain", "logged out\n", {
      Location: "/",
      "Set-Cookie": `${COOKIE}=; Path=/; Max-Age=0`,
    });
  }
  if (url.pathname !== "/") return send(res, 404, "text/plain", "not found\n");
  const served = { task: TASK, node: NODE, nodeId: NODE_ID, addresses: addresses() };
  const id = sessionOf(req);
  const user = id ? await redis.hGet(`session:${id}`, "user") : null;
  if (!id || !user) {
    if (json) return send(res, 401, "application/json", JSON.stringify({ login: true, ...served }));
    return send(
      res,
      200,
      "text/html",
      page(
        "goweb: log in",
        `<h1>Log in</h1><form method="post" action="/login">
<label>Name <input name="user" autofocus required></label> <button>Log in</button></form>
<p>Served by ${escape(TASK)} on ${escape(NODE)} (${escape(served.addresses.join(", "))})</p>`,
      ),
    );
  }
  const views = await redis.hIncrBy(`session:${id}`, "views", 1);
  await redis.expire(`session:${id}`, SESSION_TTL_S);
  if (json) return send(res, 200, "application/json", JSON.stringify({ user, views, ...served }));
  return send(
    res,
    200,
    "text/html",
    page(
      "goweb",
      `<h1>Hello, ${escape(user)}</h1><p>Page views in this session: <b>${views}</b></p>
<p>Served by ${escape(TASK)} on ${escape(NODE)} (${escape(served.addresses.join(", "))})</p>
<p><a href="/logout">Log out</a></p>`,
    ),
  );
}

createServer((req, res) => {
  handle(req, res).catch((err) => {
    console.error(`${req.method} ${req.url}: ${err.message}`);
    if (!res.headersSent) send(res, 503, "text/plain", `unavailable: ${err.message}\n`);
    else res.destroy();
  });
}).listen(PORT, () => console.log(`goweb ${TASK} listening on :${PORT}, sessions in ${REDIS_URL}`));

await redis.connect().catch((err) => console.error(`redis: ${err.message}`));
