// The control bus's users on a manager's embedded message server:
//   - the agent user (password derived from the cluster secret, never leaves the managers) may
//     use all of $SHOAL.>: the dispatcher and the manager's own node runtime, over loopback on
//     the message server's plain port;
//   - each node has a user named by its certificate's subject (RFC 2253 DN
//     `CN=<node id>,OU=<swarm-worker|swarm-manager>,O=<cluster id>`, ca.ts certUser), which the
//     message server's nodes' listener maps a client certificate to (verify_and_map): a node's
//     identity on the bus is its certificate. A worker may publish and subscribe only to the
//     subjects carrying its node id (api/bus.ts); a manager's certificate may use all of
//     $SHOAL.>. These users also carry a password that is derived from the cluster secret and
//     never sent anywhere, so they cannot be used on the plain port. A removed node's user is
//     gone from the list: its connections are cut off at once (Server.reloadUsers) and a new
//     connection with its certificate maps to no user;
//   - the events user (password derived from the cluster secret, given by `shoal events
//     credentials`) may only subscribe to the cluster events, $SHOAL.events.>: for dashboards
//     and tools with any NATS client;
//   - applications: each service has a user of its own (`svc-<service id>`, password derived
//     from the cluster secret and the service id, sent only to the nodes that run its tasks, in
//     their assignments), in its stack's account (`stack-<name>`) or, outside stacks, the
//     `apps` account, where the anonymous default user is too when the swarm enables it
//     (`--nats-anonymous`; off by default, so a client without credentials is refused). One
//     stack's subjects are private to it; no application user may use $SHOAL.> (the control
//     bus lives in $G). A stack shares subjects by its services' labels (api/model.ts): an
//     account exports the union of its services' `shoal.nats.export.stream|service` subjects
//     (to every account) and imports the union of their `shoal.nats.import.stream|service`
//     `<stack>:<subject>` entries (same subject name on both sides); an import of a subject the
//     other account does not export is left out, with a warning, until it does; so is one that
//     would close a cycle of imports.

import { createHash, createHmac } from "node:crypto";
import type {
  AccountConfig,
  ExportConfig,
  ImportConfig,
  Permissions,
  User,
} from "../nats/options.js";
import { isValidSubject, patternIsSubsetOf, subjectsOverlap } from "../nats/subject.js";
import {
  AGENT_USER,
  APP_USER,
  SUBJECT_PREFIX,
  INBOX_PREFIX,
  assignSubject,
  hbSubject,
  logControlSubject,
  logsSubject,
  statusSubject,
} from "../api/bus.js";
import { EVENTS_SUBJECT_PREFIX, EVENTS_USER } from "../api/events.js";
import type { NodeRole, Service } from "../api/types.js";
import type { AppCredentials } from "../api/bus.js";
import {
  NAMESPACE_LABEL,
  NATS_EXPORT_SERVICE_LABEL,
  NATS_EXPORT_STREAM_LABEL,
  NATS_IMPORT_SERVICE_LABEL,
  NATS_IMPORT_STREAM_LABEL,
} from "../api/model.js";
import { certUser } from "./ca.js";

/** The agent user's password, derived from the cluster secret (never sent in a token). */
export function agentPassword(clusterSecret: string): string {
  return createHash("sha256").update(`${clusterSecret}:agent`).digest("base64url");
}

/** The events user's password, derived from the cluster secret. */
export function eventsPassword(clusterSecret: string): string {
  return createHmac("sha256", clusterSecret).update("events").digest("base64url");
}

/** The events user: subscribes to the cluster events, publishes nothing. */
export function eventsBusUser(clusterSecret: string): User {
  return {
    user: EVENTS_USER,
    password: eventsPassword(clusterSecret),
    permissions: {
      publish: { allow: [], deny: [">"] },
      subscribe: { allow: [`${EVENTS_SUBJECT_PREFIX}.>`], deny: [] },
    },
  };
}

/** What a worker may do on the bus: its own subjects only. */
export function workerPermissions(nodeId: string): Permissions {
  return {
    publish: {
      allow: [
        hbSubject(nodeId),
        statusSubject(nodeId),
        `${INBOX_PREFIX}.${nodeId}.>`,
        `${SUBJECT_PREFIX}.logfollow.${nodeId}.>`,
      ],
      deny: [],
    },
    subscribe: {
      allow: [assignSubject(nodeId), logsSubject(nodeId), logControlSubject(nodeId)],
      deny: [],
    },
  };
}

