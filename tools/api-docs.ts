// Writes docs/api.md from the route schemas (src/api/http.ts): the route table, the join
// endpoint and a field table for every type a route takes or returns. `npm run docs:api` runs
// it; test/api/docs.test.ts fails when the file in the repository differs from what the schemas
// give. The output goes through prettier so `npm run format:check` accepts it as it is.

import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as prettier from "prettier";
import { Kind, type TSchema } from "@sinclair/typebox";
import {
  apiRoutes,
  joinRoutes,
  ErrorBodySchema,
  InfoSchema,
  JoinRequestSchema,
  JoinResponseSchema,
  RenewRequestSchema,
  PromoteRequestSchema,
  RenewResponseSchema,
  NetworkCreateSchema,
  NetworkInspectSchema,
  NodeUpdateSchema,
  NoBodySchema,
  OkSchema,
  ScaleBodySchema,
  ServiceBodySchema,
  ServiceSummarySchema,
  SecretCreateSchema,
  ConfigCreateSchema,
  SwarmSettingsSchema,
  SwarmUpdateSchema,
  SwarmCaSchema,
  CaRotateSchema,
  TokenSchema,
  type RouteSchema,
  TaskStatsRowSchema,
} from "../src/api/http.js";
import {
  NetworkAttachmentConfigSchema,
  NetworkSchema,
  TaskNetworkSchema,
  HealthConfigSchema,
  ServiceDependencySchema,
  TaskHealthSchema,
  NodeNetworkingSchema,
  NodeTlsInfoSchema,
  NodeResourcesSchema,
  LimitSupportSchema,
  NodeSchema,
  PortConfigSchema,
  ResourcesSchema,
  RestartPolicySchema,
  ServiceModeSchema,
  ServiceSchema,
  ServiceSpecSchema,
  TaskSchema,
  TaskStatusSchema,
  UpdateConfigSchema,
  UpdateStatusSchema,
  AutoscalePolicySchema,
  AutoscaleStatusSchema,
  ServiceSpecInputSchema,
  RollbackConfigSchema,
  PlacementPreferenceSchema,
  MountSchema,
  SecretReferenceSchema,
  ConfigReferenceSchema,
  SecretSchema,
  SecretInfoSchema,
  ConfigSchema,
  ConfigInfoSchema,
} from "../src/api/types.js";
import { ClusterEventSchema, EventActorSchema, EventCredentialsSchema } from "../src/api/events.js";

export const API_DOC = fileURLToPath(new URL("../../docs/api.md", import.meta.url));

/** The types documented, in this order; every titled type a route uses must be here. */
const TYPES: TSchema[] = [
  ErrorBodySchema,
  ServiceBodySchema,
  ScaleBodySchema,
  NodeUpdateSchema,
  SwarmUpdateSchema,
  SwarmSettingsSchema,
  SwarmCaSchema,
  CaRotateSchema,
  NoBodySchema,
  InfoSchema,
  TokenSchema,
  OkSchema,
  ServiceSchema,
  ServiceSummarySchema,
  ServiceSpecSchema,
  ServiceSpecInputSchema,
  ServiceModeSchema,
  PortConfigSchema,
  RestartPolicySchema,
  ResourcesSchema,
  UpdateConfigSchema,
  RollbackConfigSchema,
  MountSchema,
  PlacementPreferenceSchema,
  UpdateStatusSchema,
  AutoscalePolicySchema,
  AutoscaleStatusSchema,
  HealthConfigSchema,
  ServiceDependencySchema,
  NodeSchema,
  NodeResourcesSchema,
  LimitSupportSchema,
  NodeNetworkingSchema,
  NodeTlsInfoSchema,
  TaskSchema,
  TaskStatusSchema,
  TaskHealthSchema,
  TaskNetworkSchema,
  NetworkSchema,
  NetworkCreateSchema,
  NetworkInspectSchema,
  NetworkAttachmentConfigSchema,
  SecretReferenceSchema,
  ConfigReferenceSchema,
  SecretSchema,
  SecretInfoSchema,
  SecretCreateSchema,
  ConfigSchema,
  ConfigInfoSchema,
  ConfigCreateSchema,
  ClusterEventSchema,
  EventActorSchema,
  EventCredentialsSchema,
  JoinRequestSchema,
  JoinResponseSchema,
  TaskStatsRowSchema,
  RenewRequestSchema,
  PromoteRequestSchema,
  RenewResponseSchema,
];

