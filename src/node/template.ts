// Swarm's service templates: placeholders like `{{.Task.Slot}}` or `{{ .Node.Hostname }}` in a
// service's command, environment and hostname, filled in per task by the agent. Only plain field
// references are supported (no pipelines or functions); anything else, an unknown field or an
// unclosed `{{` is an error that names the placeholder, like `docker service create` rejects a
// bad template.

export type TemplateValue = string | number;

/** The fields a template may use; nested objects are reached with dots (`.Task.Slot`). */
export interface TemplateContext {
  Task: { ID: string; Slot: TemplateValue; Name: string };
  Service: { ID: string; Name: string };
  Node: { ID: string; Hostname: string };
  [group: string]: Record<string, unknown>;
}

export class TemplateError extends Error {
  override name = "TemplateError";
  readonly code = "ERR_TEMPLATE";
  /** The offending placeholders, as written. */
  readonly placeholders: string[];

  constructor(message: string, placeholders: string[]) {
    super(message);
    this.placeholders = placeholders;
  }
}

/** The context for a task, with Swarm's meanings (Task.Name is `<service>.<slot>`). */
export function templateContext(t: {
  taskId: string;
  slot: number;
  serviceId: string;
  serviceName: string;
  nodeId: string;
  nodeHostname: string;
}): TemplateContext {
  return {
    Task: { ID: t.taskId, Slot: String(t.slot), Name: `${t.serviceName}.${t.slot}` },
    Service: { ID: t.serviceId, Name: t.serviceName },
    Node: { ID: t.nodeId, Hostname: t.nodeHostname },
  };
}

const PATH = /^(?:\.[A-Za-z_][A-Za-z0-9_]*)+$/;

function lookup(ctx: TemplateContext, path: string): string | null {
  let v: unknown = ctx;
  for (const key of path.slice(1).split(".")) {
    if (v === null || typeof v !== "object" || !Object.hasOwn(v, key)) return null;
    v = (v as Record<string, unknown>)[key];
  }
  return typeof v === "string" || typeof v === "number" ? String(v) : null;
}

/** Whether the string contains a template action at all. */
export function hasTemplate(s: string): boolean {
  return s.includes("{{");
}

/**
 * Replaces every `{{ .Group.Field }}` in `s` with its value from ctx. Throws TemplateError
 * naming every unknown or malformed placeholder.
 */
export function expandTemplate(s: string, ctx: TemplateContext): string {
  if (!s.includes("{{")) return s;
  let out = "";
  let pos = 0;
  const bad: string[] = [];
  for (;;) {
    const open = s.indexOf("{{", pos);
    if (open < 0) break;
    const close = s.indexOf("}}", open + 2);
    if (close < 0) {
      throw new TemplateError(
        `template: unclosed action in ${JSON.stringify(s)}: ${s.slice(open)}`,
        [s.slice(open)],
      );
    }
    const raw = s.slice(open, close + 2);
    const inner = s.slice(open + 2, close).trim();
    const value = PATH.test(inner) ? lookup(ctx, inner) : null;
    if (value === null) bad.push(raw);
    out += s.slice(pos, open) + (value ?? "");
    pos = close + 2;
  }
  if (bad.length > 0) {
    const what = bad.length === 1 ? "placeholder" : "placeholders";
    throw new TemplateError(
      `template: unknown ${what} ${bad.join(", ")} in ${JSON.stringify(s)} ` +
        `(known: {{.Task.ID}}, {{.Task.Slot}}, {{.Task.Name}}, {{.Service.ID}}, ` +
        `{{.Service.Name}}, {{.Node.ID}}, {{.Node.Hostname}})`,
      bad,
    );
  }
  return out + s.slice(pos);
}
