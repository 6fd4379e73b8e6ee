// The dashboard's views as HTML text from the state (no framework: each render replaces the
// view; main.ts keeps focus and drafts across renders). Every value from the cluster goes
// through esc(). Controls have stable ids so focus survives a re-render.

import type {
  AutoscalePoint,
  DashEvent,
  DashNode,
  DashService,
  DashState,
  DashTask,
} from "./types.js";
import { describeEvent } from "./feed.js";

export function esc(v: unknown): string {
  return String(v).replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );
}

const TERMINAL = new Set(["complete", "shutdown", "failed", "rejected", "orphaned"]);

/** A task the grid shows: one the cluster still wants, or one not yet over. */
export function isLive(t: DashTask): boolean {
  return t.desiredState === "running" || t.desiredState === "ready" || !TERMINAL.has(t.state);
}

export function taskName(t: DashTask): string {
  return t.slot > 0 ? `${t.serviceName}.${t.slot}` : `${t.serviceName}.${t.nodeId.slice(0, 12)}`;
}

/** A stable hue per service, for the stripe on its cards. */
function hue(name: string): number {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}

const slug = (s: string) => s.replace(/[^a-zA-Z0-9_-]/g, "_");

function bytes(n: number): string {
  if (n <= 0) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) [n, i] = [n / 1024, i + 1];
  return `${n.toFixed(i > 1 ? 1 : 0)} ${units[i]}`;
}

function when(ms: number): string {
  return new Date(ms).toLocaleTimeString();
}

function taskCard(t: DashTask): string {
  const health = t.health ? ` · ${esc(t.health)}` : "";
  const label = `${taskName(t)}: ${t.state}${t.health ? `, ${t.health}` : ""}`;
  return `<li class="task state-${esc(t.state)}${t.health ? ` health-${esc(t.health)}` : ""}"
    style="--hue:${hue(t.serviceName)}" data-task="${esc(t.id)}" data-service="${esc(t.serviceName)}"
    data-slot="${t.slot}" data-state="${esc(t.state)}">
    <a href="#/service/${encodeURIComponent(t.serviceName)}" aria-label="${esc(label)}">${esc(taskName(t))}</a>
    <span class="state">${esc(t.state)}${health}</span>
    ${t.err ? `<span class="err">${esc(t.err)}</span>` : ""}</li>`;
}

function nodeBadges(n: DashNode): string {
  return `<span class="badge status-${esc(n.status)}">${esc(n.status)}</span>
    ${n.availability !== "active" ? `<span class="badge avail-${esc(n.availability)}">${esc(n.availability)}</span>` : ""}
    ${n.role === "manager" ? `<span class="badge">manager</span>` : ""}`;
}

export function gridView(s: DashState): string {
  const live = s.tasks.filter(isLive);
  const cols = s.nodes.map((n) => {
    const mine = live.filter((t) => t.nodeId === n.id);
    return `<section class="column node-${esc(n.status)}" data-node="${esc(n.hostname)}" data-node-id="${esc(n.id)}" aria-labelledby="col-${esc(n.id)}">
      <h3 id="col-${esc(n.id)}">${esc(n.hostname)} <code class="muted">${esc(n.id.slice(0, 12))}</code></h3>
      <p class="badges">${nodeBadges(n)}</p>
      <ul class="tasks" aria-label="Tasks on ${esc(n.hostname)}">${mine.map(taskCard).join("") || `<li class="empty">no tasks</li>`}</ul>
    </section>`;
  });
  const pending = live.filter((t) => t.nodeId === "");
  if (pending.length > 0) {
    cols.push(`<section class="column unassigned" data-node="" aria-labelledby="col-unassigned">
      <h3 id="col-unassigned">Not placed</h3>
      <ul class="tasks">${pending.map(taskCard).join("")}</ul></section>`);
  }
  return `<h2>Nodes and tasks</h2>
    <p class="summary">${s.nodes.length} nodes · ${s.services.length} services · ${live.filter((t) => t.state === "running").length} tasks running</p>
    <div class="grid">${cols.join("")}</div>`;
}

function ports(svc: DashService): string {
  return (
    svc.ports
      .map((p) => `${p.published}→${p.target}/${p.protocol}${p.mode === "host" ? " (host)" : ""}`)
      .join(", ") || "—"
  );
}

function updateStatus(svc: DashService): string {
  const u = svc.updateStatus;
  if (!u) return "—";
  return `<span class="update update-${esc(u.state)}" title="${esc(u.message)}">${esc(u.state.replace(/_/g, " "))}</span>`;
}

/** The update's message, when it says more than its state. */
function updateMessage(svc: DashService): string {
  const u = svc.updateStatus;
  if (!u?.message || u.message === u.state.replace(/_/g, " ")) return "";
  return ` — ${esc(u.message)}`;
}

function autoscaleText(a: unknown): string {
  if (a === null || typeof a !== "object") return esc(JSON.stringify(a));
  return Object.entries(a as Record<string, unknown>)
    .map(([k, v]) => `${esc(k)}: ${esc(typeof v === "object" ? JSON.stringify(v) : v)}`)
    .join(", ");
}