/** A node's user: named by its certificate, with its role's permissions. */
export function nodeBusUser(
  clusterSecret: string,
  clusterId: string,
  node: { id: string; role: NodeRole },
): User {
  const password = createHmac("sha256", clusterSecret)
    .update(`cert-only:${node.id}`)
    .digest("base64url");
  const user = certUser(node.id, node.role, clusterId);
  return node.role === "manager"
    ? { user, password }
    : { user, password, permissions: workerPermissions(node.id) };
}

/** The account of applications outside stacks, and of the anonymous default user (if enabled). */
export const APPS_ACCOUNT = "apps";

/** What a service is, for its user: its id and labels (the stack's namespace label). */
export type AppService = Pick<Service, "id"> & { spec: Pick<Service["spec"], "labels"> };

/** The account a service's user belongs to: its stack's, or the applications' one. */
export function appAccountOf(s: AppService): string {
  const stack = s.spec.labels[NAMESPACE_LABEL];
  return stack ? `stack-${stack}` : APPS_ACCOUNT;
}

/** A service's user and password on the message server. */
export function appCredentials(clusterSecret: string, serviceId: string): AppCredentials {
  return {
    serviceId,
    user: `svc-${serviceId}`,
    password: createHmac("sha256", clusterSecret).update(`app:${serviceId}`).digest("base64url"),
  };
}

/** The labels that share subjects between accounts, with what each declares. */
const SHARE_LABELS = [
  { label: NATS_EXPORT_STREAM_LABEL, kind: "stream", dir: "export" },
  { label: NATS_EXPORT_SERVICE_LABEL, kind: "service", dir: "export" },
  { label: NATS_IMPORT_STREAM_LABEL, kind: "stream", dir: "import" },
  { label: NATS_IMPORT_SERVICE_LABEL, kind: "service", dir: "import" },
] as const;

/** The account named by `<stack>` in an import label: `apps` is the applications' account. */
export function stackAccount(stack: string): string {
  return stack === APPS_ACCOUNT ? APPS_ACCOUNT : `stack-${stack}`;
}

/** What a service's labels share: its account's exports and imports, and what is wrong. */
export interface Shares {
  exports: ExportConfig[];
  imports: ImportConfig[];
  /** One sentence per bad entry, naming the label (the entry is left out). */
  problems: string[];
}

/** What is wrong with a subject of a share label (null: nothing). */
function subjectProblem(subject: string): string | null {
  if (subject === "") return "an empty subject";
  if (!isValidSubject(subject)) {
    return `${JSON.stringify(subject)} is not a valid subject (no empty tokens or spaces, '>' only as the last token)`;
  }
  if (subject.split(".")[0] === SUBJECT_PREFIX) {
    return `${JSON.stringify(subject)} is under ${SUBJECT_PREFIX}., which applications cannot use`;
  }
  return null;
}

/**
 * A service's exports and imports, from its labels: exports `<subject>[,<subject>...]` (to every
 * account), imports `<stack>:<subject>[,...]` from that stack's account (`apps`: services outside
 * stacks), seen under the same subject here. A stack does not import from itself.
 */
export function sharesOf(labels: Readonly<Record<string, string>>): Shares {
  const out: Shares = { exports: [], imports: [], problems: [] };
  const own = appAccountOf({ id: "", spec: { labels } });
  for (const { label, kind, dir } of SHARE_LABELS) {
    const value = labels[label];
    if (value === undefined) continue;
    const bad = (what: string) => out.problems.push(`spec.labels["${label}"]: ${what}`);
    for (const raw of value.split(",")) {
      const entry = raw.trim();
      if (dir === "export") {
        const problem = subjectProblem(entry);
        if (problem !== null) bad(problem);
        else out.exports.push({ kind, subject: entry, accounts: [] });
        continue;
      }
      const colon = entry.indexOf(":");
      const stack = entry.slice(0, Math.max(colon, 0)).trim();
      if (colon < 0 || stack === "" || /\s/.test(stack)) {
        bad(
          `${JSON.stringify(entry)} must be <stack>:<subject> (the stack that exports it; apps: services outside stacks)`,
        );
        continue;
      }
      const subject = entry.slice(colon + 1).trim();
      const problem = subjectProblem(subject);
      const account = stackAccount(stack);
      if (problem !== null) bad(problem);
      else if (account === own) bad(`${JSON.stringify(entry)}: a stack cannot import from itself`);
      else out.imports.push({ kind, account, subject, to: subject });
    }
  }
  return out;
}

/** The problems of a spec's share labels (validate.ts). */
export function shareLabelProblems(labels: Readonly<Record<string, string>>): string[] {
  return sharesOf(labels).problems;
}

