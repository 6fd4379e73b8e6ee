// The dashboard page: logs in when the server asks for it, follows the live state and the event
// feed, renders the view the address names (#/, #/services, #/service/NAME, #/nodes, #/events),
// and runs the actions — each after the user confirms it.

import { api, ApiError } from "./api.js";
import { subscribe } from "./stream.js";
import { subscribeEvents } from "./feed.js";
import type { DashEvent, DashState } from "./types.js";
import { eventsView, gridView, nodesView, serviceView, servicesView } from "./views.js";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

let state: DashState | null = null;
const events: DashEvent[] = [];
const drafts = new Map<string, string>();
const logs = new Map<string, string[]>();
let live = false;

function route(): { view: string; arg: string } {
  const [, view = "", arg = ""] = location.hash.split("/");
  return { view, arg: decodeURIComponent(arg) };
}

function render(): void {
  const main = $("view");
  if (!state) {
    main.innerHTML = `<p>Loading…</p>`;
    return;
  }
  // Keep focus and the caret on the control that had them.
  const active = document.activeElement as HTMLInputElement | null;
  const focusId = active && main.contains(active) ? active.id : "";
  const caret = active && active.type === "text" ? active.selectionStart : null;
  const { view, arg } = route();
  let html: string;
  if (view === "services") html = servicesView(state, drafts);
  else if (view === "service") html = serviceView(state, arg, drafts, logs.get(arg), events);
  else if (view === "nodes") html = nodesView(state);
  else if (view === "events") html = eventsView(events);
  else html = gridView(state);
  main.innerHTML = html;
  document.title = `shoal — ${view || "grid"}`;
  for (const a of document.querySelectorAll<HTMLAnchorElement>("nav a")) {
    const current = a.getAttribute("href") === `#/${view === "service" ? "services" : view}`;
    if (current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (focusId) {
    const el = document.getElementById(focusId) as HTMLInputElement | null;
    el?.focus();
    if (el && caret !== null) el.setSelectionRange(caret, caret);
  }
}

function setStatus(): void {
  $("status").textContent = live
    ? `live · revision ${state?.revision ?? "…"}`
    : "not connected — retrying…";
  $("status").className = live ? "live" : "offline";
}

let toastTimer = 0;
function toast(text: string, error = false): void {
  const t = $("toast");
  t.textContent = text;
  t.className = error ? "show error" : "show";
  clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => (t.className = ""), 6000);
}

/** Asks the user; resolves true on Confirm. */
function confirmAction(text: string, okLabel: string): Promise<boolean> {
  const dialog = $("confirm") as HTMLDialogElement;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel;
  const back = document.activeElement as HTMLElement | null;
  dialog.returnValue = "";
  dialog.showModal();
  $("confirm-cancel").focus();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        back?.focus();
        resolve(dialog.returnValue === "ok");
      },
      { once: true },
    );
  });
}

async function act(what: () => Promise<unknown>, done: string): Promise<void> {
  try {
    await what();
    toast(done);
  } catch (err) {
    toast(err instanceof Error ? err.message : String(err), true);
  }
}

async function loadLogs(service: string): Promise<void> {
  try {
    logs.set(service, (await api.logs(service)).lines);
  } catch (err) {
    logs.set(service, [`(cannot read the logs: ${(err as Error).message})`]);
  }
  render();
}

async function onAction(b: HTMLButtonElement): Promise<void> {
  const service = b.dataset["service"] ?? "";
  switch (b.dataset["action"]) {
    case "scale": {
      const svc = state?.services.find((s) => s.name === service);
      const text = drafts.get(service) ?? String(svc?.desired ?? "");
      const n = Number(text);
      if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n)) {
        toast(`replicas must be a whole number of 0 or more, not "${text}"`, true);
        return;
      }
      if (
        !(await confirmAction(
          `Scale ${service} from ${svc?.desired ?? "?"} to ${n} replicas?`,
          "Scale",
        ))
      ) {
        drafts.delete(service); // cancelled: the field shows the service's count again
        render();
        return;
      }
      await act(() => api.scale(service, n), `${service} scaled to ${n}`);
      drafts.delete(service);
      render();
      return;
    }
    case "rollback":
      if (!(await confirmAction(`Roll ${service} back to its previous spec?`, "Roll back"))) return;
      return act(() => api.rollback(service), `${service}: rollback started`);
    case "drain":
    case "activate": {
      const to = b.dataset["action"] === "drain" ? "drain" : "active";
      const name = b.dataset["name"] ?? "";
      const text =
        to === "drain"
          ? `Drain node ${name}? Its tasks will be moved to other nodes.`
          : `Activate node ${name}? It will take new tasks again.`;
      if (!(await confirmAction(text, to === "drain" ? "Drain" : "Activate"))) return;
      return act(() => api.availability(b.dataset["node"]!, to), `node ${name}: ${to}`);
    }
    case "logs":
      return loadLogs(service);
  }
}

function start(): void {
  $("login").hidden = true;
  $("view").hidden = false;
  subscribe<DashState>(
    "/api/state",
    "state",
    (s) => {
      state = s;
      setStatus();
      render();
    },
    (open) => {
      live = open;
      setStatus();
    },
  );
  subscribeEvents((e) => {
    events.push(e);
    if (events.length > 1000) events.splice(0, events.length - 1000);
    const { view } = route();
    if (view === "events" || view === "service") render();
  });
  const main = $("view");
  main.addEventListener("click", (e) => {
    const b = (e.target as HTMLElement).closest<HTMLButtonElement>("button[data-action]");
    if (b) void onAction(b);
  });
  main.addEventListener("input", (e) => {
    const i = e.target as HTMLInputElement;
    if (i.dataset["draft"] !== undefined) drafts.set(i.dataset["draft"], i.value);
  });
  main.addEventListener("keydown", (e) => {
    const i = e.target as HTMLInputElement;
    if (e.key === "Enter" && i.dataset["draft"] !== undefined) {
      // Not also the key's own press: it would reach the dialog's focused button.
      e.preventDefault();
      document.getElementById(`${i.id}-go`)?.click();
    }
  });
  window.addEventListener("hashchange", () => {
    const { view, arg } = route();
    if (view === "service" && !logs.has(arg)) void loadLogs(arg);
    render();
    window.scrollTo(0, 0);
    $("view").focus({ preventScroll: true });
  });
  const { view, arg } = route();
  if (view === "service") void loadLogs(arg);
  render();
}

async function main(): Promise<void> {
  let session;
  try {
    session = await api.session();
  } catch (err) {
    $("status").textContent = `cannot reach the dashboard server: ${(err as Error).message}`;
    return;
  }
  if (!session.required || session.ok) return start();
  $("view").hidden = true;
  $("login").hidden = false;
  $("status").textContent = "login needed";
  $("login-token").focus();
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = ($("login-token") as HTMLInputElement).value;
    api.login(token).then(start, (err: unknown) => {
      $("login-error").textContent =
        err instanceof ApiError && err.code === "ERR_TOKEN"
          ? "That is not the token."
          : String(err);
    });
  });
}

void main();