/**
 * The autoscaler's last hour as a small SVG chart: replicas as a solid step line, the deciding
 * metric's value (scaled to its own maximum) as a dashed line; its words in the label.
 */
export function autoscaleChart(points: AutoscalePoint[]): string {
  if (points.length === 0) return `<p class="muted">No autoscaler decisions yet.</p>`;
  const [w, h] = [320, 64];
  const t1 = points.at(-1)!.at;
  const t0 = Math.min(points[0]!.at, t1 - 60_000);
  const x = (at: number) => ((at - t0) / (t1 - t0)) * w;
  const maxR = Math.max(1, ...points.map((p) => p.replicas));
  const maxV = Math.max(0, ...points.map((p) => p.value ?? 0));
  const y = (v: number, max: number) => h - 4 - (v / max) * (h - 8);
  const steps = points
    .map((p, i) => `${i === 0 ? "M" : "H"}${x(p.at).toFixed(1)} V${y(p.replicas, maxR).toFixed(1)}`)
    .join(" ");
  const metric =
    maxV > 0
      ? `<path d="${points
          .filter((p) => p.value !== null)
          .map(
            (p, i) => `${i === 0 ? "M" : "L"}${x(p.at).toFixed(1)} ${y(p.value!, maxV).toFixed(1)}`,
          )
          .join(" ")}" class="metric" />`
      : "";
  const last = points.at(-1)!;
  const label = `Replicas over the last hour: now ${last.replicas}, at most ${maxR}${maxV > 0 ? `; metric now ${last.value ?? "unknown"}, at most ${Math.round(maxV * 10) / 10}` : ""}`;
  return `<svg class="autoscale-chart" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img" aria-label="${esc(label)}">
    <title>${esc(label)}</title><path d="${steps}" class="replicas" />${metric}</svg>`;
}

export function scaleControl(svc: DashService, draft: string | undefined): string {
  if (svc.mode !== "replicated") return "";
  const id = `scale-${slug(svc.name)}`;
  return `<span class="scale"><label for="${id}">Replicas of ${esc(svc.name)}</label>
    <input id="${id}" type="number" min="0" max="10000" inputmode="numeric" data-draft="${esc(svc.name)}" value="${esc(draft ?? String(svc.desired))}" />
    <button type="button" id="${id}-go" data-action="scale" data-service="${esc(svc.name)}">Scale</button></span>`;
}

function rollbackControl(svc: DashService): string {
  return svc.canRollback
    ? `<button type="button" id="rollback-${slug(svc.name)}" data-action="rollback" data-service="${esc(svc.name)}">Roll back</button>`
    : "";
}

export function servicesView(s: DashState, drafts: Map<string, string>): string {
  if (s.services.length === 0) return `<h2>Services</h2><p>No services yet.</p>`;
  const auto = s.services.some((x) => x.autoscale !== undefined);
  const rows = s.services.map(
    (svc) => `<tr data-service="${esc(svc.name)}">
      <th scope="row"><a href="#/service/${encodeURIComponent(svc.name)}">${esc(svc.name)}</a></th>
      <td>${esc(svc.mode)}</td>
      <td class="replicas ${svc.running < svc.desired ? "short" : ""}" data-replicas="${svc.running}/${svc.desired}">${svc.running}/${svc.desired}</td>
      <td>${esc(ports(svc))}</td>
      <td><code>${esc(svc.image)}</code></td>
      <td>${updateStatus(svc)}</td>
      ${auto ? `<td>${svc.autoscale !== undefined ? autoscaleText(svc.autoscale) : "—"}</td>` : ""}
      <td class="actions">${scaleControl(svc, drafts.get(svc.name))} ${rollbackControl(svc)}</td>
    </tr>`,
  );
  return `<h2>Services</h2>
    <table><thead><tr><th scope="col">Name</th><th scope="col">Mode</th><th scope="col">Replicas</th>
    <th scope="col">Ports</th><th scope="col">Image / command</th><th scope="col">Update</th>
    ${auto ? `<th scope="col">Autoscale</th>` : ""}<th scope="col">Actions</th></tr></thead>
    <tbody>${rows.join("")}</tbody></table>`;
}

function feedList(events: DashEvent[], label: string): string {
  if (events.length === 0) return `<p class="empty">No events yet.</p>`;
  const items = [...events]
    .reverse()
    .map(
      (e) =>
        `<li data-seq="${e.seq}" class="ev ev-${esc(e.Type)}"><time datetime="${new Date(e.time * 1000).toISOString()}">${when(e.timeNano / 1e6)}</time> ${esc(describeEvent(e))}</li>`,
    );
  return `<ol class="feed" aria-label="${esc(label)}">${items.join("")}</ol>`;
}