type S = Record<string | symbol, unknown>;
const titled = new Set(TYPES.map((s) => (s as unknown as S)["title"] as string));

const anchor = (title: string) => `#${title.toLowerCase()}`;
const link = (title: string) => `[${title}](${anchor(title)})`;

function range(s: S): string {
  const min = s["minimum"] as number | undefined;
  const max = s["maximum"] as number | undefined;
  if (min !== undefined && max !== undefined) return ` ${min}..${max}`;
  if (min !== undefined) return ` >= ${min}`;
  if (max !== undefined) return ` <= ${max}`;
  return "";
}

/** A schema as a short type expression (a link for a documented type). */
function typeOf(schema: TSchema, top = false): string {
  const s = schema as unknown as S;
  const title = s["title"] as string | undefined;
  if (!top && title) {
    if (!titled.has(title)) throw new Error(`type ${title} is used but not documented (TYPES)`);
    const req = (s["required"] as string[] | undefined) ?? [];
    const canonical = TYPES.find((t) => (t as unknown as S)["title"] === title) as unknown as S;
    const partial =
      s["type"] === "object" && req.length < ((canonical["required"] as string[]) ?? []).length;
    return link(title) + (partial ? " (any fields)" : "");
  }
  switch (s[Kind]) {
    case "Union": {
      const parts = (s["anyOf"] as TSchema[]).map((v) => typeOf(v));
      return parts.join(" \\| ");
    }
    case "Literal":
      return `\`${JSON.stringify(s["const"])}\``;
    case "String":
      return "string";
    case "Integer":
      return "integer" + range(s);
    case "Number":
      return "number" + range(s);
    case "Boolean":
      return "boolean";
    case "Null":
      return "null";
    case "Array": {
      const item = typeOf(s["items"] as TSchema);
      return item.includes("\\|") ? `(${item})[]` : `${item}[]`;
    }
    case "Record": {
      const values = Object.values(s["patternProperties"] as Record<string, TSchema>);
      return `map of ${typeOf(values[0]!)}`;
    }
    case "Object": {
      const props = Object.entries((s["properties"] as Record<string, TSchema>) ?? {});
      if (props.length === 0) return "`{}`";
      const req = new Set((s["required"] as string[] | undefined) ?? []);
      return `{ ${props.map(([k, v]) => `${k}${req.has(k) ? "" : "?"}: ${typeOf(v)}`).join(", ")} }`;
    }
    default:
      return String(s[Kind] ?? "any").toLowerCase();
  }
}

const cell = (text: string) => text.replace(/\n/g, " ").replace(/\|/g, "\\|");

function typeSection(schema: TSchema): string {
  const s = schema as unknown as S;
  const title = s["title"] as string;
  const out = [`### ${title}`, ""];
  if (typeof s["description"] === "string") out.push(s["description"], "");
  if (s[Kind] !== "Object") {
    out.push(`One of: ${typeOf(schema, true)}.`, "");
    return out.join("\n");
  }
  const props = Object.entries((s["properties"] as Record<string, TSchema>) ?? {});
  if (props.length === 0) {
    out.push("An empty object `{}` (or no body at all).", "");
    return out.join("\n");
  }
  const req = new Set((s["required"] as string[] | undefined) ?? []);
  out.push("| field | type | |", "| --- | --- | --- |");
  for (const [k, v] of props) {
    const desc = ((v as unknown as S)["description"] as string | undefined) ?? "";
    const name = req.has(k) ? `\`${k}\`` : `\`${k}\` (optional)`;
    out.push(`| ${name} | ${typeOf(v)} | ${cell(desc)} |`);
  }
  out.push("");
  return out.join("\n");
}

function path(r: RouteSchema): string {
  return r.url.replace(/:(\w+)/g, "{$1}");
}

function query(r: RouteSchema): string {
  const props = Object.entries(r.querystring?.properties ?? {});
  return props.map(([k, v]) => `\`${k}\`: ${typeOf(v)}`).join(", ");
}