/** The values of a service's share labels (what its account's exports and imports depend on). */
export function shareLabelValues(s: AppService): (string | null)[] {
  return SHARE_LABELS.map(({ label }) => s.spec.labels[label] ?? null);
}

/**
 * The accounts applications live in (the applications' one and one per stack), each with the
 * union of its services' exports and of their imports that the other account exports; the
 * imports left out, and stored labels that do not parse, are warnings.
 */
export function appAccountPlan(services: readonly AppService[]): {
  accounts: AccountConfig[];
  warnings: string[];
} {
  const accounts = new Map<
    string,
    { exports: Map<string, ExportConfig>; imports: Map<string, ImportConfig> }
  >();
  const account = (name: string) => {
    let a = accounts.get(name);
    if (a === undefined) accounts.set(name, (a = { exports: new Map(), imports: new Map() }));
    return a;
  };
  account(APPS_ACCOUNT);
  const warnings: string[] = [];
  for (const s of services) {
    const a = account(appAccountOf(s));
    const shares = sharesOf(s.spec.labels);
    for (const p of shares.problems) warnings.push(`service ${s.id}: ${p}`);
    for (const e of shares.exports) a.exports.set(`${e.kind} ${e.subject}`, e);
    for (const i of shares.imports) a.imports.set(`${i.kind} ${i.account} ${i.subject}`, i);
  }
  const byKey = <T>(m: Map<string, T>) =>
    [...m].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)).map(([, v]) => v);
  const names = [...accounts.keys()].sort();
  // Imports placed so far, to refuse cycles (messages of `from` flow to `into`), as nats-server
  // refuses an import that forms one.
  const placed: { into: string; imp: ImportConfig }[] = [];
  const flowsBack = (into: string, imp: ImportConfig): boolean => {
    const seen = new Set([into]);
    const todo = [into];
    while (todo.length > 0) {
      const at = todo.pop()!;
      for (const p of placed) {
        if (p.imp.account !== at || p.imp.kind !== imp.kind || seen.has(p.into)) continue;
        if (!subjectsOverlap(p.imp.subject, imp.subject)) continue;
        if (p.into === imp.account) return true;
        seen.add(p.into);
        todo.push(p.into);
      }
    }
    return false;
  };
  const result = names.map((name) => ({
    name,
    exports: byKey(accounts.get(name)!.exports),
    imports: [] as ImportConfig[],
  }));
  for (const acc of result) {
    for (const i of byKey(accounts.get(acc.name)!.imports)) {
      const exports = accounts.get(i.account)?.exports;
      const ok = [...(exports?.values() ?? [])].some(
        (e) => e.kind === i.kind && patternIsSubsetOf(i.subject, e.subject),
      );
      const left = (why: string) =>
        warnings.push(
          `account "${acc.name}" imports ${i.kind} "${i.subject}" from account "${i.account}", ${why}`,
        );
      if (!ok) left("which does not export it: left out until it does");
      else if (flowsBack(acc.name, i)) left("which would form a cycle of imports: left out");
      else {
        acc.imports.push(i);
        placed.push({ into: acc.name, imp: i });
      }
    }
  }
  return { accounts: result, warnings };
}

/** The accounts applications live in, with their exports and imports (appAccountPlan). */
export function appAccounts(services: readonly AppService[]): AccountConfig[] {
  return appAccountPlan(services).accounts;
}

/**
 * The embedded message server's users, given the nodes and services now in the cluster. The
 * anonymous default user (clients that send no credentials, in the applications' account) is
 * there only when the swarm enables it (`shoal init/swarm update --nats-anonymous`).
 */
export function busUsers(
  clusterSecret: string,
  clusterId: string,
  nodes: readonly { id: string; role: NodeRole }[] = [],
  services: readonly AppService[] = [],
  anonymous = false,
): User[] {
  const deny = { allow: [], deny: [`${SUBJECT_PREFIX}.>`] };
  const app = { publish: deny, subscribe: deny };
  return [
    { user: AGENT_USER, password: agentPassword(clusterSecret) },
    ...(anonymous
      ? [{ user: APP_USER, password: "", permissions: app, account: APPS_ACCOUNT }]
      : []),
    eventsBusUser(clusterSecret),
    ...nodes.map((n) => nodeBusUser(clusterSecret, clusterId, n)),
    ...services.map((s) => {
      const c = appCredentials(clusterSecret, s.id);
      return { user: c.user, password: c.password, permissions: app, account: appAccountOf(s) };
    }),
  ];
}