export function serviceView(
  s: DashState,
  name: string,
  drafts: Map<string, string>,
  logs: string[] | undefined,
  events: DashEvent[],
): string {
  const svc = s.services.find((x) => x.name === name);
  if (!svc) return `<h2>Service ${esc(name)}</h2><p>There is no such service (any more).</p>`;
  const node = (id: string) =>
    s.nodes.find((n) => n.id === id)?.hostname ?? (id ? id.slice(0, 12) : "—");
  const tasks = s.tasks
    .filter((t) => t.serviceId === svc.id)
    .sort((a, b) => a.slot - b.slot || b.timestamp - a.timestamp);
  const rows = tasks.map(
    (t) => `<tr class="state-${esc(t.state)}" data-task="${esc(t.id)}">
      <td>${esc(taskName(t))}</td><td><code>${esc(t.id.slice(0, 12))}</code></td><td>${esc(node(t.nodeId))}</td>
      <td>${esc(t.desiredState)}</td><td><span class="pill state-${esc(t.state)}">${esc(t.state)}</span>${t.health ? ` ${esc(t.health)}` : ""} <span class="muted">${when(t.timestamp)}</span></td>
      <td>${esc(t.err)}</td></tr>`,
  );
  const mine = events.filter(
    (e) => e.Actor.ID === svc.id || e.Actor.Attributes["service"] === svc.name,
  );
  return `<p><a href="#/services">← Services</a></p>
    <h2>Service ${esc(svc.name)}</h2>
    <dl class="facts">
      <dt>Replicas</dt><dd data-replicas="${svc.running}/${svc.desired}">${svc.running}/${svc.desired} (${esc(svc.mode)})</dd>
      <dt>Ports</dt><dd>${esc(ports(svc))}</dd>
      <dt>Image / command</dt><dd><code>${esc(svc.image)}</code></dd>
      <dt>Update</dt><dd>${updateStatus(svc)}${updateMessage(svc)}</dd>
      ${svc.autoscale !== undefined ? `<dt>Autoscale</dt><dd>${autoscaleText(svc.autoscale)}${svc.autoscaleStatus ? `<br />last decision: ${svc.autoscaleStatus.current} → ${svc.autoscaleStatus.desired}, ${esc(svc.autoscaleStatus.reason)}` : ""}<br />${autoscaleChart(svc.autoscaleHistory ?? [])}</dd>` : ""}
    </dl>
    <p class="actions">${scaleControl(svc, drafts.get(svc.name))} ${rollbackControl(svc)}</p>
    <h3>Tasks</h3>
    <table><thead><tr><th scope="col">Name</th><th scope="col">ID</th><th scope="col">Node</th><th scope="col">Desired</th><th scope="col">Current</th><th scope="col">Error</th></tr></thead>
    <tbody>${rows.join("")}</tbody></table>
    <h3>Last log lines <button type="button" id="logs-refresh" data-action="logs" data-service="${esc(svc.name)}">Refresh</button></h3>
    <pre class="logs" tabindex="0" aria-label="Log lines">${logs === undefined ? "loading…" : esc(logs.join("\n") || "(no lines)")}</pre>
    <h3>Events</h3>${feedList(mine.slice(-50), `Events of ${svc.name}`)}`;
}

export function nodesView(s: DashState): string {
  const rows = s.nodes.map((n) => {
    const tasks = s.tasks.filter((t) => t.nodeId === n.id && isLive(t));
    const drain = n.availability === "active";
    return `<tr data-node="${esc(n.hostname)}">
      <th scope="row">${esc(n.hostname)}<br /><code class="muted">${esc(n.id.slice(0, 12))}</code></th>
      <td>${esc(n.role)}</td><td><span class="badge status-${esc(n.status)}">${esc(n.status)}</span></td>
      <td data-availability="${esc(n.availability)}">${esc(n.availability)}</td>
      <td>${n.nanoCpus || "—"}</td><td>${bytes(n.memoryBytes)}</td><td>${esc(n.addr)}</td><td>${esc(n.engineVersion)}</td>
      <td>${tasks.map((t) => `<span class="pill state-${esc(t.state)}">${esc(taskName(t))}</span>`).join(" ") || "—"}</td>
      <td><button type="button" id="avail-${slug(n.id)}" data-action="${drain ? "drain" : "activate"}" data-node="${esc(n.id)}" data-name="${esc(n.hostname)}">${drain ? "Drain" : "Activate"}</button></td>
    </tr>`;
  });
  return `<h2>Nodes</h2>
    <table><thead><tr><th scope="col">Node</th><th scope="col">Role</th><th scope="col">Status</th><th scope="col">Availability</th>
    <th scope="col">CPUs</th><th scope="col">Memory</th><th scope="col">Address</th><th scope="col">Version</th><th scope="col">Tasks</th><th scope="col">Actions</th></tr></thead>
    <tbody>${rows.join("")}</tbody></table>`;
}

export function eventsView(events: DashEvent[]): string {
  return `<h2>Events</h2>${feedList(events.slice(-300), "Cluster events, newest first")}`;
}