function routeTable(routes: Record<string, RouteSchema>): string {
  const rows = ["| method | path | query | body | returns |", "| --- | --- | --- | --- | --- |"];
  for (const r of Object.values(routes)) {
    const body = r.body && r.body !== NoBodySchema ? typeOf(r.body) : "";
    const reply = r.reply ? typeOf(r.reply) : cell(r.text ?? "text");
    rows.push(`| ${r.method} | \`${path(r)}\` | ${query(r)} | ${body} | ${reply} |`);
  }
  return rows.join("\n");
}

function routeList(routes: Record<string, RouteSchema>): string {
  return Object.values(routes)
    .map((r) => `- \`${r.method} ${path(r)}\`: ${r.summary}`)
    .join("\n");
}

/** docs/api.md as the schemas give it (before formatting). */
export function renderApiDocs(): string {
  return `# The shoal daemon API

<!-- Generated from the route schemas in src/api/http.ts by \`npm run docs:api\`: edit those, not
this file (a test fails when the two differ). -->

The CLI talks to the daemon over HTTP with JSON bodies. By default the API listens on the unix
socket \`$SHOAL_DATA_DIR/shoal.sock\` (\`~/.shoal/shoal.sock\`); \`shoal daemon --api-addr HOST:PORT\`
also serves it on TCP (off loopback, or with \`--api-tls\`, as HTTPS with mutual TLS: a manager's
certificate from the swarm's CA). The CLI finds it through \`SHOAL_DATA_DIR\`, or \`SHOAL_HOST\`
(\`unix:///path/to/shoal.sock\` or \`tcp://host:port\`), like \`DOCKER_HOST\`, with
\`SHOAL_TLS_VERIFY=1\` and \`SHOAL_CERT_PATH\` for TLS, like \`DOCKER_TLS_VERIFY\` and
\`DOCKER_CERT_PATH\`.

\`\`\`sh
curl --unix-socket ~/.shoal/shoal.sock http://shoal/v1/services
\`\`\`

Every request is checked against its route's schema before anything runs: path parameters,
query and body. A bad request gets \`400\` with a message that names the field and the rule
(\`spec.update.failureAction must be one of pause, continue, rollback\`, \`spec.mode is required\`,
\`spec.foo is not a known field\`) and changes nothing. Bodies and queries refuse fields they do not
declare. Durations are in milliseconds and sizes in bytes.

Every error is one shape, ${link("Error")}: \`{"message": "...", "code": "ERR_..."}\`, with status
400 (\`ERR_INVALID\`, \`ERR_UNSUPPORTED\`), 403 (\`ERR_TOKEN\`), 404 (\`ERR_NOT_FOUND\`, also for an
unknown route), 409 (\`ERR_NAME_IN_USE\`, \`ERR_PORT_IN_USE\`) or 500 (\`ERR_INTERNAL\`).

## Routes

\`{ref}\` is an id, a name (a hostname for nodes) or an id prefix that matches one object.

${routeTable(apiRoutes)}

${routeList(apiRoutes)}

## The join endpoint

Served on the network (\`--listen-addr\`, Swarm's port 2377); the rest of the API stays on the
local socket. Same error shape.

${routeTable(joinRoutes)}

${routeList(joinRoutes)}

## Types

The types are TypeBox schemas in \`src/api/\` (\`types.ts\`, \`http.ts\`); the TypeScript types are
derived from them. Replies may carry fields not listed here (a newer daemon may add some).

${TYPES.map(typeSection).join("\n")}`;
}

/** docs/api.md as it should be: rendered and formatted with the repository's prettier config. */
export async function apiDocs(): Promise<string> {
  const config = (await prettier.resolveConfig(API_DOC)) ?? {};
  return prettier.format(renderApiDocs(), { ...config, parser: "markdown" });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const next = await apiDocs();
  const check = process.argv.includes("--check");
  const cur = readFileSync(API_DOC, "utf8");
  if (check) {
    if (cur !== next) {
      process.stderr.write("docs/api.md is out of date: run npm run docs:api\n");
      process.exit(1);
    }
  } else if (cur !== next) {
    writeFileSync(API_DOC, next);
    process.stdout.write("wrote docs/api.md\n");
  }
}
